"""Replay real OpenAI chat-completions traffic through llmkit's OpenAI codec.

The recordings in ``tests/fixtures/openai`` (see its ATTRIBUTION.md) are the
wire-format specification: request bodies OpenAI accepted, responses and SSE
streams as they came back, error bodies with their statuses. Every
expectation below is computed from a recording with plain ``json`` and never
through llmkit, so the codec cannot grade its own work.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import random
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import msgspec
import pytest

import llmkit
from llmkit import core
from llmkit.config import Config, resolve_config
from llmkit.generics import encode_request
from llmkit.types import (
    ChatRequest,
    ChatResponse,
    HttpCall,
    StreamChunk,
    Tool,
    ToolCall,
    ToolChoice,
)
from llmkit_providers.openai import OpenAI


def _load_corpus_helper() -> Any:
    # tests/ is not a package and pytest runs with --import-mode=importlib.
    name = "llmkit_tests_corpus"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("corpus.py"))
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return module


corpus = _load_corpus_helper()

API_KEY = "sk-test-0000000000"
CHAT_PATH = "/v1/chat/completions"
URL = "https://api.openai.com/v1/chat/completions"

CHATS = corpus.load("openai", "chat", path=CHAT_PATH)
STREAMS = corpus.load("openai", "chat_stream", path=CHAT_PATH)
ERRORS = corpus.load("openai", "error", path=CHAT_PATH)
REQUESTS = CHATS + STREAMS


def _ids(records: list[dict[str, Any]]) -> list[str]:
    return [record["id"] for record in records]


# --- building requests from recordings ------------------------------------------

# Top-level body keys llmkit models as ChatRequest fields; anything else a
# recording sends (moderation, web_search_options, reasoning_effort) can only
# travel through the extra_body escape hatch.
_MODELLED = frozenset(ChatRequest.__struct_fields__) - {"extra_body", "extra_headers"}


def _body(record: dict[str, Any]) -> dict[str, Any]:
    body = record["request"]["body"]
    assert isinstance(body, dict), record["id"]
    return copy.deepcopy(body)


def _chat_request(body: dict[str, Any]) -> ChatRequest:
    data = {key: value for key, value in body.items() if key in _MODELLED}
    extra = {key: value for key, value in body.items() if key not in _MODELLED}
    if extra:
        data["extra_body"] = extra
    return msgspec.convert(data, ChatRequest)


def _config(**more: Any) -> dict[str, Any]:
    return {"api_key": API_KEY, "retries": 0, **more}


# --- expectations from raw JSON ---------------------------------------------------


def _usage(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    out = {name: usage[name] for name in ("prompt_tokens", "completion_tokens", "total_tokens")}
    for group, fields in (
        ("prompt_tokens_details", ("cached_tokens", "audio_tokens")),
        ("completion_tokens_details", ("reasoning_tokens", "audio_tokens")),
    ):
        details = usage.get(group) or {}
        for field in fields:
            if details.get(field) is not None:
                out[f"{group}.{field}"] = details[field]
    return out


def _expected_response(body_text: str) -> dict[str, Any]:
    data = json.loads(body_text)
    choices = []
    for choice in data["choices"]:
        message = choice["message"]
        calls = [
            (call["id"], call["function"]["name"], call["function"]["arguments"])
            for call in message.get("tool_calls") or []
        ]
        choices.append(
            {
                "index": choice["index"],
                "content": message.get("content"),
                "tool_calls": calls,
                "finish_reason": choice["finish_reason"],
            }
        )
    return {"model": data["model"], "choices": choices, "usage": _usage(data.get("usage"))}


def _expected_stream(body_text: str) -> dict[str, Any]:
    """Assemble a recorded SSE body by hand: text per choice, tool calls by index."""
    choices: dict[int, dict[str, Any]] = {}
    usage = None
    model = None
    payloads = corpus.sse_data(body_text)
    assert payloads[-1] == "[DONE]"
    for payload in payloads[:-1]:
        chunk = json.loads(payload)
        model = model or chunk.get("model")
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            into = choices.setdefault(
                choice["index"], {"text": "", "calls": {}, "finish_reason": None}
            )
            delta = choice.get("delta") or {}
            into["text"] += delta.get("content") or ""
            for piece in delta.get("tool_calls") or []:
                call = into["calls"].setdefault(piece["index"], {"id": "", "name": "", "args": ""})
                call["id"] = call["id"] or piece.get("id") or ""
                function = piece.get("function") or {}
                call["name"] = call["name"] or function.get("name") or ""
                call["args"] += function.get("arguments") or ""
            if choice.get("finish_reason") is not None:
                into["finish_reason"] = choice["finish_reason"]
    return {
        "model": model,
        "choices": [
            {
                "index": index,
                "content": parts["text"],
                "tool_calls": [
                    (call["id"], call["name"], call["args"])
                    for _, call in sorted(parts["calls"].items())
                ],
                "finish_reason": parts["finish_reason"],
            }
            for index, parts in sorted(choices.items())
        ],
        "usage": _usage(usage),
    }


def _observed(response: ChatResponse, *, empty_text: bool = False) -> dict[str, Any]:
    """The same shape as the expectations, read from llmkit's response."""
    choices = []
    for choice in response.choices:
        message = choice.message
        content = message.content
        if empty_text and content is None:
            # The accumulator leaves content None for a turn made only of tool calls.
            content = ""
        choices.append(
            {
                "index": choice.index,
                "content": content,
                "tool_calls": [
                    (call.id, call.function.name, call.function.arguments)
                    for call in message.tool_calls or []
                ],
                "finish_reason": choice.finish_reason,
            }
        )
    usage = msgspec.to_builtins(response.usage) if response.usage is not None else None
    return {"model": response.model, "choices": choices, "usage": _usage(usage)}


# --- mock transports --------------------------------------------------------------


def _json_response(record: dict[str, Any]) -> httpx.Response:
    recorded = record["response"]
    return httpx.Response(
        recorded["status"],
        headers={"content-type": recorded["headers"].get("content-type", "application/json")},
        content=recorded["body_text"].encode("utf-8"),
    )


def _sse_headers() -> dict[str, str]:
    return {"content-type": "text/event-stream"}


def _pieces(body: bytes, seed: int) -> list[bytes]:
    """Cut ``body`` at random places (inside lines, JSON and UTF-8 characters alike)."""
    rng = random.Random(seed)
    pieces, at = [], 0
    while at < len(body):
        size = rng.randint(1, 24)
        pieces.append(body[at : at + size])
        at += size
    return pieces


class _Recorder:
    """A MockTransport handler that serves one reply and keeps the requests it saw."""

    def __init__(self, reply: Callable[[], httpx.Response]) -> None:
        self.reply = reply
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.reply()

    def check_sent(self, model: str, *, stream: bool) -> None:
        assert len(self.requests) == 1
        sent = self.requests[0]
        assert str(sent.url) == URL
        assert sent.method == "POST"
        assert sent.headers["authorization"] == f"Bearer {API_KEY}"
        body = json.loads(sent.content)
        assert body["model"] == model
        assert bool(body.get("stream", False)) is stream


def _complete(record: dict[str, Any]) -> tuple[ChatResponse, _Recorder]:
    body = _body(record)
    handler = _Recorder(lambda: _json_response(record))
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        response = core.completion(
            "openai", body["model"], _chat_request(body), _config(http_client=client)
        )
    return response, handler


def _stream(
    record: dict[str, Any], content: Callable[[], bytes | Iterator[bytes]]
) -> tuple[list[StreamChunk], ChatResponse, _Recorder]:
    body = _body(record)
    handler = _Recorder(lambda: httpx.Response(200, headers=_sse_headers(), content=content()))
    with (
        httpx.Client(transport=httpx.MockTransport(handler)) as client,
        core.stream("openai", body["model"], _chat_request(body), _config(http_client=client)) as s,
    ):
        chunks = list(s)
        response = s.collect()
    return chunks, response, handler


def _sse_bytes(record: dict[str, Any]) -> bytes:
    text: str = record["response"]["body_text"]
    return text.encode("utf-8")


# --- 0. the corpus itself -----------------------------------------------------------


def test_openai_corpus_is_complete() -> None:
    # Every OpenAI chat-completions recording of these kinds is replayed; a
    # fixture lost in a refactor must fail here rather than shrink coverage.
    assert (len(CHATS), len(STREAMS), len(ERRORS)) == (85, 16, 10)
    files = sorted(p.name for p in (corpus.FIXTURES / "openai").glob("*.json"))
    assert files == sorted(f"{r['id']}.json" for r in CHATS + STREAMS + ERRORS)
    assert len(set(_ids(CHATS + STREAMS + ERRORS))) == len(files)
    assert all(r["request"]["host"] == "api.openai.com" for r in CHATS + STREAMS + ERRORS)


# --- 1. responses ------------------------------------------------------------------


@pytest.mark.parametrize("record", CHATS, ids=_ids(CHATS))
def test_openai_response_decoding(record: dict[str, Any]) -> None:
    response, handler = _complete(record)
    handler.check_sent(record["request"]["body"]["model"], stream=False)
    assert isinstance(response, ChatResponse)
    assert _observed(response) == _expected_response(record["response"]["body_text"])


# --- 2. requests -------------------------------------------------------------------


def _without_nulls(message: dict[str, Any]) -> dict[str, Any]:
    # A message field sent as null means "not given" on OpenAI's API (the
    # recordings send "content": null beside tool_calls); llmkit omits None
    # fields instead. Only message-level nulls are equated with absence.
    return {key: value for key, value in message.items() if value is not None}


def _comparable(body: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(body)
    body["messages"] = [_without_nulls(message) for message in body["messages"]]
    return body


@pytest.mark.parametrize("record", REQUESTS, ids=_ids(REQUESTS))
def test_openai_request_encoding(record: dict[str, Any]) -> None:
    recorded = _body(record)
    request = _chat_request(_body(record))
    key = OpenAI()
    call = cast(
        HttpCall, encode_request(key, request, resolve_config(key, Config(api_key=API_KEY)))
    )

    assert call.url == URL
    assert call.method == "POST"
    assert call.headers["Authorization"] == f"Bearer {API_KEY}"
    assert call.stream is (record["kind"] == "chat_stream")

    sent = json.loads(call.body)
    if record["kind"] == "chat_stream":
        assert sent["stream"] is True
        assert sent["stream_options"]["include_usage"] is True
    elif "stream" not in sent:
        # The codec may leave out "stream": false, the API's default.
        assert recorded.pop("stream") is False
    # Keys llmkit does not model went through extra_body; they must reach the
    # wire unchanged, which the whole-body comparison checks.
    assert _comparable(sent) == _comparable(recorded)


def _as_user_writes(request: ChatRequest) -> ChatRequest:
    """Rebuild tools, tool calls and tool_choice with the constructors, ``type`` left out.

    ``Tool(function=Function(...))`` is how Python code spells a function
    tool; ``type`` defaults to ``"function"``. A request decoded from JSON
    holds a separate ``"function"`` string object instead, which is why both
    spellings are replayed.
    """

    def call(c: ToolCall) -> ToolCall:
        return ToolCall(id=c.id, function=c.function) if c.type == "function" else c

    def tool(t: Tool) -> Tool:
        return Tool(function=t.function) if t.type == "function" else t

    messages = [
        msgspec.structs.replace(m, tool_calls=[call(c) for c in m.tool_calls])
        if m.tool_calls
        else m
        for m in request.messages
    ]
    choice = request.tool_choice
    if isinstance(choice, ToolChoice) and choice.type == "function":
        choice = ToolChoice(function=choice.function)
    return msgspec.structs.replace(
        request,
        messages=messages,
        tools=[tool(t) for t in request.tools] if request.tools else request.tools,
        tool_choice=choice,
    )


def _uses_functions(record: dict[str, Any]) -> bool:
    body = record["request"]["body"]
    return bool(body.get("tools")) or any(m.get("tool_calls") for m in body["messages"])


FUNCTION_REQUESTS = [record for record in REQUESTS if _uses_functions(record)]


@pytest.mark.parametrize("record", FUNCTION_REQUESTS, ids=_ids(FUNCTION_REQUESTS))
def test_openai_request_encoding_constructed_tools(record: dict[str, Any]) -> None:
    # OpenAI requires "type": "function" on every tool, tool call and named
    # tool_choice (it answers 400 "Missing required parameter: 'tools[0].type'"
    # without it); every recording sends it.
    recorded = _body(record)
    request = _as_user_writes(_chat_request(_body(record)))
    key = OpenAI()
    call = cast(
        HttpCall, encode_request(key, request, resolve_config(key, Config(api_key=API_KEY)))
    )
    sent = json.loads(call.body)
    sent.setdefault("stream", False)
    assert [t.get("type") for t in sent.get("tools", [])] == [
        t["type"] for t in recorded.get("tools", [])
    ]
    assert [c.get("type") for m in sent["messages"] for c in m.get("tool_calls", [])] == [
        c["type"] for m in recorded["messages"] for c in m.get("tool_calls") or []
    ]
    if isinstance(recorded.get("tool_choice"), dict):
        assert sent["tool_choice"].get("type") == recorded["tool_choice"]["type"]
    assert _comparable(sent) == _comparable(recorded)


# --- 3. streams --------------------------------------------------------------------


@pytest.mark.parametrize("record", STREAMS, ids=_ids(STREAMS))
def test_openai_stream_accumulation(record: dict[str, Any]) -> None:
    chunks, response, handler = _stream(record, lambda: _sse_bytes(record))
    handler.check_sent(record["request"]["body"]["model"], stream=True)
    assert chunks
    expected = _expected_stream(record["response"]["body_text"])
    assert _observed(response, empty_text=True) == expected


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("record", STREAMS, ids=_ids(STREAMS))
def test_openai_stream_split_anywhere(record: dict[str, Any], seed: int) -> None:
    whole_chunks, whole, _ = _stream(record, lambda: _sse_bytes(record))
    pieces = _pieces(_sse_bytes(record), seed)
    assert b"".join(pieces) == _sse_bytes(record)
    chunks, response, _ = _stream(record, lambda: iter(pieces))
    assert chunks == whole_chunks
    assert response == whole


def _event_offsets(body: bytes) -> list[int]:
    """Byte offsets where each ``data:`` event of a recorded body starts."""
    offsets, at = [], 0
    while at < len(body):
        offsets.append(at)
        end = body.find(b"\n\n", at)
        at = len(body) if end < 0 else end + 2
    return offsets


def _first_finish_offset(body: bytes) -> int:
    """Offset of the first event that carries a finish_reason (or [DONE])."""
    for at in _event_offsets(body):
        line = body[at : body.find(b"\n", at)]
        assert line.startswith(b"data: ")
        payload = line[len(b"data: ") :]
        if payload == b"[DONE]":
            return at
        chunk = json.loads(payload)
        if any(c.get("finish_reason") is not None for c in chunk.get("choices") or []):
            return at
    raise AssertionError("recording has neither a finish_reason nor [DONE]")


def _truncations(record: dict[str, Any]) -> dict[str, bytes]:
    body = _sse_bytes(record)
    finish = _first_finish_offset(body)
    assert finish < body.rfind(b"data: [DONE]")
    before = [at for at in _event_offsets(body) if at < finish]
    return {
        "empty-body": b"",
        "after-first-event": body[: before[1]] if len(before) > 1 else body[:finish],
        "before-finish-event": body[:finish],
        # The last event before the finish arrived without its blank line.
        "before-finish-unterminated": body[: finish - 1],
    }


_CUTS = ["empty-body", "after-first-event", "before-finish-event", "before-finish-unterminated"]


@pytest.mark.parametrize("cut", _CUTS)
@pytest.mark.parametrize("record", STREAMS, ids=_ids(STREAMS))
def test_openai_stream_truncated_raises(record: dict[str, Any], cut: str) -> None:
    content = _truncations(record)[cut]
    with pytest.raises(llmkit.StreamInterruptedError) as info:
        _stream(record, lambda: content)
    assert info.value.provider == "openai"


@pytest.mark.parametrize("record", STREAMS, ids=_ids(STREAMS))
def test_openai_stream_truncated_mid_event_raises(record: dict[str, Any]) -> None:
    # Cut inside the JSON of the first finish event: the body ends mid-line,
    # before both the finish_reason and [DONE]. Users must see an interrupted
    # stream, not a decoding failure of half an event.
    body = _sse_bytes(record)
    finish = _first_finish_offset(body)
    content = body[: finish + len(b"data: ") + 40]
    with pytest.raises(llmkit.StreamInterruptedError):
        _stream(record, lambda: content)


# --- 4. errors ---------------------------------------------------------------------

_ERROR_CLASSES: dict[int, type[llmkit.LLMError]] = {
    400: llmkit.InvalidRequestError,
    401: llmkit.AuthenticationError,
    403: llmkit.PermissionDeniedError,
    404: llmkit.NotFoundError,
    413: llmkit.InvalidRequestError,
    422: llmkit.InvalidRequestError,
    429: llmkit.RateLimitError,
}


@pytest.mark.parametrize("record", ERRORS, ids=_ids(ERRORS))
def test_openai_error_mapping(record: dict[str, Any]) -> None:
    recorded = record["response"]
    status = recorded["status"]
    envelope = json.loads(recorded["body_text"])["error"]
    body = _body(record)
    request = _chat_request(body)
    assert not request.stream  # every recorded error answered a non-streamed call
    handler = _Recorder(lambda: _json_response(record))
    with (
        httpx.Client(transport=httpx.MockTransport(handler)) as client,
        pytest.raises(llmkit.LLMError) as info,
    ):
        core.completion("openai", body["model"], request, _config(http_client=client))
    error = info.value

    assert len(handler.requests) == 1  # retries=0, and 4xx are not retried anyway
    # None of the recorded codes is a context-window or content-filter code,
    # so the class is exactly the one the status maps to.
    assert type(error) is _ERROR_CLASSES[status]
    assert error.status == status
    assert error.provider == "openai"
    assert error.model == body["model"]
    # .code is the provider's code, or its error type when the code is null.
    assert error.code == (envelope["code"] or envelope["type"])
    assert envelope["message"] in error.message
    assert envelope["message"] in str(error)
    if 400 <= status < 500 and status != 429:
        assert error.retryable is False
    for text in (str(error), repr(error), *map(str, error.args)):
        assert API_KEY not in text


# --- async parity ------------------------------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _sample(records: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    # A fixed spread over the corpus: text answers and tool-call answers alike.
    step = max(len(records) // count, 1)
    return records[::step][:count]


ASYNC_CHATS = _sample(CHATS, 5)
ASYNC_STREAMS = _sample(STREAMS, 4)


@pytest.mark.anyio
@pytest.mark.parametrize("record", ASYNC_CHATS, ids=_ids(ASYNC_CHATS))
async def test_openai_async_response_parity(record: dict[str, Any]) -> None:
    body = _body(record)
    handler = _Recorder(lambda: _json_response(record))
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        response = await core.acompletion(
            "openai", body["model"], _chat_request(body), _config(async_http_client=client)
        )
    handler.check_sent(body["model"], stream=False)
    sync_response, _ = _complete(record)
    assert response == sync_response
    assert _observed(response) == _expected_response(record["response"]["body_text"])


async def _aiter(pieces: list[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


@pytest.mark.anyio
@pytest.mark.parametrize("split", [False, True], ids=["whole", "pieces"])
@pytest.mark.parametrize("record", ASYNC_STREAMS, ids=_ids(ASYNC_STREAMS))
async def test_openai_async_stream_parity(record: dict[str, Any], split: bool) -> None:
    body = _body(record)
    raw = _sse_bytes(record)

    def reply() -> httpx.Response:
        content = _aiter(_pieces(raw, 7)) if split else raw
        return httpx.Response(200, headers=_sse_headers(), content=content)

    handler = _Recorder(reply)
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        s = await core.astream(
            "openai", body["model"], _chat_request(body), _config(async_http_client=client)
        )
        async with s:
            chunks = [chunk async for chunk in s]
            response = await s.acollect()
    handler.check_sent(body["model"], stream=True)
    sync_chunks, sync_response, _ = _stream(record, lambda: raw)
    assert chunks == sync_chunks
    assert response == sync_response


@pytest.mark.anyio
@pytest.mark.parametrize("record", ASYNC_STREAMS[:2], ids=_ids(ASYNC_STREAMS[:2]))
async def test_openai_async_stream_truncated_raises(record: dict[str, Any]) -> None:
    body = _body(record)
    content = _truncations(record)["before-finish-event"]
    handler = _Recorder(lambda: httpx.Response(200, headers=_sse_headers(), content=content))
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        s = await core.astream(
            "openai", body["model"], _chat_request(body), _config(async_http_client=client)
        )
        async with s:
            with pytest.raises(llmkit.StreamInterruptedError):
                await s.acollect()
