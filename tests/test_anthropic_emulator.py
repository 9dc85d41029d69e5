"""The Anthropic wire protocol of the emulator: strict checks, answers, and reading requests back."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from llmkit_contracts.emulator import Emulator, Received, Reply, Turn
from llmkit_contracts.emulators.anthropic import (
    LLMKIT_JSON_INSTRUCTION,
    AnthropicEmulator,
    AnthropicProtocol,
    signature_of,
)

PROTOCOL = AnthropicProtocol()
HEADERS = {"x-api-key": "sk-ant-0000000000", "anthropic-version": "2023-06-01"}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()
JPEG = base64.b64encode(b"\xff\xd8\xff\xe0" + b"\0" * 16).decode()


def _payload(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    body.update(fields)
    return {name: value for name, value in body.items() if value is not None}


def _refusal(payload: dict[str, Any], headers: dict[str, str] | None = None) -> Reply | None:
    return PROTOCOL.check("/v1/messages", HEADERS if headers is None else headers, payload)


CALL = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
RESULT = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18"}
TOOL = {"name": "get_weather", "input_schema": {"type": "object", "properties": {}}}
SIGNED = {"type": "thinking", "thinking": "Hmm.", "signature": signature_of("Hmm.")}
THINKING = {"type": "enabled", "budget_tokens": 1024}


def test_route() -> None:
    assert PROTOCOL.route("POST", "/v1/messages") is None
    missing = PROTOCOL.route("POST", "/v1/chat/completions")
    assert missing is not None
    assert missing.status == 404
    wrong = PROTOCOL.route("GET", "/v1/messages")
    assert wrong is not None
    assert wrong.status == 405


@pytest.mark.parametrize(
    "headers",
    [HEADERS, {"authorization": "Bearer sk-ant-0000000000", "anthropic-version": "2026-10-21"}],
    ids=["x-api-key", "bearer"],
)
def test_a_valid_request_passes(headers: dict[str, str]) -> None:
    assert _refusal(_payload(), headers) is None


def _messages(*messages: dict[str, Any]) -> list[dict[str, Any]]:
    return list(messages)


REFUSED: list[tuple[str, dict[str, str], dict[str, Any], int, str]] = [
    (
        "no-key",
        {"anthropic-version": "2023-06-01"},
        _payload(),
        401,
        "x-api-key header is required",
    ),
    ("no-version", {"x-api-key": "k"}, _payload(), 400, "anthropic-version: header is required"),
    (
        "bad-version",
        {**HEADERS, "anthropic-version": "2024-13-01"},
        _payload(),
        400,
        "not a valid version",
    ),
    (
        "unknown-field",
        HEADERS,
        _payload(frequency_penalty=1),
        400,
        "frequency_penalty: Extra inputs are not permitted",
    ),
    (
        "beta-field",
        HEADERS,
        _payload(mcp_servers=[]),
        400,
        "mcp_servers: Extra inputs are not permitted",
    ),
    ("no-model", HEADERS, _payload(model=None), 400, "model: Field required"),
    ("no-max-tokens", HEADERS, _payload(max_tokens=None), 400, "max_tokens: Field required"),
    (
        "max-tokens-type",
        HEADERS,
        _payload(max_tokens="9"),
        400,
        "max_tokens: Input should be a valid integer",
    ),
    ("no-messages", HEADERS, _payload(messages=None), 400, "messages: Field required"),
    ("empty-messages", HEADERS, _payload(messages=[]), 400, "at least one message"),
    (
        "system-role",
        HEADERS,
        _payload(
            messages=_messages(
                {"role": "system", "content": "x"}, {"role": "user", "content": "Hi"}
            )
        ),
        400,
        'Unexpected role "system". The Messages API accepts a top-level `system` parameter',
    ),
    (
        "tool-role",
        HEADERS,
        _payload(messages=[{"role": "tool", "content": "x"}]),
        400,
        "messages.0.role: Input should be 'user' or 'assistant'",
    ),
    (
        "message-field",
        HEADERS,
        _payload(messages=[{"role": "user", "content": "x", "name": "a"}]),
        400,
        "messages.0.name: Extra inputs",
    ),
    (
        "assistant-first",
        HEADERS,
        _payload(
            messages=_messages(
                {"role": "assistant", "content": "Hi"}, {"role": "user", "content": "Hi"}
            )
        ),
        400,
        'first message must use the "user" role',
    ),
    (
        "empty-content",
        HEADERS,
        _payload(messages=[{"role": "user", "content": ""}]),
        400,
        "all messages must have non-empty content",
    ),
    (
        "empty-text",
        HEADERS,
        _payload(messages=[{"role": "user", "content": [{"type": "text", "text": ""}]}]),
        400,
        "text content blocks must be non-empty",
    ),
    (
        "unanswered-call",
        HEADERS,
        _payload(
            messages=_messages(
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": [CALL]},
                {"role": "user", "content": "what?"},
            ),
            tools=[TOOL],
        ),
        400,
        "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_1",
    ),
    (
        "stray-result",
        HEADERS,
        _payload(messages=_messages({"role": "user", "content": [RESULT]})),
        400,
        "unexpected `tool_use_id` found in `tool_result` blocks: toolu_1",
    ),
    (
        "result-in-assistant",
        HEADERS,
        _payload(
            messages=_messages(
                {"role": "user", "content": "Hi"}, {"role": "assistant", "content": [RESULT]}
            )
        ),
        400,
        "`tool_result` blocks are not allowed in `assistant` messages",
    ),
    (
        "image-type-lie",
        HEADERS,
        _payload(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": JPEG},
                        }
                    ],
                }
            ]
        ),
        400,
        "specified using the image/png media type, but the image appears to be a image/jpeg image",
    ),
    (
        "temperature",
        HEADERS,
        _payload(temperature=1.5),
        400,
        "temperature: Input should be less than or equal to 1",
    ),
    (
        "system-image",
        HEADERS,
        _payload(system=[{"type": "image"}]),
        400,
        "system.0.type: Input should be 'text'",
    ),
    (
        "tool-name",
        HEADERS,
        _payload(tools=[{**TOOL, "name": "get weather"}]),
        400,
        "tools.0.custom.name: String should match pattern",
    ),
    (
        "tool-schema",
        HEADERS,
        _payload(tools=[{"name": "x"}]),
        400,
        "tools.0.custom.input_schema: Field required",
    ),
    (
        "tool-openai-shape",
        HEADERS,
        _payload(tools=[{"type": "function", "function": TOOL}]),
        400,
        "tools.0: Input tag 'function'",
    ),
    ("tool-dupes", HEADERS, _payload(tools=[TOOL, TOOL]), 400, "Tool names must be unique"),
    (
        "choice-tag",
        HEADERS,
        _payload(tools=[TOOL], tool_choice={"type": "required"}),
        400,
        "expected tags: 'auto', 'any', 'tool', 'none'",
    ),
    (
        "choice-no-tools",
        HEADERS,
        _payload(tool_choice={"type": "any"}),
        400,
        "tool_choice may only be specified while providing tools",
    ),
    (
        "choice-unknown",
        HEADERS,
        _payload(tools=[TOOL], tool_choice={"type": "tool", "name": "x"}),
        400,
        "Tool 'x' not found",
    ),
    (
        "budget-small",
        HEADERS,
        _payload(thinking={"type": "enabled", "budget_tokens": 500}),
        400,
        "greater than or equal to 1024",
    ),
    (
        "budget-over",
        HEADERS,
        _payload(thinking=THINKING, max_tokens=1024),
        400,
        "`max_tokens` must be greater than `thinking.budget_tokens`",
    ),
    (
        "thinking-forced-tool",
        HEADERS,
        _payload(thinking=THINKING, max_tokens=2000, tools=[TOOL], tool_choice={"type": "any"}),
        400,
        "Thinking may not be enabled when tool_choice forces tool use.",
    ),
    (
        "thinking-temperature",
        HEADERS,
        _payload(thinking=THINKING, max_tokens=2000, temperature=0.2),
        400,
        "`temperature` may only be set to 1 when thinking is enabled",
    ),
    (
        "thinking-loop",
        HEADERS,
        _payload(
            thinking=THINKING,
            max_tokens=2000,
            tools=[TOOL],
            messages=_messages(
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": [CALL]},
                {"role": "user", "content": [RESULT]},
            ),
        ),
        400,
        "Expected `thinking` or `redacted_thinking`, but found `tool_use`. When `thinking` is enabled, a final `assistant` message must start with a thinking block",
    ),
    (
        "thinking-not-first",
        HEADERS,
        _payload(
            messages=_messages(
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": [{"type": "text", "text": "x"}, SIGNED]},
                {"role": "user", "content": "Hi"},
            )
        ),
        400,
        "If an assistant message contains any thinking blocks, the first block must be thinking",
    ),
    (
        "thinking-last-disabled",
        HEADERS,
        _payload(
            messages=_messages(
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": [SIGNED, {"type": "text", "text": "x"}]},
            )
        ),
        400,
        "When thinking is disabled, an `assistant` message in the final position cannot contain `thinking`",
    ),
    (
        "thinking-forged",
        HEADERS,
        _payload(
            messages=_messages(
                {"role": "user", "content": "Hi"},
                {
                    "role": "assistant",
                    "content": [{**SIGNED, "thinking": "Changed."}, {"type": "text", "text": "x"}],
                },
                {"role": "user", "content": "Hi"},
            )
        ),
        400,
        "Invalid `signature` in `thinking` block",
    ),
    (
        "open-schema",
        HEADERS,
        _payload(
            output_config={
                "format": {"type": "json_schema", "schema": {"type": "object", "properties": {}}}
            }
        ),
        400,
        "output_config.format.schema: For 'object' type, 'additionalProperties' must be explicitly set to false",
    ),
    (
        "nested-open-schema",
        HEADERS,
        _payload(
            output_config={
                "format": {
                    "type": "json_schema",
                    "schema": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {"a": {"type": "object", "additionalProperties": True}},
                    },
                }
            }
        ),
        400,
        "'additionalProperties: true' is not supported",
    ),
    ("effort", HEADERS, _payload(output_config={"effort": "huge"}), 400, "output_config.effort"),
    (
        "task-budget",
        HEADERS,
        _payload(output_config={"task_budget": {}}),
        400,
        "output_config.task_budget: Extra inputs",
    ),
    ("metadata", HEADERS, _payload(metadata={"user": "x"}), 400, "metadata.user: Extra inputs"),
]


@pytest.mark.parametrize(
    ("headers", "payload", "status", "message"),
    [case[1:] for case in REFUSED],
    ids=[case[0] for case in REFUSED],
)
def test_refusals(
    headers: dict[str, str], payload: dict[str, Any], status: int, message: str
) -> None:
    refusal = _refusal(payload, headers)
    assert refusal is not None
    assert refusal.status == status
    assert message in refusal.message
    envelope = json.loads(PROTOCOL.error_body(refusal))
    assert envelope["type"] == "error"
    assert envelope["error"]["type"] == (
        "authentication_error" if status == 401 else "invalid_request_error"
    )


ACCEPTED: list[tuple[str, dict[str, str], dict[str, Any]]] = [
    (
        "consecutive-turns-combined",
        HEADERS,
        _payload(
            tools=[TOOL],
            messages=_messages(
                {"role": "user", "content": "Hi"},
                {"role": "user", "content": "Again"},
                {"role": "assistant", "content": [CALL]},
                {"role": "assistant", "content": [{**CALL, "id": "toolu_2"}]},
                {"role": "user", "content": [RESULT, {**RESULT, "tool_use_id": "toolu_2"}]},
            ),
        ),
    ),
    (
        "thinking-loop-sent-back",
        HEADERS,
        _payload(
            thinking=THINKING,
            max_tokens=2000,
            tools=[TOOL],
            messages=_messages(
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": [SIGNED, CALL]},
                {"role": "user", "content": [RESULT]},
            ),
        ),
    ),
    (
        "recorded-signature",
        HEADERS,
        _payload(
            messages=_messages(
                {"role": "user", "content": "Hi"},
                {
                    "role": "assistant",
                    "content": [
                        {**SIGNED, "signature": "EqQBCkgIARABGAIi"},
                        {"type": "text", "text": "x"},
                    ],
                },
                {"role": "user", "content": "Hi"},
            )
        ),
    ),
    (
        "prefill",
        HEADERS,
        _payload(
            messages=_messages(
                {"role": "user", "content": "Hi"}, {"role": "assistant", "content": ""}
            )
        ),
    ),
    (
        "beta-with-header",
        {**HEADERS, "anthropic-beta": "mcp-client-2025-04-04"},
        _payload(mcp_servers=[]),
    ),
    (
        "server-tool",
        HEADERS,
        _payload(tools=[{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}]),
    ),
    (
        "image",
        HEADERS,
        _payload(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                        },
                        {
                            "type": "image",
                            "source": {"type": "url", "url": "https://x.example/a.png"},
                        },
                    ],
                }
            ]
        ),
    ),
    (
        "adaptive",
        HEADERS,
        _payload(thinking={"type": "adaptive"}, tools=[TOOL], tool_choice={"type": "any"}),
    ),
]


@pytest.mark.parametrize(
    ("headers", "payload"), [c[1:] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED]
)
def test_what_the_api_accepts(headers: dict[str, str], payload: dict[str, Any]) -> None:
    assert _refusal(payload, headers) is None


# --- reading requests back --------------------------------------------------------------


def test_received() -> None:
    payload = _payload(
        system=[
            {"type": "text", "text": "Be brief."},
            {"type": "text", "text": LLMKIT_JSON_INSTRUCTION},
        ],
        messages=_messages(
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Look"},
                    {"type": "image", "source": {"type": "url", "url": "u"}},
                ],
            },
            {"role": "assistant", "content": [SIGNED, {"type": "text", "text": "On it."}, CALL]},
            {"role": "user", "content": [RESULT, {"type": "text", "text": "Go on"}]},
        ),
        tools=[TOOL, {"type": "web_search_20250305", "name": "web_search"}],
        tool_choice={"type": "any"},
        stop_sequences=["END"],
        temperature=0.5,
        stream=True,
    )
    assert PROTOCOL.received("/v1/messages", payload) == Received(
        model="claude-sonnet-4-5",
        system="Be brief.",
        turns=(
            Turn(role="user", text="Look", images=1),
            Turn(
                role="assistant",
                text="On it.",
                calls=(("toolu_1", "get_weather", {"city": "Paris"}),),
            ),
            Turn(role="tool", text="18", tool_call_id="toolu_1"),
            Turn(role="user", text="Go on"),
        ),
        stream=True,
        max_tokens=100,
        stop=("END",),
        tools=("get_weather", "web_search"),
        tool_choice="required",
        response_format="json_object",
        temperature=0.5,
    )


@pytest.mark.parametrize(
    ("choice", "normal"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "none"}, "none"),
        ({"type": "tool", "name": "x"}, "function:x"),
        (None, None),
    ],
)
def test_received_tool_choice(choice: Any, normal: str | None) -> None:
    assert PROTOCOL.received("", _payload(tool_choice=choice)).tool_choice == normal


def test_received_json_schema_and_plain_system() -> None:
    schema = {"type": "object", "additionalProperties": False, "properties": {}}
    received = PROTOCOL.received(
        "",
        _payload(system="Hi", output_config={"format": {"type": "json_schema", "schema": schema}}),
    )
    assert (received.system, received.response_format) == ("Hi", "json_schema")
    assert PROTOCOL.received("", _payload()).system is None
    assert PROTOCOL.received("", None) == Received()


# --- answers -----------------------------------------------------------------------------


def test_body_of_text_thinking_and_calls() -> None:
    reply = Reply.tool_calls([("a", '{"x": 1}'), ("b", "{}")], content="Sure.", prompt_tokens=7)
    body = json.loads(PROTOCOL.body(reply, _payload(), seq=3, model="m"))
    assert body["id"] == "msg_emu_3"
    assert body["content"] == [
        {"type": "text", "text": "Sure."},
        {"type": "tool_use", "id": "call_0", "name": "a", "input": {"x": 1}},
        {"type": "tool_use", "id": "call_1", "name": "b", "input": {}},
    ]
    assert body["stop_reason"] == "tool_use"
    assert body["usage"]["input_tokens"] == 7
    thought = Reply.text("42", reasoning="Six sevens.", finish_reason="length")
    body = json.loads(PROTOCOL.body(thought, _payload(thinking=THINKING), seq=1, model="m"))
    assert body["content"][0] == {
        "type": "thinking",
        "thinking": "Six sevens.",
        "signature": signature_of("Six sevens."),
    }
    assert body["stop_reason"] == "max_tokens"
    # Without thinking asked for, a thinking model shows none.
    assert json.loads(PROTOCOL.body(thought, _payload(), seq=1, model="m"))["content"] == [
        {"type": "text", "text": "42"}
    ]


def _types(events: list[bytes]) -> list[str]:
    found = []
    for event in events:
        head, data = event.decode().split("\n", 1)
        assert head.startswith("event: ")
        assert event.endswith(b"\n\n")
        payload = json.loads(data.removeprefix("data: "))
        assert payload["type"] == head[7:]
        found.append(
            payload["type"]
            + (
                ":" + payload["delta"]["type"]
                if "delta" in payload and "type" in payload["delta"]
                else ""
            )
        )
    return found


def test_events_of_a_thinking_tool_call() -> None:
    reply = Reply.tool_calls([("a", '{"x": 1}')], chunk_size=4)
    events = PROTOCOL.events(reply, _payload(thinking=THINKING), seq=1, model="m")
    assert _types(events) == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta:signature_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta:input_json_delta",
        "content_block_delta:input_json_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert b'"stop_reason":"tool_use"' in events[-2]
    assert json.loads(events[-2].split(b"data: ")[1])["usage"] == {"output_tokens": 5}


def test_error_bodies_and_events() -> None:
    for status, kind in [
        (400, "invalid_request_error"),
        (402, "billing_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (502, "api_error"),
        (529, "overloaded_error"),
        (418, "invalid_request_error"),
    ]:
        envelope = json.loads(PROTOCOL.error_body(Reply.error(status, message="m")))
        assert envelope["error"] == {"type": kind, "message": "m"}
    event = PROTOCOL.error_event(Reply.text("x", message="Overloaded"))
    assert event.startswith(b"event: error\ndata: ")
    assert json.loads(event.split(b"data: ")[1])["error"] == {
        "type": "overloaded_error",
        "message": "Overloaded",
    }


# --- over HTTP ---------------------------------------------------------------------------


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with AnthropicEmulator() as running:
        yield running


def test_over_http(emulator: Emulator) -> None:
    assert emulator.base_url.count("/") == 2  # the host alone, as the SDKs take it
    emulator.enqueue(Reply.text("Hello"))
    with httpx.Client(base_url=emulator.base_url) as client:
        answer = client.post("/v1/messages", json=_payload(), headers=HEADERS)
        assert answer.status_code == 200
        assert answer.json()["content"] == [{"type": "text", "text": "Hello"}]
        refused = client.post("/v1/messages", json=_payload(max_tokens=None), headers=HEADERS)
        assert refused.status_code == 400
        assert refused.json()["error"]["message"] == "max_tokens: Field required"
        streamed = client.post("/v1/messages", json=_payload(stream=True), headers=HEADERS)
        assert streamed.headers["content-type"].startswith("text/event-stream")
        assert streamed.text.endswith('event: message_stop\ndata: {"type":"message_stop"}\n\n')
        echo = client.post(
            "/v1/messages",
            json=_payload(messages=[{"role": "user", "content": "ping"}]),
            headers=HEADERS,
        )
        assert echo.json()["content"][0]["text"] == "Echo: ping"
