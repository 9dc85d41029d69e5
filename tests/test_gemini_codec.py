"""Unit tests of the Gemini codec's edges that the recorded corpus does not reach."""

from __future__ import annotations

import json
from typing import Any, cast

import msgspec
import pytest

import llmkit
import llmkit_providers.gemini  # noqa: F401  registers "gemini" before the per-test snapshot
from llmkit._framing import SSEEvent
from llmkit.config import Config, resolve_config
from llmkit.generics import (
    capabilities,
    decode_error,
    decode_event,
    decode_response,
    encode_request,
)
from llmkit.types import ChatRequest, ChatResponse, HttpCall, HttpResponse, StreamChunk, StreamState
from llmkit_providers.gemini import SKIP_SIGNATURE, Gemini, GeminiOptions, error_from_body

KEY = Gemini()
API_KEY = "AIzaSy-codec-test-0000000000000"
WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def _call(request: dict[str, Any], options: dict[str, Any] | None = None) -> HttpCall:
    config = resolve_config(KEY, Config(api_key=API_KEY, options=options))
    full = {"model": "gemini-2.5-flash", **request}
    checked = llmkit.validate_request("gemini", full)
    # validate_request reads a request for a plain call; streaming is the call's choice.
    checked = msgspec.structs.replace(checked, stream=bool(request.get("stream")))
    return cast(HttpCall, encode_request(KEY, checked, config))


def _body(request: dict[str, Any], options: dict[str, Any] | None = None) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(_call(request, options).body))


def _user(text: str = "Hi") -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def _calls(*ids: str) -> dict[str, Any]:
    return {
        "role": "assistant",
        "tool_calls": [
            {"id": i, "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
            for i in ids
        ],
    }


# --- requests ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "path"),
    [
        ("gemini-2.5-flash", "/models/gemini-2.5-flash:generateContent"),
        ("models/gemini-2.5-flash", "/models/gemini-2.5-flash:generateContent"),
        ("tunedModels/my-model-7", "/tunedModels/my-model-7:generateContent"),
    ],
)
def test_gemini_model_goes_into_the_path(model: str, path: str) -> None:
    call = _call({**_user(), "model": model})
    assert call.url == "https://generativelanguage.googleapis.com/v1beta" + path
    assert call.headers["x-goog-api-key"] == API_KEY
    assert "model" not in json.loads(call.body)


def test_gemini_stream_path_asks_for_sse() -> None:
    call = _call({**_user(), "stream": True})
    assert call.url.endswith("/models/gemini-2.5-flash:streamGenerateContent?alt=sse")
    assert call.stream is True
    assert call.framing == "sse"


@pytest.mark.parametrize(
    "model", ["gemini?key=x", "gemini 2", "models/../x", "a:generateContent", "x/y", "-lead"]
)
def test_gemini_model_that_breaks_the_url_is_refused(model: str) -> None:
    with pytest.raises(llmkit.InvalidRequestError, match="cannot go into Gemini's URL"):
        _call({**_user(), "model": model})


def test_gemini_system_and_developer_become_the_system_instruction() -> None:
    body = _body(
        {
            "messages": [
                {"role": "system", "content": "One."},
                {"role": "developer", "content": [{"type": "text", "text": "Two."}]},
                {"role": "user", "content": "Hi"},
            ]
        }
    )
    assert body["systemInstruction"] == {"parts": [{"text": "One."}, {"text": "Two."}]}
    assert body["contents"] == [{"role": "user", "parts": [{"text": "Hi"}]}]


def test_gemini_media_parts() -> None:
    body = _body(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                        {"type": "image_url", "image_url": {"url": "https://x.test/cat.JPG?s=1"}},
                        {"type": "image_url", "image_url": {"url": "https://youtu.be/abc"}},
                        {"type": "image_url", "image_url": {"url": "https://x.test/noext"}},
                        {"type": "input_audio", "input_audio": {"data": "BBBB", "format": "mp3"}},
                        {"type": "file", "file": {"file_data": "data:application/pdf;base64,CC=="}},
                        {
                            "type": "file",
                            "file": {"file_id": "https://f.test/files/1", "filename": "a.wav"},
                        },
                    ],
                }
            ]
        }
    )
    assert body["contents"][0]["parts"] == [
        {"inlineData": {"mimeType": "image/png", "data": "AAAA"}},
        {"fileData": {"fileUri": "https://x.test/cat.JPG?s=1", "mimeType": "image/jpeg"}},
        {"fileData": {"fileUri": "https://youtu.be/abc", "mimeType": "video/mp4"}},
        {"fileData": {"fileUri": "https://x.test/noext"}},
        {"inlineData": {"mimeType": "audio/mp3", "data": "BBBB"}},
        {"inlineData": {"mimeType": "application/pdf", "data": "CC=="}},
        {"fileData": {"fileUri": "https://f.test/files/1", "mimeType": "audio/wav"}},
    ]


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("http://x.test/a.png", "cannot fetch"),
        ("ftp://x.test/a.png", "cannot fetch"),
        ("data:image/png,rawbytes", "not base64"),
        ("data:;base64,AAAA", "not base64"),
    ],
)
def test_gemini_image_gemini_cannot_take_is_refused(url: str, match: str) -> None:
    content = [{"type": "image_url", "image_url": {"url": url}}]
    with pytest.raises(llmkit.InvalidRequestError, match=match):
        _call({"messages": [{"role": "user", "content": content}]})


def test_gemini_tool_round_trip_pairs_by_id_and_merges_results() -> None:
    body = _body(
        {
            "messages": [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                _calls("a", "b"),
                {"role": "tool", "tool_call_id": "a", "content": "18 degrees"},
                {"role": "tool", "tool_call_id": "b", "content": '{"temp": 21}'},
                {"role": "user", "content": "Thanks"},
            ],
            "tools": [WEATHER],
        }
    )
    model, answers, user = body["contents"][1:]
    assert model == {
        "role": "model",
        "parts": [
            {"functionCall": {"name": "get_weather", "args": {}, "id": "a"}},
            {"functionCall": {"name": "get_weather", "args": {}, "id": "b"}},
        ],
    }
    # One content answers the whole call turn; a JSON object result is the response itself.
    assert answers == {
        "role": "user",
        "parts": [
            {
                "functionResponse": {
                    "name": "get_weather",
                    "response": {"output": "18 degrees"},
                    "id": "a",
                }
            },
            {"functionResponse": {"name": "get_weather", "response": {"temp": 21}, "id": "b"}},
        ],
    }
    assert user == {"role": "user", "parts": [{"text": "Thanks"}]}
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {"name": "get_weather", "parametersJsonSchema": WEATHER["function"]["parameters"]}
            ]
        }
    ]


def test_gemini_tool_result_for_an_unknown_call_is_refused() -> None:
    with pytest.raises(llmkit.InvalidRequestError, match="no earlier assistant message made"):
        _call(
            {
                "messages": [
                    {"role": "user", "content": "x"},
                    {"role": "tool", "tool_call_id": "z", "content": "1"},
                ]
            }
        )


def test_gemini_arguments_must_be_an_object() -> None:
    bad = _calls("a")
    bad["tool_calls"][0]["function"]["arguments"] = "[1, 2]"
    with pytest.raises(llmkit.InvalidRequestError, match="not a JSON object"):
        _call({"messages": [{"role": "user", "content": "x"}, bad]})


@pytest.mark.parametrize(
    ("model", "signed"), [("gemini-3-flash-preview", True), ("gemini-2.5-flash", False)]
)
def test_gemini_3_unsigned_calls_get_the_placeholder(model: str, signed: bool) -> None:
    body = _body(
        {
            "model": model,
            "messages": [
                {"role": "user", "content": "x"},
                _calls("a", "b"),
                {"role": "tool", "tool_call_id": "a", "content": "1"},
                {"role": "tool", "tool_call_id": "b", "content": "2"},
            ],
        }
    )
    first, second = body["contents"][1]["parts"]
    assert first.get("thoughtSignature") == (SKIP_SIGNATURE if signed else None)
    assert "thoughtSignature" not in second


def test_gemini_signatures_go_back_on_their_parts() -> None:
    message = {
        **_calls("a"),
        "content": "",
        "reasoning": "Thinking.",
        "provider_data": {
            "gemini": {
                "thought_signature": "T",
                "text_signature": "X",
                "call_signatures": {"a": "C"},
            },
            "anthropic": {"ignored": True},
        },
    }
    body = _body(
        {
            "model": "gemini-3-flash-preview",
            "messages": [
                {"role": "user", "content": "x"},
                message,
                {"role": "tool", "tool_call_id": "a", "content": "1"},
            ],
        }
    )
    assert body["contents"][1]["parts"] == [
        {"text": "Thinking.", "thought": True, "thoughtSignature": "T"},
        {"functionCall": {"name": "get_weather", "args": {}, "id": "a"}, "thoughtSignature": "C"},
        # A stream's text signature can come on an empty text part after the calls.
        {"text": "", "thoughtSignature": "X"},
    ]


def test_gemini_unsigned_reasoning_is_not_sent_back() -> None:
    body = _body(
        {
            "messages": [
                {"role": "user", "content": "x"},
                {"role": "assistant", "content": "42", "reasoning": "Six times seven."},
                {"role": "user", "content": "y"},
            ]
        }
    )
    assert body["contents"][1] == {"role": "model", "parts": [{"text": "42"}]}


def test_gemini_malformed_provider_data_is_refused() -> None:
    message = {"role": "assistant", "content": "x", "provider_data": {"gemini": "sig"}}
    with pytest.raises(llmkit.InvalidRequestError, match="provider_data"):
        _call({"messages": [{"role": "user", "content": "x"}, message]})


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"mode": "ANY", "allowedFunctionNames": ["get_weather"]},
        ),
    ],
    ids=["auto", "none", "required", "named"],
)
def test_gemini_tool_choice(choice: Any, config: dict[str, Any]) -> None:
    body = _body({**_user(), "tools": [WEATHER], "tool_choice": choice})
    assert body["toolConfig"] == {"functionCallingConfig": config}


def test_gemini_generation_config_and_options() -> None:
    body = _body(
        {
            **_user(),
            "max_completion_tokens": 64,
            "temperature": 0.2,
            "top_p": 0.5,
            "seed": 3,
            "n": 2,
            "stop": "END",
            "response_format": {"type": "json_object"},
        },
        {
            "thinking_level": "low",
            "include_thoughts": True,
            "top_k": 5,
            "safety_settings": [
                {"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}
            ],
            "cached_content": "cachedContents/1",
        },
    )
    assert body["generationConfig"] == {
        "maxOutputTokens": 64,
        "temperature": 0.2,
        "topP": 0.5,
        "seed": 3,
        "candidateCount": 2,
        "stopSequences": ["END"],
        "responseMimeType": "application/json",
        "topK": 5,
        "thinkingConfig": {"thinkingLevel": "LOW", "includeThoughts": True},
    }
    assert body["safetySettings"] == [
        {"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}
    ]
    assert body["cachedContent"] == "cachedContents/1"


def test_gemini_json_schema_output_uses_response_json_schema() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"$ref": "#/$defs/A"}},
        "$defs": {"A": {"type": ["string", "null"]}},
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema, "strict": True}}
    config = _body({**_user(), "response_format": fmt})["generationConfig"]
    assert config == {"responseMimeType": "application/json", "responseJsonSchema": schema}


def test_gemini_extra_body_is_merged_deeply() -> None:
    body = _body(
        {
            **_user(),
            "max_tokens": 9,
            "extra_body": {"generationConfig": {"topK": 3}, "labels": {"a": "b"}},
        }
    )
    assert body["generationConfig"] == {"maxOutputTokens": 9, "topK": 3}
    assert body["labels"] == {"a": "b"}


@pytest.mark.parametrize(
    ("request_", "options", "match"),
    [
        ({"stop": ["1", "2", "3", "4", "5", "6"]}, None, "at most 5"),
        ({"n": 2, "stream": True}, None, "n > 1 with stream"),
        ({}, {"thinking_budget": 10, "thinking_level": "high"}, "one of them"),
        (
            {"tools": [{"type": "function", "function": {"name": "9lives"}}]},
            None,
            "not a Gemini function name",
        ),
        (
            {
                "tools": [
                    {
                        "type": "function",
                        "function": {"name": "f", "parameters": {"type": "string"}},
                    }
                ]
            },
            None,
            "as an object",
        ),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {"$ref": "https://x.test/s.json"}},
                }
            },
            None,
            "inline the referenced schema",
        ),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {
                        "name": "x",
                        "schema": {"type": "object", "properties": {"a": {"type": "text"}}},
                    },
                }
            },
            None,
            "not a JSON Schema type",
        ),
        ({"messages": [{"role": "user", "content": []}]}, None, "no content parts"),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "content": [{"type": "image_url", "image_url": {"url": "https://x"}}],
                    }
                ]
            },
            None,
            "takes only text here",
        ),
    ],
    ids=[
        "stops",
        "n-stream",
        "budget-and-level",
        "name",
        "non-object",
        "remote-ref",
        "type",
        "empty",
        "assistant-image",
    ],
)
def test_gemini_what_gemini_cannot_take_is_refused_before_sending(
    request_: dict[str, Any], options: dict[str, Any] | None, match: str
) -> None:
    with pytest.raises(llmkit.InvalidRequestError, match=match) as info:
        _call({**_user(), **request_}, options)
    assert info.value.provider == "gemini"


def test_gemini_options_are_checked() -> None:
    with pytest.raises(llmkit.InvalidRequestError, match="its options are"):
        _call(_user(), {"thinking": 1})
    with pytest.raises(llmkit.InvalidRequestError, match="thinking_level"):
        _call(_user(), {"thinking_level": "extreme"})
    config = resolve_config(KEY, Config(api_key=API_KEY, options={"top_k": 1}))
    assert isinstance(config.options, GeminiOptions)


def test_gemini_key_comes_from_google_api_key_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "AIzaSy-from-google-api-key")
    assert resolve_config(KEY, Config()).api_key == "AIzaSy-from-google-api-key"
    monkeypatch.setenv("GEMINI_API_KEY", "AIzaSy-from-gemini-api-key")
    assert resolve_config(KEY, Config()).api_key == "AIzaSy-from-gemini-api-key"


# --- responses -----------------------------------------------------------------------

REQUEST = ChatRequest(model="gemini-2.5-flash", messages=[llmkit.Message(role="user", content="x")])


def _decode(data: dict[str, Any]) -> ChatResponse:
    response = HttpResponse(status=200, headers={}, body=json.dumps(data).encode())
    return cast(ChatResponse, decode_response(KEY, response, REQUEST))


def _candidate(parts: list[dict[str, Any]], finish: str = "STOP") -> dict[str, Any]:
    return {"candidates": [{"content": {"parts": parts, "role": "model"}, "finishReason": finish}]}


@pytest.mark.parametrize(
    ("native", "parts", "expected"),
    [
        ("STOP", [{"text": "a"}], "stop"),
        ("STOP", [{"functionCall": {"name": "f", "args": {}}}], "tool_calls"),
        ("MAX_TOKENS", [{"text": "a"}], "length"),
        ("SAFETY", [], "content_filter"),
        ("RECITATION", [{"text": "a"}], "content_filter"),
        ("PROHIBITED_CONTENT", [], "content_filter"),
        ("SPII", [], "content_filter"),
        ("BLOCKLIST", [], "content_filter"),
        ("MALFORMED_FUNCTION_CALL", [], "stop"),
        ("SOMETHING_NEW", [{"text": "a"}], "stop"),
    ],
)
def test_gemini_finish_reasons(native: str, parts: list[dict[str, Any]], expected: str) -> None:
    [choice] = _decode(_candidate(parts, native)).choices
    assert (choice.finish_reason, choice.native_finish_reason) == (expected, native)


def test_gemini_usage_counts_thoughts_and_tool_prompts() -> None:
    data = {
        **_candidate([{"text": "a"}]),
        "usageMetadata": {
            "promptTokenCount": 100,
            "cachedContentTokenCount": 60,
            "toolUsePromptTokenCount": 5,
            "candidatesTokenCount": 10,
            "thoughtsTokenCount": 30,
            "totalTokenCount": 145,
        },
    }
    usage = _decode(data).usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (105, 40, 145)
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 60
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 30


def test_gemini_calls_without_ids_are_numbered_per_response() -> None:
    data = {
        **_candidate(
            [{"functionCall": {"name": "f"}}, {"functionCall": {"name": "g", "args": {"a": 1}}}]
        ),
        "responseId": "r1",
    }
    calls = _decode(data).tool_calls
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [
        ("call_r1_0", "f", "{}"),
        ("call_r1_1", "g", '{"a": 1}'),
    ]


def test_gemini_blocked_prompt_raises_content_filter() -> None:
    data = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 5}}
    with pytest.raises(llmkit.ContentFilterError, match="blocked the prompt") as info:
        _decode(data)
    assert info.value.code == "SAFETY"


@pytest.mark.parametrize("body", [b"<html>", b"{}", b'{"candidates": []}'])
def test_gemini_body_without_candidates_raises(body: bytes) -> None:
    response = HttpResponse(status=200, headers={}, body=body)
    with pytest.raises(llmkit.LLMError):
        decode_response(KEY, response, REQUEST)


# --- streams -------------------------------------------------------------------------


def _events(*chunks: dict[str, Any]) -> tuple[list[Any], StreamState]:
    state = StreamState(provider="gemini", model="gemini-2.5-flash")
    out = [
        decode_event(KEY, SSEEvent(None, json.dumps(chunk).encode(), None, None), state)
        for chunk in chunks
    ]
    return out, state


def test_gemini_stream_numbers_calls_across_events_and_ends_at_the_finish() -> None:
    first = {
        "candidates": [
            {"content": {"parts": [{"functionCall": {"name": "f"}, "thoughtSignature": "S"}]}}
        ],
        "responseId": "r",
    }
    second = {
        "candidates": [{"content": {"parts": [{"functionCall": {"name": "g"}}]}}],
        "responseId": "r",
    }
    last = {
        **_candidate([{"text": "", "thoughtSignature": "T"}]),
        "responseId": "r",
        "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 2, "totalTokenCount": 3},
    }
    chunks, state = _events(first, second, last)
    assert state.done is True
    a, b, c = (cast(StreamChunk, chunk).choices[0] for chunk in chunks)
    assert a.delta.role == "assistant"
    assert b.delta.role is None
    assert [(d.index, d.id) for d in (a.delta.tool_calls or []) + (b.delta.tool_calls or [])] == [
        (0, "call_r_0"),
        (1, "call_r_1"),
    ]
    assert a.delta.provider_data == {"gemini": {"call_signatures": {"call_r_0": "S"}}}
    # Each provider_data delta holds everything so far (deltas replace it whole).
    assert c.delta.provider_data == {
        "gemini": {"call_signatures": {"call_r_0": "S"}, "text_signature": "T"}
    }
    assert (c.finish_reason, c.native_finish_reason) == ("tool_calls", "STOP")
    assert cast(StreamChunk, chunks[-1]).usage is not None
    assert cast(StreamChunk, chunks[0]).usage is None


def test_gemini_stream_error_event_and_block_raise_mapped_errors() -> None:
    [error], state = _events(
        {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    )
    assert isinstance(error, llmkit.ServiceUnavailableError)
    assert error.status == 503
    [error], _ = _events({"error": {"message": "quota", "status": "RESOURCE_EXHAUSTED"}})
    assert isinstance(error, llmkit.RateLimitError)
    assert error.status == 429
    [blocked], _ = _events({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}})
    assert isinstance(blocked, llmkit.ContentFilterError)
    bad = decode_event(KEY, SSEEvent(None, b"{not json", None, None), StreamState())
    assert isinstance(bad, llmkit.LLMError)
    assert state.done is False


# --- errors --------------------------------------------------------------------------


def _error(status: int, error: dict[str, Any] | None = None, **headers: str) -> llmkit.LLMError:
    body = (
        json.dumps({"error": error}).encode() if error is not None else b"<html>Bad Gateway</html>"
    )
    response = HttpResponse(status=status, headers=headers, body=body)
    return cast(llmkit.LLMError, decode_error(KEY, response, REQUEST))


_INVALID_KEY = {
    "code": 400,
    "message": "API key not valid. Please pass a valid API key.",
    "status": "INVALID_ARGUMENT",
    "details": [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
        }
    ],
}
_NO_KEY = {
    "code": 403,
    "message": "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
    "status": "PERMISSION_DENIED",
}
_QUOTA = {
    "code": 429,
    "message": "You exceeded your current quota, please check your plan and billing details.",
    "status": "RESOURCE_EXHAUSTED",
    "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "34s"}],
}


@pytest.mark.parametrize(
    ("status", "error", "expected", "code"),
    [
        (400, _INVALID_KEY, llmkit.AuthenticationError, "API_KEY_INVALID"),
        (403, _NO_KEY, llmkit.AuthenticationError, "PERMISSION_DENIED"),
        (
            403,
            {
                "code": 403,
                "message": "The caller does not have permission",
                "status": "PERMISSION_DENIED",
            },
            llmkit.PermissionDeniedError,
            "PERMISSION_DENIED",
        ),
        (
            401,
            {
                "code": 401,
                "message": "Request had invalid authentication credentials.",
                "status": "UNAUTHENTICATED",
            },
            llmkit.AuthenticationError,
            "UNAUTHENTICATED",
        ),
        (
            404,
            {"code": 404, "message": "models/x is not found", "status": "NOT_FOUND"},
            llmkit.NotFoundError,
            "NOT_FOUND",
        ),
        (
            400,
            {
                "code": 400,
                "message": "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
                "status": "INVALID_ARGUMENT",
            },
            llmkit.ContextWindowError,
            "INVALID_ARGUMENT",
        ),
        (
            400,
            {
                "code": 400,
                "message": "Invalid JSON payload received.",
                "status": "INVALID_ARGUMENT",
            },
            llmkit.InvalidRequestError,
            "INVALID_ARGUMENT",
        ),
        (429, _QUOTA, llmkit.RateLimitError, "RESOURCE_EXHAUSTED"),
        (
            500,
            {"code": 500, "message": "An internal error has occurred.", "status": "INTERNAL"},
            llmkit.ServiceUnavailableError,
            "INTERNAL",
        ),
        (
            503,
            {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"},
            llmkit.ServiceUnavailableError,
            "UNAVAILABLE",
        ),
        (
            504,
            {"code": 504, "message": "Deadline expired.", "status": "DEADLINE_EXCEEDED"},
            llmkit.ServiceUnavailableError,
            "DEADLINE_EXCEEDED",
        ),
        (502, None, llmkit.ServiceUnavailableError, None),
        (418, {"code": 418, "message": "teapot"}, llmkit.LLMError, None),
    ],
    ids=[
        "bad-key",
        "no-key",
        "403",
        "401",
        "404",
        "context",
        "400",
        "429",
        "500",
        "503",
        "504",
        "html",
        "418",
    ],
)
def test_gemini_error_mapping(
    status: int, error: dict[str, Any] | None, expected: type[llmkit.LLMError], code: str | None
) -> None:
    got = _error(status, error)
    assert type(got) is expected
    assert (got.status, got.code) == (status, code)
    assert got.retryable is (status in (429, 500, 502, 503, 504))
    if error is not None:
        assert error["message"] in got.message


def test_gemini_rate_limit_waits_as_google_says_unless_a_header_does() -> None:
    assert _error(429, _QUOTA).retry_after == 34.0
    assert (
        _error(429, _QUOTA, **{"retry-after": "7"}).retry_after is None
    )  # the transport reads the header


def test_gemini_error_envelope_in_a_list() -> None:
    body = json.dumps([{"error": _QUOTA}]).encode()
    assert isinstance(error_from_body(429, body, "m"), llmkit.RateLimitError)
    assert "empty body" in error_from_body(500, b"", "m").message


# --- capabilities --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "tools", "reasoning"),
    [
        ("gemini-2.5-flash", True, True),
        ("models/gemini-2.5-pro", True, True),
        ("gemini-3-flash-preview", True, True),
        ("gemini-2.0-flash", True, False),
        ("gemini-2.0-flash-thinking-exp", True, True),
        ("gemini-1.5-flash", True, False),
        ("gemini-flash-latest", True, True),
        ("", True, True),
        ("gemma-3-27b-it", False, False),
    ],
)
def test_gemini_capabilities(model: str, tools: bool, reasoning: bool) -> None:
    caps = cast(llmkit.Capabilities, capabilities(KEY, model))
    assert caps.streaming is True
    assert (caps.tools, caps.json_schema, caps.reasoning) == (tools, tools, reasoning)
    assert caps.vision is (not model.startswith("gemma") or model.startswith("gemma-3"))
    assert msgspec.to_builtins(caps)  # a plain struct


def test_gemini_less_common_inputs() -> None:
    call = _call({**_user(), "extra_headers": {"x-goog-user-project": "p1"}})
    assert call.headers["x-goog-user-project"] == "p1"
    body = _body(
        {
            "messages": [
                {"role": "user", "content": "x"},
                {**_calls("a"), "content": [{"type": "text", "text": "Calling."}]},
                {"role": "tool", "tool_call_id": "a", "content": "{not json"},
            ]
        }
    )
    assert body["contents"][1]["parts"][0] == {"text": "Calling."}
    assert body["contents"][2]["parts"][0]["functionResponse"]["response"] == {
        "output": "{not json"
    }
    broken = _calls("a")
    broken["tool_calls"][0]["function"]["arguments"] = "{oops"
    with pytest.raises(llmkit.InvalidRequestError, match="not a JSON object"):
        _call({"messages": [{"role": "user", "content": "x"}, broken]})
    with pytest.raises(llmkit.InvalidRequestError, match="neither file_data nor file_id"):
        _call(
            {
                "messages": [
                    {"role": "user", "content": [{"type": "file", "file": {"filename": "a.pdf"}}]}
                ]
            }
        )
    with pytest.raises(llmkit.InvalidRequestError, match="takes function tools"):
        _call({**_user(), "tools": [{"type": "web_search", "function": {"name": "f"}}]})


def test_gemini_thought_signature_and_error_in_a_200_body() -> None:
    data = _candidate([{"text": "Hmm.", "thought": True, "thoughtSignature": "T"}, {"text": "Hi"}])
    message = _decode(data).choices[0].message
    assert (message.reasoning, message.content) == ("Hmm.", "Hi")
    assert message.provider_data == {"gemini": {"thought_signature": "T"}}
    with pytest.raises(llmkit.ServiceUnavailableError):
        _decode({"error": {"code": 503, "message": "Overloaded.", "status": "UNAVAILABLE"}})
