"""The official ``mistralai`` SDK reads the Mistral emulator's answers as llmkit does.

Mistral's own client (a dev-only test dependency) is pointed at the
emulator on 127.0.0.1; each scripted answer is fetched once by the SDK and
once by llmkit, streamed and not, and both must find the same text,
thinking, tool calls, finish reason and usage. The SDK's requests pass the
emulator's strict checks too (its answers are 200s), and its error classes
see the statuses and messages llmkit maps. So the emulator speaks Mistral,
not a dialect only llmkit understands.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, cast

import pytest
from mistralai.client import Mistral as MistralSDK
from mistralai.client import errors, models

import llmkit
import llmkit_providers.mistral  # noqa: F401  registers "mistral" before the per-test snapshot
from llmkit.provider import ChatResponse, Stream, completion, prepare
from llmkit_contracts.emulator import Reply
from llmkit_contracts.emulators.mistral import MistralEmulator

KEY = "sk-mistral-sdk-0000000000"
MODEL = "magistral-medium-latest"
QUESTION = "What is the weather in Paris and Rome?"
WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
REPLIES = {
    "text": Reply.text("Hello there, friend!", prompt_tokens=9, completion_tokens=4),
    "unicode": Reply.text("Grüße, 世界! 👋🏽", chunk_size=1),
    "thinking": Reply.text("42", reasoning="Six times seven is forty-two.", chunk_size=5),
    "length": Reply.text("One, two", finish_reason="length", completion_tokens=2),
    "tool_calls": Reply.tool_calls(
        [("get_weather", '{"city": "Paris"}'), ("get_weather", '{"city": "Rome"}')],
        content="Let me look.",
        chunk_size=3,
    ),
}


@pytest.fixture(scope="module")
def emulator() -> Iterator[MistralEmulator]:
    with MistralEmulator() as running:
        yield running


@pytest.fixture(scope="module")
def client(emulator: MistralEmulator) -> Iterator[MistralSDK]:
    server = emulator.base_url.removesuffix("/v1")
    with MistralSDK(api_key=KEY, server_url=server) as sdk:
        yield sdk


def _llmkit(emulator: MistralEmulator, stream: bool) -> ChatResponse:
    config = {"api_key": KEY, "api_base": emulator.base_url, "retries": 0}
    request = {"messages": [{"role": "user", "content": QUESTION}], "tools": [WEATHER]}
    result = completion(*prepare("mistral", MODEL, request, config, stream))
    if stream:
        with cast(Stream, result) as chunks:
            return chunks.collect()
    return cast(ChatResponse, result)


def _split(content: Any) -> tuple[str, str]:
    """SDK content as (text, thinking text)."""
    if content is None or isinstance(content, str):
        return content or "", ""
    text = "".join(part.text for part in content if isinstance(part, models.TextChunk))
    thinking = "".join(
        inner.text
        for part in content
        if isinstance(part, models.ThinkChunk)
        for inner in part.thinking
        if isinstance(inner, models.TextChunk)
    )
    return text, thinking


def _calls(calls: Any) -> list[tuple[str, str, Any]]:
    # Ids are drawn per answer (the SDK and llmkit fetch two answers): their
    # shape is compared, not their value.
    return [
        (
            _id_shape(call.id),
            call.function.name,
            json.loads(call.function.arguments)
            if isinstance(call.function.arguments, str)
            else call.function.arguments,
        )
        for call in calls or ()
    ]


def _id_shape(value: Any) -> str:
    assert isinstance(value, str), value
    assert len(value) == 9, value
    assert value.isalnum(), value
    return "id"


def _from_sdk(response: models.ChatCompletionResponse) -> dict[str, Any]:
    [choice] = response.choices
    assert choice.message is not None
    text, thinking = _split(choice.message.content)
    return {
        "text": text,
        "thinking": thinking,
        "calls": _calls(choice.message.tool_calls),
        "finish": choice.finish_reason,
        "usage": (response.usage.prompt_tokens, response.usage.completion_tokens),
    }


def _from_sdk_stream(events: Any) -> dict[str, Any]:
    text = thinking = ""
    calls: list[Any] = []
    finish = usage = None
    for event in events:
        chunk = event.data
        if chunk.usage is not None:
            usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
        for choice in chunk.choices:
            piece, thought = _split(choice.delta.content)
            text += piece
            thinking += thought
            calls += _calls(choice.delta.tool_calls)
            finish = choice.finish_reason or finish
    return {"text": text, "thinking": thinking, "calls": calls, "finish": finish, "usage": usage}


def _from_llmkit(response: ChatResponse) -> dict[str, Any]:
    [choice] = response.choices
    message = choice.message
    assert response.usage is not None
    return {
        "text": message.content or "",
        "thinking": message.reasoning or "",
        "calls": [
            (_id_shape(c.id), c.function.name, json.loads(c.function.arguments))
            for c in message.tool_calls or ()
        ],
        "finish": choice.native_finish_reason or choice.finish_reason,
        "usage": (response.usage.prompt_tokens, response.usage.completion_tokens),
    }


def _sdk_args() -> dict[str, Any]:
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": QUESTION}],
        "tools": [WEATHER],
    }


@pytest.mark.parametrize("name", sorted(REPLIES))
def test_sdk_and_llmkit_read_an_answer_alike(
    emulator: MistralEmulator, client: MistralSDK, name: str
) -> None:
    reply = REPLIES[name]
    emulator.reset()
    emulator.enqueue(reply, reply)
    sdk = _from_sdk(client.chat.complete(**_sdk_args()))
    assert _from_llmkit(_llmkit(emulator, stream=False)) == sdk
    assert bool(sdk["thinking"]) is (reply.reasoning is not None)
    assert len(sdk["calls"]) == len(reply.calls)


@pytest.mark.parametrize("name", sorted(REPLIES))
def test_sdk_and_llmkit_read_a_stream_alike(
    emulator: MistralEmulator, client: MistralSDK, name: str
) -> None:
    reply = REPLIES[name]
    emulator.reset()
    emulator.enqueue(reply, reply)
    with client.chat.stream(**_sdk_args()) as events:
        sdk = _from_sdk_stream(events)
    assert _from_llmkit(_llmkit(emulator, stream=True)) == sdk
    assert sdk["usage"] is not None


def test_sdk_history_with_thinking_passes_the_strict_checks(
    emulator: MistralEmulator, client: MistralSDK
) -> None:
    # The SDK sends back the thinking chunk llmkit keeps; the emulator takes both.
    emulator.reset()
    thinking = Reply.text("42", reasoning="Six sevens.")
    emulator.enqueue(thinking, Reply.text("84"), thinking, Reply.text("84"))
    first = client.chat.complete(**_sdk_args())
    assistant = first.choices[0].message
    assert assistant is not None
    follow: list[Any] = [
        {"role": "user", "content": QUESTION},
        assistant,
        {"role": "user", "content": "And doubled?"},
    ]
    assert client.chat.complete(model=MODEL, messages=follow).choices[0].message is not None
    sent_by_sdk = emulator.requests[-1].json["messages"][1]["content"]
    answer = _llmkit(emulator, stream=False)
    history = [
        {"role": "user", "content": QUESTION},
        answer.choices[0].message,
        {"role": "user", "content": "And doubled?"},
    ]
    config = {"api_key": KEY, "api_base": emulator.base_url, "retries": 0}
    completion(*prepare("mistral", MODEL, {"messages": history}, config, False))
    sent_by_llmkit = emulator.requests[-1].json["messages"][1]["content"]
    assert _without_none(sent_by_llmkit) == _without_none(sent_by_sdk)


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, llmkit.InvalidRequestError),
        (401, llmkit.AuthenticationError),
        (404, llmkit.NotFoundError),
        (429, llmkit.RateLimitError),
        (500, llmkit.ServiceUnavailableError),
        (503, llmkit.ServiceUnavailableError),
    ],
)
def test_sdk_and_llmkit_read_an_error_alike(
    emulator: MistralEmulator, client: MistralSDK, status: int, error: type[llmkit.LLMError]
) -> None:
    emulator.reset()
    failure = Reply.error(status, message=f"Emulated {status}")
    emulator.enqueue(failure, failure)
    with pytest.raises(errors.SDKError) as info:
        client.chat.complete(**_sdk_args(), retries=None)
    assert info.value.status_code == status
    assert json.loads(info.value.body)["message"] == f"Emulated {status}"
    with pytest.raises(error) as mapped:
        _llmkit(emulator, stream=False)
    assert mapped.value.status == status
    assert f"Emulated {status}" in mapped.value.message


def test_sdk_and_llmkit_read_a_refusal_alike(emulator: MistralEmulator, client: MistralSDK) -> None:
    # A tool-call id of another provider: the SDK sends it and is refused;
    # llmkit sends a valid one and is answered.
    history: list[Any] = [
        {"role": "user", "content": QUESTION},
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "call_1", "function": {"name": "get_weather", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sun"},
    ]
    emulator.reset()
    with pytest.raises(errors.SDKError) as info:
        client.chat.complete(**{**_sdk_args(), "messages": history})
    assert info.value.status_code == 400
    assert "must be a-z, A-Z, 0-9, with a length of 9" in info.value.body
    config = {"api_key": KEY, "api_base": emulator.base_url, "retries": 0}
    request = {"messages": history, "tools": [WEATHER]}
    answer = completion(*prepare("mistral", MODEL, request, config, False))
    assert cast(ChatResponse, answer).text.startswith("Echo:")


def test_sdk_and_llmkit_read_a_validation_error_alike(
    emulator: MistralEmulator, client: MistralSDK
) -> None:
    # A field Mistral does not know: a 422 whose message lists pydantic's errors.
    emulator.reset()
    with pytest.raises(errors.HTTPValidationError) as info:
        client.chat.complete(**_sdk_args(), top_p=2.0)
    assert info.value.status_code == 422
    assert "top_p" in info.value.body
    config = {"api_key": KEY, "api_base": emulator.base_url, "retries": 0}
    request = {"messages": [{"role": "user", "content": "Hi"}], "extra_body": {"top_p": 2.0}}
    with pytest.raises(llmkit.InvalidRequestError, match="top_p: Input should be less than") as err:
        completion(*prepare("mistral", MODEL, request, config, False))
    assert err.value.status == 422


def test_sdk_and_llmkit_both_fail_on_an_error_event(
    emulator: MistralEmulator, client: MistralSDK
) -> None:
    emulator.reset()
    broken = Reply.text("Once upon a time", error_after=3, message="Overloaded")
    emulator.enqueue(broken, broken)
    # The SDK has no class for an error event: it fails to read it as a chunk.
    with (
        pytest.raises(errors.ResponseValidationError, match="Response validation failed"),
        client.chat.stream(**_sdk_args()) as events,
    ):
        for _ in events:
            pass
    with pytest.raises(llmkit.ServiceUnavailableError, match="Overloaded"):
        _llmkit(emulator, stream=True)
