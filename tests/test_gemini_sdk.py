"""Google's own SDK reads what the Gemini emulator sends as llmkit reads it.

The emulator's answers are the specification the contract suite checks
llmkit against; here the official ``google-genai`` SDK (a dev-only test
dependency) is pointed at the same emulator with a dummy key and must find
the same text, thoughts, function calls, finish reason and token counts in
every answer, streamed or not. So the emulator speaks Gemini, not a dialect
only llmkit understands.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from google import genai
from google.genai import types

import llmkit
import llmkit_providers.gemini  # noqa: F401  registers "gemini" before the per-test snapshot
from llmkit_contracts.emulator import Reply
from llmkit_contracts.emulators.gemini import GeminiEmulator

API_KEY = "AIzaSy-sdk-test-000000000000000"


@dataclass
class Seen:
    """An answer reduced to what both readers must agree on."""

    text: str = ""
    thoughts: str = ""
    calls: list[tuple[str | None, str, Any]] = field(default_factory=list)
    finish: str | None = None
    usage: tuple[int, int, int, int] | None = None


REPLIES = {
    "text": Reply.text("Hello there, friend!", prompt_tokens=9, completion_tokens=4),
    "thoughts": Reply.text("42", reasoning="Six times seven is forty-two.", completion_tokens=9),
    "unicode": Reply.text("Grüße, 世界! 👋🏽", chunk_size=1),
    "length": Reply.text("One, two", finish_reason="length"),
    "filtered": Reply.text("", finish_reason="content_filter", completion_tokens=0),
    "one_call": Reply.tool_calls([("get_weather", '{"city": "Paris"}')]),
    "parallel_calls": Reply.tool_calls(
        [("get_weather", '{"city": "Paris"}'), ("get_time", "{}")], content="Checking."
    ),
}
MODELS = ["gemini-2.5-flash", "gemini-3-flash-preview"]


@pytest.fixture(scope="module")
def emulator() -> Iterator[GeminiEmulator]:
    with GeminiEmulator() as emu:
        yield emu


@pytest.fixture(scope="module")
def client(emulator: GeminiEmulator) -> Iterator[genai.Client]:
    options = types.HttpOptions(
        base_url=emulator.base_url.removesuffix("/v1beta"), api_version="v1beta"
    )
    sdk = genai.Client(api_key=API_KEY, http_options=options)
    yield sdk
    sdk.close()


def _sdk_usage(usage: types.GenerateContentResponseUsageMetadata | None) -> Any:
    if usage is None:
        return None
    return (
        usage.prompt_token_count or 0,
        usage.candidates_token_count or 0,
        usage.thoughts_token_count or 0,
        usage.total_token_count or 0,
    )


def _sdk_read(seen: Seen, response: types.GenerateContentResponse) -> None:
    [candidate] = response.candidates or []
    for part in (candidate.content.parts if candidate.content else None) or []:
        if part.function_call is not None:
            call = part.function_call
            seen.calls.append((call.id, call.name or "", call.args or {}))
        elif part.text is not None:
            if part.thought:
                seen.thoughts += part.text
            else:
                seen.text += part.text
    if candidate.finish_reason is not None:
        seen.finish = candidate.finish_reason.value
        seen.usage = _sdk_usage(response.usage_metadata)


def _sdk(client: genai.Client, model: str, stream: bool) -> Seen:
    seen = Seen()
    config = types.GenerateContentConfig(
        thinking_config=types.ThinkingConfig(include_thoughts=True)
    )
    if stream:
        for chunk in client.models.generate_content_stream(
            model=model, contents="Hi", config=config
        ):
            _sdk_read(seen, chunk)
    else:
        _sdk_read(seen, client.models.generate_content(model=model, contents="Hi", config=config))
    return seen


def _llmkit(emulator: GeminiEmulator, model: str, stream: bool) -> Seen:
    config = {
        "api_key": API_KEY,
        "api_base": emulator.base_url,
        "retries": 0,
        "options": {"include_thoughts": True},
    }
    request = {"messages": [{"role": "user", "content": "Hi"}]}
    if stream:
        response = llmkit.stream("gemini", model, request, config).collect()
    else:
        response = llmkit.completion("gemini", model, request, config)
    [choice] = response.choices
    message = choice.message
    usage = response.usage
    assert usage is not None
    reasoning = (
        usage.completion_tokens_details.reasoning_tokens
        if usage.completion_tokens_details is not None
        else None
    ) or 0
    # llmkit counts thoughts inside completion_tokens; the SDK reports them apart.
    answer = usage.completion_tokens - reasoning
    return Seen(
        text=response.text,
        thoughts=message.reasoning or "",
        # llmkit names calls the API left unnamed; only the API's own ids compare.
        calls=[
            (
                call.id if model.startswith("gemini-3") else None,
                call.function.name,
                json.loads(call.function.arguments),
            )
            for call in message.tool_calls or []
        ],
        finish=choice.native_finish_reason,
        usage=(usage.prompt_tokens, answer, reasoning, usage.total_tokens),
    )


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("name", sorted(REPLIES))
def test_gemini_sdk_reads_what_llmkit_reads(
    emulator: GeminiEmulator, client: genai.Client, name: str, model: str, stream: bool
) -> None:
    reply = REPLIES[name]
    emulator.enqueue(reply)
    ours = _llmkit(emulator, model, stream)
    emulator.enqueue(reply)
    theirs = _sdk(client, model, stream)
    assert theirs == ours
    # And both read what the reply scripted.
    assert ours.text == (reply.content or "")
    assert ours.thoughts == (reply.reasoning or "")
    assert [(n, a) for _, n, a in ours.calls] == [(n, json.loads(a)) for n, a in reply.calls]
    assert ours.usage is not None
    assert (ours.usage[0], ours.usage[1] + ours.usage[2]) == (
        reply.prompt_tokens,
        reply.completion_tokens,
    )


def test_gemini_sdk_requests_pass_the_strict_emulator(
    emulator: GeminiEmulator, client: genai.Client
) -> None:
    # The SDK's own request shapes (snake_case thinking config, tools,
    # function-calling config, a system instruction) are what the API takes.
    emulator.enqueue(Reply.tool_calls([("get_weather", '{"city": "Rome"}')]))
    tool = types.Tool(
        function_declarations=[
            types.FunctionDeclaration(
                name="get_weather",
                description="The weather in a city.",
                parameters_json_schema={
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            )
        ]
    )
    config = types.GenerateContentConfig(
        system_instruction="Be brief.",
        tools=[tool],
        tool_config=types.ToolConfig(
            function_calling_config=types.FunctionCallingConfig(
                mode=types.FunctionCallingConfigMode.ANY, allowed_function_names=["get_weather"]
            )
        ),
        max_output_tokens=50,
        temperature=0.5,
        stop_sequences=["END"],
        thinking_config=types.ThinkingConfig(thinking_budget=128, include_thoughts=True),
    )
    response = client.models.generate_content(
        model="gemini-2.5-flash", contents="Weather in Rome?", config=config
    )
    assert response.function_calls is not None
    assert response.function_calls[0].args == {"city": "Rome"}
    last = emulator.requests[-1]
    received = emulator.protocol.received(last.path, last.json)
    assert received.system == "Be brief."
    assert received.tools == ("get_weather",)
    assert received.tool_choice == "function:get_weather"
    assert (received.max_tokens, received.stop, received.temperature) == (50, ("END",), 0.5)
