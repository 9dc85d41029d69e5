"""Replay recorded provider traffic through llmkit, from a loopback emulator.

A recording (a *record*) is one HTTP interaction in the corpus format that
llmkit's test corpus uses: a plain dict with ``"id"``, ``"kind"``,
``"request"`` (``method``, ``host``, ``path``, ``headers``, ``body``) and
``"response"`` (``status``, ``headers``, ``body_text``). A :class:`Replay`
serves a record's response bytes from an :class:`~llmkit_contracts.emulator.Emulator`
as a raw reply, so that piece boundaries reach the client's byte stream,
and drives llmkit against it through :mod:`llmkit.provider`'s public call
path (``prepare`` then ``completion`` / ``acompletion``)::

    with Replay("openai", OpenAIProtocol(), request_of, finish=is_finish) as replay:
        response = replay.complete(record)
        [sent] = replay.sent                      # what the client put on the wire
        streamed = replay.stream(record, seed=3)  # the body cut at random places
        replay.truncated(record, "before-finish-event")  # raises StreamInterruptedError

The provider-specific parts stay with the caller: how a record's request
becomes a llmkit request (``request_of``), which stream event finishes an
answer (``finish``), and what the decoded response should be. Loading the
records is the caller's business too; the harness takes records and bytes,
never paths.
"""

from __future__ import annotations

import random
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self, TypeAlias, cast

from llmkit.provider import (
    AsyncStream,
    ChatRequest,
    ChatResponse,
    Config,
    LLMError,
    ProviderKey,
    Stream,
    StreamChunk,
    Transport,
    Usage,
    acompletion,
    completion,
    prepare,
)
from llmkit_contracts.emulator import Emulator, RecordedRequest, Reply, WireProtocol

__all__ = [
    "CUTS",
    "RefusedReplayError",
    "Replay",
    "Streamed",
    "outline",
    "recorded_body",
    "split_anywhere",
    "truncations",
]

CUTS: Final = (
    "empty-body",
    "after-first-event",
    "before-finish-event",
    "before-finish-unterminated",
    "inside-finish-event",
)
"""The names of the cuts :func:`truncations` makes, in body order."""

_DEFAULT_CONFIG: Final[Mapping[str, Any]] = {
    "api_key": "sk-replay-0000000000",
    "retries": 0,
    # A replay that hangs fails in seconds rather than after the default ten minutes.
    "timeout": 30.0,
}
_OWNED_CONFIG: Final = frozenset({"api_base", "transport", "http_client", "async_http_client"})
# Recorded headers the raw reply must not repeat: the emulator frames the
# body itself, and body_text is already decoded.
_DROPPED_HEADERS: Final = frozenset(
    {"connection", "content-encoding", "content-length", "keep-alive", "transfer-encoding"}
)
_EVENT_END: Final = re.compile(rb"\r\n\r\n|\n\n|\r\r")

# Turns a record into the llmkit request that replays its recorded request.
_RequestOf: TypeAlias = Callable[[Mapping[str, Any]], ChatRequest | Mapping[str, Any]]


class RefusedReplayError(AssertionError):
    """The strict emulator refused the request llmkit sent, so the recording was not served.

    Either llmkit sent what the real API would refuse, or the emulator's
    checks are stricter than the API's; ``__cause__`` is the error the
    client saw.

    Attributes:
        refusal: the emulator's error reply.
        request: the refused request, as the emulator received it.
    """

    def __init__(self, refusal: Reply, request: RecordedRequest) -> None:
        super().__init__(
            f"the strict emulator refused {request.method} {request.path} "
            f"({refusal.status}: {refusal.message}); the recorded response was not served"
        )
        self.refusal = refusal
        self.request = request


@dataclass(frozen=True, slots=True)
class Streamed:
    """What a replayed stream gave: its chunks, in order, and the collected response."""

    chunks: tuple[StreamChunk, ...]
    response: ChatResponse


def recorded_body(record: Mapping[str, Any]) -> bytes:
    """Return the recorded response body of ``record`` as the bytes that were sent (UTF-8).

    Raises:
        KeyError: the record has no ``response.body_text``.
    """
    text: str = record["response"]["body_text"]
    return text.encode("utf-8")


def split_anywhere(body: bytes, seed: int, *, longest: int = 24) -> list[bytes]:
    """Cut ``body`` into pieces of 1 to ``longest`` bytes at places drawn from ``seed``.

    The cuts fall anywhere: inside lines, JSON tokens and UTF-8 characters
    alike. The same seed always gives the same pieces; they join to ``body``.

    Raises:
        ValueError: ``longest`` is below 1.
    """
    if longest < 1:
        raise ValueError("longest must be at least 1")
    rng = random.Random(seed)
    pieces: list[bytes] = []
    at = 0
    while at < len(body):
        size = rng.randint(1, longest)
        pieces.append(body[at : at + size])
        at += size
    return pieces


def _events(body: bytes) -> list[tuple[int, int]]:
    """``(start, end)`` of each server-sent event, its closing blank line included."""
    spans: list[tuple[int, int]] = []
    at = 0
    while at < len(body):
        match = _EVENT_END.search(body, at)
        end = len(body) if match is None else match.end()
        spans.append((at, end))
        at = end
    return spans


def truncations(body: bytes, finish: Callable[[bytes], bool]) -> dict[str, bytes]:
    """Return a server-sent-events ``body`` cut short in the ways a broken stream ends.

    ``finish`` is told each event's bytes (its lines and closing blank line)
    and says whether it finishes the answer (a finish reason, a stop event,
    the end marker); the first such event is *the finish event*. Every cut
    ends before it or inside it, so a client must report an interrupted
    stream for each. The keys are :data:`CUTS`:

    * ``empty-body``: no byte of the body;
    * ``after-first-event``: the first event only (or, when the finish event
      is the second, everything before it);
    * ``before-finish-event``: every event before the finish event;
    * ``before-finish-unterminated``: the same, the last event without its
      closing blank line;
    * ``inside-finish-event``: half of the finish event besides.

    Raises:
        ValueError: no event finishes the answer, or none comes before the finish event.
    """
    spans = _events(body)
    at = next((i for i, (start, end) in enumerate(spans) if finish(body[start:end])), None)
    if at is None:
        raise ValueError("no event of the body finishes the answer")
    if at == 0:
        raise ValueError("the first event already finishes the answer; nothing to cut before it")
    start, end = spans[at]
    head = body[:start]
    content = head.rstrip(b"\r\n")
    # Half of the blank-line ending: the last line keeps its own line ending.
    unterminated = head[: len(content) + (len(head) - len(content)) // 2]
    return {
        "empty-body": b"",
        "after-first-event": body[: spans[1][0]],
        "before-finish-event": head,
        "before-finish-unterminated": unterminated,
        "inside-finish-event": body[: start + (end - start) // 2],
    }


def _flat_usage(usage: Usage | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    out: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }
    for group in ("prompt_tokens_details", "completion_tokens_details"):
        details = getattr(usage, group)
        for name in details.__struct_fields__ if details is not None else ():
            value = getattr(details, name)
            if value is not None:
                out[f"{group}.{name}"] = value
    return out


def outline(response: ChatResponse) -> dict[str, Any]:
    """Return the parts of ``response`` a recording is checked against, as plain data.

    The shape, for a caller to build the same from the recorded JSON::

        {"model": str,
         "choices": [{"index": int, "content": str | None,
                      "tool_calls": [(id, name, arguments), ...],
                      "finish_reason": str | None}, ...],
         "usage": None | {"prompt_tokens", "completion_tokens", "total_tokens",
                          "<details group>.<field>": value, ...}}

    Usage details appear only where llmkit has a value (not ``None``).
    """
    choices = [
        {
            "index": choice.index,
            "content": choice.message.content,
            "tool_calls": [
                (call.id, call.function.name, call.function.arguments)
                for call in choice.message.tool_calls or []
            ],
            "finish_reason": choice.finish_reason,
        }
        for choice in response.choices
    ]
    return {"model": response.model, "choices": choices, "usage": _flat_usage(response.usage)}


class Replay:
    """Serves recordings from a loopback emulator and drives llmkit against them.

    One replay serves one provider. Start it once (``with``, or
    :meth:`start` and :meth:`stop`) and replay many records: each replay
    clears the emulator, queues the record's response as a raw reply and
    makes one call through :mod:`llmkit.provider`, on the replay's own
    :class:`~llmkit.provider.Transport`. A replay is not thread-safe.

    Args:
        provider: the provider name or key that llmkit calls.
        protocol: the wire protocol the emulator speaks; its ``base_path`` becomes
            the ``api_base`` of every call.
        request_of: turns a record into the llmkit request replaying its recorded
            request (a ``ChatRequest``, or a dict in OpenAI's shape with a ``model``).
        finish: says whether a stream event's bytes finish the answer; needed
            by :meth:`truncated` only (see :func:`truncations`).
        config: more call configuration (``api_key``, ``headers``, ``options``...);
            by default a fixed test key, no retries and a 30-second read timeout.
        strict: let the emulator check every request as the real API does; a
            refused request raises :class:`RefusedReplayError`.

    Attributes:
        provider: the provider name or key that llmkit calls.
        emulator: the emulator serving the recordings (its ``requests`` hold
            every request of the last replay).

    Raises:
        ValueError: ``config`` sets ``api_base``, ``transport`` or an HTTP client,
            which the replay owns.
    """

    def __init__(
        self,
        provider: str | ProviderKey,
        protocol: WireProtocol,
        request_of: _RequestOf,
        *,
        finish: Callable[[bytes], bool] | None = None,
        config: Mapping[str, Any] | None = None,
        strict: bool = True,
    ) -> None:
        owned = sorted(_OWNED_CONFIG.intersection(config or {}))
        if owned:
            raise ValueError(f"the replay sets {', '.join(owned)} itself; leave it out of config")
        self.provider = provider
        self.emulator = Emulator(protocol, strict=strict)
        self._request_of = request_of
        self._finish = finish
        self._config = {**_DEFAULT_CONFIG, **(config or {})}
        self._transport: Transport | None = None

    # --- lifetime -------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the emulator on 127.0.0.1 and open the replay's transport.

        Raises:
            RuntimeError: the replay is already running.
        """
        self.emulator.start()
        self._transport = Transport()
        return self

    def stop(self) -> None:
        """Close the transport's sync clients and stop the emulator; idempotent.

        Async clients are pooled per event loop and close when their loop shuts down.
        """
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
        self.emulator.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def sent(self) -> list[RecordedRequest]:
        """The requests the client sent during the last replay, in order."""
        return self.emulator.requests

    # --- replays --------------------------------------------------------------------------

    def complete(
        self, record: Mapping[str, Any], *, request: ChatRequest | Mapping[str, Any] | None = None
    ) -> ChatResponse:
        """Replay a record's response to a non-streamed call and return llmkit's response.

        Args:
            record: the recording; its response is served whole.
            request: the llmkit request to send instead of ``request_of(record)``.

        Raises:
            LLMError: whatever llmkit raises for the recorded response (an
                error status, an unreadable body).
            RefusedReplayError: the strict emulator refused the request.
        """
        key, req, config = self._serve(record, request, [recorded_body(record)], False, False)
        try:
            result = completion(key, req, config)
        except LLMError as exc:
            self._check_refused(exc)
            raise
        return _response(result)

    async def acomplete(
        self, record: Mapping[str, Any], *, request: ChatRequest | Mapping[str, Any] | None = None
    ) -> ChatResponse:
        """The async twin of :meth:`complete`, through ``acompletion``.

        Raises:
            LLMError: as :meth:`complete`.
            RefusedReplayError: as :meth:`complete`.
        """
        key, req, config = self._serve(record, request, [recorded_body(record)], False, False)
        try:
            result = await cast(Awaitable[Any], acompletion(key, req, config))
        except LLMError as exc:
            self._check_refused(exc)
            raise
        return _response(result)

    def stream(
        self,
        record: Mapping[str, Any],
        *,
        pieces: Sequence[bytes] | None = None,
        seed: int | None = None,
        disconnect: bool = False,
        request: ChatRequest | Mapping[str, Any] | None = None,
    ) -> Streamed:
        """Replay a record's stream body to a streamed call; read every chunk, then collect.

        Args:
            record: the recording.
            pieces: the body to serve, one HTTP chunk per piece (by default the
                recorded body in one piece).
            seed: serve the recorded body cut by :func:`split_anywhere` with this seed.
            disconnect: drop the connection after the last piece instead of
                ending the body.
            request: the llmkit request to send instead of ``request_of(record)``.

        Raises:
            ValueError: both ``pieces`` and ``seed`` are given.
            LLMError: whatever llmkit raises; :class:`~llmkit.provider.StreamInterruptedError`
                for a body that ends before the provider's end marker.
            RefusedReplayError: the strict emulator refused the request.
        """
        body = self._pieces(record, pieces, seed)
        key, req, config = self._serve(record, request, body, True, disconnect)
        try:
            result = completion(key, req, config)
            if not isinstance(result, Stream):
                raise TypeError(f"a streamed call returned {type(result).__name__}, not a Stream")
            with result:
                chunks = tuple(result)
                response = result.collect()
        except LLMError as exc:
            self._check_refused(exc)
            raise
        return Streamed(chunks, response)

    async def astream(
        self,
        record: Mapping[str, Any],
        *,
        pieces: Sequence[bytes] | None = None,
        seed: int | None = None,
        disconnect: bool = False,
        request: ChatRequest | Mapping[str, Any] | None = None,
    ) -> Streamed:
        """The async twin of :meth:`stream`, through ``acompletion`` and ``AsyncStream``.

        Raises:
            ValueError: as :meth:`stream`.
            LLMError: as :meth:`stream`.
            RefusedReplayError: as :meth:`stream`.
        """
        body = self._pieces(record, pieces, seed)
        key, req, config = self._serve(record, request, body, True, disconnect)
        try:
            result = await cast(Awaitable[Any], acompletion(key, req, config))
            if not isinstance(result, AsyncStream):
                raise TypeError(
                    f"a streamed call returned {type(result).__name__}, not an AsyncStream"
                )
            async with result:
                chunks = tuple([chunk async for chunk in result])
                response = await result.acollect()
        except LLMError as exc:
            self._check_refused(exc)
            raise
        return Streamed(chunks, response)

    def truncated(
        self, record: Mapping[str, Any], cut: str, *, disconnect: bool = False
    ) -> Streamed:
        """Replay a record's stream body cut short (see :func:`truncations`).

        A correct client raises; the return value is what a client that
        took the cut body for a whole answer gave.

        Args:
            record: the recording of a stream.
            cut: one of :data:`CUTS`.
            disconnect: drop the connection at the cut instead of ending the body there.

        Raises:
            StreamInterruptedError: as llmkit must raise for every cut.
            ValueError: the replay has no ``finish`` predicate, ``cut`` is not
                one of :data:`CUTS`, or the body cannot be cut (see :func:`truncations`).
            RefusedReplayError: the strict emulator refused the request.
        """
        if self._finish is None:
            raise ValueError("give the Replay a finish= predicate to cut streams")
        if cut not in CUTS:
            raise ValueError(f"unknown cut {cut!r}; known: {', '.join(CUTS)}")
        body = truncations(recorded_body(record), self._finish)[cut]
        return self.stream(record, pieces=[body], disconnect=disconnect)

    # --- internals ------------------------------------------------------------------------

    @staticmethod
    def _pieces(
        record: Mapping[str, Any], pieces: Sequence[bytes] | None, seed: int | None
    ) -> Sequence[bytes]:
        if pieces is not None and seed is not None:
            raise ValueError("give pieces or seed, not both")
        if seed is not None:
            return split_anywhere(recorded_body(record), seed)
        return [recorded_body(record)] if pieces is None else pieces

    def _serve(
        self,
        record: Mapping[str, Any],
        request: ChatRequest | Mapping[str, Any] | None,
        pieces: Sequence[bytes],
        stream: bool,
        disconnect: bool,
    ) -> tuple[ProviderKey, ChatRequest, Config]:
        """Queue the record's response and return the prepared call."""
        if self._transport is None:
            raise RuntimeError("the replay is not running; call start() or use it in a with")
        self.emulator.reset()
        req = self._request_of(record) if request is None else request
        model = req.model if isinstance(req, ChatRequest) else req.get("model")
        if not isinstance(model, str):
            raise TypeError("the request to replay has no model string")
        config = {
            **self._config,
            "api_base": self.emulator.base_url,
            "transport": self._transport,
        }
        prepared = prepare(self.provider, model, req, config, stream)
        recorded = record["response"]
        headers = {
            name: value
            for name, value in (recorded.get("headers") or {}).items()
            if isinstance(value, str) and name.lower() not in _DROPPED_HEADERS
        }
        reply = Reply.raw(
            recorded["status"],
            pieces,
            headers=headers,
            disconnect_after=len(pieces) if disconnect else None,
        )
        self.emulator.enqueue(reply)
        return prepared

    def _check_refused(self, error: LLMError) -> None:
        """Raise :class:`RefusedReplayError` when the emulator, not the recording, answered.

        Asking the emulator again whether it refuses the request tells which answered.
        """
        sent = self.emulator.requests
        if not sent:
            return
        last = sent[-1]
        refusal = self.emulator.refusal(last.method, last.path, last.headers, last.json)
        if refusal is not None:
            raise RefusedReplayError(refusal, last) from error


def _response(result: object) -> ChatResponse:
    if not isinstance(result, ChatResponse):
        raise TypeError(f"a non-streamed call returned {type(result).__name__}, not a response")
    return result
