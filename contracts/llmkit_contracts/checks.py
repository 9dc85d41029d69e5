"""Framework-free contract checks: run the case catalogue against a provider.

:func:`check_provider` runs every case a provider's capabilities allow
against a running emulator that speaks its protocol, and raises one
``AssertionError`` naming each case that failed and why.
:func:`check_stream` and :func:`check_errors` run the streaming and the
error cases only; :func:`run_case` runs one. They need no test framework:
call them from pytest, unittest or a script. Calls go through
``llmkit.provider``'s call path (:func:`~llmkit.provider.prepare`, then the
``completion`` and ``acompletion`` generics), exactly as ``llmkit.core``
makes them; async modes run in a fresh event loop each, so call these
functions from synchronous code.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import msgspec

from llmkit.provider import (
    AsyncStream,
    Capabilities,
    ChatResponse,
    LLMError,
    ProviderKey,
    Stream,
    StreamChunk,
    accumulate,
    acompletion,
    capabilities,
    completion,
    prepare,
)
from llmkit_contracts.cases import CASES, STREAM_MODES, Case, Expect, Mode
from llmkit_contracts.emulator import Emulator, Received, Reply

__all__ = [
    "ContractReport",
    "Outcome",
    "check_errors",
    "check_provider",
    "check_stream",
    "missing_capability",
    "run_case",
]

CONTRACT_KEY = "sk-contract-0000000000"
_CLOSE_WAIT = 2.0


@dataclass(frozen=True)
class Outcome:
    """An answer reduced to what the cases compare."""

    text: str
    finish_reason: str | None
    usage: tuple[int, int] | None
    tool_calls: tuple[tuple[str, Any], ...]
    reasoning: str | None

    @classmethod
    def of(cls, response: ChatResponse) -> Outcome:
        """Reduce a response (a stream's, once accumulated)."""
        choice = response.choices[0] if response.choices else None
        usage = response.usage
        return cls(
            text=response.text,
            finish_reason=choice.finish_reason if choice else None,
            usage=(usage.prompt_tokens, usage.completion_tokens) if usage else None,
            tool_calls=tuple(
                (call.function.name, _parsed(call.function.arguments))
                for call in response.tool_calls
            ),
            reasoning=choice.message.reasoning if choice else None,
        )


@dataclass
class ContractReport:
    """What a check ran: case names that passed, and skipped ones with the reason."""

    provider: str
    model: str
    passed: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def _parsed(arguments: str) -> Any:
    try:
        return msgspec.json.decode(arguments)
    except msgspec.DecodeError:
        return arguments


def missing_capability(case: Case, caps: Capabilities) -> str | None:
    """Why ``case`` cannot run with ``caps``, or ``None`` when it can."""
    for flag in case.needs:
        if not getattr(caps, flag):
            return f"needs capability {flag!r}, which capabilities() reports as False"
    if not caps.streaming and all(mode in STREAM_MODES for mode in case.modes):
        return "needs capability 'streaming', which capabilities() reports as False"
    return None


def _modes(case: Case, caps: Capabilities) -> tuple[Mode, ...]:
    if caps.streaming:
        return case.modes
    return tuple(mode for mode in case.modes if mode not in STREAM_MODES)


class _Runner:
    """Runs one case against one provider on one emulator."""

    def __init__(
        self,
        provider: str | ProviderKey,
        emulator: Emulator,
        model: str,
        config: Mapping[str, Any] | None,
    ) -> None:
        self.provider = provider
        self.emulator = emulator
        self.model = model
        self.config: dict[str, Any] = {
            "api_key": CONTRACT_KEY,
            "api_base": emulator.base_url,
            "retries": 0,
            "timeout": 10.0,
            **(config or {}),
        }

    # --- calls --------------------------------------------------------------------------

    def _prepared(self, case: Case, request: Mapping[str, Any], streaming: bool) -> Any:
        return prepare(
            self.provider, self.model, request, {**self.config, **case.config}, streaming
        )

    def call(self, case: Case, mode: Mode, request: Mapping[str, Any]) -> tuple[Any, list[Any]]:
        """One call in ``mode``: the response and, for streams, the chunks."""
        streaming = mode in STREAM_MODES
        key, req, cfg = self._prepared(case, request, streaming)
        if mode == "sync":
            return completion(key, req, cfg), []
        if mode == "stream":
            with cast(Stream, completion(key, req, cfg)) as stream:
                chunks = list(stream)
            return accumulate(chunks), chunks
        return asyncio.run(self._acall(key, req, cfg, mode == "astream"))

    async def _acall(self, key: Any, req: Any, cfg: Any, streaming: bool) -> tuple[Any, list[Any]]:
        result = await cast(Awaitable[Any], acompletion(key, req, cfg))
        if not streaming:
            return result, []
        stream = cast(AsyncStream, result)
        chunks = [chunk async for chunk in stream]
        return accumulate(chunks), chunks

    def _fresh(self, replies: Sequence[Reply]) -> None:
        self.emulator.reset()
        self.emulator.enqueue(*replies)

    def _received(self) -> Received:
        requests = self.emulator.requests
        if not requests:
            raise AssertionError("the emulator received no request")
        last = requests[-1]
        return self.emulator.protocol.received(last.path, last.json)

    # --- kinds ----------------------------------------------------------------------------

    def run(self, case: Case, caps: Capabilities) -> None:
        for mode in _modes(case, caps):
            try:
                getattr(self, f"_{case.kind}")(case, mode)
            except AssertionError as exc:
                raise AssertionError(f"[{mode}] {exc}") from None

    def _answer(self, case: Case, mode: Mode) -> None:
        self._fresh(case.replies)
        _, chunks = self._expect_answer(case, mode, case.request)
        if chunks:
            _check_grammar(chunks, case.expect)
        _check_sent(self._received(), case.expect.sent)

    def _expect_answer(
        self, case: Case, mode: Mode, request: Mapping[str, Any]
    ) -> tuple[ChatResponse, list[Any]]:
        try:
            response, chunks = self.call(case, mode, request)
        except LLMError as exc:
            raise AssertionError(f"raised {type(exc).__name__}: {exc}") from None
        _check_outcome(Outcome.of(response), case.expect)
        return response, chunks

    def _round_trip(self, case: Case, mode: Mode) -> None:
        self._fresh(case.replies)
        first, _ = self.call(case, mode, case.request)
        message = first.choices[0].message
        ids = [call.id for call in message.tool_calls or ()]
        follow = [_with_ids(m, ids) for m in case.follow_up]
        history = [*case.request["messages"], msgspec.to_builtins(message), *follow]
        self._expect_answer(case, mode, {**case.request, "messages": history})
        received = self._received()
        _check_sent(received, case.expect.sent)
        if ids:
            sent_calls = [c[0] for turn in received.turns for c in turn.calls]
            answered = [t.tool_call_id for t in received.turns if t.role == "tool"]
            if answered != sent_calls:
                raise AssertionError(
                    f"tool results answer {answered}, but the assistant sent calls {sent_calls}"
                )

    def _error(self, case: Case, mode: Mode) -> None:
        self._fresh(case.replies)
        expect = case.expect
        try:
            response, _ = self.call(case, mode, case.request)
        except LLMError as exc:
            _check_error(exc, expect)
            return
        raise AssertionError(
            f"expected {_name(expect.error)}, but the call returned {Outcome.of(response)}"
        )

    def _interrupted(self, case: Case, mode: Mode) -> None:
        self._fresh(case.replies)
        try:
            response, _ = self.call(case, mode, case.request)
        except LLMError as exc:
            _check_error(exc, case.expect)
            return
        raise AssertionError(
            f"expected {_name(case.expect.error)} while streaming, but the stream ended "
            f"quietly with {Outcome.of(response)}"
        )

    def _early_close(self, case: Case, mode: Mode) -> None:
        self._fresh(case.replies)
        key, req, cfg = self._prepared(case, case.request, True)
        if mode == "stream":
            stream = cast(Stream, completion(key, req, cfg))
            next(iter(stream))
            stream.close()
        else:
            asyncio.run(_aclose_early(key, req, cfg))
        connection = self.emulator.requests[-1].connection
        deadline = time.monotonic() + _CLOSE_WAIT
        while connection in self.emulator.open_connections():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the stream was closed after one chunk, but connection {connection} was "
                    f"still open {_CLOSE_WAIT} s later"
                )
            time.sleep(0.01)
        self._fresh(())
        self._expect_answer(case, "sync", {"messages": [{"role": "user", "content": "Again"}]})


async def _aclose_early(key: Any, req: Any, cfg: Any) -> None:
    stream = cast(AsyncStream, await cast(Awaitable[Any], acompletion(key, req, cfg)))
    async for _ in stream:
        break
    await stream.aclose()


def _with_ids(message: Mapping[str, Any], ids: Sequence[str]) -> dict[str, Any]:
    result = dict(message)
    ref = result.get("tool_call_id")
    if isinstance(ref, str) and ref.startswith("$"):
        index = int(ref[1:])
        if index >= len(ids):
            raise AssertionError(f"the answer made {len(ids)} tool call(s); the case needs {ref}")
        result["tool_call_id"] = ids[index]
    return result


def _name(error: type[LLMError] | None) -> str:
    return error.__name__ if error else "an error"


def _check_error(exc: LLMError, expect: Expect) -> None:
    if expect.error is not None and not isinstance(exc, expect.error):
        raise AssertionError(
            f"expected {expect.error.__name__}, got {type(exc).__name__}: {exc}"
        ) from None
    if expect.status is not None and exc.status != expect.status:
        raise AssertionError(f"expected status {expect.status}, the error has {exc.status}")
    if expect.retry_after is not None and exc.retry_after != expect.retry_after:
        raise AssertionError(
            f"expected retry_after {expect.retry_after}, the error has {exc.retry_after}"
        )
    if CONTRACT_KEY in str(exc):
        raise AssertionError("the error message holds the API key")


def _check_outcome(got: Outcome, expect: Expect) -> None:
    wanted = {
        "text": expect.text,
        "finish_reason": expect.finish_reason,
        "usage": expect.usage,
        "tool_calls": expect.tool_calls,
        "reasoning": expect.reasoning,
    }
    for name, value in wanted.items():
        if value is not None and getattr(got, name) != value:
            shown = _short(getattr(got, name))
            raise AssertionError(f"{name} is {shown}, expected {_short(value)}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:100] + f"... ({len(text)} characters)"


def _projection(received: Received, name: str) -> Any:
    if name == "texts":
        return tuple((turn.role, turn.text) for turn in received.turns)
    if name == "images":
        return received.turns[-1].images if received.turns else 0
    return getattr(received, name)


def _check_sent(received: Received, sent: Mapping[str, Any]) -> None:
    for name, value in sent.items():
        got = _projection(received, name)
        if got != value:
            raise AssertionError(f"sent {name} {_short(got)}, expected {_short(value)}")


def _check_grammar(chunks: Sequence[StreamChunk], expect: Expect) -> None:
    if not chunks:
        raise AssertionError("the stream gave no chunks")
    first = next((c for c in chunks if c.choices), None)
    if first is None or first.choices[0].delta.role != "assistant":
        raise AssertionError("the first chunk with a choice does not carry role 'assistant'")
    finishes = [i for i, c in enumerate(chunks) for ch in c.choices if ch.finish_reason]
    if len(finishes) != 1:
        raise AssertionError(f"{len(finishes)} chunks carry a finish_reason; exactly one must")
    for chunk in chunks[finishes[0] + 1 :]:
        for choice in chunk.choices:
            delta = choice.delta
            if delta.content or delta.tool_calls or delta.reasoning:
                raise AssertionError("a delta arrived after the finish_reason")
    with_usage = [i for i, c in enumerate(chunks) if c.usage is not None]
    if expect.usage is not None and not with_usage:
        raise AssertionError("no chunk carries usage")
    if with_usage and with_usage[-1] < finishes[0]:
        raise AssertionError("usage arrived before the finish_reason; it must come last")


def _select(cases: Iterable[Case] | None, keep: Any) -> list[Case]:
    return [case for case in (CASES if cases is None else cases) if keep(case)]


def _run_all(
    provider: str | ProviderKey,
    emulator: Emulator,
    model: str,
    caps: Capabilities | None,
    config: Mapping[str, Any] | None,
    cases: list[Case],
) -> ContractReport:
    runner = _Runner(provider, emulator, model, config)
    name = provider if isinstance(provider, str) else provider.name
    if caps is None:
        key, _, _ = prepare(
            provider, model, {"messages": [{"role": "user", "content": "x"}]}, runner.config, False
        )
        caps = cast(Capabilities, capabilities(key, model))
    report = ContractReport(provider=name, model=model)
    failures: list[str] = []
    for case in cases:
        reason = missing_capability(case, caps)
        if reason is not None:
            report.skipped[case.name] = reason
            continue
        try:
            runner.run(case, caps)
        except AssertionError as exc:
            failures.append(f"{case.name}: {exc}")
        except Exception as exc:  # a crash is a failure of that case, not of the run
            failures.append(f"{case.name}: crashed with {type(exc).__name__}: {exc}")
        else:
            report.passed.append(case.name)
    if failures:
        raise AssertionError(
            f"{len(failures)} contract case(s) failed for {name} ({model}):\n- "
            + "\n- ".join(failures)
        )
    return report


def run_case(
    case: Case,
    provider: str | ProviderKey,
    emulator: Emulator,
    *,
    model: str,
    capabilities: Capabilities,
    config: Mapping[str, Any] | None = None,
) -> None:
    """Run one case in every mode the capabilities allow.

    The caller decides about skipping (see :func:`missing_capability`).

    Raises:
        AssertionError: the case failed; the message names the mode and what differed.
    """
    _Runner(provider, emulator, model, config).run(case, capabilities)


def check_provider(
    provider: str | ProviderKey,
    emulator: Emulator,
    *,
    model: str,
    capabilities: Capabilities | None = None,
    config: Mapping[str, Any] | None = None,
    cases: Iterable[Case] | None = None,
) -> ContractReport:
    """Run the contract cases against ``provider`` on a running ``emulator``.

    Args:
        provider: the provider's name or key.
        emulator: a started :class:`~llmkit_contracts.emulator.Emulator`
            speaking the provider's protocol; it is reset between cases.
        model: the model to ask for.
        capabilities: what the provider claims; by default what its
            ``capabilities`` method reports for ``model``. Cases needing a
            capability it lacks are skipped, with the reason, in the report.
        config: config entries on top of the check's (a test key, the
            emulator's ``api_base``, no retries, a 10 s timeout).
        cases: the cases to run; all of :data:`~llmkit_contracts.cases.CASES` by default.

    Returns:
        A :class:`ContractReport` of the passed and the skipped cases.

    Raises:
        AssertionError: one or more cases failed; the message names each
            case, the mode and what differed.
    """
    return _run_all(
        provider, emulator, model, capabilities, config, _select(cases, lambda case: True)
    )


def check_stream(
    provider: str | ProviderKey,
    emulator: Emulator,
    *,
    model: str,
    capabilities: Capabilities | None = None,
    config: Mapping[str, Any] | None = None,
) -> ContractReport:
    """:func:`check_provider` on the cases that stream only.

    Raises:
        AssertionError: as :func:`check_provider` does.
    """
    selected = _select(None, lambda case: all(mode in STREAM_MODES for mode in case.modes))
    return _run_all(provider, emulator, model, capabilities, config, selected)


def check_errors(
    provider: str | ProviderKey,
    emulator: Emulator,
    *,
    model: str,
    capabilities: Capabilities | None = None,
    config: Mapping[str, Any] | None = None,
) -> ContractReport:
    """:func:`check_provider` on the error cases only (statuses, timeouts, broken streams).

    Raises:
        AssertionError: as :func:`check_provider` does.
    """
    selected = _select(None, lambda case: case.kind in ("error", "interrupted"))
    return _run_all(provider, emulator, model, capabilities, config, selected)
