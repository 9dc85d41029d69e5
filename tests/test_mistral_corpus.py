"""Replay real Mistral traffic through the ``mistral`` key, from the strict Mistral emulator.

The recordings in ``tests/fixtures/mistral`` (see its ATTRIBUTION.md) are
the specification of Mistral's wire format: what the API accepted and what
it answered, thinking chunks of reasoning models included. Every chat and
chat_stream recording is replayed; none is excluded.

Every expectation is computed from the recorded JSON with plain ``json``,
never through llmkit: the text (a content list's text chunks joined), the
reasoning (its thinking chunks' text joined), the tool calls, the finish
reason (``model_length`` read as ``length``), and the usage with cached
tokens from ``prompt_tokens_details.cached_tokens`` or the older
``num_cached_tokens``. The bytes are served by
:class:`llmkit_contracts.Replay` from :class:`MistralProtocol`, so what
llmkit sends is checked by the emulator's rules too, and compared with the
recorded request.

The request comparison leaves out what says nothing: ``null`` top-level
fields, an assistant's ``prefix: false``, an empty ``content`` or
``tool_calls`` list, a call's ``index`` (a response field pydantic-ai sent
back), and reads ``tool_choice: "any"`` as llmkit's ``"required"``.
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
import llmkit_providers.mistral  # noqa: F401  (registers the key)
from llmkit.provider import ChatRequest, ChatResponse
from llmkit_contracts import Replay, outline, recorded_body, split_anywhere, truncations
from llmkit_contracts.emulators.mistral import MistralProtocol

API_KEY = "sk-mistral-test-0000000000"
CHATS = corpus.load("mistral", "chat")
STREAMS = corpus.load("mistral", "chat_stream")
RECORDS = CHATS + STREAMS
_MODELLED = frozenset(ChatRequest.__struct_fields__) - {"extra_body", "extra_headers"}


def _ids(records: list[dict[str, Any]]) -> list[str]:
    return [record["id"] for record in records]


# --- recorded request -> llmkit request --------------------------------------------------


def _part(part: dict[str, Any]) -> dict[str, Any]:
    if part["type"] == "document_url":
        return {"type": "file", "file": {"file_data": part["document_url"]}}
    return part


def _message(message: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in message.items() if k != "prefix" and v is not None}
    content = out.get("content")
    if isinstance(content, list):
        thinking = [p for p in content if p["type"] == "thinking"]
        if thinking:
            # A thinking chunk goes back as llmkit keeps it: in provider_data.
            out["provider_data"] = {"mistral": {"thinking": thinking}}
        parts = [_part(p) for p in content if p["type"] != "thinking"]
        out["content"] = parts or None
    if out.get("tool_calls") == []:
        del out["tool_calls"]
    for call in out.get("tool_calls") or ():
        call.pop("index", None)
    return out


def _request_of(record: Any) -> ChatRequest:
    body = copy.deepcopy(record["request"]["body"])
    extra = {key: body.pop(key) for key in list(body) if key not in _MODELLED}
    body["messages"] = [_message(m) for m in body["messages"]]
    for tool in body.get("tools") or ():
        tool.setdefault("type", "function")
    if body.get("tool_choice") == "any":
        body["tool_choice"] = "required"
    body = {key: value for key, value in body.items() if value is not None}
    if extra:
        body["extra_body"] = extra
    return msgspec.convert(body, ChatRequest)


def _finishes(event: bytes) -> bool:
    """Whether a recorded event carries a finish reason, or is ``[DONE]``."""
    [payload] = corpus.sse_data(event.decode("utf-8"))
    if payload == "[DONE]":
        return True
    return any(c.get("finish_reason") is not None for c in json.loads(payload)["choices"])


@pytest.fixture(scope="module")
def replay() -> Iterator[Replay]:
    with Replay(
        "mistral", MistralProtocol(), _request_of, finish=_finishes, config={"api_key": API_KEY}
    ) as running:
        yield running


def _sent(replay: Replay, record: dict[str, Any], *, stream: bool) -> dict[str, Any]:
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


# --- expectations from raw JSON --------------------------------------------------------

_FINISH = {"model_length": "length"}


def _usage(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    out = {name: usage[name] for name in ("prompt_tokens", "completion_tokens", "total_tokens")}
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
    if cached is None:
        cached = usage.get("num_cached_tokens")
    if cached is not None:
        out["prompt_tokens_details.cached_tokens"] = cached
    return out


def _split(content: Any) -> tuple[Any, str]:
    """Content as (text, reasoning): a list's text chunks and thinking chunks, each joined."""
    if not isinstance(content, list):
        return content, ""
    text = "".join(p["text"] for p in content if p["type"] == "text")
    thinking = "".join(
        item["text"]
        for p in content
        if p["type"] == "thinking"
        for item in p["thinking"]
        if item["type"] == "text"
    )
    return text, thinking


def _expected_response(body_text: str) -> tuple[dict[str, Any], list[str | None]]:
    data = json.loads(body_text)
    choices, reasoning = [], []
    for choice in data["choices"]:
        message = choice["message"]
        text, thinking = _split(message.get("content"))
        choices.append(
            {
                "index": choice["index"],
                "content": text,
                "tool_calls": [
                    (call["id"], call["function"]["name"], call["function"]["arguments"])
                    for call in message.get("tool_calls") or []
                ],
                "finish_reason": _FINISH.get(choice["finish_reason"], choice["finish_reason"]),
            }
        )
        reasoning.append(thinking or None)
    shape = {"model": data["model"], "choices": choices, "usage": _usage(data.get("usage"))}
    return shape, reasoning


def _expected_stream(body_text: str) -> tuple[dict[str, Any], list[str | None]]:
    payloads = corpus.sse_data(body_text)
    assert payloads[-1] == "[DONE]"
    parts: dict[int, dict[str, Any]] = {}
    usage = model = None
    for payload in payloads[:-1]:
        chunk = json.loads(payload)
        model = model or chunk["model"]
        usage = chunk.get("usage") or usage
        for choice in chunk["choices"]:
            into = parts.setdefault(
                choice["index"], {"text": "", "thinking": "", "calls": [], "finish": None}
            )
            delta = choice["delta"]
            text, thinking = _split(delta.get("content"))
            into["text"] += text or ""
            into["thinking"] += thinking
            into["calls"] += [
                (c["id"], c["function"]["name"], c["function"]["arguments"])
                for c in delta.get("tool_calls") or []
            ]
            if choice["finish_reason"] is not None:
                into["finish"] = _FINISH.get(choice["finish_reason"], choice["finish_reason"])
    shape = {
        "model": model,
        "choices": [
            {
                "index": index,
                "content": p["text"] if p["text"] or not p["calls"] else None,
                "tool_calls": p["calls"],
                "finish_reason": p["finish"],
            }
            for index, p in sorted(parts.items())
        ],
        "usage": _usage(usage),
    }
    return shape, [p["thinking"] or None for _, p in sorted(parts.items())]


def _reasonings(response: ChatResponse) -> list[str | None]:
    return [choice.message.reasoning for choice in response.choices]


# --- 0. the corpus itself ------------------------------------------------------------


def test_mistral_corpus_is_complete() -> None:
    # Every recording is replayed; a fixture lost in a refactor must fail here.
    assert len(CHATS) == 33
    assert len(STREAMS) == 1
    assert all(r["request"]["path"] == "/v1/chat/completions" for r in RECORDS)
    assert all(r["request"]["host"] == "api.mistral.ai" for r in RECORDS)
    info = llmkit.provider_info("mistral")
    assert info.default_base_url == "https://api.mistral.ai/v1"
    assert info.api_key_env == "MISTRAL_API_KEY"


# --- 1. responses ---------------------------------------------------------------------


@pytest.mark.parametrize("record", CHATS, ids=_ids(CHATS))
def test_mistral_response_decoding(replay: Replay, record: dict[str, Any]) -> None:
    response = replay.complete(record)
    _sent(replay, record, stream=False)
    shape, reasoning = _expected_response(record["response"]["body_text"])
    assert outline(response) == shape
    assert _reasonings(response) == reasoning


THINKING_CHATS = [r for r in CHATS if '"thinking"' in r["response"]["body_text"]]


@pytest.mark.parametrize("record", THINKING_CHATS, ids=_ids(THINKING_CHATS))
def test_mistral_thinking_chunks_are_kept_whole(replay: Replay, record: dict[str, Any]) -> None:
    # What goes back in the history is the answer's thinking chunks, as they came.
    response = replay.complete(record)
    recorded = json.loads(record["response"]["body_text"])["choices"][0]["message"]["content"]
    thinking = [part for part in recorded if part["type"] == "thinking"]
    assert thinking
    message = response.choices[0].message
    assert message.provider_data == {"mistral": {"thinking": thinking}}


def test_mistral_thinking_goes_back_as_recorded(replay: Replay) -> None:
    # The recorded second turn sent the first turn's thinking back; the
    # history llmkit builds from its own answer sends the same chunks.
    [record] = [r for r in CHATS if r["id"].endswith("test_mistral_model_thinking_part-1")]
    replay.complete(record)
    sent = _sent(replay, record, stream=False)
    recorded = record["request"]["body"]["messages"][1]["content"]
    assert sent["messages"][1]["content"] == recorded
    assert [p["type"] for p in recorded] == ["thinking", "text"]


# --- 2. requests ------------------------------------------------------------------------


def _comparable(body: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in copy.deepcopy(body).items() if v is not None}
    if body.get("tool_choice") == "any":
        body["tool_choice"] = "required"
    for tool in body.get("tools") or ():
        tool.setdefault("type", "function")
    messages = []
    for message in body["messages"]:
        out = {
            k: v
            for k, v in message.items()
            if v is not None and not (k == "prefix" and v is False) and v != []
        }
        for call in out.get("tool_calls") or ():
            call.pop("index", None)
        messages.append(out)
    body["messages"] = messages
    return body


@pytest.mark.parametrize("record", RECORDS, ids=_ids(RECORDS))
def test_mistral_request_encoding(replay: Replay, record: dict[str, Any]) -> None:
    # What llmkit puts on the wire is the recorded request, and the strict
    # emulator accepts it (a refusal raises RefusedReplayError).
    stream = record["kind"] == "chat_stream"
    if stream:
        replay.stream(record)
    else:
        replay.complete(record)
    sent = _sent(replay, record, stream=stream)
    recorded = copy.deepcopy(record["request"]["body"])
    if not stream and "stream" not in sent:
        assert recorded.pop("stream") is False
    assert "stream_options" not in sent
    assert _comparable(sent) == _comparable(recorded)


# --- 3. streams ---------------------------------------------------------------------------


@pytest.mark.parametrize("record", STREAMS, ids=_ids(STREAMS))
def test_mistral_stream_accumulation(replay: Replay, record: dict[str, Any]) -> None:
    streamed = replay.stream(record)
    _sent(replay, record, stream=True)
    assert streamed.chunks
    shape, reasoning = _expected_stream(record["response"]["body_text"])
    assert outline(streamed.response) == shape
    assert _reasonings(streamed.response) == reasoning


@pytest.mark.parametrize("record", STREAMS, ids=_ids(STREAMS))
def test_mistral_streamed_thinking_is_kept_joined(replay: Replay, record: dict[str, Any]) -> None:
    # The streamed thinking pieces come back as one thinking chunk whose text
    # is the reasoning, ready to go back in the history; it rides on the first
    # delta after the thinking, not on every piece.
    streamed = replay.stream(record)
    message = streamed.response.choices[0].message
    assert message.reasoning
    assert message.provider_data == {
        "mistral": {
            "thinking": [
                {"type": "thinking", "thinking": [{"type": "text", "text": message.reasoning}]}
            ]
        }
    }
    carriers = [c for c in streamed.chunks if c.choices and c.choices[0].delta.provider_data]
    assert len(carriers) == 1
    assert carriers[0].choices[0].delta.reasoning is None


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("record", STREAMS, ids=_ids(STREAMS))
def test_mistral_stream_split_anywhere(replay: Replay, record: dict[str, Any], seed: int) -> None:
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
def test_mistral_stream_truncated_raises(
    replay: Replay, record: dict[str, Any], cut: str, ending: str
) -> None:
    body = recorded_body(record)
    assert body.rfind(b"data: [DONE]") > len(truncations(body, _finishes)["inside-finish-event"])
    with pytest.raises(llmkit.StreamInterruptedError) as info:
        replay.truncated(record, cut, disconnect=ending == "dropped")
    assert info.value.provider == "mistral"


def test_mistral_stream_cut_after_the_finish_raises(replay: Replay) -> None:
    # The finish chunk (with usage) arrived, [DONE] did not: still interrupted.
    [record] = STREAMS
    body = recorded_body(record)
    head = body[: body.rindex(b"data: [DONE]")]
    with pytest.raises(llmkit.StreamInterruptedError):
        replay.stream(record, pieces=[head])


# --- async parity ------------------------------------------------------------------------

ASYNC_CHATS = CHATS[::6]


@pytest.mark.anyio
@pytest.mark.parametrize("record", ASYNC_CHATS, ids=_ids(ASYNC_CHATS))
async def test_mistral_async_response_parity(replay: Replay, record: dict[str, Any]) -> None:
    response = await replay.acomplete(record)
    assert response == replay.complete(record)


@pytest.mark.anyio
@pytest.mark.parametrize("record", STREAMS, ids=_ids(STREAMS))
async def test_mistral_async_stream_parity(replay: Replay, record: dict[str, Any]) -> None:
    streamed = await replay.astream(record, seed=7)
    sync = replay.stream(record)
    assert streamed.chunks == sync.chunks
    assert streamed.response == sync.response
