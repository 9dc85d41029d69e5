"""The Gemini emulator protocol: its strict checks, what it answers, reading requests back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from llmkit_contracts.emulator import Reply
from llmkit_contracts.emulators.gemini import GeminiEmulator, GeminiProtocol

KEY = {"x-goog-api-key": "AIzaSy-emulator-test-000000000"}
FLASH = "/models/gemini-2.5-flash:generateContent"
GEMINI3 = "/models/gemini-3-flash-preview:generateContent"


@pytest.fixture(scope="module")
def emulator() -> Iterator[GeminiEmulator]:
    with GeminiEmulator() as emu:
        yield emu


@pytest.fixture
def client(emulator: GeminiEmulator) -> Iterator[httpx.Client]:
    emulator.reset()
    with httpx.Client(base_url=emulator.base_url, headers=KEY) as http:
        yield http


def _user(text: str = "Hi") -> dict[str, Any]:
    return {"role": "user", "parts": [{"text": text}]}


def _call(name: str = "f", signature: str | None = None) -> dict[str, Any]:
    part: dict[str, Any] = {"functionCall": {"name": name, "args": {}}}
    if signature is not None:
        part["thoughtSignature"] = signature
    return part


def _answer(name: str = "f") -> dict[str, Any]:
    return {"functionResponse": {"name": name, "response": {"output": "ok"}}}


def _refusal(client: httpx.Client, body: Any, path: str = FLASH) -> tuple[int, dict[str, Any]]:
    response = client.post(path, json=body)
    return response.status_code, response.json()["error"]


# --- strict checks ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        (
            FLASH,
            {"contents": [_user()], "temperature": 1},
            'Unknown name "temperature": Cannot find field.',
        ),
        (
            FLASH,
            {"contents": [_user()], "generationConfig": {"maxTokens": 5}},
            "Unknown name \"maxTokens\" at 'generation_config': Cannot find field.",
        ),
        (
            FLASH,
            {"contents": [{"role": "user", "parts": [{"text": "x", "bold": True}]}]},
            "Unknown name \"bold\" at 'contents[0].parts[0]': Cannot find field.",
        ),
        (
            FLASH,
            {"contents": [_user()], "generationConfig": {"temperature": "hot"}},
            "Invalid value at 'generation_config.temperature' (TYPE_FLOAT), \"hot\"",
        ),
        (
            FLASH,
            {"contents": [_user()], "toolConfig": {"functionCallingConfig": {"mode": "SOMETIMES"}}},
            "Invalid value at 'tool_config.function_calling_config.mode'",
        ),
        (
            FLASH,
            {"contents": [_user()], "systemInstruction": [{"parts": [{"text": "x"}]}]},
            "Proto field is not repeating, cannot start list.",
        ),
        (FLASH, {"contents": []}, "* GenerateContentRequest.contents: contents is not specified\n"),
        (
            FLASH,
            {"contents": [{"role": "user", "parts": []}]},
            "* GenerateContentRequest.contents[0].parts: contents.parts must not be empty.\n",
        ),
        (
            FLASH,
            {"contents": [{"role": "user", "parts": [{"thought": True}]}]},
            "contents[0].parts[0].data: required oneof field 'data' must have one initialized field",
        ),
        (
            FLASH,
            {"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]},
            "Please use a valid role: user, model.",
        ),
        (
            FLASH,
            {
                "contents": [
                    {"role": "model", "parts": [_call()]},
                    {"role": "user", "parts": [_answer()]},
                ]
            },
            "Please ensure that function call turn comes immediately after a user turn",
        ),
        (
            FLASH,
            {"contents": [_user(), {"role": "user", "parts": [_answer()]}]},
            "Please ensure that function response turn comes immediately after a function call turn.",
        ),
        (
            FLASH,
            {
                "contents": [
                    _user(),
                    {"role": "model", "parts": [_call(), _call("g")]},
                    {"role": "user", "parts": [_answer()]},
                ]
            },
            "Please ensure that the number of function response parts is equal to the number of "
            "function call parts of the function call turn.",
        ),
        (
            GEMINI3,
            {
                "contents": [
                    _user(),
                    {"role": "model", "parts": [_call("get_weather")]},
                    {"role": "user", "parts": [_answer()]},
                ]
            },
            "Function call is missing a thought_signature in functionCall parts. This is required "
            "for tools to work correctly, and missing thought_signature may lead to degraded model "
            "performance. Additional data, function call `default_api:get_weather` , position 2.",
        ),
        (
            FLASH,
            {"contents": [_user()], "tools": [{"functionDeclarations": [{"name": "9lives"}]}]},
            "tools[0].function_declarations[0].name: Invalid function name. Must start with a letter",
        ),
        (
            FLASH,
            {"contents": [_user()], "toolConfig": {"functionCallingConfig": {"mode": "ANY"}}},
            "Function calling config is set without function_declarations.",
        ),
        (
            FLASH,
            {
                "contents": [_user()],
                "tools": [{"functionDeclarations": [{"name": "f"}]}],
                "toolConfig": {
                    "functionCallingConfig": {"mode": "AUTO", "allowedFunctionNames": ["f"]}
                },
            },
            "allowed_function_names may be set only when the mode is ANY",
        ),
        (
            FLASH,
            {"contents": [_user()], "generationConfig": {"temperature": 2.5}},
            "temperature must be in the range",
        ),
        (
            FLASH,
            {"contents": [_user()], "generationConfig": {"topP": 1.5}},
            "top_p must be in the range",
        ),
        (
            FLASH,
            {"contents": [_user()], "generationConfig": {"maxOutputTokens": 0}},
            "max_output_tokens must be positive",
        ),
        (
            FLASH,
            {"contents": [_user()], "generationConfig": {"stopSequences": list("abcdef")}},
            "must not exceed 5",
        ),
        (
            FLASH,
            {"contents": [_user()], "generationConfig": {"responseMimeType": "text/html"}},
            "allowed mimetypes are",
        ),
        (
            FLASH,
            {"contents": [_user()], "generationConfig": {"responseJsonSchema": {"type": "object"}}},
            "a response schema needs response_mime_type application/json",
        ),
        (
            FLASH,
            {
                "contents": [_user()],
                "generationConfig": {"thinkingConfig": {"thinkingLevel": "HIGH"}},
            },
            "Thinking level is not supported for this model.",
        ),
        (
            "/models/gemini-2.5-pro:generateContent",
            {"contents": [_user()], "generationConfig": {"thinkingConfig": {"thinkingBudget": 0}}},
            "Budget 0 is invalid. This model only works in thinking mode.",
        ),
        (
            FLASH,
            {
                "contents": [_user()],
                "generationConfig": {"thinkingConfig": {"thinkingBudget": 52428}},
            },
            "The thinking budget (52428) is invalid.",
        ),
        (
            "/models/gemini-2.5-flash:streamGenerateContent",
            {"contents": [_user()]},
            "add ?alt=sse",
        ),
    ],
)
def test_gemini_protocol_refuses_what_gemini_refuses(
    client: httpx.Client, path: str, body: Any, message: str
) -> None:
    status, error = _refusal(client, body, path)
    assert (status, error["code"], error["status"]) == (400, 400, "INVALID_ARGUMENT")
    assert message in error["message"]


def test_gemini_protocol_wants_a_key(emulator: GeminiEmulator) -> None:
    with httpx.Client(base_url=emulator.base_url) as http:
        response = http.post(FLASH, json={"contents": [_user()]})
        assert response.status_code == 403
        error = response.json()["error"]
        assert error["status"] == "PERMISSION_DENIED"
        assert "unregistered callers" in error["message"]
        # The key may also come as a query parameter.
        assert http.post(FLASH + "?key=AIza-query", json={"contents": [_user()]}).status_code == 200


def test_gemini_protocol_routes(client: httpx.Client) -> None:
    assert client.post("/models/gemini-2.5-flash:countTokens", json={}).status_code == 404
    assert client.get(FLASH).status_code == 405
    status, error = _refusal(client, {"contents": [_user()]}, "/models/gpt-4o:generateContent")
    assert (status, error["status"]) == (404, "NOT_FOUND")
    assert "models/gpt-4o is not found for API version v1beta" in error["message"]


def test_gemini_protocol_takes_snake_case_and_valid_histories(client: httpx.Client) -> None:
    # The proto's own names are accepted beside the JSON ones, as the real API does.
    body: dict[str, Any] = {
        "contents": [
            _user(),
            {"role": "model", "parts": [_call("f", "c2ln"), _call("g")]},
            {"role": "user", "parts": [_answer("f"), _answer("g")]},
            {"role": "user", "parts": [{"text": "And?"}]},
        ],
        "system_instruction": {"parts": [{"text": "Be brief."}]},
        "tools": [
            {"function_declarations": [{"name": "f", "parameters_json_schema": {"type": "object"}}]}
        ],
        "generation_config": {"thinking_config": {"include_thoughts": True, "thinking_budget": -1}},
    }
    assert client.post(GEMINI3, json=body).status_code == 200
    # A placeholder signature will do for calls made elsewhere.
    body["contents"][1]["parts"][0]["thoughtSignature"] = (
        "c2tpcF90aG91Z2h0X3NpZ25hdHVyZV92YWxpZGF0b3I="
    )
    assert client.post(GEMINI3, json=body).status_code == 200


# --- answers ---------------------------------------------------------------------------


def _sse(text: str) -> list[dict[str, Any]]:
    assert "[DONE]" not in text
    return [json.loads(line[6:]) for line in text.split("\r\n\r\n") if line.startswith("data: ")]


def test_gemini_answers_follow_the_model(client: httpx.Client, emulator: GeminiEmulator) -> None:
    calls = Reply.tool_calls([("f", '{"a": 1}'), ("g", "{}")])
    emulator.enqueue(calls, calls)
    old = client.post(FLASH, json={"contents": [_user()]}).json()
    new = client.post(GEMINI3, json={"contents": [_user()]}).json()
    assert old["candidates"][0]["content"]["parts"] == [
        {"functionCall": {"name": "f", "args": {"a": 1}}},
        {"functionCall": {"name": "g", "args": {}}},
    ]
    first, second = new["candidates"][0]["content"]["parts"]
    assert first["functionCall"]["id"] == "call_0"
    assert second["functionCall"]["id"] == "call_1"
    assert "thoughtSignature" in first
    assert "thoughtSignature" not in second
    assert new["candidates"][0]["finishReason"] == "STOP"
    assert new["usageMetadata"] == {
        "promptTokenCount": 10,
        "candidatesTokenCount": 5,
        "totalTokenCount": 15,
    }
    assert new["modelVersion"] == "gemini-3-flash-preview"


def test_gemini_stream_has_no_end_marker(client: httpx.Client, emulator: GeminiEmulator) -> None:
    emulator.enqueue(Reply.text("Hello you", reasoning="Hmm.", chunk_size=5, completion_tokens=4))
    response = client.post(
        "/models/gemini-2.5-flash:streamGenerateContent?alt=sse", json={"contents": [_user()]}
    )
    assert response.headers["content-type"] == "text/event-stream"
    chunks = _sse(response.text)
    parts = [c["candidates"][0]["content"]["parts"][0] for c in chunks]
    assert parts[:3] == [{"text": "Hmm.", "thought": True}, {"text": "Hello"}, {"text": " you"}]
    assert ["finishReason" in c["candidates"][0] for c in chunks] == [False, False, False, True]
    assert chunks[-1]["usageMetadata"] == {
        "promptTokenCount": 10,
        "candidatesTokenCount": 3,
        "thoughtsTokenCount": 1,
        "totalTokenCount": 14,
    }


def test_gemini_errors_in_googles_envelope(client: httpx.Client, emulator: GeminiEmulator) -> None:
    emulator.enqueue(
        Reply.error(429, message="Resource exhausted."),
        Reply.error(
            400, message="API key not valid. Please pass a valid API key.", code="API_KEY_INVALID"
        ),
        Reply.text("One two three", error_after=1, message="The model is overloaded."),
    )
    assert client.post(FLASH, json={"contents": [_user()]}).json() == {
        "error": {"code": 429, "message": "Resource exhausted.", "status": "RESOURCE_EXHAUSTED"}
    }
    error = client.post(FLASH, json={"contents": [_user()]}).json()["error"]
    assert error["details"][0]["reason"] == "API_KEY_INVALID"
    stream = client.post(
        "/models/gemini-2.5-flash:streamGenerateContent?alt=sse", json={"contents": [_user()]}
    )
    assert _sse(stream.text)[-1] == {
        "error": {"code": 500, "message": "The model is overloaded.", "status": "INTERNAL"}
    }


# --- reading requests back --------------------------------------------------------------


def test_gemini_protocol_reads_a_request_back() -> None:
    body = {
        "systemInstruction": {"parts": [{"text": "One."}, {"text": "Two."}]},
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "Look: "},
                    {"inlineData": {"mimeType": "image/png", "data": "AA=="}},
                    {"fileData": {"fileUri": "https://x.test/a.jpg", "mimeType": "image/jpeg"}},
                    {
                        "fileData": {
                            "fileUri": "https://x.test/a.pdf",
                            "mimeType": "application/pdf",
                        }
                    },
                ],
            },
            {
                "role": "model",
                "parts": [
                    {"text": "Thinking", "thought": True},
                    {"text": "Let me check."},
                    {"functionCall": {"id": "c1", "name": "f", "args": {"a": 1}}},
                ],
            },
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"id": "c1", "name": "f", "response": {"output": "18"}}}
                ],
            },
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"name": "f", "response": {"t": 1}}},
                    {"text": "ok?"},
                ],
            },
        ],
        "tools": [{"functionDeclarations": [{"name": "f"}, {"name": "g"}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["g"]}},
        "generationConfig": {
            "maxOutputTokens": "12",
            "stopSequences": ["END"],
            "temperature": 0.5,
            "responseMimeType": "application/json",
        },
    }
    received = GeminiProtocol().received(
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", body
    )
    assert received.model == "gemini-2.5-flash"
    assert received.stream is True
    assert received.system == "One.\nTwo."
    assert [(t.role, t.text, t.images, t.calls, t.tool_call_id) for t in received.turns] == [
        ("user", "Look: ", 2, (), None),
        ("assistant", "Let me check.", 0, (("c1", "f", {"a": 1}),), None),
        ("tool", "18", 0, (), "c1"),
        ("tool", '{"t":1}', 0, (), None),
        ("user", "ok?", 0, (), None),
    ]
    assert (received.max_tokens, received.stop, received.temperature) == (12, ("END",), 0.5)
    assert received.tools == ("f", "g")
    assert received.tool_choice == "function:g"
    assert received.response_format == "json_object"


@pytest.mark.parametrize(
    ("config", "choice"),
    [
        ({"mode": "AUTO"}, "auto"),
        ({"mode": "NONE"}, "none"),
        ({"mode": "ANY"}, "required"),
        ({"mode": "ANY", "allowedFunctionNames": ["f", "g"]}, "required"),
        ({"mode": "VALIDATED"}, "validated"),
    ],
)
def test_gemini_protocol_reads_tool_choice(config: dict[str, Any], choice: str) -> None:
    body = {"contents": [_user()], "toolConfig": {"functionCallingConfig": config}}
    assert GeminiProtocol().received(FLASH, body).tool_choice == choice


def test_gemini_protocol_reads_a_schema_and_nothing() -> None:
    protocol = GeminiProtocol()
    body = {
        "contents": [_user()],
        "generationConfig": {"responseJsonSchema": {}, "responseMimeType": "application/json"},
    }
    assert protocol.received(FLASH, body).response_format == "json_schema"
    assert protocol.received(FLASH, None).turns == ()
    assert protocol.prompt({"contents": [_user("last words")]}) == "last words"


def test_gemini_protocol_refuses_budget_and_level_together(client: httpx.Client) -> None:
    thinking = {"thinkingConfig": {"thinkingLevel": "LOW", "thinkingBudget": 10}}
    body = {"contents": [_user()], "generationConfig": thinking}
    assert "only set one of" in _refusal(client, body, GEMINI3)[1]["message"]


def test_gemini_reply_arguments_must_be_an_object() -> None:
    with pytest.raises(ValueError, match="must be a JSON object"):
        GeminiProtocol().body(Reply.tool_calls([("f", "[1]")]), {}, seq=1, model="gemini-2.5-flash")
