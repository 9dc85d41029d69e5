"""The emulator core's protocol seam and the OpenAI protocol's strict request checks."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from llmkit_contracts import (
    Emulator,
    OpenAIEmulator,
    OpenAIProtocol,
    Received,
    Reply,
    Turn,
    WireProtocol,
)

AUTH = {"authorization": "Bearer sk-emulator"}
HI = [{"role": "user", "content": "Hi"}]


@pytest.fixture
def client(emulator: OpenAIEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator.base_url, timeout=5.0, headers=AUTH) as http_client:
        yield http_client


def _post(client: httpx.Client, **payload: Any) -> httpx.Response:
    return client.post("/chat/completions", json={"model": "gpt-4o-mini", **payload})


def _refused(response: httpx.Response, status: int = 400) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return str(error["message"])


# --- strict checks: what OpenAI refuses, the emulator refuses -------------------------


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"messages": HI, "temperatur": 1}, "Unrecognized request argument supplied: temperatur"),
        ({"messages": []}, "empty array"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "Invalid value: 'robot'"),
        (
            {"messages": [{"role": "user", "content": "x", "reasoning": "y"}]},
            "('reasoning' was unexpected) - 'messages.0'",
        ),
        ({"messages": [{"role": "user"}]}, "Missing required parameter: 'messages[0].content'"),
        (
            {"messages": [*HI, {"role": "tool", "content": "18"}]},
            "Missing parameter 'tool_call_id'",
        ),
        (
            {"messages": [*HI, {"role": "tool", "tool_call_id": "call_9", "content": "18"}]},
            "must be a response to a preceeding message with 'tool_calls'",
        ),
        (
            {
                "messages": [
                    *HI,
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "f", "arguments": "{}"},
                            }
                        ],
                    },
                    {"role": "user", "content": "and?"},
                ]
            },
            "did not have response messages: call_1",
        ),
        ({"messages": HI, "stream_options": {"include_usage": True}}, "only allowed when 'stream'"),
        ({"messages": HI, "tool_choice": "auto"}, "only allowed when 'tools' are specified"),
        (
            {
                "messages": HI,
                "tools": [{"type": "function", "function": {"name": "bad name"}}],
            },
            "does not match pattern",
        ),
        ({"messages": HI, "temperature": 3}, "Expected a value between 0 and 2"),
        ({"messages": HI, "max_tokens": 0}, "Expected a value >= 1"),
        ({"messages": HI, "response_format": {"type": "yaml"}}, "response_format.type"),
        (
            {"messages": HI, "response_format": {"type": "json_schema", "json_schema": {}}},
            "json_schema.name",
        ),
        (
            {
                "messages": [
                    {
                        "role": "system",
                        "content": [{"type": "image_url", "image_url": {"url": "x"}}],
                    },
                    *HI,
                ]
            },
            "Content blocks are expected to be either text or image_url type",
        ),
    ],
)
def test_openai_protocol_refuses_what_openai_refuses(
    client: httpx.Client, emulator: OpenAIEmulator, payload: dict[str, Any], message: str
) -> None:
    emulator.enqueue(Reply.text("never sent"))
    assert message in _refused(_post(client, **payload))
    # A refusal does not use up the queued reply.
    assert _post(client, messages=HI).json()["choices"][0]["message"]["content"] == "never sent"


def test_openai_protocol_refuses_max_tokens_for_reasoning_models(client: httpx.Client) -> None:
    response = client.post(
        "/chat/completions", json={"model": "o3-mini", "messages": HI, "max_tokens": 5}
    )
    assert "Use 'max_completion_tokens' instead" in _refused(response)
    response = client.post(
        "/chat/completions", json={"model": "o3-mini", "messages": HI, "max_completion_tokens": 5}
    )
    assert response.status_code == 200


def test_openai_protocol_wants_a_key(emulator: OpenAIEmulator) -> None:
    with httpx.Client(base_url=emulator.base_url) as anonymous:
        response = anonymous.post("/chat/completions", json={"model": "m", "messages": HI})
    assert "didn't provide an API key" in _refused(response, 401)
    with httpx.Client(base_url=emulator.base_url, headers={"authorization": "Basic abc"}) as empty:
        assert (
            empty.post("/chat/completions", json={"model": "m", "messages": HI}).status_code == 401
        )


def test_lenient_emulator_skips_the_checks() -> None:
    with OpenAIEmulator(strict=False) as lenient, httpx.Client(base_url=lenient.base_url) as raw:
        response = raw.post("/chat/completions", json={"messages": [], "whatever": 1})
        assert response.status_code == 200
        # Bodies that are no JSON object are refused even so: nothing could answer them.
        assert raw.post("/chat/completions", content=b"[1]").status_code == 400


def test_a_valid_tool_round_trip_is_accepted(client: httpx.Client) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages = [
        *HI,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "done"},
    ]
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    response = _post(client, messages=messages, tools=tools, tool_choice="auto")
    assert response.status_code == 200, response.text


# --- received: a request read back into neutral form ----------------------------------


def test_openai_protocol_reads_a_request_back() -> None:
    payload = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": "Use metric."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is "},
                    {"type": "text", "text": "this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "look", "arguments": '{"zoom": 2}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "a cat"},
        ],
        "stream": True,
        "max_completion_tokens": 50,
        "stop": "END",
        "tools": [{"type": "function", "function": {"name": "look"}}],
        "tool_choice": {"type": "function", "function": {"name": "look"}},
        "response_format": {"type": "json_object"},
        "temperature": 0.5,
    }
    assert OpenAIProtocol().received("/v1/chat/completions", payload) == Received(
        model="gpt-4o-mini",
        system="Be brief.\nUse metric.",
        turns=(
            Turn(role="user", text="What is this?", images=1),
            Turn(role="assistant", calls=(("c1", "look", {"zoom": 2}),)),
            Turn(role="tool", text="a cat", tool_call_id="c1"),
        ),
        stream=True,
        max_tokens=50,
        stop=("END",),
        tools=("look",),
        tool_choice="function:look",
        response_format="json_object",
        temperature=0.5,
    )
    assert OpenAIProtocol().received("", None) == Received()
    assert OpenAIProtocol().prompt(payload) == "What is this?"


# --- the core: replies in any protocol ----------------------------------------------------


def test_reply_error_event_ends_the_stream(client: httpx.Client, emulator: OpenAIEmulator) -> None:
    emulator.enqueue(Reply.text("abcdefgh", chunk_size=2, error_after=2, message="Overloaded"))
    response = _post(client, messages=HI, stream=True)
    events = [e for e in response.text.split("\n\n") if e]
    assert len(events) == 3
    assert json.loads(events[-1].removeprefix("data: "))["error"]["message"] == "Overloaded"


def test_reply_reasoning_is_sent_in_body_and_stream(
    client: httpx.Client, emulator: OpenAIEmulator
) -> None:
    emulator.enqueue(Reply.text("42", reasoning="think"), Reply.text("42", reasoning="think"))
    message = _post(client, messages=HI).json()["choices"][0]["message"]
    assert message["reasoning"] == "think"
    streamed = _post(client, messages=HI, stream=True).text
    assert '"reasoning":"thin"' in streamed


def test_reply_raw_sends_pieces_as_chunks(emulator: OpenAIEmulator) -> None:
    pieces = [b"data: {", b'"a": 1}\n', b"\n"]
    emulator.enqueue(Reply.raw(200, pieces, headers={"content-type": "text/event-stream"}))
    with (
        httpx.Client(base_url=emulator.base_url, headers=AUTH) as http,
        http.stream("POST", "/chat/completions", json={"model": "m", "messages": HI}) as response,
    ):
        assert response.headers["content-type"] == "text/event-stream"
        assert b"".join(response.iter_raw()) == b"".join(pieces)


def test_reply_raw_can_stop_midway(emulator: OpenAIEmulator, client: httpx.Client) -> None:
    emulator.enqueue(Reply.raw(200, [b"one", b"two"], disconnect_after=1))
    with pytest.raises(httpx.RemoteProtocolError):
        _post(client, messages=HI)


def test_reply_checks_its_fields() -> None:
    with pytest.raises(ValueError, match="finish_reason must be one of"):
        Reply.text("x", finish_reason="end_turn")
    with pytest.raises(ValueError, match="error_after must not be negative"):
        Reply.text("x", error_after=-1)
    with pytest.raises(ValueError, match="raw pieces must be bytes"):
        Reply(kind="raw", pieces=("text",))  # type: ignore[arg-type]
    assert Reply.text("x").with_(error_after=3).error_after == 3


def test_connections_are_numbered_and_tracked(emulator: OpenAIEmulator) -> None:
    with httpx.Client(base_url=emulator.base_url, headers=AUTH) as http:
        http.post("/chat/completions", json={"model": "m", "messages": HI})
        http.post("/chat/completions", json={"model": "m", "messages": HI})
        first, second = emulator.requests
        assert first.connection == second.connection >= 1  # kept alive
        assert first.connection in emulator.open_connections()
    deadline = time.monotonic() + 5
    while first.connection in emulator.open_connections() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert first.connection not in emulator.open_connections()
    emulator.reset()
    assert emulator.requests == []


def test_emulator_needs_a_protocol_and_a_running_server() -> None:
    with pytest.raises(TypeError, match="expected a WireProtocol"):
        Emulator(object())  # type: ignore[arg-type]
    emulator = Emulator(OpenAIProtocol())
    with pytest.raises(RuntimeError, match="not running"):
        emulator.open_connections()


def test_the_base_protocol_names_what_to_write() -> None:
    protocol = WireProtocol()
    with pytest.raises(NotImplementedError):
        protocol.route("POST", "/")
    with pytest.raises(NotImplementedError):
        protocol.received("/", {})
