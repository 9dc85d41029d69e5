"""The Mistral emulator protocol: its strict checks, what it answers, reading requests back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import llmkit
import llmkit_providers.openai  # noqa: F401  (the OpenAI key, for the refusal test)
from llmkit.provider import completion, prepare
from llmkit_contracts.emulator import Reply
from llmkit_contracts.emulators import PROTOCOLS
from llmkit_contracts.emulators.mistral import MistralEmulator, MistralProtocol

KEY = {"authorization": "Bearer sk-mistral-emulator-0000"}
PATH = "/chat/completions"
HI = [{"role": "user", "content": "Hi"}]
CALL = {"id": "Ab3dE6gH9", "type": "function", "function": {"name": "w", "arguments": "{}"}}
TOOL = {"type": "function", "function": {"name": "w", "parameters": {"type": "object"}}}


@pytest.fixture(scope="module")
def emulator() -> Iterator[MistralEmulator]:
    with MistralEmulator() as emu:
        yield emu


@pytest.fixture
def client(emulator: MistralEmulator) -> Iterator[httpx.Client]:
    emulator.reset()
    with httpx.Client(base_url=emulator.base_url, headers=KEY) as http:
        yield http


def _post(client: httpx.Client, **body: Any) -> httpx.Response:
    return client.post(PATH, json={"model": "mistral-large-latest", "messages": HI, **body})


def test_mistral_protocol_is_registered() -> None:
    assert PROTOCOLS["mistral"] is MistralProtocol


# --- strict checks ------------------------------------------------------------------------


def test_mistral_emulator_serves_only_the_chat_path(client: httpx.Client) -> None:
    response = client.post("/embeddings", json={})
    assert (response.status_code, response.json()) == (404, {"detail": "Not Found"})
    response = client.get(PATH)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


def test_mistral_emulator_wants_a_bearer_key(emulator: MistralEmulator) -> None:
    with httpx.Client(base_url=emulator.base_url) as bare:
        response = bare.post(PATH, json={"model": "m", "messages": HI})
    assert response.status_code == 401
    assert response.json()["message"] == "Unauthorized"


def _problems(response: httpx.Response) -> list[tuple[str, list[Any]]]:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["object"] == "error"
    assert body["type"] == "invalid_request_error"
    return [(item["type"], item["loc"]) for item in body["message"]["detail"]]


def test_mistral_emulator_refuses_every_unknown_field_at_once(client: httpx.Client) -> None:
    response = _post(
        client,
        stream_options={"include_usage": True},
        user="u",
        seed=1,
        max_completion_tokens=5,
        temperature=0.2,
    )
    assert _problems(response) == [
        ("extra_forbidden", ["body", name])
        for name in ("stream_options", "user", "seed", "max_completion_tokens")
    ]


@pytest.mark.parametrize(
    ("messages", "extra", "problem"),
    [
        (
            [{"role": "user", "content": "Hi", "name": "ada"}],
            {},
            ("extra_forbidden", ["messages", 0, "user", "name"]),
        ),
        (
            [{"role": "system", "content": "x", "refusal": None}, *HI],
            {},
            ("extra_forbidden", ["messages", 0, "system", "refusal"]),
        ),
        ([{"role": "developer", "content": "x"}, *HI], {}, ("union_tag_invalid", ["messages", 0])),
        ([{"role": "user"}], {}, ("missing", ["messages", 0, "user", "content"])),
        (
            [{"role": "user", "content": [{"type": "video_url", "video_url": "x"}]}],
            {},
            ("union_tag_invalid", ["messages", 0, "user", "content", 0]),
        ),
        (
            [{"role": "system", "content": [{"type": "image_url", "image_url": "x"}]}, *HI],
            {},
            ("union_tag_invalid", ["messages", 0, "system", "content", 0]),
        ),
        (
            [{"role": "user", "content": [{"type": "text"}]}],
            {},
            ("missing", ["messages", 0, "user", "content", 0, "text", "text"]),
        ),
        (
            [
                *HI,
                {"role": "assistant", "content": [{"type": "thinking", "thinking": "flat"}]},
                *HI,
            ],
            {},
            ("list_type", ["messages", 1, "assistant", "content", 0, "thinking", "thinking"]),
        ),
        (
            HI,
            {"tools": [{"type": "function", "function": {"name": "w"}}]},
            ("missing", ["tools", 0, "function", "parameters"]),
        ),
        (
            HI,
            {
                "tools": [
                    {
                        "type": "function",
                        "function": {"name": "w", "parameters": {}, "required": ["a"]},
                    }
                ]
            },
            ("extra_forbidden", ["tools", 0, "function", "required"]),
        ),
        (HI, {"tools": [TOOL], "tool_choice": "force"}, ("enum", ["tool_choice"])),
        (HI, {"response_format": {"type": "yaml"}}, ("enum", ["response_format", "type"])),
        (
            HI,
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
            ("missing", ["response_format", "json_schema", "schema"]),
        ),
        (HI, {"top_p": 2}, ("less_than_equal", ["top_p"])),
        (HI, {"temperature": "hot"}, ("float_type", ["temperature"])),
        (HI, {"max_tokens": -1}, ("greater_than_equal", ["max_tokens"])),
        (HI, {"random_seed": 1.5}, ("int_type", ["random_seed"])),
        (HI, {"stream": "yes"}, ("bool_type", ["stream"])),
        (HI, {"stop": [1]}, ("string_type", ["stop"])),
        (HI, {"reasoning_effort": "extreme"}, ("enum", ["reasoning_effort"])),
        (HI, {"prompt_mode": "fast"}, ("enum", ["prompt_mode"])),
        ([], {}, ("too_short", ["messages"])),
    ],
    ids=[
        "user-name",
        "system-refusal",
        "developer-role",
        "user-no-content",
        "unknown-part",
        "system-image",
        "text-without-text",
        "flat-thinking",
        "no-parameters",
        "function-required",
        "tool-choice",
        "format-type",
        "schema-missing",
        "top-p",
        "temperature-type",
        "max-tokens",
        "seed-type",
        "stream-type",
        "stop-type",
        "effort",
        "prompt-mode",
        "no-messages",
    ],
)
def test_mistral_emulator_shape_errors(
    client: httpx.Client, messages: list[Any], extra: dict[str, Any], problem: tuple[str, list[Any]]
) -> None:
    response = client.post(PATH, json={"model": "m", "messages": messages, **extra})
    kind, loc = problem
    assert (kind, ["body", *loc]) in _problems(response)


def _refusal(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    body: dict[str, Any] = response.json()
    assert body["object"] == "error"
    return body


@pytest.mark.parametrize(
    ("messages", "kind", "code", "message"),
    [
        (
            [
                *HI,
                {"role": "assistant", "tool_calls": [{**CALL, "id": "call_1"}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "x"},
            ],
            "invalid_function_call",
            "3280",
            "Tool call id was call_1 but must be a-z, A-Z, 0-9, with a length of 9.",
        ),
        (
            [
                *HI,
                {"role": "assistant", "tool_calls": [CALL]},
                {"role": "tool", "tool_call_id": "Ab3dE6gH", "content": "x"},
            ],
            "invalid_function_call",
            "3280",
            "Tool call id was Ab3dE6gH but must be a-z, A-Z, 0-9, with a length of 9.",
        ),
        (
            [*HI, {"role": "assistant", "tool_calls": [CALL]}, *HI],
            "invalid_request_message_order",
            "3230",
            "Not the same number of function calls and responses",
        ),
        (
            [*HI, {"role": "tool", "tool_call_id": "Ab3dE6gH9", "content": "x"}],
            "invalid_request_message_order",
            "3230",
            "Unexpected tool call id Ab3dE6gH9 in tool results",
        ),
        (
            [*HI, {"role": "assistant", "tool_calls": [CALL]}],
            "invalid_request_message_order",
            "3230",
            "Expected last role User or Tool (or Assistant with prefix True) for serving but got assistant",
        ),
        (
            [*HI, {"role": "assistant", "content": "Hello"}],
            "invalid_request_message_order",
            "3230",
            "Expected last role User or Tool (or Assistant with prefix True) for serving but got assistant",
        ),
        (
            [*HI, {"role": "assistant", "content": ""}, *HI],
            "invalid_request_message_order",
            "3230",
            "Assistant message must have either content or tool_calls, but not none.",
        ),
    ],
    ids=[
        "call-id",
        "tool-message-id",
        "unanswered",
        "unasked",
        "last-call",
        "last-assistant",
        "empty-assistant",
    ],
)
def test_mistral_emulator_history_errors(
    client: httpx.Client, messages: list[Any], kind: str, code: str, message: str
) -> None:
    body = _refusal(client.post(PATH, json={"model": "m", "messages": messages, "tools": [TOOL]}))
    assert (body["type"], body["code"], body["message"]) == (kind, code, message)


def test_mistral_emulator_takes_what_mistral_takes(client: httpx.Client) -> None:
    thinking = {"type": "thinking", "thinking": [{"type": "text", "text": "t"}], "closed": True}
    messages = [
        {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "https://x/a.png"}},
                {"type": "document_url", "document_url": "https://x/a.pdf"},
            ],
        },
        {
            "role": "assistant",
            "content": [thinking],
            "tool_calls": [{**CALL, "index": 0, "function": {"name": "w", "arguments": {"a": 1}}}],
            "prefix": False,
        },
        {
            "role": "tool",
            "tool_call_id": "Ab3dE6gH9",
            "name": "w",
            "content": [{"type": "text", "text": "sun"}],
        },
        {"role": "assistant", "content": "So", "prefix": True},
    ]
    response = client.post(
        PATH,
        json={
            "model": "magistral-medium-latest",
            "messages": messages,
            "tools": [TOOL],
            "tool_choice": {"type": "function", "function": {"name": "w"}},
            "random_seed": 3,
            "max_tokens": 10,
            "safe_prompt": True,
            "prompt_mode": "reasoning",
            "reasoning_effort": "high",
            "presence_penalty": 0.1,
            "frequency_penalty": None,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {}, "strict": True},
            },
        },
    )
    assert response.status_code == 200, response.text


def test_the_openai_codec_is_refused_where_mistral_differs(emulator: MistralEmulator) -> None:
    # OpenAI's own key streams with stream_options, which Mistral refuses:
    # the mistral key exists because the wire differs.
    emulator.reset()
    config = {"api_key": "sk-0000000000", "api_base": emulator.base_url, "retries": 0}
    prepared = prepare("openai", "mistral-large-latest", {"messages": HI}, config, True)
    with pytest.raises(llmkit.InvalidRequestError, match=r"extra_forbidden.*stream_options"):
        completion(*prepared)


# --- answers --------------------------------------------------------------------------------


def test_mistral_emulator_body_in_mistrals_shape(
    emulator: MistralEmulator, client: httpx.Client
) -> None:
    emulator.enqueue(Reply.tool_calls([("w", '{"city": "Paris"}'), ("w", "{}")], prompt_tokens=7))
    body = _post(client).json()
    [choice] = body["choices"]
    calls = choice["message"]["tool_calls"]
    assert [call["index"] for call in calls] == [0, 1]
    assert all(len(call["id"]) == 9 and call["id"].isalnum() for call in calls)
    assert len({call["id"] for call in calls}) == 2
    assert all("type" not in call for call in calls)
    assert choice["message"]["content"] == ""
    assert choice["finish_reason"] == "tool_calls"
    assert body["usage"] == {
        "prompt_tokens": 7,
        "completion_tokens": 5,
        "total_tokens": 12,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


def test_mistral_emulator_reasoning_as_thinking_chunks(
    emulator: MistralEmulator, client: httpx.Client
) -> None:
    emulator.enqueue(Reply.text("42", reasoning="Six sevens."))
    content = _post(client).json()["choices"][0]["message"]["content"]
    assert content == [
        {"type": "thinking", "thinking": [{"type": "text", "text": "Six sevens."}]},
        {"type": "text", "text": "42"},
    ]


def _payloads(response: httpx.Response) -> list[Any]:
    lines = [line for line in response.text.split("\n\n") if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    return [json.loads(line[6:]) for line in lines[:-1]]


def test_mistral_emulator_stream_shape(emulator: MistralEmulator, client: httpx.Client) -> None:
    emulator.enqueue(Reply.text("Hello", reasoning="Hmm", chunk_size=2, completion_tokens=3))
    payloads = _payloads(_post(client, stream=True))
    deltas = [p["choices"][0]["delta"] for p in payloads]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert [d["content"][0]["thinking"][0]["text"] for d in deltas[1:3]] == ["Hm", "m"]
    assert [d["content"] for d in deltas[3:6]] == ["He", "ll", "o"]
    assert payloads[-1]["choices"][0]["finish_reason"] == "stop"
    assert payloads[-1]["usage"]["completion_tokens"] == 3
    assert all("usage" not in p for p in payloads[:-1])


def test_mistral_emulator_streams_calls_whole(
    emulator: MistralEmulator, client: httpx.Client
) -> None:
    emulator.enqueue(Reply.tool_calls([("w", '{"a": 1}'), ("v", "{}")], chunk_size=1))
    payloads = _payloads(_post(client, stream=True, tools=[TOOL]))
    with_calls = [p for p in payloads if p["choices"][0]["delta"].get("tool_calls")]
    assert len(with_calls) == 1
    calls = with_calls[0]["choices"][0]["delta"]["tool_calls"]
    assert [(c["index"], c["function"]) for c in calls] == [
        (0, {"name": "w", "arguments": '{"a": 1}'}),
        (1, {"name": "v", "arguments": "{}"}),
    ]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (
            429,
            {
                "object": "error",
                "message": "m",
                "type": "rate_limited",
                "param": None,
                "code": "1300",
            },
        ),
        (401, {"message": "m", "request_id": "emu0000000000000"}),
        (
            400,
            {
                "object": "error",
                "message": "m",
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            },
        ),
        (
            503,
            {
                "object": "error",
                "message": "m",
                "type": "internal_server_error",
                "param": None,
                "code": None,
            },
        ),
    ],
)
def test_mistral_emulator_error_bodies(
    emulator: MistralEmulator, client: httpx.Client, status: int, expected: dict[str, Any]
) -> None:
    emulator.enqueue(Reply.error(status, message="m"))
    response = _post(client)
    assert (response.status_code, response.json()) == (status, expected)


def test_mistral_emulator_error_event(emulator: MistralEmulator, client: httpx.Client) -> None:
    emulator.enqueue(Reply.text("Hello there", error_after=2, message="Overloaded"))
    text = _post(client, stream=True).text
    last = [line for line in text.split("\n\n") if line][-1]
    assert json.loads(last[6:]) == {
        "object": "error",
        "message": "Overloaded",
        "type": "internal_server_error",
        "param": None,
        "code": None,
    }
    assert "[DONE]" not in text


def test_mistral_emulator_reads_requests_back() -> None:
    payload = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief."},
            *HI,
            {
                "role": "assistant",
                "tool_calls": [{**CALL, "function": {"name": "w", "arguments": {"a": 1}}}],
            },
            {"role": "tool", "tool_call_id": "Ab3dE6gH9", "content": "sun"},
        ],
        "tools": [TOOL],
        "tool_choice": "any",
        "max_tokens": 9,
    }
    received = MistralProtocol().received("/v1/chat/completions", payload)
    assert received.system == "Be brief."
    assert received.tool_choice == "required"
    assert received.max_tokens == 9
    assert received.turns[1].calls == (("Ab3dE6gH9", "w", {"a": 1}),)
    assert received.turns[2].tool_call_id == "Ab3dE6gH9"
