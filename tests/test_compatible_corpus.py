"""Replay real OpenRouter, Groq, DeepSeek, Cerebras and Ollama ``/v1`` traffic through their keys.

The recordings in ``tests/fixtures/openrouter`` and ``tests/fixtures/other``
(see their ATTRIBUTION.md) are the wire-format specification of the
OpenAI-compatible family: what each provider accepted, answered and
streamed, its in-stream error events included. Groq, DeepSeek and Cerebras
are filed under ``other`` and told apart by request host; so is Ollama's
OpenAI-compatible endpoint (local and ``ollama.com``).

Every expectation is computed from the recorded JSON with plain ``json``,
never through llmkit. The bytes are served by
:class:`llmkit_contracts.Replay` from each provider's strict emulator
flavour (``llmkit_contracts.emulators.compatible``), so what llmkit sends
is checked as well, and compared with the recorded request.

Excluded, with the reason:

* ``openrouter-chat-...-test_openrouter_video_url_public_api-0``: its
  request holds a ``video_url`` content part, which llmkit's message types
  cannot carry (no ``VideoPart``);
* the DeepSeek ``error`` recording: it answers DeepSeek's ``/responses``
  endpoint, not chat completions (like the ``responses`` kinds, not replayed).

The request comparison leaves out what llmkit's types cannot express:
``cache_control`` on content parts and tools, and ``eager_input_streaming``
on tools (Anthropic features passed through OpenRouter); and it expects the
``stream_options.include_usage`` llmkit adds to a stream that did not ask.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import corpus
import msgspec
import pytest

import llmkit
import llmkit_providers.compatible  # noqa: F401  (registers the family by name)
from llmkit.provider import Accumulator, ChatRequest, ChatResponse, StreamChunk
from llmkit_contracts import Replay, outline, recorded_body, split_anywhere, truncations
from llmkit_contracts.emulators.compatible import FLAVOURS

API_KEY = "sk-test-0000000000"

# Request host -> the key that replays it.
HOSTS = {
    "openrouter.ai": "openrouter",
    "api.groq.com": "groq",
    "api.deepseek.com": "deepseek",
    "api.cerebras.ai": "cerebras",
    "localhost:11434": "ollama_openai",
    "ollama.com": "ollama_openai",
}
EXCLUDED = {
    "openrouter-chat-pydantic-ai-test_openrouter_video_url_public_api-0": (
        "a video_url content part: llmkit's message types have no video part"
    ),
}


def _records(folder: str) -> list[dict[str, Any]]:
    # Ollama's files keep their own prefix inside "other", so they are read
    # by kind from the JSON rather than by file-name pattern.
    out = []
    for file in sorted((corpus.FIXTURES / folder).glob("*.json")):
        with file.open(encoding="utf-8") as fh:
            out.append(json.load(fh))
    return out


ALL = _records("openrouter") + _records("other")
KEPT = [r for r in ALL if r["id"] not in EXCLUDED]


def _kind(kind: str) -> list[dict[str, Any]]:
    return sorted((r for r in KEPT if r["kind"] == kind), key=lambda r: r["id"])


def _stream_error(record: dict[str, Any]) -> bool:
    # OpenRouter's error rides on a chunk; Groq's is an "event: error".
    body = record["response"]["body_text"]
    return any(
        payload != "[DONE]" and "error" in json.loads(payload) for payload in corpus.sse_data(body)
    )


CHATS = _kind("chat")
ALL_STREAMS = _kind("chat_stream")
STREAMS = [r for r in ALL_STREAMS if not _stream_error(r)]
STREAM_ERRORS = [r for r in ALL_STREAMS if _stream_error(r)]
ERRORS = _kind("error")
REQUESTS = CHATS + STREAMS


def _ids(records: list[dict[str, Any]]) -> list[str]:
    return [record["id"] for record in records]


def _key(record: dict[str, Any]) -> str:
    return HOSTS[record["request"]["host"]]


# --- what is the family's: requests from recordings, the finish event ---------

_MODELLED = frozenset(ChatRequest.__struct_fields__) - {"extra_body", "extra_headers"}


def _body(record: dict[str, Any]) -> dict[str, Any]:
    body = record["request"]["body"]
    assert isinstance(body, dict), record["id"]
    return copy.deepcopy(body)


def _request_of(record: Any) -> ChatRequest:
    body = _body(record)
    extra = {key: body.pop(key) for key in list(body) if key not in _MODELLED}
    if any("function" not in tool for tool in body.get("tools") or ()):
        # Tools the provider runs itself (OpenRouter's "openrouter:web_search")
        # are no function tools: they travel as extra_body, as a user sends them.
        extra["tools"] = body.pop("tools")
    for message in body["messages"]:
        # DeepSeek's history carries reasoning as reasoning_content; llmkit's
        # message calls it reasoning and the deepseek key sends it back.
        if "reasoning_content" in message:
            message["reasoning"] = message.pop("reasoning_content")
    if extra:
        body["extra_body"] = extra
    return msgspec.convert(body, ChatRequest)


def _finishes(event: bytes) -> bool:
    """Whether a recorded event carries a finish_reason, or is ``[DONE]``."""
    payloads = corpus.sse_data(event.decode("utf-8"))
    if not payloads:
        return False  # ": OPENROUTER PROCESSING", a comment
    [payload] = payloads
    if payload == "[DONE]":
        return True
    chunk = json.loads(payload)
    return any(c.get("finish_reason") is not None for c in chunk.get("choices") or [])


@pytest.fixture(scope="module")
def replays() -> Iterator[dict[str, Replay]]:
    """One strict emulator per provider flavour, for the whole module."""
    started: dict[str, Replay] = {}
    try:
        for name in sorted(set(HOSTS.values())):
            started[name] = Replay(
                name, FLAVOURS[name](), _request_of, finish=_finishes, config={"api_key": API_KEY}
            ).start()
        yield started
    finally:
        for replay in started.values():
            replay.stop()


def _replay(replays: dict[str, Replay], record: dict[str, Any]) -> Replay:
    return replays[_key(record)]


def _check_sent(replay: Replay, record: dict[str, Any], *, stream: bool) -> dict[str, Any]:
    """The one request the client sent: the recorded path, the key, the model."""
    [sent] = replay.sent  # retries=0: exactly one request
    assert sent.method == "POST"
    assert sent.path == record["request"]["path"]
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    body = sent.json
    assert isinstance(body, dict)
    assert body["model"] == record["request"]["body"]["model"]
    assert bool(body.get("stream", False)) is stream
    return body


# --- expectations from raw JSON -------------------------------------------------

_DETAILS = (
    ("prompt_tokens_details", ("cached_tokens", "audio_tokens", "cache_write_tokens")),
    ("completion_tokens_details", ("reasoning_tokens", "audio_tokens")),
)


def _usage(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    out = {name: usage[name] for name in ("prompt_tokens", "completion_tokens", "total_tokens")}
    for group, fields in _DETAILS:
        details = usage.get(group) or {}
        for field in fields:
            if details.get(field) is not None:
                out[f"{group}.{field}"] = details[field]
    return out


def _reasoning(message: dict[str, Any]) -> str | None:
    # Where each provider writes it: reasoning, or DeepSeek's reasoning_content.
    for name in ("reasoning", "reasoning_content"):
        if isinstance(message.get(name), str) and message[name]:
            return str(message[name])
    return None


def _expected_response(body_text: str) -> tuple[dict[str, Any], list[str | None]]:
    data = json.loads(body_text)
    choices = []
    reasoning = []
    for choice in data["choices"]:
        message = choice["message"]
        calls = [
            # OpenRouter leaves "arguments" out of a call that has none (the
            # recording of an Anthropic model); llmkit's FunctionCall then says "".
            (call["id"], call["function"]["name"], call["function"].get("arguments", ""))
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
        reasoning.append(_reasoning(message))
    shape = {"model": data["model"], "choices": choices, "usage": _usage(data.get("usage"))}
    return shape, reasoning


def _assembled(payloads: list[str]) -> tuple[dict[str, Any], list[str | None]]:
    """Assemble recorded stream payloads by hand: text, reasoning, tool calls by index."""
    choices: dict[int, dict[str, Any]] = {}
    usage = None
    model = None
    for payload in payloads:
        chunk = json.loads(payload)
        model = model or chunk.get("model")
        if chunk.get("usage"):
            usage = chunk["usage"]
        elif (chunk.get("x_groq") or {}).get("usage") and usage is None:
            usage = chunk["x_groq"]["usage"]  # Groq, when no usage chunk was asked for
        for choice in chunk.get("choices") or []:
            into = choices.setdefault(
                choice["index"], {"text": "", "reasoning": "", "calls": {}, "finish": None}
            )
            delta = choice.get("delta") or {}
            into["text"] += delta.get("content") or ""
            into["reasoning"] += _reasoning(delta) or ""
            for piece in delta.get("tool_calls") or []:
                call = into["calls"].setdefault(piece["index"], {"id": "", "name": "", "args": ""})
                call["id"] = call["id"] or piece.get("id") or ""
                function = piece.get("function") or {}
                call["name"] = call["name"] or function.get("name") or ""
                call["args"] += function.get("arguments") or ""
            if choice.get("finish_reason") is not None:
                into["finish"] = choice["finish_reason"]
    shape = {
        "model": model,
        "choices": [
            {
                "index": index,
                "content": parts["text"] if parts["text"] or not parts["calls"] else None,
                "tool_calls": [
                    (call["id"], call["name"], call["args"])
                    for _, call in sorted(parts["calls"].items())
                ],
                "finish_reason": parts["finish"],
            }
            for index, parts in sorted(choices.items())
        ],
        "usage": _usage(usage),
    }
    return shape, [parts["reasoning"] or None for _, parts in sorted(choices.items())]


def _expected_stream(body_text: str) -> tuple[dict[str, Any], list[str | None]]:
    payloads = corpus.sse_data(body_text)
    assert payloads[-1] == "[DONE]"
    return _assembled(payloads[:-1])


def _reasonings(response: ChatResponse) -> list[str | None]:
    return [choice.message.reasoning for choice in response.choices]


# --- 0. the corpus itself -------------------------------------------------------


def test_compatible_corpus_is_complete() -> None:
    # Every recording of these kinds is replayed or excluded with a reason;
    # a fixture lost in a refactor must fail here rather than shrink coverage.
    assert len(ALL) == 131
    assert {r["id"] for r in ALL} - {r["id"] for r in KEPT} == set(EXCLUDED)
    counts = {
        (key, kind): sum(1 for r in KEPT if _key(r) == key and r["kind"] == kind)
        for key in sorted(set(HOSTS.values()))
        for kind in ("chat", "chat_stream", "error")
    }
    assert counts == {
        ("cerebras", "chat"): 12,
        ("cerebras", "chat_stream"): 0,
        ("cerebras", "error"): 0,
        ("deepseek", "chat"): 4,
        ("deepseek", "chat_stream"): 1,
        ("deepseek", "error"): 0,
        ("groq", "chat"): 38,
        ("groq", "chat_stream"): 7,
        ("groq", "error"): 4,
        ("ollama_openai", "chat"): 4,
        ("ollama_openai", "chat_stream"): 0,
        ("ollama_openai", "error"): 0,
        ("openrouter", "chat"): 51,
        ("openrouter", "chat_stream"): 8,
        ("openrouter", "error"): 1,
    }
    assert len(STREAM_ERRORS) == 3  # OpenRouter's one, Groq's two
    assert all(r["request"]["path"].endswith("/chat/completions") for r in ALL)


def test_compatible_default_endpoints_are_the_recorded_ones() -> None:
    # Without api_base, each key addresses the host and path it was recorded at
    # (Ollama's local server; ollama.com's cloud is the same API elsewhere).
    for record in KEPT:
        if record["request"]["host"] == "ollama.com":
            continue
        key = llmkit.provider_info(_key(record))
        recorded = f"{record['request']['host']}{record['request']['path']}"
        assert (key.default_base_url + "/chat/completions").split("://", 1)[1] == recorded


# --- 1. responses -----------------------------------------------------------------


@pytest.mark.parametrize("record", CHATS, ids=_ids(CHATS))
def test_compatible_response_decoding(replays: dict[str, Replay], record: dict[str, Any]) -> None:
    replay = _replay(replays, record)
    response = replay.complete(record)
    _check_sent(replay, record, stream=False)
    shape, reasoning = _expected_response(record["response"]["body_text"])
    assert outline(response) == shape
    assert _reasonings(response) == reasoning


OPENROUTER_DETAILS = [
    r
    for r in CHATS
    if _key(r) == "openrouter" and "reasoning_details" in r["response"]["body_text"]
]


@pytest.mark.parametrize("record", OPENROUTER_DETAILS, ids=_ids(OPENROUTER_DETAILS))
def test_openrouter_reasoning_details_are_kept(
    replays: dict[str, Replay], record: dict[str, Any]
) -> None:
    # The typed pieces (signatures, encrypted blocks) go to provider_data,
    # to be sent back on the assistant message.
    response = replays["openrouter"].complete(record)
    recorded = json.loads(record["response"]["body_text"])["choices"][0]["message"]
    data = response.choices[0].message.provider_data or {}
    if recorded.get("reasoning_details"):
        assert data["openrouter"]["reasoning_details"] == recorded["reasoning_details"]
    else:
        assert "reasoning_details" not in data.get("openrouter", {})


# --- 2. requests --------------------------------------------------------------------

# Fields of the recordings that llmkit's types cannot carry (see the module doc).
_UNEXPRESSED = ("cache_control", "eager_input_streaming")


def _without(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without(v) for k, v in value.items() if k not in _UNEXPRESSED}
    if isinstance(value, list):
        return [_without(v) for v in value]
    return value


def _comparable(body: dict[str, Any]) -> dict[str, Any]:
    # A message field sent as null means "not given"; llmkit omits it.
    body = _without(copy.deepcopy(body))
    body["messages"] = [{k: v for k, v in m.items() if v is not None} for m in body["messages"]]
    return body


@pytest.mark.parametrize("record", REQUESTS, ids=_ids(REQUESTS))
def test_compatible_request_encoding(replays: dict[str, Replay], record: dict[str, Any]) -> None:
    # What llmkit puts on the wire is the recorded request, and the strict
    # flavour accepts it (a refusal raises RefusedReplayError). History
    # reasoning goes back where the provider wants it: DeepSeek's
    # reasoning_content, Cerebras' and Ollama's reasoning.
    replay = _replay(replays, record)
    recorded = _body(record)
    stream = record["kind"] == "chat_stream"
    if stream:
        replay.stream(record)
    else:
        replay.complete(record)
    sent = _check_sent(replay, record, stream=stream)
    if stream:
        assert sent["stream_options"] == {"include_usage": True}
        recorded.setdefault("stream_options", {"include_usage": True})
    elif "stream" not in sent:
        assert recorded.pop("stream") is False
    assert _comparable(sent) == _comparable(recorded)


# --- 3. streams ---------------------------------------------------------------------


@pytest.mark.parametrize("record", STREAMS, ids=_ids(STREAMS))
def test_compatible_stream_accumulation(replays: dict[str, Replay], record: dict[str, Any]) -> None:
    replay = _replay(replays, record)
    streamed = replay.stream(record)
    _check_sent(replay, record, stream=True)
    assert streamed.chunks
    shape, reasoning = _expected_stream(record["response"]["body_text"])
    assert outline(streamed.response) == shape
    assert _reasonings(streamed.response) == reasoning


OPENROUTER_STREAM_DETAILS = [
    r
    for r in STREAMS
    if _key(r) == "openrouter" and "reasoning_details" in r["response"]["body_text"]
]


@pytest.mark.parametrize("record", OPENROUTER_STREAM_DETAILS, ids=_ids(OPENROUTER_STREAM_DETAILS))
def test_openrouter_streamed_reasoning_details_are_joined(
    replays: dict[str, Replay], record: dict[str, Any]
) -> None:
    # Pieces of one typed block arrive cut across chunks; joined, their text
    # is the streamed reasoning text, and the last piece's signature is kept.
    response = replays["openrouter"].stream(record).response
    details: list[dict[str, Any]] = []
    for payload in corpus.sse_data(record["response"]["body_text"])[:-1]:
        for choice in json.loads(payload).get("choices") or []:
            details.extend(choice["delta"].get("reasoning_details") or [])
    data = response.choices[0].message.provider_data or {}
    kept = data["openrouter"]["reasoning_details"]
    assert "".join(p.get("text") or "" for p in kept) == "".join(
        p.get("text") or "" for p in details
    )
    signatures = [p["signature"] for p in details if p.get("signature")]
    assert [p["signature"] for p in kept if p.get("signature")] == signatures[-1:]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("record", STREAMS, ids=_ids(STREAMS))
def test_compatible_stream_split_anywhere(
    replays: dict[str, Replay], record: dict[str, Any], seed: int
) -> None:
    replay = _replay(replays, record)
    whole = replay.stream(record)
    body = recorded_body(record)
    assert b"".join(split_anywhere(body, seed)) == body
    split = replay.stream(record, seed=seed)
    assert split.chunks == whole.chunks
    assert split.response == whole.response


_CUTS = ["empty-body", "after-first-event", "before-finish-event", "before-finish-unterminated"]


@pytest.mark.parametrize("ending", ["ended", "dropped"])
@pytest.mark.parametrize("cut", _CUTS)
@pytest.mark.parametrize("record", STREAMS, ids=_ids(STREAMS))
def test_compatible_stream_truncated_raises(
    replays: dict[str, Replay], record: dict[str, Any], cut: str, ending: str
) -> None:
    body = recorded_body(record)
    assert body.rfind(b"data: [DONE]") > len(truncations(body, _finishes)["inside-finish-event"])
    with pytest.raises(llmkit.StreamInterruptedError) as info:
        _replay(replays, record).truncated(record, cut, disconnect=ending == "dropped")
    assert info.value.provider == _key(record)


# --- 4. errors ----------------------------------------------------------------------

_ERROR_CLASSES: dict[int, type[llmkit.LLMError]] = {
    400: llmkit.InvalidRequestError,
    401: llmkit.AuthenticationError,
    404: llmkit.NotFoundError,
    429: llmkit.RateLimitError,
}


def _check_error(error: llmkit.LLMError, record: dict[str, Any], envelope: dict[str, Any]) -> None:
    status = envelope.get("status_code") or record["response"]["status"]
    if record["kind"] == "chat_stream" and not envelope.get("status_code"):
        status = envelope["code"]  # OpenRouter: the code is an HTTP status
    assert type(error) is _ERROR_CLASSES[status]
    assert error.status == status
    assert error.provider == _key(record)
    assert error.model == record["request"]["body"]["model"]
    code = envelope.get("code") or envelope.get("type")
    assert error.code == str(code)
    assert envelope["message"] in error.message
    raw = (envelope.get("metadata") or {}).get("raw")
    if raw:
        # OpenRouter's own words are "Provider returned error"; the upstream's follow.
        assert raw in error.message
    for text in (str(error), repr(error), *map(str, error.args)):
        assert API_KEY not in text


@pytest.mark.parametrize("record", ERRORS, ids=_ids(ERRORS))
def test_compatible_error_mapping(replays: dict[str, Replay], record: dict[str, Any]) -> None:
    replay = _replay(replays, record)
    envelope = json.loads(record["response"]["body_text"])["error"]
    assert not _body(record).get("stream")
    with pytest.raises(llmkit.LLMError) as info:
        replay.complete(record)
    _check_sent(replay, record, stream=False)
    _check_error(info.value, record, envelope)
    if record["response"]["status"] != 429:
        assert info.value.retryable is False


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[StreamChunk]:
    """Every chunk a stream yields before it raises."""
    chunks: list[StreamChunk] = []
    add = Accumulator.add

    def spy(self: Accumulator, chunk: StreamChunk) -> None:
        chunks.append(chunk)
        add(self, chunk)

    monkeypatch.setattr(Accumulator, "add", spy)
    return chunks


@pytest.mark.parametrize("seed", [None, 0, 1])
@pytest.mark.parametrize("record", STREAM_ERRORS, ids=_ids(STREAM_ERRORS))
def test_compatible_stream_error_event_raises(
    replays: dict[str, Replay], seen: list[StreamChunk], record: dict[str, Any], seed: int | None
) -> None:
    # OpenRouter's error chunk and Groq's "event: error" raise the mapped
    # error after the chunks before them, however the body is cut.
    payloads = [p for p in corpus.sse_data(record["response"]["body_text"]) if p != "[DONE]"]
    at = next(i for i, p in enumerate(payloads) if "error" in json.loads(p))
    envelope = json.loads(payloads[at])["error"]
    replay = _replay(replays, record)
    with pytest.raises(llmkit.LLMError) as info:
        replay.stream(record, seed=seed)
    _check_sent(replay, record, stream=True)
    _check_error(info.value, record, envelope)
    yielded = list(seen)
    before = Accumulator()
    for chunk in yielded:
        before.add(chunk)
    shape, reasoning = _assembled(payloads[:at])
    got = outline(before.result())
    assert [c["content"] or "" for c in got["choices"]] == [
        c["content"] or "" for c in shape["choices"]
    ]
    assert _reasonings(before.result()) == reasoning


# --- async parity -------------------------------------------------------------------


def _sample(records: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    step = max(len(records) // count, 1)
    return records[::step][:count]


ASYNC_CHATS = _sample(CHATS, 6)
ASYNC_STREAMS = _sample(STREAMS, 5)


@pytest.mark.anyio
@pytest.mark.parametrize("record", ASYNC_CHATS, ids=_ids(ASYNC_CHATS))
async def test_compatible_async_response_parity(
    replays: dict[str, Replay], record: dict[str, Any]
) -> None:
    replay = _replay(replays, record)
    response = await replay.acomplete(record)
    assert response == replay.complete(record)


@pytest.mark.anyio
@pytest.mark.parametrize("record", ASYNC_STREAMS, ids=_ids(ASYNC_STREAMS))
async def test_compatible_async_stream_parity(
    replays: dict[str, Replay], record: dict[str, Any]
) -> None:
    replay = _replay(replays, record)
    streamed = await replay.astream(record, seed=7)
    sync = replay.stream(record)
    assert streamed.chunks == sync.chunks
    assert streamed.response == sync.response


@pytest.mark.anyio
@pytest.mark.parametrize("record", STREAM_ERRORS, ids=_ids(STREAM_ERRORS))
async def test_compatible_async_stream_error_event_raises(
    replays: dict[str, Replay], record: dict[str, Any]
) -> None:
    with pytest.raises(llmkit.LLMError) as info:
        await _replay(replays, record).astream(record)
    assert info.value.provider == _key(record)
    assert not isinstance(info.value, llmkit.StreamInterruptedError)
