"""Replay real OpenAI chat-completions traffic through llmkit's OpenAI codec.

The recordings in ``tests/fixtures/openai`` (see its ATTRIBUTION.md) are the
wire-format specification: request bodies OpenAI accepted, responses and SSE
streams as they came back, error bodies with their statuses. Every
expectation below is computed from a recording with plain ``json`` and never
through llmkit, so the codec cannot grade its own work.

The recorded bytes are served by :class:`llmkit_contracts.Replay` from the
strict OpenAI emulator on 127.0.0.1, so every request llmkit sends is also
checked as the real API checks it, and stream pieces reach llmkit as the
HTTP chunks they were sent in. This module holds only what is OpenAI's: how
a recording becomes a request, which event finishes an answer, and what the
recorded JSON says the answer is.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from itertools import accumulate
from typing import Any, cast

import corpus
import msgspec
import pytest

import llmkit
from llmkit.config import Config, resolve_config
from llmkit.generics import encode_request
from llmkit.streaming import EventPipeline
from llmkit.types import (
    ChatRequest,
    ChatResponse,
    HttpCall,
    StreamChunk,
    Tool,
    ToolCall,
    ToolChoice,
)
from llmkit_contracts import (
    OpenAIProtocol,
    RecordedRequest,
    Replay,
    outline,
    recorded_body,
    split_anywhere,
    truncations,
)
from llmkit_providers.openai import OpenAI

API_KEY = "sk-test-0000000000"
CHAT_PATH = "/v1/chat/completions"

CHATS = corpus.load("openai", "chat", path=CHAT_PATH)
STREAMS = corpus.load("openai", "chat_stream", path=CHAT_PATH)
ERRORS = corpus.load("openai", "error", path=CHAT_PATH)
REQUESTS = CHATS + STREAMS


def _ids(records: list[dict[str, Any]]) -> list[str]:
    return [record["id"] for record in records]


# --- what is OpenAI's: requests from recordings, the finish event -----------------

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


def _request_of(record: Any) -> ChatRequest:
    return _chat_request(_body(record))


def _finishes(event: bytes) -> bool:
    """Whether a recorded event carries a finish_reason, or is ``[DONE]``."""
    assert event.startswith(b"data: "), event
    [payload] = corpus.sse_data(event.decode("utf-8"))
    if payload == "[DONE]":
        return True
    chunk = json.loads(payload)
    return any(c.get("finish_reason") is not None for c in chunk.get("choices") or [])


@pytest.fixture(scope="module")
def replay() -> Iterator[Replay]:
    """One strict OpenAI emulator for the whole module, cleared before each replay."""
    with Replay(
        "openai", OpenAIProtocol(), _request_of, finish=_finishes, config={"api_key": API_KEY}
    ) as replay:
        yield replay


def _check_sent(replay: Replay, record: dict[str, Any], *, stream: bool) -> RecordedRequest:
    """The one request the client sent: the recorded endpoint, the key, the model."""
    [sent] = replay.sent  # retries=0: exactly one request
    assert sent.method == "POST"
    assert sent.path == record["request"]["path"]
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent.headers["content-type"].startswith("application/json")
    body = sent.json
    assert isinstance(body, dict)
    assert body["model"] == record["request"]["body"]["model"]
    assert bool(body.get("stream", False)) is stream
    return sent


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every piece of body llmkit's stream pipeline is fed, in order."""
    seen: list[bytes] = []
    feed = EventPipeline.feed

    def spy(self: EventPipeline, data: bytes) -> list[StreamChunk]:
        seen.append(bytes(data))
        return feed(self, data)

    monkeypatch.setattr(EventPipeline, "feed", spy)
    return seen


def _boundaries(pieces: list[bytes]) -> set[int]:
    return set(accumulate(len(piece) for piece in pieces))


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
                # As in a non-streamed answer, a turn made only of tool calls
                # has no content (null), and a turn without either has "".
                "content": parts["text"] if parts["text"] or not parts["calls"] else None,
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


# --- 0. the corpus itself -----------------------------------------------------------


def test_openai_corpus_is_complete() -> None:
    # Every OpenAI chat-completions recording of these kinds is replayed; a
    # fixture lost in a refactor must fail here rather than shrink coverage.
    assert (len(CHATS), len(STREAMS), len(ERRORS)) == (85, 16, 10)
    files = sorted(p.name for p in (corpus.FIXTURES / "openai").glob("*.json"))
    assert files == sorted(f"{r['id']}.json" for r in CHATS + STREAMS + ERRORS)
    assert len(set(_ids(CHATS + STREAMS + ERRORS))) == len(files)
    assert all(r["request"]["host"] == "api.openai.com" for r in CHATS + STREAMS + ERRORS)


def test_openai_default_endpoint_is_the_recorded_one() -> None:
    # Replays go to the emulator's api_base; without one, the codec must
    # address the endpoint every recording was made against.
    recorded = {f"https://{r['request']['host']}{r['request']['path']}" for r in REQUESTS + ERRORS}
    key = OpenAI()
    call = cast(
        HttpCall,
        encode_request(key, _request_of(CHATS[0]), resolve_config(key, Config(api_key=API_KEY))),
    )
    assert recorded == {call.url}
    assert call.method == "POST"


# --- 1. responses ------------------------------------------------------------------


@pytest.mark.parametrize("record", CHATS, ids=_ids(CHATS))
def test_openai_response_decoding(replay: Replay, record: dict[str, Any]) -> None:
    response = replay.complete(record)
    _check_sent(replay, record, stream=False)
    assert isinstance(response, ChatResponse)
    assert outline(response) == _expected_response(record["response"]["body_text"])


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


def _sent_body(replay: Replay, record: dict[str, Any], request: ChatRequest) -> dict[str, Any]:
    """Replay ``record`` with ``request`` and return the JSON body that reached the wire."""
    stream = record["kind"] == "chat_stream"
    if stream:
        replay.stream(record, request=request)
    else:
        replay.complete(record, request=request)
    body = _check_sent(replay, record, stream=stream).json
    assert isinstance(body, dict)
    return body


@pytest.mark.parametrize("record", REQUESTS, ids=_ids(REQUESTS))
def test_openai_request_encoding(replay: Replay, record: dict[str, Any]) -> None:
    # What llmkit puts on the wire is the recorded request, and the strict
    # emulator accepts it (a refusal raises RefusedReplayError).
    recorded = _body(record)
    sent = _sent_body(replay, record, _request_of(record))
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
def test_openai_request_encoding_constructed_tools(replay: Replay, record: dict[str, Any]) -> None:
    # OpenAI requires "type": "function" on every tool, tool call and named
    # tool_choice (it answers 400 "Missing required parameter: 'tools[0].type'"
    # without it); every recording sends it.
    recorded = _body(record)
    sent = _sent_body(replay, record, _as_user_writes(_request_of(record)))
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
def test_openai_stream_accumulation(replay: Replay, record: dict[str, Any]) -> None:
    streamed = replay.stream(record)
    _check_sent(replay, record, stream=True)
    assert streamed.chunks
    expected = _expected_stream(record["response"]["body_text"])
    assert outline(streamed.response) == expected


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("record", STREAMS, ids=_ids(STREAMS))
def test_openai_stream_split_anywhere(
    replay: Replay, reads: list[bytes], record: dict[str, Any], seed: int
) -> None:
    whole = replay.stream(record)
    body = recorded_body(record)
    pieces = split_anywhere(body, seed)
    assert b"".join(pieces) == body
    assert len(pieces) > len(body) // 24
    reads.clear()
    split = replay.stream(record, seed=seed)
    # The pieces reached the decoder as sent: every place the body was cut
    # is a place where one read ended and the next began.
    assert b"".join(reads) == body
    assert _boundaries(pieces) <= _boundaries(reads)
    assert split.chunks == whole.chunks
    assert split.response == whole.response


_CUTS = ["empty-body", "after-first-event", "before-finish-event", "before-finish-unterminated"]


def _first_finish_is_a_finish_reason(record: dict[str, Any]) -> None:
    # Every recording ends its answer with a finish_reason chunk before
    # [DONE], so each cut leaves out the finish_reason and the end marker.
    body = recorded_body(record)
    cuts = truncations(body, _finishes)
    assert body[len(cuts["before-finish-event"]) :].startswith(b"data: {")
    assert body.rfind(b"data: [DONE]") > len(cuts["inside-finish-event"])


@pytest.mark.parametrize("ending", ["ended", "dropped"])
@pytest.mark.parametrize("cut", _CUTS)
@pytest.mark.parametrize("record", STREAMS, ids=_ids(STREAMS))
def test_openai_stream_truncated_raises(
    replay: Replay, record: dict[str, Any], cut: str, ending: str
) -> None:
    # "ended": the body ends cleanly at the cut; "dropped": the server drops
    # the connection there, in the middle of the chunked body.
    _first_finish_is_a_finish_reason(record)
    with pytest.raises(llmkit.StreamInterruptedError) as info:
        replay.truncated(record, cut, disconnect=ending == "dropped")
    assert info.value.provider == "openai"


@pytest.mark.parametrize("record", STREAMS, ids=_ids(STREAMS))
def test_openai_stream_truncated_mid_event_raises(replay: Replay, record: dict[str, Any]) -> None:
    # Cut inside the JSON of the first finish event: the body ends mid-line,
    # before both the finish_reason and [DONE]. Users must see an interrupted
    # stream, not a decoding failure of half an event.
    cut = truncations(recorded_body(record), _finishes)["inside-finish-event"]
    assert not cut.endswith(b"\n")
    with pytest.raises(llmkit.StreamInterruptedError):
        replay.truncated(record, "inside-finish-event")


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
def test_openai_error_mapping(replay: Replay, record: dict[str, Any]) -> None:
    recorded = record["response"]
    status = recorded["status"]
    envelope = json.loads(recorded["body_text"])["error"]
    body = _body(record)
    assert not body.get("stream")  # every recorded error answered a non-streamed call
    with pytest.raises(llmkit.LLMError) as info:
        replay.complete(record)
    error = info.value

    _check_sent(replay, record, stream=False)  # retries=0, and 4xx are not retried anyway
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


def _sample(records: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    # A fixed spread over the corpus: text answers and tool-call answers alike.
    step = max(len(records) // count, 1)
    return records[::step][:count]


ASYNC_CHATS = _sample(CHATS, 5)
ASYNC_STREAMS = _sample(STREAMS, 4)


@pytest.mark.anyio
@pytest.mark.parametrize("record", ASYNC_CHATS, ids=_ids(ASYNC_CHATS))
async def test_openai_async_response_parity(replay: Replay, record: dict[str, Any]) -> None:
    response = await replay.acomplete(record)
    _check_sent(replay, record, stream=False)
    sync_response = replay.complete(record)
    assert response == sync_response
    assert outline(response) == _expected_response(record["response"]["body_text"])


@pytest.mark.anyio
@pytest.mark.parametrize("split", [False, True], ids=["whole", "pieces"])
@pytest.mark.parametrize("record", ASYNC_STREAMS, ids=_ids(ASYNC_STREAMS))
async def test_openai_async_stream_parity(
    replay: Replay, reads: list[bytes], record: dict[str, Any], split: bool
) -> None:
    streamed = await replay.astream(record, seed=7 if split else None)
    _check_sent(replay, record, stream=True)
    body = recorded_body(record)
    pieces = split_anywhere(body, 7) if split else [body]
    assert _boundaries(pieces) <= _boundaries(reads)
    reads.clear()
    sync = replay.stream(record)
    assert streamed.chunks == sync.chunks
    assert streamed.response == sync.response


@pytest.mark.anyio
@pytest.mark.parametrize("record", ASYNC_STREAMS[:2], ids=_ids(ASYNC_STREAMS[:2]))
async def test_openai_async_stream_truncated_raises(replay: Replay, record: dict[str, Any]) -> None:
    cut = truncations(recorded_body(record), _finishes)["before-finish-event"]
    with pytest.raises(llmkit.StreamInterruptedError):
        await replay.astream(record, pieces=[cut])
