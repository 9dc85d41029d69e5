"""Unit tests of the Anthropic codec: what the recorded corpus does not reach, edge by edge."""

from __future__ import annotations

import base64
import json
from typing import Any, cast

import msgspec
import pytest

import llmkit
import llmkit_providers.anthropic as anthropic_codec
from llmkit import core
from llmkit.provider import (
    Capabilities,
    ChatResponse,
    HttpCall,
    HttpResponse,
    SSEEvent,
    StreamChunk,
    StreamState,
    accumulate,
    build_call,
    capabilities,
    decode_error,
    decode_event,
    decode_response,
    prepare,
)
from llmkit.types import ChatRequest, Message
from llmkit_contracts.emulators.anthropic import LLMKIT_JSON_INSTRUCTION
from llmkit_providers.anthropic import (
    DEFAULT_MAX_TOKENS,
    JSON_OBJECT_INSTRUCTION,
    Anthropic,
    AnthropicOptions,
)

KEY = Anthropic()
API_KEY = "sk-ant-unit-0000000000"
MODEL = "claude-sonnet-4-5"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 8).decode()
HI = [{"role": "user", "content": "Hi"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def _call(
    request: dict[str, Any], options: dict[str, Any] | None = None, **config: Any
) -> HttpCall:
    settings: dict[str, Any] = {"api_key": API_KEY, "api_base": "http://127.0.0.1:9", **config}
    if options is not None:
        settings["options"] = options
    stream = bool(request.pop("stream", False))
    return build_call(*prepare("anthropic", MODEL, request, settings, stream))


def _body(request: dict[str, Any], options: dict[str, Any] | None = None) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(_call(request, options).body))


def _refused(request: dict[str, Any], match: str, options: dict[str, Any] | None = None) -> None:
    with pytest.raises(llmkit.InvalidRequestError, match=match) as info:
        _call(request, options)
    assert info.value.provider == "anthropic"


# --- the key --------------------------------------------------------------------------


def test_key_data() -> None:
    assert KEY.name == "anthropic"
    assert KEY.default_base_url == "https://api.anthropic.com"
    assert KEY.api_key_env == "ANTHROPIC_API_KEY"
    assert (KEY.auth_header, KEY.auth_prefix) == ("x-api-key", "")
    assert "request-id" in KEY.request_id_headers
    assert KEY.options_type is AnthropicOptions


def test_headers_url_and_default_max_tokens() -> None:
    call = _call({"messages": HI})
    assert call.url == "http://127.0.0.1:9/v1/messages"
    assert call.method == "POST"
    assert call.headers["x-api-key"] == API_KEY
    assert call.headers["anthropic-version"] == "2023-06-01"
    assert call.headers["content-type"] == "application/json"
    assert "authorization" not in {name.lower() for name in call.headers}
    assert json.loads(call.body) == {
        "model": MODEL,
        "max_tokens": DEFAULT_MAX_TOKENS,
        "messages": [{"role": "user", "content": "Hi"}],
    }


def test_base_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # ANTHROPIC_BASE_URL is the host alone, as the official SDKs read it.
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "https://proxy.example/anthropic/")
    key, request, config = prepare(
        "anthropic", MODEL, {"messages": HI}, {"api_key": API_KEY}, False
    )
    assert build_call(key, request, config).url == "https://proxy.example/anthropic/v1/messages"


def test_betas_and_headers() -> None:
    call = _call(
        {"messages": HI, "extra_headers": {"x-trace": "1"}},
        {"betas": ["a-2025-01-01", "b-2025-02-02"]},
        headers={"anthropic-version": "2023-01-01"},
    )
    assert call.headers["anthropic-beta"] == "a-2025-01-01,b-2025-02-02"
    assert call.headers["anthropic-version"] == "2023-01-01"  # config headers win
    assert call.headers["x-trace"] == "1"


def test_options_are_checked() -> None:
    with pytest.raises(llmkit.InvalidRequestError, match="thinking_budget"):
        _call({"messages": HI}, {"thinking_budget": 100})
    with pytest.raises(llmkit.InvalidRequestError, match="its options are"):
        _call({"messages": HI}, {"thinking": 100})
    _refused({"messages": HI}, "not both", {"thinking_budget": 2048, "adaptive_thinking": True})


# --- messages -------------------------------------------------------------------------


def test_system_and_developer_messages_become_the_system_prompt() -> None:
    body = _body({"messages": [{"role": "system", "content": "Be brief."}, *HI]})
    assert body["system"] == "Be brief."
    body = _body(
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                *HI,
                {"role": "assistant", "content": "Hello"},
                {"role": "developer", "content": [{"type": "text", "text": "Be kind."}]},
                {"role": "user", "content": "Again"},
            ]
        }
    )
    assert body["system"] == [
        {"type": "text", "text": "Be brief."},
        {"type": "text", "text": "Be kind."},
    ]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]


def test_cache_control_rides_in_provider_data() -> None:
    cache = {"type": "ephemeral", "ttl": "5m"}
    body = _body(
        {
            "messages": [
                {
                    "role": "system",
                    "content": "Long prompt",
                    "provider_data": {"anthropic": {"cache_control": cache}},
                },
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                    "provider_data": {"anthropic": {"cache_control": cache}, "other": {"x": 1}},
                },
            ]
        }
    )
    assert body["system"] == [{"type": "text", "text": "Long prompt", "cache_control": cache}]
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "a"},
        {"type": "text", "text": "b", "cache_control": cache},
    ]


def test_system_takes_text_only() -> None:
    image = {"type": "image_url", "image_url": {"url": "https://x.example/a.png"}}
    _refused({"messages": [{"role": "system", "content": [image]}, *HI]}, "only text")


def test_images() -> None:
    content = [
        {"type": "text", "text": "Look"},
        {
            "type": "image_url",
            "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "low"},
        },
        {"type": "image_url", "image_url": {"url": "https://x.example/a.jpg"}},
    ]
    body = _body({"messages": [{"role": "user", "content": content}]})
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "Look"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://x.example/a.jpg"}},
    ]


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("data:image/bmp;base64,AAAA", "JPEG, PNG, GIF and WebP"),
        ("data:image/png,rawbytes", "not base64"),
        ("ftp://x.example/a.png", "http"),
    ],
    ids=["bmp", "not-base64", "ftp"],
)
def test_images_anthropic_cannot_take(url: str, match: str) -> None:
    part = {"type": "image_url", "image_url": {"url": url}}
    _refused({"messages": [{"role": "user", "content": [part]}]}, match)


def test_documents() -> None:
    pdf = base64.b64encode(b"%PDF-1.4").decode()
    text = base64.b64encode("Grüße".encode()).decode()
    content = [
        {
            "type": "file",
            "file": {"file_data": f"data:application/pdf;base64,{pdf}", "filename": "a.pdf"},
        },
        {"type": "file", "file": {"file_data": f"data:text/plain;base64,{text}"}},
    ]
    body = _body({"messages": [{"role": "user", "content": content}]})
    assert body["messages"][0]["content"] == [
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": pdf},
            "title": "a.pdf",
        },
        {
            "type": "document",
            "source": {"type": "text", "media_type": "text/plain", "data": "Grüße"},
        },
    ]


@pytest.mark.parametrize(
    ("part", "match"),
    [
        ({"type": "file", "file": {"file_id": "file-1"}}, "file_id"),
        (
            {"type": "file", "file": {"file_data": "data:text/csv;base64,YQ=="}},
            "PDF and plain text",
        ),
        ({"type": "file", "file": {"file_data": "data:text/plain;base64,//79"}}, "UTF-8"),
        ({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}, "input_audio"),
    ],
    ids=["file-id", "csv", "not-utf8", "audio"],
)
def test_parts_anthropic_cannot_take(part: dict[str, Any], match: str) -> None:
    _refused({"messages": [{"role": "user", "content": [part]}]}, match)


def _history() -> list[dict[str, Any]]:
    calls = [
        {
            "id": "toolu_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        },
        {"id": "toolu_2", "type": "function", "function": {"name": "get_weather", "arguments": ""}},
    ]
    return [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": "Let me look.", "tool_calls": calls},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18 degrees"},
        {
            "role": "tool",
            "tool_call_id": "toolu_2",
            "content": [{"type": "text", "text": "no city"}],
            "provider_data": {"anthropic": {"is_error": True}},
        },
        {"role": "user", "content": "Thanks. And tomorrow?"},
    ]


def test_tool_history_both_ways() -> None:
    # Tool messages in a row become one user turn of results; the user
    # message after them joins it.
    body = _body({"messages": _history(), "tools": [WEATHER]})
    assert body["messages"] == [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me look."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18 degrees"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "content": [{"type": "text", "text": "no city"}],
                    "is_error": True,
                },
                {"type": "text", "text": "Thanks. And tomorrow?"},
            ],
        },
    ]


def test_tool_arguments_must_be_an_object() -> None:
    history = _history()
    history[1]["tool_calls"][0]["function"]["arguments"] = "[1, 2]"
    _refused({"messages": history, "tools": [WEATHER]}, r"messages\[1\].tool_calls\[0\]")


def test_an_empty_tool_result_leaves_its_content_out() -> None:
    history = _history()[:4]
    history[2]["content"] = ""
    body = _body({"messages": history, "tools": [WEATHER]})
    assert body["messages"][2]["content"][0] == {"type": "tool_result", "tool_use_id": "toolu_1"}


def test_tools_and_tool_choice() -> None:
    no_params = {"type": "function", "function": {"name": "now", "strict": True}}
    body = _body({"messages": HI, "tools": [WEATHER, no_params]})
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "The weather.",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
        {"name": "now", "input_schema": {"type": "object", "properties": {}}, "strict": True},
    ]
    assert "tool_choice" not in body


@pytest.mark.parametrize(
    ("choice", "parallel", "wire"),
    [
        ("auto", None, {"type": "auto"}),
        ("none", None, {"type": "none"}),
        ("required", None, {"type": "any"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            None,
            {"type": "tool", "name": "get_weather"},
        ),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        ("none", False, {"type": "none"}),
    ],
    ids=[
        "auto",
        "none",
        "required",
        "named",
        "no-parallel",
        "required-no-parallel",
        "none-no-parallel",
    ],
)
def test_tool_choice(choice: Any, parallel: bool | None, wire: dict[str, Any]) -> None:
    request: dict[str, Any] = {"messages": HI, "tools": [WEATHER]}
    if choice is not None:
        request["tool_choice"] = choice
    if parallel is not None:
        request["parallel_tool_calls"] = parallel
    assert _body(request)["tool_choice"] == wire


def test_tools_anthropic_cannot_take() -> None:
    _refused(
        {"messages": HI, "tools": [{"type": "web_search", "function": {"name": "x"}}]}, "extra_body"
    )
    bad = {"type": "function", "function": {"name": "x", "parameters": {"type": "array"}}}
    _refused({"messages": HI, "tools": [bad]}, "type 'object'")


def test_sampling_and_other_fields() -> None:
    body = _body(
        {
            "messages": HI,
            "stop": "END",
            "temperature": 0.5,
            "top_p": 0.9,
            "user": "u-1",
            "max_completion_tokens": 77,
            "extra_body": {"top_k": 5, "service_tier": "auto"},
            "stream": True,
        }
    )
    assert body["stop_sequences"] == ["END"]
    assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.5, 0.9, 77)
    assert body["metadata"] == {"user_id": "u-1"}
    assert (body["top_k"], body["service_tier"], body["stream"]) == (5, "auto", True)
    assert _body({"messages": HI, "stop": ["a", "b"]})["stop_sequences"] == ["a", "b"]


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [("temperature", 1.5, "between 0 and 1"), ("n", 2, "one answer"), ("seed", 1, "no seed")],
)
def test_fields_anthropic_cannot_take(field: str, value: Any, match: str) -> None:
    _refused({"messages": HI, field: value}, match)


# --- JSON output ------------------------------------------------------------------------


def test_json_object_asks_in_the_system_prompt() -> None:
    assert JSON_OBJECT_INSTRUCTION == LLMKIT_JSON_INSTRUCTION  # what the emulator reads back
    body = _body({"messages": HI, "response_format": {"type": "json_object"}})
    assert body["system"] == JSON_OBJECT_INSTRUCTION
    body = _body(
        {
            "messages": [{"role": "system", "content": "Be brief."}, *HI],
            "response_format": {"type": "json_object"},
        }
    )
    assert body["system"] == [
        {"type": "text", "text": "Be brief."},
        {"type": "text", "text": JSON_OBJECT_INSTRUCTION},
    ]
    assert "output_config" not in body


def test_json_schema_closes_every_object() -> None:
    schema = {
        "type": "object",
        "properties": {
            "pet": {"anyOf": [{"$ref": "#/$defs/cat"}, {"type": "null"}]},
            "tags": {
                "type": "array",
                "items": {"type": "object", "properties": {"k": {"type": "string"}}},
            },
        },
        "$defs": {"cat": {"type": "object", "properties": {"name": {"type": "string"}}}},
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    body = _body({"messages": HI, "response_format": fmt}, {"effort": "low"})
    sent = body["output_config"]["format"]["schema"]
    assert body["output_config"]["effort"] == "low"
    assert sent["additionalProperties"] is False
    assert sent["$defs"]["cat"]["additionalProperties"] is False
    assert sent["properties"]["tags"]["items"]["additionalProperties"] is False
    assert "additionalProperties" not in schema  # the caller's schema is left alone
    open_schema = {
        "type": "object",
        "properties": {"a": {"type": "object", "additionalProperties": True}},
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": open_schema}}
    _refused(
        {"messages": HI, "response_format": fmt}, r"schema.properties.a allows additionalProperties"
    )
    _refused(
        {"messages": HI, "response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
        "no schema",
    )


# --- thinking ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_extra", "options", "max_tokens", "thinking"),
    [
        ({}, {"thinking_budget": 2048}, 2048 + 4096, {"type": "enabled", "budget_tokens": 2048}),
        (
            {},
            {"thinking_budget": 2048, "max_tokens": 1000},
            3048,
            {"type": "enabled", "budget_tokens": 2048},
        ),
        (
            {"max_tokens": 3000},
            {"thinking_budget": 4000},
            3000,
            {"type": "enabled", "budget_tokens": 2999},
        ),
        ({"max_tokens": 1024}, {"thinking_budget": 1024}, 1024, None),
        ({"tool_choice": "required"}, {"thinking_budget": 1024}, 4096, None),
        (
            {"tool_choice": "auto"},
            {"thinking_budget": 1024},
            5120,
            {"type": "enabled", "budget_tokens": 1024},
        ),
        ({"tool_choice": "required"}, {"adaptive_thinking": True}, 4096, {"type": "adaptive"}),
        ({}, {}, 4096, None),
    ],
    ids=[
        "default",
        "own-default",
        "capped",
        "no-room",
        "forced-tool",
        "auto-tool",
        "adaptive",
        "off",
    ],
)
def test_thinking_budget(
    request_extra: dict[str, Any],
    options: dict[str, Any],
    max_tokens: int,
    thinking: dict[str, Any] | None,
) -> None:
    body = _body({"messages": HI, "tools": [WEATHER], **request_extra}, options)
    assert body["max_tokens"] == max_tokens
    assert body.get("thinking") == thinking


THOUGHT = {"type": "thinking", "thinking": "Hmm.", "signature": "sig-1"}
REDACTED = {"type": "redacted_thinking", "data": "b64=="}
SEARCH = {
    "type": "server_tool_use",
    "id": "srvtoolu_1",
    "name": "web_search",
    "input": {"query": "x"},
}
FOUND = {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []}


def _assistant(
    layout: list[Any], content: str | None, calls: list[Any] | None = None
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": content,
        "provider_data": {"anthropic": {"content": layout}},
    }
    if calls:
        message["tool_calls"] = calls
    return message


def _sent_assistant(message: dict[str, Any]) -> Any:
    follow = {"role": "user", "content": "ok"}
    if message.get("tool_calls"):
        follow = {"role": "tool", "tool_call_id": message["tool_calls"][0]["id"], "content": "ok"}
    body = _body(
        {"messages": [*HI, message, follow], "tools": [WEATHER]}, {"thinking_budget": 1024}
    )
    return body["messages"][1]["content"]


CALL = {"id": "toolu_9", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
TOOL_USE = {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {}}


@pytest.mark.parametrize(
    ("layout", "content", "calls", "sent"),
    [
        ([THOUGHT, {"type": "text"}], "Hi!", None, [THOUGHT, {"type": "text", "text": "Hi!"}]),
        (
            [REDACTED, THOUGHT, {"type": "tool_use", "id": "toolu_9"}],
            None,
            [CALL],
            [REDACTED, THOUGHT, TOOL_USE],
        ),
        (
            [{"type": "text"}, SEARCH, FOUND, {"type": "text"}],
            "Searching.Found it.",
            None,
            [{"type": "text", "text": "Searching.Found it."}, SEARCH, FOUND],
        ),
        # Edited after the answer: what the layout does not place follows it.
        ([THOUGHT], "Edited", [CALL], [THOUGHT, {"type": "text", "text": "Edited"}, TOOL_USE]),
        ([THOUGHT, {"type": "tool_use", "id": "gone"}, {"type": "text"}], "", None, [THOUGHT]),
    ],
    ids=["thinking", "redacted-and-call", "server-tool", "edited", "dropped"],
)
def test_provider_data_layout_is_sent_back_in_order(
    layout: list[Any], content: str | None, calls: list[Any] | None, sent: list[Any]
) -> None:
    message = _assistant(layout, content, calls)
    if content == "":
        message["tool_calls"] = None
    assert _sent_assistant(message) == sent


def test_a_bad_layout_is_refused() -> None:
    _refused(
        {"messages": [*HI, _assistant(["not a block"], "Hi"), {"role": "user", "content": "ok"}]},
        "keep the provider data",
    )


def test_reasoning_without_anthropic_data_is_not_sent() -> None:
    # Another provider's reasoning has no signature Anthropic could check.
    message = {
        "role": "assistant",
        "content": "4",
        "reasoning": "2+2",
        "provider_data": {"gemini": {"x": 1}},
    }
    body = _body({"messages": [*HI, message, {"role": "user", "content": "ok"}]})
    assert body["messages"][1] == {"role": "assistant", "content": "4"}


# --- responses --------------------------------------------------------------------------


def _response(body: dict[str, Any], status: int = 200) -> ChatResponse:
    request = ChatRequest(model=MODEL, messages=[Message(role="user", content="Hi")])
    raw = json.dumps(body).encode()
    return cast(
        ChatResponse,
        decode_response(KEY, HttpResponse(status=status, headers={}, body=raw), request),
    )


def _message(content: list[Any], stop: str = "end_turn", **usage: int) -> dict[str, Any]:
    return {
        "type": "message",
        "id": "msg_1",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": content,
        "stop_reason": stop,
        "usage": {"input_tokens": 10, "output_tokens": 5, **usage},
    }


def test_decode_text_and_tool_calls() -> None:
    response = _response(
        _message(
            [
                {"type": "text", "text": "Let me "},
                {"type": "text", "text": "look."},
                {**TOOL_USE, "input": {"city": "Paris"}},
            ],
            "tool_use",
        )
    )
    [choice] = response.choices
    assert response.id == "msg_1"
    assert choice.message.content == "Let me look."
    assert [
        (c.id, c.function.name, json.loads(c.function.arguments)) for c in response.tool_calls
    ] == [("toolu_9", "get_weather", {"city": "Paris"})]
    assert (choice.finish_reason, choice.native_finish_reason) == ("tool_calls", "tool_use")
    assert choice.message.provider_data is None
    assert choice.message.reasoning is None


def test_decode_only_tool_calls_has_no_content_and_empty_answer_has_empty_text() -> None:
    assert _response(_message([TOOL_USE], "tool_use")).choices[0].message.content is None
    assert _response(_message([])).choices[0].message.content == ""


def test_decode_thinking_and_server_blocks_into_provider_data() -> None:
    content = [
        THOUGHT,
        REDACTED,
        {"type": "text", "text": "A"},
        SEARCH,
        FOUND,
        {"type": "text", "text": "B"},
    ]
    message = _response(_message(content)).choices[0].message
    assert message.content == "AB"
    assert message.reasoning == "Hmm."
    assert message.provider_data == {
        "anthropic": {
            "content": [THOUGHT, REDACTED, {"type": "text"}, SEARCH, FOUND, {"type": "text"}]
        }
    }


def test_usage_counts_cache_tokens_in_the_prompt() -> None:
    usage = _response(
        _message(
            [{"type": "text", "text": "x"}],
            cache_read_input_tokens=100,
            cache_creation_input_tokens=20,
            output_tokens=7,
        )
        | {
            "usage": {
                "input_tokens": 3,
                "output_tokens": 7,
                "cache_read_input_tokens": 100,
                "cache_creation_input_tokens": 20,
                "output_tokens_details": {"thinking_tokens": 4},
            }
        }
    ).usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (123, 7, 130)
    assert usage.prompt_tokens_details is not None
    assert (
        usage.prompt_tokens_details.cached_tokens,
        usage.prompt_tokens_details.cache_write_tokens,
    ) == (100, 20)
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 4


@pytest.mark.parametrize(
    ("native", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "length"),
        ("model_context_window_exceeded", "length"),
        ("something_new", "stop"),
    ],
)
def test_finish_reasons(native: str, finish: str) -> None:
    [choice] = _response(_message([{"type": "text", "text": "x"}], native)).choices
    assert (choice.finish_reason, choice.native_finish_reason) == (finish, native)


def test_undecodable_bodies() -> None:
    with pytest.raises(llmkit.LLMError, match="not a message"):
        decode_response(
            KEY,
            HttpResponse(status=200, headers={}, body=b"<html>"),
            ChatRequest(model=MODEL, messages=[]),
        )
    with pytest.raises(llmkit.LLMError, match="a list object, not a message"):
        _response({"type": "list", "data": []})
    with pytest.raises(llmkit.ServiceUnavailableError, match="Overloaded"):
        _response({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})


# --- streams ----------------------------------------------------------------------------


def _events(*events: dict[str, Any]) -> list[Any]:
    state = StreamState(provider="anthropic", model=MODEL)
    out: list[Any] = []
    for event in events:
        item = decode_event(
            KEY, SSEEvent(event["type"], json.dumps(event).encode(), None, None), state
        )
        if item is not None:
            out.append(item)
    assert state.done == (events[-1]["type"] == "message_stop")
    return out


START = {
    "type": "message_start",
    "message": {
        "id": "msg_s",
        "model": "claude-x",
        "content": [],
        "usage": {"input_tokens": 12, "output_tokens": 1, "cache_read_input_tokens": 3},
    },
}


def _block(index: int, block: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": block}


def _delta(index: int, delta: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": delta}


def _stop(index: int) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}


END: list[dict[str, Any]] = [
    {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 30}},
    {"type": "message_stop"},
]


def test_stream_of_thinking_text_and_tool_calls() -> None:
    chunks = _events(
        START,
        {"type": "ping"},
        _block(0, {"type": "thinking", "thinking": "", "signature": ""}),
        _delta(0, {"type": "thinking_delta", "thinking": "Hm"}),
        _delta(0, {"type": "thinking_delta", "thinking": "m."}),
        _delta(0, {"type": "signature_delta", "signature": "sig-1"}),
        _stop(0),
        _block(1, {"type": "text", "text": ""}),
        _delta(1, {"type": "text_delta", "text": "Looking"}),
        _delta(1, {"type": "citations_delta", "citation": {}}),
        _stop(1),
        _block(2, {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {}}),
        _delta(2, {"type": "input_json_delta", "partial_json": '{"city": '}),
        _delta(2, {"type": "input_json_delta", "partial_json": '"Paris"}'}),
        _stop(2),
        _block(3, {"type": "tool_use", "id": "toolu_b", "name": "now", "input": {}}),
        _delta(3, {"type": "input_json_delta", "partial_json": ""}),
        _stop(3),
        *END,
    )
    assert all(isinstance(c, StreamChunk) for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    signed = [c for c in chunks if c.choices[0].delta.provider_data]
    assert signed[0].choices[0].delta.provider_data == {
        "anthropic": {"content": [THOUGHT | {"thinking": "Hmm."}]}
    }
    response = accumulate(chunks)
    [choice] = response.choices
    assert (response.id, response.model) == ("msg_s", "claude-x")
    assert choice.message.content == "Looking"
    assert choice.message.reasoning == "Hmm."
    assert [(c.id, c.function.name, c.function.arguments) for c in response.tool_calls] == [
        ("toolu_a", "get_weather", '{"city": "Paris"}'),
        ("toolu_b", "now", "{}"),
    ]
    assert [d.index for c in chunks for d in c.choices[0].delta.tool_calls or ()] == [0, 0, 0, 1, 1]
    assert choice.message.provider_data == {
        "anthropic": {
            "content": [
                {"type": "thinking", "thinking": "Hmm.", "signature": "sig-1"},
                {"type": "text"},
                {"type": "tool_use", "id": "toolu_a"},
                {"type": "tool_use", "id": "toolu_b"},
            ]
        }
    }
    assert (choice.finish_reason, choice.native_finish_reason) == ("tool_calls", "tool_use")
    # message_start's input usage merged with message_delta's output usage.
    assert response.usage is not None
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (15, 30)
    assert chunks[-1].usage == response.usage


def test_streamed_answer_goes_back_as_the_non_streamed_one_would() -> None:
    chunks = _events(
        START,
        _block(0, {"type": "redacted_thinking", "data": "b64=="}),
        _stop(0),
        _block(1, SEARCH | {"input": {}}),
        _delta(1, {"type": "input_json_delta", "partial_json": '{"query": "x"}'}),
        _stop(1),
        _block(2, FOUND),
        _stop(2),
        _block(3, {"type": "text", "text": ""}),
        _delta(3, {"type": "text_delta", "text": "Done"}),
        _stop(3),
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 3},
        },
        {"type": "message_stop"},
    )
    message = accumulate(chunks).choices[0].message
    assert message.provider_data == {
        "anthropic": {"content": [REDACTED, SEARCH, FOUND, {"type": "text"}]}
    }
    assert _sent_assistant(msgspec.to_builtins(message)) == [
        REDACTED,
        SEARCH,
        FOUND,
        {"type": "text", "text": "Done"},
    ]


def test_stream_error_event_is_the_mapped_error() -> None:
    [first, error] = _events(
        START, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    )
    assert isinstance(first, StreamChunk)
    assert isinstance(error, llmkit.ServiceUnavailableError)
    assert (error.status, error.code, error.retryable) == (529, "overloaded_error", True)


def test_stream_events_out_of_order_or_unreadable() -> None:
    [error] = _events(
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}}
    )
    assert isinstance(error, llmkit.LLMError)
    assert "before message_start" in str(error)
    state = StreamState(provider="anthropic", model=MODEL)
    bad = decode_event(KEY, SSEEvent("x", b"{not json", None, None), state)
    assert isinstance(bad, llmkit.LLMError)
    assert _events({"type": "ping"}, START, {"type": "some_future_event"}) != []


# --- errors -----------------------------------------------------------------------------


def _error(status: int, body: bytes, headers: dict[str, str] | None = None) -> llmkit.LLMError:
    request = ChatRequest(model=MODEL, messages=[])
    return cast(
        llmkit.LLMError,
        decode_error(KEY, HttpResponse(status=status, headers=headers or {}, body=body), request),
    )


def _envelope(kind: str, message: str) -> bytes:
    return json.dumps(
        {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_1"}
    ).encode()


@pytest.mark.parametrize(
    ("status", "kind", "message", "error", "retryable"),
    [
        (
            400,
            "invalid_request_error",
            "max_tokens: Field required",
            llmkit.InvalidRequestError,
            False,
        ),
        (
            400,
            "invalid_request_error",
            "prompt is too long: 210000 tokens > 200000 maximum",
            llmkit.ContextWindowError,
            False,
        ),
        (
            400,
            "invalid_request_error",
            "input length and `max_tokens` exceed context limit: 1 + 2 > 2",
            llmkit.ContextWindowError,
            False,
        ),
        (401, "authentication_error", "invalid x-api-key", llmkit.AuthenticationError, False),
        (402, "billing_error", "credit balance is too low", llmkit.PermissionDeniedError, False),
        (403, "permission_error", "no access", llmkit.PermissionDeniedError, False),
        (404, "not_found_error", "model: claude-x", llmkit.NotFoundError, False),
        (
            413,
            "request_too_large",
            "Request exceeds the maximum size",
            llmkit.InvalidRequestError,
            False,
        ),
        (
            429,
            "rate_limit_error",
            "Number of requests has exceeded your rate limit",
            llmkit.RateLimitError,
            True,
        ),
        (500, "api_error", "Internal server error", llmkit.ServiceUnavailableError, True),
        (504, "timeout_error", "Request timeout", llmkit.ServiceUnavailableError, True),
        (529, "overloaded_error", "Overloaded", llmkit.ServiceUnavailableError, True),
    ],
    ids=lambda v: str(v)[:24] if not isinstance(v, type) else v.__name__,
)
def test_errors_by_status_and_type(
    status: int, kind: str, message: str, error: type[llmkit.LLMError], retryable: bool
) -> None:
    found = _error(status, _envelope(kind, message))
    assert type(found) is error
    assert (found.status, found.code, found.retryable, found.request_id) == (
        status,
        kind,
        retryable,
        "req_1",
    )
    assert message in found.message
    assert found.provider == "anthropic"


def test_errors_without_an_envelope() -> None:
    found = _error(502, b"<html>Bad gateway</html>")
    assert isinstance(found, llmkit.ServiceUnavailableError)
    assert "Bad gateway" in found.message
    assert "no body" in _error(503, b"").message


def test_rate_limit_retry_after_comes_from_the_header(monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            429,
            content=_envelope("rate_limit_error", "slow down"),
            headers={"retry-after": "12", "request-id": "req_hdr"},
        )

    client = httpx.Client(transport=httpx.MockTransport(handler))
    with pytest.raises(llmkit.RateLimitError) as info:
        core.completion(
            "anthropic",
            MODEL,
            {"messages": HI},
            {"api_key": API_KEY, "http_client": client, "retries": 0},
        )
    assert info.value.retry_after == 12.0
    assert info.value.request_id == "req_1"  # the body's id, equal to the header's in practice
    assert API_KEY not in str(info.value)


# --- capabilities -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "vision", "files", "schema", "thinks"),
    [
        ("", True, True, True, True),
        ("claude-3-haiku-20240307", True, False, False, False),
        ("claude-3-5-haiku-latest", True, True, False, False),
        ("claude-3-7-sonnet-20250219", True, True, False, True),
        ("claude-sonnet-4-20250514", True, True, False, True),
        ("claude-opus-4-1", True, True, False, True),
        ("claude-sonnet-4-5", True, True, True, True),
        ("claude-haiku-4-5-20251001", True, True, True, True),
        ("claude-opus-4-7", True, True, True, True),
        ("anthropic/claude-sonnet-4-6", True, True, True, True),
        ("claude-2.1", False, False, False, False),
    ],
)
def test_capabilities_per_model(
    model: str, vision: bool, files: bool, schema: bool, thinks: bool
) -> None:
    caps = cast(Capabilities, capabilities(KEY, model))
    assert (caps.vision, caps.file_input, caps.json_schema, caps.reasoning) == (
        vision,
        files,
        schema,
        thinks,
    )
    assert caps.streaming
    assert caps.json_mode
    assert caps.tools == caps.parallel_tool_calls == vision
    assert not caps.audio_input
    assert not caps.embeddings


def test_the_module_surface() -> None:
    assert len(set(anthropic_codec.__all__)) == len(anthropic_codec.__all__)
    assert all(hasattr(anthropic_codec, name) for name in anthropic_codec.__all__)


def test_a_cache_breakpoint_on_a_tool_result_and_empty_text_parts() -> None:
    cache = {"type": "ephemeral"}
    history = _history()[:3]
    history[2]["provider_data"] = {"anthropic": {"cache_control": cache}}
    history[0] = {
        "role": "user",
        "content": [{"type": "text", "text": ""}, {"type": "text", "text": "Weather?"}],
    }
    body = _body({"messages": history, "tools": [WEATHER]})
    assert body["messages"][0]["content"] == [{"type": "text", "text": "Weather?"}]
    assert body["messages"][2]["content"][0]["cache_control"] == cache
