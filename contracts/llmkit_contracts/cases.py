"""The contract cases, as data.

A :class:`Case` is a request in llmkit's (OpenAI-shaped) dict form, the
scripted replies the emulator sends, and what must come out: the
normalized answer, the error, or what the provider must have put on the
wire. It names the :class:`~llmkit.provider.Capabilities` flags it needs;
a provider that lacks one skips the case, with that reason.

Cases are protocol-neutral: a :class:`~llmkit_contracts.emulator.Reply`
becomes each provider's bytes through its emulator's protocol, and what
was sent is read back through :meth:`WireProtocol.received`. So one
catalogue checks every provider, built-in or third-party.

Kinds of case (how :mod:`llmkit_contracts.checks` runs them):

* ``answer``: one call in each mode (sync, async, stream, async stream)
  must give :attr:`Expect` exactly; streams must also keep the grammar
  (role first, deltas, one finish, usage last).
* ``round_trip``: the answer goes back into the history with
  :attr:`Case.follow_up`, and the second call must be accepted and
  answered; tool results must answer the calls by id.
* ``error``: each mode must raise :attr:`Expect.error` (``status`` and
  ``retry_after`` checked where given).
* ``interrupted``: a stream cut or failing midway must raise, never end quietly.
* ``early_close``: closing a stream after one chunk releases its connection.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal

from llmkit.provider import (
    AuthenticationError,
    InvalidRequestError,
    LLMError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    StreamInterruptedError,
    TimeoutError,
)
from llmkit_contracts.emulator import Reply

__all__ = ["CASES", "MODES", "STREAM_MODES", "Case", "Expect", "Kind", "Mode", "case_named"]

Kind = Literal["answer", "round_trip", "error", "interrupted", "early_close"]
Mode = Literal["sync", "async", "stream", "astream"]
MODES: Final[tuple[Mode, ...]] = ("sync", "async", "stream", "astream")
STREAM_MODES: Final[tuple[Mode, ...]] = ("stream", "astream")
CALL_MODES: Final[tuple[Mode, ...]] = ("sync", "async")

_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})


@dataclass(frozen=True)
class Expect:
    """What a case must produce; ``None`` fields are not checked.

    Attributes:
        text: The answer's text (a stream's, once accumulated).
        finish_reason: The normalized finish reason.
        usage: ``(prompt_tokens, completion_tokens)``.
        tool_calls: ``(name, arguments)`` pairs, the arguments parsed from JSON.
        reasoning: The reasoning text of the answer message.
        error: The llmkit error class the call must raise (a subclass passes).
        status: The HTTP status the error must carry.
        retry_after: The error's ``retry_after`` in seconds.
        sent: What the request must have carried, read back from the wire
            by the protocol: keys are ``system``, ``texts`` (``(role,
            text)`` of every non-system turn), ``max_tokens``, ``stop``,
            ``tools``, ``tool_choice``, ``response_format``, ``images``
            (image parts of the last turn) and ``stream``.
    """

    text: str | None = None
    finish_reason: str | None = None
    usage: tuple[int, int] | None = None
    tool_calls: tuple[tuple[str, Any], ...] | None = None
    reasoning: str | None = None
    error: type[LLMError] | None = None
    status: int | None = None
    retry_after: float | None = None
    sent: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)


@dataclass(frozen=True)
class Case:
    """One contract case.

    Attributes:
        name: A unique snake_case name; the pytest plugin's test is ``test_<name>``.
        kind: How the case runs (see the module docstring).
        request: The request in llmkit's dict form, without ``model``.
        replies: What the emulator answers, in order (a round trip uses two).
        expect: What must come out (of the last call, for a round trip).
        needs: The capability flags the case needs; ``streaming`` is
            implied by stream modes and need not be named.
        modes: The modes the case runs in.
        config: Config entries on top of the check's (``timeout``, ``retries``).
        follow_up: Round trips: messages appended after the first answer.
            A ``tool_call_id`` of ``"$0"``, ``"$1"`` names the first
            answer's tool calls by position.
        doc: One line on what the case guards.
    """

    name: str
    kind: Kind
    request: Mapping[str, Any]
    replies: tuple[Reply, ...]
    expect: Expect
    needs: tuple[str, ...] = ()
    modes: tuple[Mode, ...] = MODES
    config: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    follow_up: tuple[Mapping[str, Any], ...] = ()
    doc: str = ""


def _user(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


_WEATHER: Final = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
_TIME: Final = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The current time.",
        "parameters": {"type": "object", "properties": {}},
    },
}
# A 1x1 transparent PNG.
_PNG: Final = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNk"
    "YAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)
_PARIS: Final = ("get_weather", '{"city": "Paris"}')
_LONG: Final = "".join(
    f"Line {i}: the quick brown fox jumps over the lazy dog.\n" for i in range(2000)
)
_UNICODE: Final = "Grüße, 世界! 👋🏽 café — naïve ½ 𝄞 ﷽"


def _tool_request(choice: Any = None, tools: tuple[Any, ...] = (_WEATHER,)) -> dict[str, Any]:
    request: dict[str, Any] = {**_user("What is the weather in Paris?"), "tools": list(tools)}
    if choice is not None:
        request["tool_choice"] = choice
    return request


def _answers() -> list[Case]:
    return [
        Case(
            "plain_text",
            "answer",
            _user("Say hello."),
            (Reply.text("Hello there, friend!", prompt_tokens=9, completion_tokens=4),),
            Expect(
                text="Hello there, friend!",
                finish_reason="stop",
                usage=(9, 4),
                sent={"texts": (("user", "Say hello."),)},
            ),
            doc="text in, text out, finish stop, usage",
        ),
        Case(
            "system_prompt",
            "answer",
            {
                "messages": [
                    {"role": "system", "content": "You answer in one word."},
                    {"role": "user", "content": "Capital of France?"},
                ]
            },
            (Reply.text("Paris"),),
            Expect(
                text="Paris",
                sent={
                    "system": "You answer in one word.",
                    "texts": (("user", "Capital of France?"),),
                },
            ),
            doc="the system prompt reaches the provider in its own form",
        ),
        Case(
            "multi_turn_history",
            "answer",
            {
                "messages": [
                    {"role": "user", "content": "My name is Ada."},
                    {"role": "assistant", "content": "Nice to meet you, Ada."},
                    {"role": "user", "content": "What is my name?"},
                ]
            },
            (Reply.text("Your name is Ada."),),
            Expect(
                text="Your name is Ada.",
                sent={
                    "texts": (
                        ("user", "My name is Ada."),
                        ("assistant", "Nice to meet you, Ada."),
                        ("user", "What is my name?"),
                    )
                },
            ),
            doc="every turn of the history is sent, in order",
        ),
        Case(
            "max_tokens_length",
            "answer",
            {**_user("Count to one hundred."), "max_tokens": 5},
            (Reply.text("One, two, three", finish_reason="length", completion_tokens=5),),
            Expect(text="One, two, three", finish_reason="length", sent={"max_tokens": 5}),
            doc="max_tokens is sent; a cut answer finishes with length",
        ),
        Case(
            "stop_sequences",
            "answer",
            {**_user("List three fruits."), "stop": ["4."]},
            (Reply.text("1. apple 2. pear 3. plum "),),
            Expect(text="1. apple 2. pear 3. plum ", finish_reason="stop", sent={"stop": ("4.",)}),
            doc="stop sequences are sent",
        ),
        Case(
            "unicode_and_emoji",
            "answer",
            _user(_UNICODE),
            (Reply.text(_UNICODE, chunk_size=1),),
            Expect(text=_UNICODE, sent={"texts": (("user", _UNICODE),)}),
            doc="non-ASCII text survives both ways, one character per stream event",
        ),
        Case(
            "empty_content",
            "answer",
            _user("Say nothing."),
            (Reply.text("", completion_tokens=0),),
            Expect(text="", finish_reason="stop", usage=(10, 0)),
            doc="an empty answer is an empty string, not an error",
        ),
        Case(
            "long_content",
            "answer",
            _user("Write a lot."),
            (Reply.text(_LONG, chunk_size=997),),
            Expect(text=_LONG, finish_reason="stop"),
            doc="a 110 KB answer arrives whole",
        ),
        Case(
            "usage_present",
            "answer",
            _user("Hi"),
            (Reply.text("Hello", prompt_tokens=123, completion_tokens=45),),
            Expect(usage=(123, 45)),
            doc="usage is reported, for streams too (asked for where needed)",
        ),
        Case(
            "stream_grammar",
            "answer",
            _user("Tell me a short story."),
            (Reply.text("Once upon a time there was a codec.", chunk_size=3),),
            Expect(text="Once upon a time there was a codec.", finish_reason="stop"),
            modes=STREAM_MODES,
            doc="role first, then deltas, exactly one finish, usage last",
        ),
        Case(
            "tool_call_single",
            "answer",
            _tool_request(),
            (Reply.tool_calls([_PARIS]),),
            Expect(
                finish_reason="tool_calls",
                tool_calls=(("get_weather", {"city": "Paris"}),),
                sent={"tools": ("get_weather",)},
            ),
            needs=("tools",),
            doc="one tool call, arguments parsed back",
        ),
        Case(
            "tool_calls_parallel",
            "answer",
            {**_user("Weather in Paris and Rome?"), "tools": [_WEATHER]},
            (Reply.tool_calls([_PARIS, ("get_weather", '{"city": "Rome"}')]),),
            Expect(
                finish_reason="tool_calls",
                tool_calls=(
                    ("get_weather", {"city": "Paris"}),
                    ("get_weather", {"city": "Rome"}),
                ),
            ),
            needs=("tools", "parallel_tool_calls"),
            doc="two calls in one answer stay apart and in order",
        ),
        Case(
            "tool_arguments_streamed",
            "answer",
            _tool_request(),
            (
                Reply.tool_calls(
                    [("get_weather", '{"city": "Paris", "unit": "celsius"}')], chunk_size=2
                ),
            ),
            Expect(
                finish_reason="tool_calls",
                tool_calls=(("get_weather", {"city": "Paris", "unit": "celsius"}),),
            ),
            needs=("tools",),
            doc="argument deltas two characters at a time are assembled",
        ),
        Case(
            "tool_no_arguments",
            "answer",
            {**_user("What time is it?"), "tools": [_TIME]},
            (Reply.tool_calls([("get_time", "{}")]),),
            Expect(finish_reason="tool_calls", tool_calls=(("get_time", {}),)),
            needs=("tools",),
            doc="a tool without parameters is offered and called with {}",
        ),
        Case(
            "tool_choice_auto",
            "answer",
            _tool_request("auto"),
            (Reply.tool_calls([_PARIS]),),
            Expect(tool_calls=(("get_weather", {"city": "Paris"}),), sent={"tool_choice": "auto"}),
            needs=("tools",),
            modes=CALL_MODES,
        ),
        Case(
            "tool_choice_none",
            "answer",
            _tool_request("none"),
            (Reply.text("I will not call tools."),),
            Expect(text="I will not call tools.", sent={"tool_choice": "none"}),
            needs=("tools",),
            modes=CALL_MODES,
        ),
        Case(
            "tool_choice_required",
            "answer",
            _tool_request("required"),
            (Reply.tool_calls([_PARIS]),),
            Expect(
                tool_calls=(("get_weather", {"city": "Paris"}),),
                sent={"tool_choice": "required"},
            ),
            needs=("tools",),
            modes=CALL_MODES,
        ),
        Case(
            "tool_choice_named",
            "answer",
            _tool_request(
                {"type": "function", "function": {"name": "get_weather"}}, (_WEATHER, _TIME)
            ),
            (Reply.tool_calls([_PARIS]),),
            Expect(
                tool_calls=(("get_weather", {"city": "Paris"}),),
                sent={"tool_choice": "function:get_weather", "tools": ("get_weather", "get_time")},
            ),
            needs=("tools",),
            modes=CALL_MODES,
        ),
        Case(
            "image_input",
            "answer",
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "What is in this image?"},
                            {"type": "image_url", "image_url": {"url": _PNG}},
                        ],
                    }
                ]
            },
            (Reply.text("A transparent pixel."),),
            Expect(text="A transparent pixel.", sent={"images": 1}),
            needs=("vision",),
            modes=CALL_MODES,
            doc="an image part is sent in the provider's form",
        ),
        Case(
            "json_mode",
            "answer",
            {**_user("Give me JSON."), "response_format": {"type": "json_object"}},
            (Reply.text('{"ok": true}'),),
            Expect(text='{"ok": true}', sent={"response_format": "json_object"}),
            needs=("json_mode",),
        ),
        Case(
            "json_schema_output",
            "answer",
            {
                **_user("Describe a cat."),
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {
                        "name": "animal",
                        "schema": {
                            "type": "object",
                            "properties": {"name": {"type": "string"}},
                            "required": ["name"],
                        },
                    },
                },
            },
            (Reply.text('{"name": "cat"}'),),
            Expect(text='{"name": "cat"}', sent={"response_format": "json_schema"}),
            needs=("json_schema",),
        ),
    ]


def _round_trips() -> list[Case]:
    return [
        Case(
            "tool_result_round_trip",
            "round_trip",
            _tool_request(),
            (Reply.tool_calls([_PARIS]), Reply.text("It is 18 degrees in Paris.")),
            Expect(
                text="It is 18 degrees in Paris.",
                finish_reason="stop",
                sent={
                    "texts": (
                        ("user", "What is the weather in Paris?"),
                        ("assistant", ""),
                        ("tool", "18 degrees"),
                    )
                },
            ),
            needs=("tools",),
            follow_up=({"role": "tool", "tool_call_id": "$0", "content": "18 degrees"},),
            doc="the answer's calls and their results go back, paired by id",
        ),
        Case(
            "reasoning_round_trip",
            "round_trip",
            _user("What is six times seven?"),
            (
                Reply.text("42", reasoning="Six times seven is forty-two."),
                Reply.text("84"),
            ),
            Expect(text="84"),
            needs=("reasoning",),
            follow_up=({"role": "user", "content": "And doubled?"},),
            doc="reasoning comes back in the reasoning field and the history is accepted again",
        ),
    ]


_STATUSES: Final[tuple[tuple[int, type[LLMError]], ...]] = (
    (400, InvalidRequestError),
    (401, AuthenticationError),
    (403, PermissionDeniedError),
    (404, NotFoundError),
    (413, InvalidRequestError),
    (422, InvalidRequestError),
    (500, ServiceUnavailableError),
    (503, ServiceUnavailableError),
    (529, ServiceUnavailableError),
)


def _errors() -> list[Case]:
    cases = [
        Case(
            f"error_{status}",
            "error",
            _user("Hi"),
            (Reply.error(status, message=f"Emulated {status}"),),
            Expect(error=error, status=status),
            doc=f"HTTP {status} becomes {error.__name__}",
        )
        for status, error in _STATUSES
    ]
    cases.append(
        Case(
            "error_429_retry_after",
            "error",
            _user("Hi"),
            (Reply.error(429, message="Slow down.", headers={"retry-after": "7"}),),
            Expect(error=RateLimitError, status=429, retry_after=7.0),
            doc="HTTP 429 becomes RateLimitError with retry_after from the header",
        )
    )
    cases.append(
        Case(
            "read_timeout",
            "error",
            _user("Hi"),
            (Reply.text("too late", delay=2.0),),
            Expect(error=TimeoutError),
            modes=CALL_MODES,
            config={"timeout": 0.25},
            doc="a server that does not answer in time raises TimeoutError",
        )
    )
    return cases


def _streams() -> list[Case]:
    return [
        Case(
            "stream_disconnect",
            "interrupted",
            _user("Tell me a story."),
            (Reply.text("Once upon a time, far away.", disconnect_after=3),),
            Expect(error=StreamInterruptedError),
            modes=STREAM_MODES,
            doc="a connection cut mid-stream raises StreamInterruptedError",
        ),
        Case(
            "stream_error_event",
            "interrupted",
            _user("Tell me a story."),
            (Reply.text("Once upon a time, far away.", error_after=3, message="Overloaded"),),
            Expect(error=LLMError),
            modes=STREAM_MODES,
            doc="an error event mid-stream raises an LLMError",
        ),
        Case(
            "stream_early_close",
            "early_close",
            _user("Tell me a long story."),
            (Reply.text("word " * 200, chunk_size=5, chunk_delay=0.01),),
            Expect(),
            modes=STREAM_MODES,
            doc="closing a stream after one chunk releases its connection",
        ),
    ]


CASES: Final[tuple[Case, ...]] = (*_answers(), *_round_trips(), *_errors(), *_streams())


def case_named(name: str) -> Case:
    """The case called ``name``.

    Raises:
        KeyError: no case has that name.
    """
    for case in CASES:
        if case.name == name:
            return case
    raise KeyError(f"no contract case named {name!r}; see llmkit_contracts.CASES")


def _check_catalogue() -> None:
    names = [case.name for case in CASES]
    if len(set(names)) != len(names):
        raise RuntimeError("contract case names must be unique")


_check_catalogue()
