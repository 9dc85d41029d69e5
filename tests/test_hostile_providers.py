"""Hostile users and lying servers against the Anthropic, Gemini, OpenAI-family and Azure codecs.

Each provider must refuse bad input before sending, never show its key (even
when the server echoes it in a body, a header or a stream error event), and
turn every lie a server can tell into a clear ``LLMError``: never a raw
``TypeError``/``KeyError``, never a hang, never a silently cut answer.
Canned bytes go through ``httpx.MockTransport``; the emulators (on
127.0.0.1, stopped by each test) cover real sockets that drop mid-stream.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import llmkit
from llmkit import core
from llmkit_contracts import Reply
from llmkit_contracts.emulator import Emulator
from llmkit_contracts.emulators import (
    FLAVOURS,
    AnthropicEmulator,
    AzureEmulator,
    GeminiEmulator,
    OpenAIEmulator,
)

KEY = "sk-hostile-0123456789abcdef"
HI: dict[str, Any] = {"messages": [{"role": "user", "content": "Hi"}]}
STREAM: dict[str, Any] = {**HI, "stream": True}
OPENAI_FAMILY = ["openai", "azure", "groq", "openrouter", "deepseek"]
PROVIDERS = ["anthropic", "gemini", *OPENAI_FAMILY]
# Where each provider carries the key: the echo of a lying server is built from it.
AUTH = {"anthropic": "x-api-key", "gemini": "x-goog-api-key", "azure": "api-key"}


def _sent_key(provider: str, request: httpx.Request) -> str:
    header = AUTH.get(provider, "authorization")
    return request.headers[header].removeprefix("Bearer ")


class Server:
    """A MockTransport handler: records requests, answers ``body`` with ``KEY`` echoed."""

    def __init__(
        self,
        provider: str,
        status: int = 200,
        body: bytes = b"",
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.provider = provider
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers or {}
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        echo = _sent_key(self.provider, request)
        headers = {"content-type": self.content_type}
        headers.update({k: v.replace("KEY", echo) for k, v in self.headers.items()})
        return httpx.Response(
            self.status, content=self.body.replace(b"KEY", echo.encode()), headers=headers
        )

    def config(self) -> dict[str, Any]:
        client = httpx.Client(transport=httpx.MockTransport(self))
        return {"api_key": KEY, "api_base": "https://llm.test", "http_client": client, "retries": 0}


def _complete(provider: str, server: Server, request: dict[str, Any] = HI) -> object:
    return core.completion(provider, "m-1", request, server.config())


def _collect(provider: str, server: Server, request: dict[str, Any] = STREAM) -> object:
    return list(core.stream(provider, "m-1", request, server.config()))


def _assert_clean(error: llmkit.LLMError) -> None:
    """No key in any field, and no blame on llmkit's codec for a server's lie."""
    for text in (str(error), repr(error), *(str(arg) for arg in error.args)):
        assert KEY not in text
    for field in (error.code, error.request_id):
        assert field is None or KEY not in field
    assert "report it to the provider package" not in str(error)


# --- bad input: refused before any request ------------------------------------------


def _tool(parameters: Any) -> dict[str, Any]:
    return {"type": "function", "function": {"name": "f", "parameters": parameters}}


def _deep(depth: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(depth):
        node["a"] = {}
        node = node["a"]
    return root


def _called(arguments: str) -> dict[str, Any]:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": arguments}}
    return {
        "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": "r"},
        ],
        "tools": [_tool({"type": "object", "properties": {}})],
    }


def _schema(schema: Any) -> dict[str, Any]:
    return {
        **HI,
        "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}},
    }


BAD_INPUT = [
    pytest.param({"messages": [{"role": "user", "content": "a\ud800"}]}, id="surrogate"),
    pytest.param(
        {**HI, "tools": [_tool({"type": "object", "properties": {"x": {"minimum": math.nan}}})]},
        id="nan-tool",
    ),
    pytest.param({**HI, "extra_body": {"x": math.inf}}, id="inf-extra-body"),
    pytest.param(
        _schema({"type": "object", "properties": {"x": {"maximum": -math.inf}}}), id="inf-schema"
    ),
    pytest.param(
        {**HI, "tools": [_tool({"type": "object", "properties": _deep(50_000)})]}, id="deep-tool"
    ),
    pytest.param(_schema({"type": "object", "properties": _deep(50_000)}), id="deep-schema"),
    pytest.param({"messages": 5}, id="wrong-type"),
    pytest.param({"messages": [{"role": "user", "content": 5}]}, id="wrong-content-type"),
    pytest.param({**HI, "temperature": math.nan}, id="nan-temperature"),
]


@pytest.mark.parametrize("request_", BAD_INPUT)
@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
def test_bad_input_refused_before_sending(
    provider: str, request_: dict[str, Any], stream: bool
) -> None:
    server = Server(provider, body=b"{}")
    send = _collect if stream else _complete
    with pytest.raises(llmkit.InvalidRequestError) as info:
        send(provider, server, {**request_, "stream": stream})
    assert server.requests == []
    _assert_clean(info.value)


# Anthropic and Gemini parse a history's tool-call arguments into objects:
# JSON nested past what the decoder reads is the user's to fix, not a codec bug.
DEEP_ARGUMENTS = '{"a":' * 50_000 + "1" + "}" * 50_000


@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
def test_deeply_nested_tool_call_arguments_refused_before_sending(provider: str) -> None:
    server = Server(provider, body=b"{}")
    with pytest.raises(llmkit.InvalidRequestError, match=r"tool_calls\[0\].*(not a JSON object)"):
        _complete(provider, server, _called(DEEP_ARGUMENTS))
    assert server.requests == []


def test_gemini_deeply_nested_tool_result_sent_as_text() -> None:
    # A tool result that looks like JSON but nests too deeply goes as text, as bad JSON does.
    request = _called("{}")
    request["messages"][2]["content"] = DEEP_ARGUMENTS
    server = Server("gemini", body=b'{"candidates": [{"content": {"parts": [{"text": "ok"}]}}]}')
    response = _complete("gemini", server, request)
    assert isinstance(response, llmkit.ChatResponse)
    assert b'"output":"{\\"a\\":' in server.requests[0].content


# --- the key, echoed back by the server -------------------------------------------------

ECHOES = [
    pytest.param(
        401,
        b'{"type": "error", "error": {"type": "authentication_error", "message": "bad key KEY",'
        b' "code": "KEY", "status": "KEY"}, "request_id": "KEY"}',
        {},
        id="anthropic-envelope",
    ),
    pytest.param(
        401,
        b'{"error": {"code": 401, "message": "API key KEY not valid", "status": "UNAUTHENTICATED"}}',
        {},
        id="google-envelope",
    ),
    pytest.param(
        401,
        b'{"error": {"message": "Incorrect API key: KEY", "type": "KEY", "code": "KEY"}}',
        {},
        id="openai-envelope",
    ),
    pytest.param(403, b"<html>denied for KEY</html>", {}, id="html"),
    pytest.param(
        429,
        b'{"error": {"message": "slow down"}}',
        {"x-request-id": "KEY", "request-id": "KEY", "retry-after": "KEY"},
        id="headers",
    ),
    pytest.param(400, b'[{"error": {"code": 400, "message": "bad KEY"}}]', {}, id="list"),
    pytest.param(400, b'{"error": "KEY"}', {}, id="bare-string"),
    pytest.param(200, b'{"error": {"message": "quota KEY", "code": 429}}', {}, id="200-error"),
]


@pytest.mark.parametrize(("status", "body", "headers"), ECHOES)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_echoed_key_never_shown(
    provider: str, status: int, body: bytes, headers: dict[str, str]
) -> None:
    server = Server(provider, status, body, headers=headers)
    with pytest.raises(llmkit.LLMError) as info:
        _complete(provider, server)
    assert _sent_key(provider, server.requests[0]) == KEY
    _assert_clean(info.value)


def _sse(*events: bytes) -> bytes:
    return b"".join(b"data: " + event + b"\n\n" for event in events)


ANTHROPIC_START = (
    b'{"type": "message_start", "message": {"id": "msg_1", "model": "m-1", "usage": {}}}'
)
ANTHROPIC_TEXT = (
    b'{"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}',
    b'{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}',
)
ANTHROPIC_END = (
    b'{"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {}}',
    b'{"type": "message_stop"}',
)
GEMINI_HI = b'{"candidates": [{"content": {"role": "model", "parts": [{"text": "Hi"}]}}]}'
OPENAI_HI = b'{"id": "c1", "choices": [{"index": 0, "delta": {"content": "Hi"}}]}'

STREAM_ERRORS = {
    "anthropic": _sse(
        ANTHROPIC_START,
        *ANTHROPIC_TEXT,
        b'{"type": "error", "error": {"type": "overloaded_error", "message": "busy KEY"}}',
    ),
    "gemini": _sse(
        GEMINI_HI, b'{"error": {"code": 500, "message": "failed KEY", "status": "INTERNAL"}}'
    ),
    "openai": _sse(
        OPENAI_HI, b'{"error": {"message": "failed KEY", "type": "KEY", "code": "KEY"}}'
    ),
}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_echoed_key_in_a_stream_error_event_never_shown(provider: str) -> None:
    body = STREAM_ERRORS.get(provider, STREAM_ERRORS["openai"])
    server = Server(provider, body=body, content_type="text/event-stream")
    with pytest.raises(llmkit.LLMError) as info:
        _collect(provider, server)
    assert not isinstance(info.value, llmkit.StreamInterruptedError)
    _assert_clean(info.value)


# --- servers that lie -----------------------------------------------------------------

LIES = [
    pytest.param(200, b"<html>hello</html>", "text/html", id="html"),
    pytest.param(200, b"", "application/json", id="empty"),
    pytest.param(200, b"null", "application/json", id="null"),
    pytest.param(200, b"[1, 2]", "application/json", id="list"),
    pytest.param(200, b'{"id": NaN}', "application/json", id="not-json"),
    pytest.param(200, b"{}", "application/json", id="empty-object"),
    pytest.param(
        200,
        b'{"type": "message", "id": 1, "content": "x", "candidates": "x", "choices": "x"}',
        "application/json",
        id="wrong-types",
    ),
    pytest.param(
        200,
        b'{"type": "message", "id": "a", "model": "m", "content": [{"type": "text", "text": 5}],'
        b' "candidates": [{"content": {"parts": [{"text": 5}]}}],'
        b' "choices": [{"message": {"role": "assistant", "content": 5}}]}',
        "application/json",
        id="wrong-nested-types",
    ),
    pytest.param(
        200,
        b'{"candidates": [{"content": {"parts": [{"text": "a"}]}}],'
        b' "usageMetadata": {"promptTokenCount": "many"},'
        b' "choices": [{"message": {"role": "assistant", "content": "a"}}],'
        b' "usage": {"prompt_tokens": "many", "input_tokens": "many"},'
        b' "type": "message", "id": "a", "model": "m", "content": [], "x-usage": 1}',
        "application/json",
        id="wrong-usage-types",
    ),
    pytest.param(200, b'{"x": "' + b"a" * 5_000_000 + b'"}', "application/json", id="huge"),
    pytest.param(
        500,
        b'{"error": {"message": {"nested": 1}, "code": []}}',
        "application/json",
        id="error-types",
    ),
    pytest.param(502, b"\xff\xfe not utf-8", "text/plain", id="error-bytes"),
]


@pytest.mark.parametrize(("status", "body", "content_type"), LIES)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_lying_server_gives_a_clear_llm_error(
    provider: str, status: int, body: bytes, content_type: str
) -> None:
    server = Server(provider, status, body, content_type)
    with pytest.raises(llmkit.LLMError) as info:
        _complete(provider, server)
    _assert_clean(info.value)


OPENAI_TOOL_OPEN = (
    b'{"id": "c1", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_1",'
    b' "type": "function", "function": {"name": "f", "arguments": ""}}]}}]}'
)

STREAM_LIES: dict[str, dict[str, bytes]] = {
    "anthropic": {
        "no-end-marker": _sse(ANTHROPIC_START, *ANTHROPIC_TEXT),
        "no-message-stop": _sse(ANTHROPIC_START, *ANTHROPIC_TEXT, ANTHROPIC_END[0]),
        "malformed-json": _sse(ANTHROPIC_START, b"{nope", *ANTHROPIC_END),
        "wrong-types": _sse(
            ANTHROPIC_START,
            b'{"type": "content_block_delta", "index": "0", "delta": {"type": "text_delta"}}',
            *ANTHROPIC_END,
        ),
        "event-before-start": _sse(*ANTHROPIC_TEXT, *ANTHROPIC_END),
        "tool-delta-never-opened": _sse(
            ANTHROPIC_START,
            b'{"type": "content_block_delta", "index": 3,'
            b' "delta": {"type": "input_json_delta", "partial_json": "{\\"a\\": 1}"}}',
            *ANTHROPIC_END,
        ),
        "server-tool-input-not-json": _sse(
            ANTHROPIC_START,
            b'{"type": "content_block_start", "index": 0, "content_block":'
            b' {"type": "server_tool_use", "id": "s1", "name": "web_search", "input": {}}}',
            b'{"type": "content_block_delta", "index": 0,'
            b' "delta": {"type": "input_json_delta", "partial_json": "{bad"}}',
            b'{"type": "content_block_stop", "index": 0}',
            *ANTHROPIC_END,
        ),
    },
    "gemini": {
        "no-finish-reason": _sse(GEMINI_HI),
        "malformed-json": _sse(GEMINI_HI, b"{nope"),
        "wrong-types": _sse(b'{"candidates": [{"content": {"parts": [{"text": 5}]}}]}'),
        "null-candidate": _sse(b'{"candidates": [null]}'),
        "done-marker": _sse(GEMINI_HI, b"[DONE]"),
        "wrong-usage-types": _sse(
            b'{"candidates": [{"content": {"parts": [{"text": "a"}]}, "finishReason": "STOP"}],'
            b' "usageMetadata": {"promptTokenCount": "many"}}'
        ),
    },
    "openai": {
        "no-done": _sse(OPENAI_HI),
        "malformed-json": _sse(OPENAI_HI, b"{nope", b"[DONE]"),
        "wrong-types": _sse(b'{"id": "c1", "choices": "x"}', b"[DONE]"),
        "null-choice": _sse(b'{"id": "c1", "choices": [null]}', b"[DONE]"),
        "tool-delta-never-opened": _sse(
            OPENAI_TOOL_OPEN,
            b'{"id": "c1", "choices": [{"index": 0, "delta": {"tool_calls":'
            b' [{"index": 1, "function": {"arguments": "{}"}}]}}]}',
            b'{"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}',
            b"[DONE]",
        ),
    },
}
STREAM_CASES = [
    pytest.param(provider, body, id=f"{provider}-{name}")
    for provider in PROVIDERS
    for name, body in STREAM_LIES.get(provider, STREAM_LIES["openai"]).items()
]


@pytest.mark.parametrize(("provider", "body"), STREAM_CASES)
def test_lying_stream_gives_a_clear_llm_error(provider: str, body: bytes) -> None:
    server = Server(provider, body=body, content_type="text/event-stream")
    with pytest.raises(llmkit.LLMError) as info:
        _collect(provider, server)
    _assert_clean(info.value)


@pytest.mark.parametrize("provider", OPENAI_FAMILY)
def test_tool_call_opened_then_continued_by_index_is_fine(provider: str) -> None:
    # The control for tool-delta-never-opened: later deltas name only the index.
    body = _sse(
        OPENAI_TOOL_OPEN,
        b'{"id": "c1", "choices": [{"index": 0, "delta": {"tool_calls":'
        b' [{"index": 0, "function": {"arguments": "{}"}}]}}]}',
        b'{"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}',
        b"[DONE]",
    )
    server = Server(provider, body=body, content_type="text/event-stream")
    response = core.stream(provider, "m-1", STREAM, server.config()).collect()
    calls = response.choices[0].message.tool_calls
    assert calls is not None
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [("call_1", "f", "{}")]


def test_anthropic_server_tool_input_kept_when_it_is_json() -> None:
    # The control for server-tool-input-not-json.
    body = _sse(
        ANTHROPIC_START,
        b'{"type": "content_block_start", "index": 0, "content_block":'
        b' {"type": "server_tool_use", "id": "s1", "name": "web_search", "input": {}}}',
        b'{"type": "content_block_delta", "index": 0,'
        b' "delta": {"type": "input_json_delta", "partial_json": "{\\"query\\": \\"x\\"}"}}',
        b'{"type": "content_block_stop", "index": 0}',
        *ANTHROPIC_END,
    )
    server = Server("anthropic", body=body, content_type="text/event-stream")
    response = core.stream("anthropic", "m-1", STREAM, server.config()).collect()
    data = response.choices[0].message.provider_data
    assert data is not None
    assert data["anthropic"]["content"][0]["input"] == {"query": "x"}


# --- real sockets: a stream cut off midway, an error event, a stall ---------------------


def _emulator(provider: str) -> Emulator:
    if provider == "anthropic":
        return AnthropicEmulator()
    if provider == "gemini":
        return GeminiEmulator()
    if provider == "azure":
        return AzureEmulator()
    if provider == "openai":
        return OpenAIEmulator()
    return Emulator(FLAVOURS[provider]())


@pytest.fixture(params=PROVIDERS)
def running(request: pytest.FixtureRequest) -> Iterator[tuple[str, Emulator]]:
    with _emulator(request.param) as emulator:
        yield request.param, emulator


def _model(provider: str) -> str:
    # The Gemini emulator, like the API, knows its models by name.
    return "gemini-2.5-flash" if provider == "gemini" else "m-1"


def _emulated(emulator: Emulator, **extra: Any) -> dict[str, Any]:
    return {"api_key": KEY, "api_base": emulator.base_url, "retries": 0, **extra}


def _read(provider: str, emulator: Emulator, **extra: Any) -> list[str]:
    seen: list[str] = []
    for chunk in core.stream(provider, _model(provider), STREAM, _emulated(emulator, **extra)):
        for choice in chunk.choices:
            seen.append(choice.delta.content or "")
    return seen


def test_stream_cut_off_midway_raises(running: tuple[str, Emulator]) -> None:
    provider, emulator = running
    emulator.enqueue(Reply.text("Hello there, world", disconnect_after=2))
    with pytest.raises(llmkit.StreamInterruptedError) as info:
        _read(provider, emulator)
    _assert_clean(info.value)


def test_stream_error_event_with_the_key_raises_without_it(running: tuple[str, Emulator]) -> None:
    provider, emulator = running
    emulator.enqueue(Reply.text("Hello there, world", error_after=2, message=f"broke for {KEY}"))
    with pytest.raises(llmkit.LLMError) as info:
        _read(provider, emulator)
    assert not isinstance(info.value, llmkit.StreamInterruptedError)
    assert "broke for" in str(info.value)
    _assert_clean(info.value)


def test_error_reply_echoing_the_key_raises_without_it(running: tuple[str, Emulator]) -> None:
    provider, emulator = running
    emulator.enqueue(Reply.error(401, message=f"invalid key {KEY}", headers={"x-request-id": KEY}))
    with pytest.raises(llmkit.AuthenticationError) as info:
        core.completion(provider, _model(provider), HI, _emulated(emulator))
    _assert_clean(info.value)
    assert "key" in str(info.value).lower()


def test_server_that_stalls_before_answering_times_out(running: tuple[str, Emulator]) -> None:
    # The emulator abandons its delay when it is stopped, so this ends with the test.
    provider, emulator = running
    emulator.enqueue(Reply.text("late", delay=30.0))
    with pytest.raises(llmkit.TimeoutError) as info:
        core.completion(provider, _model(provider), HI, _emulated(emulator, timeout=0.2))
    _assert_clean(info.value)


def test_stream_that_stalls_midway_times_out(running: tuple[str, Emulator]) -> None:
    provider, emulator = running
    emulator.enqueue(Reply.text("Hello there, world", chunk_delay=30.0))
    with pytest.raises(llmkit.LLMError) as info:
        _read(provider, emulator, timeout=0.2)
    assert isinstance(info.value, llmkit.TimeoutError | llmkit.StreamInterruptedError)
    _assert_clean(info.value)
