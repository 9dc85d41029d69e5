"""The official ``anthropic`` SDK reads the emulator's answers as llmkit does.

Anthropic's own client (a dev-only test dependency) is pointed at the
emulator; each scripted answer is fetched once by the SDK and once by
llmkit, streamed and not, and both must find the same text, tool calls,
thinking (with its signature), stop reason and usage. The SDK's requests
also pass the emulator's strict checks, which keeps those checks honest.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, cast

import anthropic
import pytest

import llmkit_providers.anthropic  # registers the key before the per-test snapshot
from llmkit.provider import ChatResponse, Stream, completion, prepare
from llmkit_contracts.emulator import Emulator, Reply
from llmkit_contracts.emulators.anthropic import AnthropicProtocol

assert llmkit_providers.anthropic.Anthropic.name == "anthropic"

KEY = "sk-ant-sdk-0000000000"
MODEL = "claude-sonnet-4-6"
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
LLMKIT_WEATHER = {
    "type": "function",
    "function": {
        "name": WEATHER["name"],
        "description": WEATHER["description"],
        "parameters": WEATHER["input_schema"],
    },
}
QUESTION = "What is the weather in Paris and Rome?"


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with Emulator(AnthropicProtocol()) as running:
        yield running


@pytest.fixture(scope="module")
def client(emulator: Emulator) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(api_key=KEY, base_url=emulator.base_url, max_retries=0) as sdk:
        yield sdk


REPLIES = {
    "text": (Reply.text("Hello there, friend!", prompt_tokens=9, completion_tokens=4), False),
    "tool_calls": (
        Reply.tool_calls(
            [("get_weather", '{"city": "Paris"}'), ("get_weather", '{"city": "Rome"}')],
            content="Let me look.",
            chunk_size=3,
        ),
        False,
    ),
    "thinking": (Reply.text("42", reasoning="Six times seven is forty-two.", chunk_size=5), True),
    "thinking_tools": (
        Reply.tool_calls([("get_weather", '{"city": "Paris"}')], completion_tokens=12),
        True,
    ),
    "length": (Reply.text("One, two", finish_reason="length", completion_tokens=2), False),
}


def _sdk_args(thinking: bool) -> dict[str, Any]:
    args: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": QUESTION}],
        "tools": [WEATHER],
    }
    if thinking:
        args["thinking"] = {"type": "enabled", "budget_tokens": 1024}
    return args


def _llmkit(emulator: Emulator, thinking: bool, stream: bool) -> ChatResponse:
    config: dict[str, Any] = {"api_key": KEY, "api_base": emulator.base_url, "retries": 0}
    if thinking:
        config["options"] = {"thinking_budget": 1024}
    request = {
        "messages": [{"role": "user", "content": QUESTION}],
        "tools": [LLMKIT_WEATHER],
        "max_tokens": 4096,
    }
    result = completion(*prepare("anthropic", MODEL, request, config, stream))
    if stream:
        with cast(Stream, result) as chunks:
            return chunks.collect()
    return cast(ChatResponse, result)


def _from_sdk(message: anthropic.types.Message) -> dict[str, Any]:
    blocks = message.content
    return {
        "text": "".join(b.text for b in blocks if b.type == "text"),
        "calls": [(b.id, b.name, b.input) for b in blocks if b.type == "tool_use"],
        "thinking": [(b.thinking, b.signature) for b in blocks if b.type == "thinking"],
        "stop": message.stop_reason,
        "usage": (message.usage.input_tokens, message.usage.output_tokens),
    }


def _from_llmkit(response: ChatResponse) -> dict[str, Any]:
    [choice] = response.choices
    message = choice.message
    layout = (message.provider_data or {}).get("anthropic", {}).get("content", [])
    usage = response.usage
    assert usage is not None
    return {
        "text": message.content or "",
        "calls": [
            (c.id, c.function.name, json.loads(c.function.arguments))
            for c in message.tool_calls or ()
        ],
        "thinking": [(b["thinking"], b["signature"]) for b in layout if b["type"] == "thinking"],
        "stop": choice.native_finish_reason,
        "usage": (usage.prompt_tokens, usage.completion_tokens),
    }


@pytest.mark.parametrize("name", sorted(REPLIES))
def test_sdk_and_llmkit_read_a_message_alike(
    emulator: Emulator, client: anthropic.Anthropic, name: str
) -> None:
    reply, thinking = REPLIES[name]
    emulator.reset()
    emulator.enqueue(reply, reply)
    sdk = _from_sdk(client.messages.create(**_sdk_args(thinking)))
    assert _from_llmkit(_llmkit(emulator, thinking, stream=False)) == sdk
    assert (reply.reasoning is not None) <= bool(sdk["thinking"])


@pytest.mark.parametrize("name", sorted(REPLIES))
def test_sdk_and_llmkit_read_a_stream_alike(
    emulator: Emulator, client: anthropic.Anthropic, name: str
) -> None:
    reply, thinking = REPLIES[name]
    emulator.reset()
    emulator.enqueue(reply, reply)
    with client.messages.stream(**_sdk_args(thinking)) as events:
        sdk = _from_sdk(events.get_final_message())
    assert _from_llmkit(_llmkit(emulator, thinking, stream=True)) == sdk


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, anthropic.BadRequestError),
        (401, anthropic.AuthenticationError),
        (404, anthropic.NotFoundError),
        (429, anthropic.RateLimitError),
        (529, anthropic.InternalServerError),
    ],
)
def test_sdk_reads_the_error_envelope(
    emulator: Emulator, client: anthropic.Anthropic, status: int, error: type[Exception]
) -> None:
    emulator.reset()
    emulator.enqueue(Reply.error(status, message=f"Emulated {status}"))
    with pytest.raises(error) as info:
        client.messages.create(**_sdk_args(False))
    failure = cast(anthropic.APIStatusError, info.value)
    assert failure.status_code == status
    body = cast(dict[str, Any], failure.body)
    assert body["type"] == "error"
    assert body["error"]["message"] == f"Emulated {status}"


def test_sdk_reads_an_error_event_mid_stream(
    emulator: Emulator, client: anthropic.Anthropic
) -> None:
    emulator.reset()
    emulator.enqueue(Reply.text("Once upon a time", error_after=4, message="Overloaded"))
    with (
        pytest.raises(anthropic.APIStatusError, match="Overloaded"),
        client.messages.stream(**_sdk_args(False)) as events,
    ):
        events.get_final_message()
