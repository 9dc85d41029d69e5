"""Unit tests of the Mistral codec: what the recorded corpus does not reach, edge by edge."""

from __future__ import annotations

import json
import string
from typing import Any, cast

import httpx
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

import llmkit
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
from llmkit.types import ChatRequest
from llmkit_providers.mistral import (
    Mistral,
    MistralOptions,
    error_from_body,
    mistral_tool_call_id,
)
from llmkit_providers.openai import OpenAICompatible

KEY = Mistral()
API_KEY = "sk-mistral-unit-0000000000"
MODEL = "mistral-large-latest"
HI = [{"role": "user", "content": "Hi"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def _call(request: dict[str, Any], options: Any = None, *, stream: bool = False) -> HttpCall:
    settings: dict[str, Any] = {"api_key": API_KEY, "api_base": "http://127.0.0.1:9/v1"}
    if options is not None:
        settings["options"] = options
    key, req, config = prepare("mistral", request.pop("model", MODEL), request, settings, stream)
    return build_call(key, req, config)


def _body(request: dict[str, Any], options: Any = None, **kw: Any) -> Any:
    return json.loads(_call(request, options, **kw).body)


def _request(model: str = MODEL) -> ChatRequest:
    return ChatRequest(model=model, messages=[])


def _decoded(body: Any, status: int = 200) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = HttpResponse(status=status, headers={}, body=raw)
    return decode_response(KEY, response, _request())


def _events(*payloads: Any) -> tuple[list[StreamChunk], list[Any]]:
    """Feed SSE payloads to the codec; the chunks it yields and everything it returned."""
    state = StreamState(provider="mistral", model=MODEL)
    chunks, out = [], []
    for payload in payloads:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        item = decode_event(KEY, SSEEvent(None, data, None, None), state)
        out.append(item)
        if isinstance(item, StreamChunk):
            chunks.append(item)
    assert state.done is (out[-1] is None and payloads[-1] == b"[DONE]")
    return chunks, out


def _chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


# --- the key ------------------------------------------------------------------------------


def test_mistral_key_is_a_derived_openai_compatible_key() -> None:
    assert isinstance(KEY, OpenAICompatible)
    assert llmkit.provider_info("mistral").default_base_url == "https://api.mistral.ai/v1"
    assert KEY.key_variables() == ("MISTRAL_API_KEY",)
    assert KEY.request_id_headers[0] == "mistral-correlation-id"


@pytest.mark.parametrize(
    ("model", "vision", "reasoning", "files"),
    [
        ("magistral-medium-latest", True, True, False),
        ("magistral-small-2507", False, True, False),
        ("mistral-small-latest", True, True, True),
        ("mistral-medium-latest", True, False, True),
        ("mistral-medium-2508", True, False, True),
        ("mistral-medium", False, False, False),
        ("mistral-medium-2312", False, False, False),
        ("ministral-14b-2512", True, False, False),
        ("ministral-8b-2512", True, False, False),
        ("ministral-3b-2512", True, False, False),
        ("ministral-8b-2410", False, False, False),
        ("mistral-medium-3-5", True, True, True),
        ("pixtral-12b-latest", True, False, False),
        ("mistral-large-latest", True, False, True),
        ("codestral-latest", False, False, False),
        ("open-mistral-nemo", False, False, False),
        ("", False, False, False),
    ],
    ids=lambda value: str(value) or "provider",
)
def test_mistral_capabilities_by_model(
    model: str, vision: bool, reasoning: bool, files: bool
) -> None:
    caps = cast(Capabilities, capabilities(KEY, model))
    assert (caps.vision, caps.reasoning, caps.file_input) == (vision, reasoning, files)
    # Every chat model streams and takes tools, parallel calls and JSON output.
    flags = msgspec.to_builtins(caps)
    assert {
        name
        for name in ("streaming", "tools", "parallel_tool_calls", "json_mode", "json_schema")
        if flags.get(name)
    } == {"streaming", "tools", "parallel_tool_calls", "json_mode", "json_schema"}
    assert not flags.get("audio_input")
    assert not flags.get("embeddings")


# --- requests -------------------------------------------------------------------------------


def test_mistral_plain_request_is_openais_shape() -> None:
    call = _call({"messages": HI, "temperature": 0.3, "stop": ["x"], "n": 1})
    assert call.url == "http://127.0.0.1:9/v1/chat/completions"
    assert call.headers["Authorization"] == f"Bearer {API_KEY}"
    assert json.loads(call.body) == {
        "model": MODEL,
        "messages": HI,
        "temperature": 0.3,
        "stop": ["x"],
        "n": 1,
    }


def test_mistral_renames_and_drops_what_it_refuses() -> None:
    body = _body(
        {
            "messages": HI,
            "seed": 7,
            "max_tokens": 10,
            "max_completion_tokens": 20,
            "user": "end-user-1",
            "stream_options": {"include_usage": True},
        },
        stream=True,
    )
    assert body == {
        "model": MODEL,
        "messages": HI,
        "stream": True,
        "random_seed": 7,
        # max_completion_tokens supersedes max_tokens, as on OpenAI.
        "max_tokens": 20,
    }


def test_mistral_stream_sends_no_stream_options() -> None:
    body = _body({"messages": HI}, stream=True)
    assert body == {"model": MODEL, "messages": HI, "stream": True}


def test_mistral_options_are_sent_as_fields_and_extra_body_last() -> None:
    options = {"reasoning_effort": "high", "prompt_mode": "reasoning", "safe_prompt": True}
    body = _body(
        {"messages": HI, "extra_body": {"safe_prompt": False, "presence_penalty": 0.5}}, options
    )
    assert body["reasoning_effort"] == "high"
    assert body["prompt_mode"] == "reasoning"
    assert body["safe_prompt"] is False
    assert body["presence_penalty"] == 0.5
    assert _body({"messages": HI}, MistralOptions()) == {"model": MODEL, "messages": HI}


def test_mistral_unknown_option_is_refused_before_sending() -> None:
    with pytest.raises(llmkit.InvalidRequestError, match="reasoning_budget"):
        _call({"messages": HI}, {"reasoning_budget": 100})


def test_mistral_messages_reshaped_where_mistral_differs() -> None:
    body = _body(
        {
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": "Hi", "name": "ada"},
                {"role": "assistant", "content": "Hello", "refusal": None, "name": "bot"},
                {"role": "user", "content": "Weather?"},
            ]
        }
    )
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Weather?"},
    ]


def test_mistral_tool_history_ids_are_made_valid_and_stay_paired() -> None:
    history = [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": "call_abc123",
                    "type": "function",
                    "function": {"name": "w", "arguments": "{}"},
                },
                {
                    "id": "Ab3dE6gH9",
                    "type": "function",
                    "function": {"name": "w", "arguments": "{}"},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_abc123", "content": "sun", "name": "w"},
        {"role": "tool", "tool_call_id": "Ab3dE6gH9", "content": "rain"},
    ]
    body = _body({"messages": history, "tools": [WEATHER]})
    calls = body["messages"][1]["tool_calls"]
    mapped = mistral_tool_call_id("call_abc123")
    assert [call["id"] for call in calls] == [mapped, "Ab3dE6gH9"]
    assert "content" not in body["messages"][1]
    assert body["messages"][2] == {
        "role": "tool",
        "content": "sun",
        "tool_call_id": mapped,
        "name": "w",
    }
    assert body["messages"][3]["tool_call_id"] == "Ab3dE6gH9"


@given(st.text(max_size=40))
def test_mistral_tool_call_id_is_always_valid_and_stable(value: str) -> None:
    mapped = mistral_tool_call_id(value)
    assert len(mapped) == 9
    assert set(mapped) <= set(string.ascii_letters + string.digits)
    assert mistral_tool_call_id(value) == mapped
    assert mistral_tool_call_id(mapped) == mapped


def test_mistral_tool_call_ids_of_different_calls_differ() -> None:
    ids = {mistral_tool_call_id(f"call_{i}") for i in range(2000)}
    assert len(ids) == 2000


def test_mistral_function_without_parameters_gets_an_empty_object() -> None:
    tools = [{"type": "function", "function": {"name": "now"}}, WEATHER]
    body = _body({"messages": HI, "tools": tools, "tool_choice": "required"})
    assert body["tools"][0]["function"]["parameters"] == {"type": "object", "properties": {}}
    assert body["tools"][1] == WEATHER
    assert body["tool_choice"] == "required"


def test_mistral_content_parts_in_mistrals_form() -> None:
    content = [
        {"type": "text", "text": "Look"},
        {"type": "image_url", "image_url": {"url": "https://x/cat.png", "detail": "low"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {
            "type": "file",
            "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"},
        },
        {"type": "file", "file": {"file_data": "https://x/doc.pdf"}},
        {"type": "file", "file": {"file_id": "file-123"}},
    ]
    body = _body({"messages": [{"role": "user", "content": content}]})
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "Look"},
        {"type": "image_url", "image_url": {"url": "https://x/cat.png", "detail": "low"}},
        {"type": "input_audio", "input_audio": "UklGRg=="},
        {
            "type": "document_url",
            "document_url": "data:application/pdf;base64,JVBERi0=",
            "document_name": "a.pdf",
        },
        {"type": "document_url", "document_url": "https://x/doc.pdf"},
        {"type": "file", "file_id": "file-123"},
    ]


def test_mistral_file_part_without_a_file_is_refused() -> None:
    content = [{"type": "file", "file": {"filename": "a.pdf"}}]
    with pytest.raises(llmkit.InvalidRequestError, match=r"messages\[0\].content\[0\]"):
        _call({"messages": [{"role": "user", "content": content}]})


THINKING = [{"type": "thinking", "thinking": [{"type": "text", "text": "Six times seven."}]}]


def test_mistral_thinking_goes_back_before_the_text() -> None:
    assistant = {
        "role": "assistant",
        "content": "42",
        "reasoning": "Six times seven.",
        "provider_data": {"mistral": {"thinking": THINKING}, "anthropic": {"x": 1}},
    }
    body = _body({"messages": [*HI, assistant, {"role": "user", "content": "Doubled?"}]})
    assert body["messages"][1] == {
        "role": "assistant",
        "content": [*THINKING, {"type": "text", "text": "42"}],
    }


def test_mistral_thinking_alone_goes_back_with_the_calls() -> None:
    assistant = {
        "role": "assistant",
        "tool_calls": [
            {"id": "Ab3dE6gH9", "type": "function", "function": {"name": "w", "arguments": "{}"}}
        ],
        "provider_data": {"mistral": {"thinking": THINKING}},
    }
    tool = {"role": "tool", "tool_call_id": "Ab3dE6gH9", "content": "sun"}
    body = _body({"messages": [*HI, assistant, tool], "tools": [WEATHER]})
    assert body["messages"][1]["content"] == THINKING


def test_mistral_reasoning_of_another_provider_is_not_sent() -> None:
    assistant = {"role": "assistant", "content": "42", "reasoning": "thought elsewhere"}
    body = _body({"messages": [*HI, assistant, {"role": "user", "content": "And?"}]})
    assert body["messages"][1] == {"role": "assistant", "content": "42"}


@pytest.mark.parametrize(
    "data",
    [{"thinking": "text"}, {"thinking": [{"type": "text"}]}, ["thinking"], {"other": []}],
    ids=["string", "not-chunks", "list", "no-thinking"],
)
def test_mistral_foreign_provider_data_is_refused_before_sending(data: Any) -> None:
    assistant = {"role": "assistant", "content": "42", "provider_data": {"mistral": data}}
    with pytest.raises(llmkit.InvalidRequestError, match=r"messages\[1\].provider_data"):
        _call({"messages": [*HI, assistant, {"role": "user", "content": "And?"}]})


def test_mistral_request_id_and_key_never_leak_in_errors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"object": "error", "message": f"bad key {API_KEY}", "type": "unauthorized"}
        return httpx.Response(
            401, json=body, headers={"mistral-correlation-id": "corr-1", "x-request-id": "r"}
        )

    with (
        httpx.Client(transport=httpx.MockTransport(handler)) as client,
        pytest.raises(llmkit.AuthenticationError) as info,
    ):
        core.mistral_completion(
            MODEL, {"messages": HI}, api_key=API_KEY, http_client=client, retries=0
        )
    assert info.value.request_id == "corr-1"
    assert API_KEY not in str(info.value)
    assert "MISTRAL_API_KEY" in str(info.value)


def test_mistral_completion_shortcut() -> None:
    seen: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        body = {
            "id": "x",
            "object": "chat.completion",
            "model": MODEL,
            "created": 1,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Salut"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        return httpx.Response(200, json=body)

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        reply = core.mistral_completion(
            MODEL,
            {"messages": HI},
            api_key=API_KEY,
            http_client=client,
            options={"reasoning_effort": "none"},
        )
    assert reply.text == "Salut"
    assert seen == [{"model": MODEL, "messages": HI, "reasoning_effort": "none"}]


# --- responses -------------------------------------------------------------------------------


def _answer(message: dict[str, Any], finish: str = "stop", **usage: Any) -> dict[str, Any]:
    return {
        "id": "r1",
        "object": "chat.completion",
        "model": MODEL,
        "created": 5,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7, **usage},
    }


def test_mistral_response_content_list_and_thinking() -> None:
    content = [
        {
            "type": "thinking",
            "thinking": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            "closed": True,
        },
        {"type": "text", "text": "4"},
        {"type": "reference", "reference_ids": [1]},
        {"type": "thinking", "thinking": [{"type": "text", "text": "c"}], "signature": "sig"},
        {"type": "text", "text": "2"},
    ]
    response = cast(ChatResponse, _decoded(_answer({"role": "assistant", "content": content})))
    message = response.choices[0].message
    assert message.content == "42"
    assert message.reasoning == "abc"
    assert message.provider_data == {"mistral": {"thinking": [content[0], content[3]]}}


def test_mistral_response_text_list_without_thinking() -> None:
    content = [{"type": "text", "text": "Hel"}, {"type": "text", "text": "lo"}]
    response = cast(ChatResponse, _decoded(_answer({"role": "assistant", "content": content})))
    assert response.choices[0].message.content == "Hello"
    assert response.choices[0].message.reasoning is None
    assert response.choices[0].message.provider_data is None


@pytest.mark.parametrize(
    ("raw", "normal", "native"),
    [
        ("stop", "stop", None),
        ("length", "length", None),
        ("model_length", "length", "model_length"),
        ("tool_calls", "tool_calls", None),
        ("content_filter", "content_filter", None),
        ("banana", "stop", "banana"),
    ],
)
def test_mistral_finish_reasons_normalized(raw: str, normal: str, native: str | None) -> None:
    response = cast(ChatResponse, _decoded(_answer({"role": "assistant", "content": "x"}, raw)))
    assert response.choices[0].finish_reason == normal
    assert response.choices[0].native_finish_reason == native
    chunks, _ = _events(_chunk({"content": "x"}), _chunk({"content": ""}, raw), b"[DONE]")
    finished = accumulate(chunks).choices[0]
    assert (finished.finish_reason, finished.native_finish_reason) == (normal, native)


def test_mistral_unknown_finish_after_calls_is_tool_calls() -> None:
    call = {"id": "Ab3dE6gH9", "function": {"name": "w", "arguments": "{}"}, "index": 0}
    message = {"role": "assistant", "content": "", "tool_calls": [call]}
    choice = cast(ChatResponse, _decoded(_answer(message, "banana"))).choices[0]
    assert (choice.finish_reason, choice.native_finish_reason) == ("tool_calls", "banana")
    chunks, _ = _events(
        _chunk({"role": "assistant", "tool_calls": [call]}),
        _chunk({"content": ""}, "banana"),
        b"[DONE]",
    )
    finished = accumulate(chunks).choices[0]
    assert (finished.finish_reason, finished.native_finish_reason) == ("tool_calls", "banana")


def _valid_id(value: str) -> bool:
    return len(value) == 9 and value.isascii() and value.isalnum()


def test_mistral_tool_calls_without_ids_get_valid_distinct_ids() -> None:
    calls = [
        {"function": {"name": "w", "arguments": "{}"}, "index": 0},
        {"id": None, "function": {"name": "w", "arguments": "{}"}, "index": 1},
    ]
    message = {"role": "assistant", "content": "", "tool_calls": calls}
    response = cast(ChatResponse, _decoded(_answer(message, "tool_calls")))
    ids = [call.id for call in response.tool_calls]
    assert all(_valid_id(value) for value in ids), ids
    assert len(set(ids)) == 2
    # In a stream: the opening delta gets the id, the continuation joins it.
    chunks, _ = _events(
        _chunk({"role": "assistant", "tool_calls": [{"index": 0, "function": {"name": "w"}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a": 1}'}}]}),
        _chunk({"content": ""}, "tool_calls"),
        b"[DONE]",
    )
    [call] = accumulate(chunks).tool_calls
    assert _valid_id(call.id), call.id
    assert (call.function.name, call.function.arguments) == ("w", '{"a": 1}')


def test_mistral_error_finish_raises() -> None:
    with pytest.raises(llmkit.ServiceUnavailableError, match="finish_reason 'error'") as info:
        _decoded(_answer({"role": "assistant", "content": "half"}, "error"))
    assert info.value.retryable


def test_mistral_object_arguments_become_json() -> None:
    calls = [
        {"id": "Ab3dE6gH9", "function": {"name": "w", "arguments": {"city": "Paris"}}, "index": 0}
    ]
    message = {"role": "assistant", "content": "", "tool_calls": calls}
    response = cast(ChatResponse, _decoded(_answer(message, "tool_calls")))
    [call] = response.tool_calls
    assert (call.id, call.type, call.function.name) == ("Ab3dE6gH9", "function", "w")
    assert json.loads(call.function.arguments) == {"city": "Paris"}


@pytest.mark.parametrize(
    ("usage", "cached"),
    [
        ({"prompt_tokens_details": {"cached_tokens": 2}}, 2),
        ({"num_cached_tokens": 3}, 3),
        ({"prompt_tokens_details": {"cached_tokens": 0}, "num_cached_tokens": 3}, 0),
        ({}, None),
    ],
    ids=["details", "num_cached_tokens", "details-win", "none"],
)
def test_mistral_cached_tokens(usage: dict[str, Any], cached: int | None) -> None:
    response = cast(ChatResponse, _decoded(_answer({"role": "assistant", "content": "x"}, **usage)))
    assert response.usage is not None
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (3, 4)
    details = response.usage.prompt_tokens_details
    assert (details.cached_tokens if details else None) == cached


def test_mistral_null_counts_read_as_zero() -> None:
    body = _answer({"role": "assistant", "content": "x"}, completion_tokens=None, total_tokens=None)
    response = cast(ChatResponse, _decoded(body))
    assert response.usage is not None
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (3, 0)
    usage = {"prompt_tokens": 2, "completion_tokens": None, "total_tokens": None}
    chunks, _ = _events(_chunk({"content": "a"}, "stop", usage=usage), b"[DONE]")
    assert chunks[0].usage is not None
    assert (chunks[0].usage.prompt_tokens, chunks[0].usage.completion_tokens) == (2, 0)
    assert chunks[0].text == "a"


def test_mistral_reasoning_tokens_where_reported() -> None:
    body = _answer(
        {"role": "assistant", "content": "x"}, completion_tokens_details={"reasoning_tokens": 9}
    )
    response = cast(ChatResponse, _decoded(body))
    assert response.usage is not None
    assert response.usage.completion_tokens_details is not None
    assert response.usage.completion_tokens_details.reasoning_tokens == 9


def test_mistral_error_envelope_in_a_200_raises_it() -> None:
    body = {
        "object": "error",
        "message": "Rate limit exceeded",
        "type": "rate_limited",
        "code": "1300",
    }
    with pytest.raises(llmkit.RateLimitError):
        _decoded(body)


def test_mistral_error_envelope_beside_choices_raises_it() -> None:
    body = {
        **_answer({"role": "assistant", "content": "half"}),
        "object": "error",
        "message": "boom",
        "type": "internal_server_error",
    }
    with pytest.raises(llmkit.ServiceUnavailableError, match="boom"):
        _decoded(body)
    _, out = _events(_chunk({"content": "a"}), {**_chunk({"content": "b"}), **body})
    assert isinstance(out[-1], llmkit.ServiceUnavailableError)
    assert "boom" in out[-1].message


def test_mistral_the_word_error_in_an_answer_is_no_error() -> None:
    answer = _answer({"role": "assistant", "content": '"error"'})
    response = cast(ChatResponse, _decoded({**answer, "error": None}))
    assert response.text == '"error"'
    chunks, _ = _events(_chunk({"content": "error"}), _chunk({"content": ""}, "stop"), b"[DONE]")
    assert accumulate(chunks).text == "error"


@pytest.mark.parametrize(
    "body", [b"<html>", b"{}", b'{"choices": []}'], ids=["html", "empty", "no-choices"]
)
def test_mistral_body_that_is_no_completion(body: bytes) -> None:
    with pytest.raises(llmkit.LLMError, match="not a chat completion"):
        _decoded(body)


# --- streams ---------------------------------------------------------------------------------


def _thinking_piece(text: str) -> dict[str, Any]:
    return {"content": [{"type": "thinking", "thinking": [{"type": "text", "text": text}]}]}


def test_mistral_stream_thinking_pieces_joined_and_kept_once() -> None:
    chunks, _ = _events(
        _chunk({"role": "assistant", "content": ""}),
        _chunk(_thinking_piece("Six ")),
        _chunk(_thinking_piece("sevens")),
        _chunk({"content": "42"}),
        _chunk({"content": "!"}),
        _chunk(
            {"content": ""},
            "stop",
            usage={"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
        ),
        b"[DONE]",
    )
    assert [c.choices[0].delta.reasoning for c in chunks] == [
        None,
        "Six ",
        "sevens",
        None,
        None,
        None,
    ]
    kept = [c.choices[0].delta.provider_data for c in chunks]
    assert kept[:3] == [None, None, None]
    assert kept[4:] == [None, None]
    assert kept[3] == {
        "mistral": {
            "thinking": [{"type": "thinking", "thinking": [{"type": "text", "text": "Six sevens"}]}]
        }
    }
    response = accumulate(chunks)
    assert response.text == "42!"
    assert response.choices[0].message.reasoning == "Six sevens"
    assert response.choices[0].message.provider_data == kept[3]


def test_mistral_stream_thinking_to_the_end_rides_on_the_finish() -> None:
    piece = _thinking_piece("hm")
    piece["content"][0]["signature"] = "sig-1"
    chunks, _ = _events(
        _chunk(_thinking_piece("h")), _chunk(piece), _chunk({"content": ""}, "length"), b"[DONE]"
    )
    data = accumulate(chunks).choices[0].message.provider_data
    assert data == {
        "mistral": {
            "thinking": [
                {
                    "type": "thinking",
                    "thinking": [{"type": "text", "text": "hhm"}],
                    "signature": "sig-1",
                }
            ]
        }
    }


def test_mistral_stream_two_thinking_runs_are_two_chunks() -> None:
    chunks, _ = _events(
        _chunk(_thinking_piece("a")),
        _chunk({"content": "x"}),
        _chunk(_thinking_piece("b")),
        _chunk({"content": "y"}, "stop"),
        b"[DONE]",
    )
    message = accumulate(chunks).choices[0].message
    assert message.content == "xy"
    assert message.reasoning == "ab"
    data = message.provider_data or {}
    assert [c["thinking"][0]["text"] for c in data["mistral"]["thinking"]] == ["a", "b"]
    # What was handed out with the first run is not changed by the second.
    assert chunks[1].choices[0].delta.provider_data == {
        "mistral": {"thinking": [{"type": "thinking", "thinking": [{"type": "text", "text": "a"}]}]}
    }


def test_mistral_stream_finish_reasons_and_cached_tokens() -> None:
    usage = {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6, "num_cached_tokens": 4}
    chunks, _ = _events(
        _chunk({"content": "a"}), _chunk({"content": ""}, "model_length", usage=usage), b"[DONE]"
    )
    last = chunks[-1]
    assert (last.choices[0].finish_reason, last.choices[0].native_finish_reason) == (
        "length",
        "model_length",
    )
    assert last.usage is not None
    assert last.usage.prompt_tokens_details is not None
    assert last.usage.prompt_tokens_details.cached_tokens == 4


def test_mistral_stream_error_finish_raises() -> None:
    _, out = _events(_chunk({"content": "a"}), _chunk({"content": ""}, "error"))
    assert isinstance(out[-1], llmkit.ServiceUnavailableError)


def test_mistral_stream_whole_tool_calls_and_object_arguments() -> None:
    calls = [
        {
            "id": "Ab3dE6gH9",
            "function": {"name": "w", "arguments": '{"city": "Paris"}'},
            "index": 0,
        },
        {"id": "Zz9yY8xX7", "function": {"name": "w", "arguments": {"city": "Rome"}}, "index": 1},
    ]
    chunks, _ = _events(
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"tool_calls": calls}),
        _chunk({"content": ""}, "tool_calls"),
        b"[DONE]",
    )
    response = accumulate(chunks)
    assert [(c.id, json.loads(c.function.arguments)) for c in response.tool_calls] == [
        ("Ab3dE6gH9", {"city": "Paris"}),
        ("Zz9yY8xX7", {"city": "Rome"}),
    ]
    assert response.choices[0].finish_reason == "tool_calls"


def test_mistral_stream_call_delta_for_an_unopened_index_is_an_error() -> None:
    _, out = _events(_chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}))
    assert isinstance(out[0], llmkit.LLMError)
    assert "never opened" in str(out[0])


@pytest.mark.parametrize(
    ("event", "error"),
    [
        (
            {
                "object": "error",
                "message": "Overloaded",
                "type": "internal_server_error",
                "code": None,
            },
            llmkit.ServiceUnavailableError,
        ),
        (
            {"object": "error", "message": "Slow down", "type": "rate_limited", "code": "1300"},
            llmkit.RateLimitError,
        ),
        ({"detail": [{"loc": ["body", "x"], "msg": "Bad"}]}, llmkit.InvalidRequestError),
        ({"message": "internal error"}, llmkit.ServiceUnavailableError),
        ({"message": {"detail": "Bad"}}, llmkit.ServiceUnavailableError),
        (
            {"object": "error", "message": "m", "type": 5, "code": {"n": 1}},
            llmkit.ServiceUnavailableError,
        ),
    ],
    ids=["server", "rate-limit", "detail", "bare-message", "message-object", "odd-types"],
)
def test_mistral_stream_error_event(event: dict[str, Any], error: type[llmkit.LLMError]) -> None:
    _, out = _events(_chunk({"content": "a"}), event, b"[DONE]")
    assert type(out[1]) is error
    assert out[1].message


def test_mistral_stream_event_named_error_raises() -> None:
    state = StreamState(provider="mistral", model=MODEL)
    data = json.dumps(_chunk({"content": "a"})).encode()
    assert isinstance(decode_event(KEY, SSEEvent(None, data, None, None), state), StreamChunk)
    for payload in (b'{"message": "Overloaded"}', b"Overloaded", b""):
        found = decode_event(KEY, SSEEvent("error", payload, None, None), state)
        assert isinstance(found, llmkit.ServiceUnavailableError), payload
        assert "Overloaded" in found.message or not payload


def _stream_through_core(*events: bytes) -> list[Any]:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=b"".join(events)
        )

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        config = {"api_key": API_KEY, "http_client": client, "retries": 0}
        return list(core.stream("mistral", MODEL, {"messages": HI}, config))


@pytest.mark.parametrize(
    "error_event",
    [b'data: {"message":"internal error"}\n\n', b"event: error\ndata: internal error\n\n"],
    ids=["bare-message", "event-error"],
)
def test_mistral_error_mid_stream_raises_with_the_servers_words(error_event: bytes) -> None:
    first = b"data: " + json.dumps(_chunk({"role": "assistant", "content": "hi"})).encode()
    with pytest.raises(llmkit.LLMError, match="internal error"):
        _stream_through_core(first + b"\n\n", error_event, b"data: [DONE]\n\n")


def test_mistral_deeply_nested_json_is_a_clear_error() -> None:
    deep = b'{"a":' * 50_000 + b"1" + b"}" * 50_000
    arguments = (
        b'{"id":"r","choices":[{"index":0,"message":{"tool_calls":[{"function":{"arguments":'
    )
    body = arguments + deep + b"}}]}}]}"
    with pytest.raises(llmkit.LLMError, match="nested too deeply") as info:
        _decoded(body)
    assert info.value.status == 200
    event = b'{"id":"c","choices":[{"index":0,"delta":{"content":[{"type":"text","x":'
    _, out = _events(event + deep + b"}]}}]}")
    assert isinstance(out[0], llmkit.LLMError)
    assert "nested too deeply" in out[0].message
    error = _error(500, b'{"message":"down","x":' + deep + b"}")
    assert type(error) is llmkit.ServiceUnavailableError


def test_mistral_deeply_nested_json_does_not_blame_the_provider_package() -> None:
    deep = b'{"id":"r","choices":[{"index":0,"message":{"content":[{"type":"text","x":'
    deep += b"[" * 50_000 + b"]" * 50_000 + b"}]}}]}"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=deep)

    with (
        httpx.Client(transport=httpx.MockTransport(handler)) as client,
        pytest.raises(llmkit.LLMError) as info,
    ):
        core.mistral_completion(
            MODEL, {"messages": HI}, api_key=API_KEY, http_client=client, retries=0
        )
    assert "nested too deeply" in info.value.message
    assert "provider package" not in info.value.message


def test_mistral_stream_garbage_event_is_an_error_and_empty_object_is_nothing() -> None:
    _, out = _events(b"{not json", {})
    assert isinstance(out[0], llmkit.LLMError)
    assert "not a chunk" in str(out[0])
    assert out[1] is None


# --- errors ------------------------------------------------------------------------------------


def _error(status: int, body: Any) -> llmkit.LLMError:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return cast(
        llmkit.LLMError,
        decode_error(KEY, HttpResponse(status=status, headers={}, body=raw), _request()),
    )


def test_mistral_422_validation_errors_named_by_field() -> None:
    detail = [
        {
            "type": "extra_forbidden",
            "loc": ["body", "max_completion_tokens"],
            "msg": "Extra inputs are not permitted",
            "input": 5,
        },
        {
            "type": "missing",
            "loc": ["body", "tools", 0, "function", "parameters"],
            "msg": "Field required",
        },
    ]
    wrapped = {
        "object": "error",
        "message": {"detail": detail},
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    for body in (
        wrapped,
        {"detail": detail},
        {**wrapped, "message": json.dumps({"detail": detail})},
    ):
        error = _error(422, body)
        assert type(error) is llmkit.InvalidRequestError
        assert error.status == 422
        assert "max_completion_tokens: Extra inputs are not permitted" in error.message
        assert "tools.0.function.parameters: Field required" in error.message


@pytest.mark.parametrize(
    ("status", "body", "error", "code"),
    [
        (
            429,
            {
                "object": "error",
                "message": "Rate limit exceeded",
                "type": "rate_limited",
                "param": None,
                "code": "1300",
            },
            llmkit.RateLimitError,
            "1300",
        ),
        (429, {"message": "Requests rate limit exceeded"}, llmkit.RateLimitError, None),
        (401, {"message": "Unauthorized", "request_id": "abc"}, llmkit.AuthenticationError, None),
        (
            403,
            {"object": "error", "message": "No access", "type": "forbidden"},
            llmkit.PermissionDeniedError,
            "forbidden",
        ),
        (
            400,
            {
                "object": "error",
                "message": "Invalid model: nope",
                "type": "invalid_model",
                "code": "1500",
            },
            llmkit.NotFoundError,
            "1500",
        ),
        (404, {"detail": "Not Found"}, llmkit.NotFoundError, None),
        (
            400,
            {
                "object": "error",
                "message": "Tool call id was x but must be a-z, A-Z, 0-9, with a length of 9.",
                "type": "invalid_function_call",
                "code": "3280",
            },
            llmkit.InvalidRequestError,
            "3280",
        ),
        (
            400,
            {
                "object": "error",
                "message": "Prompt contains 40010 tokens and 0 draft tokens, too large for model with 32768 maximum context length",
                "type": "invalid_request_error",
            },
            llmkit.ContextWindowError,
            "invalid_request_error",
        ),
        (
            503,
            {"object": "error", "message": "Service unavailable", "type": "internal_server_error"},
            llmkit.ServiceUnavailableError,
            "internal_server_error",
        ),
        (500, b"", llmkit.ServiceUnavailableError, None),
        (502, b"<html>Bad gateway</html>", llmkit.ServiceUnavailableError, None),
        (
            400,
            {"error": {"message": "proxy says no", "type": "invalid_request_error"}},
            llmkit.InvalidRequestError,
            "invalid_request_error",
        ),
        (418, {"object": "error", "message": "teapot"}, llmkit.LLMError, None),
    ],
    ids=[
        "rate-limited",
        "rate-limit-bare",
        "401",
        "403",
        "invalid-model",
        "404",
        "tool-id",
        "context",
        "503",
        "empty-500",
        "html-502",
        "proxy",
        "418",
    ],
)
def test_mistral_error_bodies(
    status: int, body: Any, error: type[llmkit.LLMError], code: str | None
) -> None:
    found = _error(status, body)
    assert type(found) is error
    assert found.status == status
    assert found.provider == "mistral"
    assert found.code == code
    assert found.message
    assert found.retryable is (status == 429 or status >= 500)


def _completion_error(status: int, body: bytes) -> llmkit.LLMError:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body)

    with (
        httpx.Client(transport=httpx.MockTransport(handler)) as client,
        pytest.raises(llmkit.LLMError) as info,
    ):
        core.mistral_completion(
            MODEL, {"messages": HI}, api_key=API_KEY, http_client=client, retries=0
        )
    return info.value


ESCAPED_KEY = "\\u0073" + API_KEY[1:]


@pytest.mark.parametrize(
    "body",
    [
        b'{"x":"key ' + ESCAPED_KEY.encode() + b'","pad":"' + b"A" * 70_000 + b'"}',
        b'{"x":"key ' + ESCAPED_KEY.encode() + b'","pad":"' + b"A" * 70_000,
        b'{"x":"key ' + ESCAPED_KEY.encode() + b'","d":' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        b'{"x":"key ' + ESCAPED_KEY.encode() + b'"}',
    ],
    ids=["large-json", "large-cut-json", "deep-json", "small-json"],
)
def test_mistral_escaped_key_in_an_error_body_is_scrubbed(body: bytes) -> None:
    assert API_KEY not in body.decode()
    # The codec shows the key plainly, so the scrubber finds it...
    assert API_KEY in error_from_body(500, body, MODEL).message
    # ...and the error the user sees holds no trace of it.
    error = _completion_error(500, body)
    assert type(error) is llmkit.ServiceUnavailableError
    assert API_KEY[3:15] not in str(error)
    assert "key ***" in error.message


def test_mistral_large_body_escapes_resolved_whole() -> None:
    body = b'{"x":"\\ud83d\\ude00 \\ud800 \\/ \\\\u0073","pad":"' + b"A" * 70_000 + b'"}'
    message = error_from_body(500, body, MODEL).message
    assert message.startswith('{"x":"\U0001f600 \ufffd / \\u0073"')


def test_mistral_error_message_is_capped() -> None:
    error = _completion_error(500, b'{"message":"' + b"A" * 200_000 + b'"}')
    assert type(error) is llmkit.ServiceUnavailableError
    assert len(error.message) < 700
    assert "more characters" in error.message
    assert error.message.startswith("A" * 400)
    # The whole message is read to classify it, not just the start shown.
    long = {"object": "error", "message": "x " * 400 + "too large for model", "type": "t"}
    assert type(_error(400, long)) is llmkit.ContextWindowError


@pytest.mark.parametrize("start", [440, 488, 495, 499])
def test_mistral_message_cut_leaves_no_piece_of_a_key(start: int) -> None:
    text = ("x " * 300)[:start] + API_KEY + " and more" * 50
    error = error_from_body(401, json.dumps({"message": text}).encode(), MODEL)
    assert "more characters" in error.message
    # Whole (the scrubber's to replace) or not at all, never a piece.
    assert API_KEY in error.message or API_KEY[:4] not in error.message
    scrubbed = _completion_error(401, json.dumps({"message": text}).encode())
    assert API_KEY[:4] not in str(scrubbed)


def test_mistral_stream_error_status_from_type() -> None:
    assert (
        error_from_body(
            None, b'{"object": "error", "message": "m", "type": "rate_limited"}', MODEL
        ).status
        == 429
    )
    assert error_from_body(None, b'{"object": "error", "message": "m"}', MODEL).status == 500


def test_mistral_rate_limit_takes_retry_after() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {
            "object": "error",
            "message": "Rate limit exceeded",
            "type": "rate_limited",
            "code": "1300",
        }
        return httpx.Response(429, json=body, headers={"retry-after": "3"})

    with (
        httpx.Client(transport=httpx.MockTransport(handler)) as client,
        pytest.raises(llmkit.RateLimitError) as info,
    ):
        core.mistral_completion(
            MODEL, {"messages": HI}, api_key=API_KEY, http_client=client, retries=0
        )
    assert info.value.retry_after == 3.0
    assert info.value.retryable


def test_mistral_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)
    with pytest.raises(llmkit.AuthenticationError, match="MISTRAL_API_KEY"):
        core.mistral_completion(MODEL, {"messages": HI})


def test_mistral_sends_the_struct_unchanged_on_the_fast_path() -> None:
    # No reshaping needed: the body is the request's own encoding.
    request = {
        "messages": HI,
        "tools": [WEATHER],
        "tool_choice": "auto",
        "response_format": {"type": "json_object"},
    }
    body = _body(dict(request))
    expected = msgspec.to_builtins(msgspec.convert({"model": MODEL, **request}, ChatRequest))
    assert body == expected
