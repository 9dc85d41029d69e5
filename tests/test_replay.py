"""The replay harness itself: llmkit_contracts.replay, on hand-made recordings."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from itertools import accumulate
from typing import Any

import pytest

import llmkit
from llmkit.streaming import EventPipeline
from llmkit.types import ChatResponse, StreamChunk
from llmkit_contracts import (
    CUTS,
    OpenAIProtocol,
    RefusedReplayError,
    Replay,
    Streamed,
    outline,
    recorded_body,
    split_anywhere,
    truncations,
)

API_KEY = "sk-replay-test-0000"
MODEL = "gpt-4o-mini"
# Multi-byte characters, so that one-byte pieces cut through UTF-8 sequences.
TEXT = ["Grüße", " aus ", "日本", " 🙂"]


def _event(data: dict[str, Any] | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"


def _chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": MODEL,
        "choices": [choice],
    }


USAGE = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
SSE = "".join(
    [
        _event(_chunk({"role": "assistant", "content": ""})),
        *(_event(_chunk({"content": part})) for part in TEXT),
        _event(_chunk({}, "stop")),
        _event({**_chunk({}), "choices": [], "usage": USAGE}),
        _event("[DONE]"),
    ]
)
COMPLETION = json.dumps(
    {
        "id": "c1",
        "object": "chat.completion",
        "created": 1,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(TEXT)},
                "finish_reason": "stop",
            }
        ],
        "usage": {**USAGE, "completion_tokens_details": {"reasoning_tokens": 2}},
    }
)


def _record(
    body_text: str,
    *,
    stream: bool = False,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A recording in the corpus format (see tests/corpus.py)."""
    content_type = "text/event-stream" if stream else "application/json"
    return {
        "id": "hand-made",
        "kind": "chat_stream" if stream else "chat",
        "request": {
            "method": "POST",
            "host": "api.openai.com",
            "path": "/v1/chat/completions",
            "headers": {"content-type": "application/json"},
            "body": {
                "model": MODEL,
                "messages": [{"role": "user", "content": "Hi"}],
                "stream": stream,
            },
        },
        "response": {
            "status": status,
            "headers": {"content-type": content_type, **(headers or {})},
            "body_text": body_text,
        },
    }


CHAT = _record(COMPLETION)
STREAM = _record(SSE, stream=True)


def _request_of(record: Mapping[str, Any]) -> Mapping[str, Any]:
    # A plain dict in OpenAI's shape: the harness takes its model from it.
    body: dict[str, Any] = record["request"]["body"]
    return dict(body)


def _finishes(event: bytes) -> bool:
    return b'"finish_reason": "' in event or event.startswith(b"data: [DONE]")


@pytest.fixture(scope="module")
def replay() -> Iterator[Replay]:
    with Replay(
        "openai", OpenAIProtocol(), _request_of, finish=_finishes, config={"api_key": API_KEY}
    ) as replay:
        yield replay


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


# --- serving and decoding ------------------------------------------------------------


def test_replay_complete_decodes_the_recorded_response(replay: Replay) -> None:
    response = replay.complete(CHAT)
    assert outline(response) == {
        "model": MODEL,
        "choices": [
            {"index": 0, "content": "Grüße aus 日本 🙂", "tool_calls": [], "finish_reason": "stop"}
        ],
        "usage": {**USAGE, "completion_tokens_details.reasoning_tokens": 2},
    }


def test_replay_stream_collects_what_the_chunks_say(replay: Replay) -> None:
    streamed = replay.stream(STREAM)
    assert isinstance(streamed, Streamed)
    assert "".join(c.choices[0].delta.content or "" for c in streamed.chunks if c.choices) == (
        "".join(TEXT)
    )
    assert outline(streamed.response)["choices"][0]["content"] == "".join(TEXT)
    assert outline(streamed.response)["usage"] == USAGE


def test_replay_one_byte_pieces_reach_the_decoder_one_by_one(
    replay: Replay, reads: list[bytes]
) -> None:
    whole = replay.stream(STREAM)
    assert reads == [recorded_body(STREAM)]  # one piece, one read
    reads.clear()
    body = recorded_body(STREAM)
    one_byte = [body[i : i + 1] for i in range(len(body))]
    split = replay.stream(STREAM, pieces=one_byte)
    # Each HTTP chunk is one read: the boundaries are not merged on the way,
    # so the codec really sees UTF-8 characters and JSON cut in two.
    assert reads == one_byte
    assert split == whole


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_replay_seeded_pieces_survive(replay: Replay, reads: list[bytes], seed: int) -> None:
    body = recorded_body(STREAM)
    pieces = split_anywhere(body, seed)
    split = replay.stream(STREAM, seed=seed)
    ends = set(accumulate(len(piece) for piece in pieces))
    assert ends <= set(accumulate(len(read) for read in reads))
    assert b"".join(reads) == body
    assert split == replay.stream(STREAM)


def test_split_anywhere_is_seeded_and_bounded() -> None:
    body = SSE.encode()
    pieces = split_anywhere(body, 5, longest=9)
    assert b"".join(pieces) == body
    assert all(1 <= len(piece) <= 9 for piece in pieces)
    assert pieces == split_anywhere(body, 5, longest=9)
    assert pieces != split_anywhere(body, 6, longest=9)
    assert split_anywhere(b"", 0) == []
    with pytest.raises(ValueError, match="longest"):
        split_anywhere(body, 0, longest=0)


def test_replay_stream_takes_pieces_or_seed_not_both(replay: Replay) -> None:
    with pytest.raises(ValueError, match="not both"):
        replay.stream(STREAM, pieces=[b""], seed=1)


# --- truncations -----------------------------------------------------------------------


def test_truncations_cut_before_and_inside_the_finish_event() -> None:
    body = SSE.encode()
    events = [e + b"\n\n" for e in body.split(b"\n\n")[:-1]]
    finish = 1 + len(TEXT)  # role chunk, the text chunks, then the finish chunk
    assert b'"stop"' in events[finish]
    head = b"".join(events[:finish])
    cuts = truncations(body, _finishes)
    assert list(cuts) == list(CUTS)
    assert cuts == {
        "empty-body": b"",
        "after-first-event": events[0],
        "before-finish-event": head,
        "before-finish-unterminated": head[:-1],
        "inside-finish-event": head + events[finish][: len(events[finish]) // 2],
    }


def test_truncations_read_crlf_events() -> None:
    body = SSE.replace("\n", "\r\n").encode()
    cuts = truncations(body, _finishes)
    assert cuts["before-finish-event"].endswith(b"}\r\n\r\n")
    assert cuts["before-finish-unterminated"] == cuts["before-finish-event"][:-2]
    assert cuts["after-first-event"].count(b"data:") == 1


def test_truncations_refuse_bodies_they_cannot_cut() -> None:
    with pytest.raises(ValueError, match="finishes the answer"):
        truncations(b"data: {}\n\n", _finishes)
    with pytest.raises(ValueError, match="nothing to cut"):
        truncations(b"data: [DONE]\n\n", _finishes)


@pytest.mark.parametrize("disconnect", [False, True], ids=["ended", "dropped"])
@pytest.mark.parametrize("cut", CUTS)
def test_replay_truncated_raises_stream_interrupted(
    replay: Replay, cut: str, disconnect: bool
) -> None:
    with pytest.raises(llmkit.StreamInterruptedError) as info:
        replay.truncated(STREAM, cut, disconnect=disconnect)
    assert info.value.provider == "openai"
    assert info.value.model == MODEL


@pytest.mark.anyio
async def test_replay_async_truncated_raises_stream_interrupted(replay: Replay) -> None:
    cut = truncations(recorded_body(STREAM), _finishes)["before-finish-unterminated"]
    with pytest.raises(llmkit.StreamInterruptedError):
        await replay.astream(STREAM, pieces=[cut])


def test_replay_truncated_needs_a_finish_predicate_and_a_known_cut(replay: Replay) -> None:
    with pytest.raises(ValueError, match="unknown cut"):
        replay.truncated(STREAM, "half")
    bare = Replay("openai", OpenAIProtocol(), _request_of)
    with pytest.raises(ValueError, match="finish="):
        bare.truncated(STREAM, "empty-body")


# --- errors ----------------------------------------------------------------------------


def _error_body(message: str, type_: str, code: str | None) -> str:
    return json.dumps({"error": {"message": message, "type": type_, "param": None, "code": code}})


@pytest.mark.parametrize(
    ("status", "expected", "code"),
    [
        (400, llmkit.InvalidRequestError, "invalid_value"),
        (401, llmkit.AuthenticationError, "invalid_api_key"),
        (403, llmkit.PermissionDeniedError, None),
        (404, llmkit.NotFoundError, "model_not_found"),
        (429, llmkit.RateLimitError, "rate_limit_exceeded"),
        (500, llmkit.ServiceUnavailableError, None),
        (503, llmkit.ServiceUnavailableError, None),
    ],
    ids=lambda value: str(value) if isinstance(value, int) else None,
)
def test_replay_raw_error_status_maps_to_its_error(
    replay: Replay, status: int, expected: type[llmkit.LLMError], code: str | None
) -> None:
    record = _record(
        _error_body(f"recorded {status}", "some_error", code),
        status=status,
        headers={"retry-after": "7"} if status == 429 else None,
    )
    with pytest.raises(llmkit.LLMError) as info:
        replay.complete(record)
    error = info.value
    assert type(error) is expected
    assert error.status == status
    assert error.provider == "openai"
    assert "recorded" in error.message
    assert error.code == (code or "some_error")
    if status == 429:
        assert error.retry_after == 7.0  # a recorded header reaches the client
    assert len(replay.sent) == 1  # the replay sends with retries=0


def test_replay_leaves_out_recorded_framing_headers(replay: Replay) -> None:
    # body_text is the decoded body: a recorded content-encoding or length
    # must not reach the client, or it would decode (or count) it again.
    record = _record(
        COMPLETION,
        headers={"content-encoding": "gzip", "content-length": "3", "x-recorded": "yes"},
    )
    assert outline(replay.complete(record)) == outline(replay.complete(CHAT))


# --- the recorder ---------------------------------------------------------------------


def test_replay_sent_is_what_the_client_sent(replay: Replay) -> None:
    replay.complete(CHAT)
    [sent] = replay.sent
    assert (sent.method, sent.path) == ("POST", "/v1/chat/completions")
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent.json == {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}
    assert json.loads(sent.body) == sent.json

    replay.stream(STREAM, request={**_request_of(STREAM), "temperature": 0.5})
    [sent] = replay.sent  # the last replay only
    assert sent.json["stream"] is True
    assert sent.json["temperature"] == 0.5


def test_replay_strict_emulator_refusal_is_not_taken_for_the_recording(replay: Replay) -> None:
    # OpenAI refuses an unknown argument; so does the strict emulator, and the
    # harness says so instead of passing its 400 off as the recorded answer.
    request = {**_request_of(CHAT), "extra_body": {"not_an_argument": 1}}
    with pytest.raises(RefusedReplayError) as info:
        replay.complete(CHAT, request=request)
    assert info.value.refusal.status == 400
    assert "not_an_argument" in str(info.value)
    assert isinstance(info.value.__cause__, llmkit.InvalidRequestError)
    assert info.value.request.json["not_an_argument"] == 1

    with Replay("openai", OpenAIProtocol(), _request_of, strict=False) as lenient:
        assert isinstance(lenient.complete(CHAT, request=request), ChatResponse)


# --- async parity ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_replay_async_parity(replay: Replay) -> None:
    response = await replay.acomplete(CHAT)
    assert replay.sent[0].json["model"] == MODEL
    assert response == replay.complete(CHAT)
    streamed = await replay.astream(STREAM, seed=3)
    assert streamed == replay.stream(STREAM, seed=3)
    assert streamed == replay.stream(STREAM)


@pytest.mark.anyio
async def test_replay_async_error_maps_like_sync(replay: Replay) -> None:
    record = _record(
        _error_body("no such model", "invalid_request_error", "model_not_found"), status=404
    )
    with pytest.raises(llmkit.NotFoundError) as async_info:
        await replay.acomplete(record)
    with pytest.raises(llmkit.NotFoundError) as sync_info:
        replay.complete(record)
    assert str(async_info.value) == str(sync_info.value)


# --- lifetime and configuration ---------------------------------------------------------


def test_replay_serves_on_loopback_and_stops() -> None:
    replay = Replay("openai", OpenAIProtocol(), _request_of)
    with pytest.raises(RuntimeError, match="not running"):
        replay.complete(CHAT)
    with replay:
        assert replay.emulator.base_url.startswith("http://127.0.0.1:")
        assert replay.emulator.base_url.endswith(OpenAIProtocol.base_path)
        replay.complete(CHAT)
    with pytest.raises(RuntimeError, match="not running"):
        _ = replay.emulator.port
    replay.stop()  # idempotent


@pytest.mark.parametrize("name", ["api_base", "transport", "http_client", "async_http_client"])
def test_replay_owns_endpoint_and_transport(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        Replay("openai", OpenAIProtocol(), _request_of, config={name: None})
