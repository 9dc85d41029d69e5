"""The official ``ollama`` client reads the emulator's answers as llmkit does.

Ollama's own Python client (a dev-only test dependency) is pointed at the
emulator on 127.0.0.1; each scripted answer is fetched once by the client
and once by llmkit, streamed and not, and both must find the same text,
thinking, tool calls, done reason and counts; error answers (before and
in the middle of a stream) must carry the same status and message. The
client's requests also pass the emulator's strict checks, which keeps
those checks honest.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import ollama
import pytest

import llmkit_providers.ollama  # registers "ollama" before the per-test snapshot
from llmkit import core
from llmkit.provider import LLMError, NotFoundError, ServiceUnavailableError
from llmkit_contracts.emulator import Reply
from llmkit_contracts.emulators.ollama import OllamaEmulator

assert llmkit_providers.ollama.Ollama.name == "ollama"

MODEL = "qwen3"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
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
SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
QUESTION = [{"role": "user", "content": "What is the weather in Paris and Rome?"}]


@dataclass(frozen=True)
class Seen:
    """An answer reduced to what both clients must agree on."""

    content: str
    thinking: str
    calls: tuple[tuple[str, Any], ...]
    done_reason: str | None
    counts: tuple[int, int]


@dataclass(frozen=True)
class Scenario:
    reply: Reply
    # The official client's keyword arguments, and llmkit's request and options.
    sdk: dict[str, Any]
    request: dict[str, Any]
    options: dict[str, Any] | None = None


SCENARIOS = {
    "text": Scenario(
        Reply.text("Hello there, friend!", prompt_tokens=9, completion_tokens=4, chunk_size=3),
        {"messages": [{"role": "user", "content": "Say hello."}]},
        {"messages": [{"role": "user", "content": "Say hello."}]},
    ),
    "think": Scenario(
        Reply.text("42", reasoning="Six times seven is forty-two.", chunk_size=5),
        {"messages": [{"role": "user", "content": "6 x 7?"}], "think": True},
        {"messages": [{"role": "user", "content": "6 x 7?"}]},
        {"think": True},
    ),
    "tools": Scenario(
        Reply.tool_calls(
            [("get_weather", '{"city": "Paris"}'), ("get_weather", '{"city": "Rome"}')],
            content="Let me look.",
        ),
        {"messages": QUESTION, "tools": [WEATHER]},
        {"messages": QUESTION, "tools": [WEATHER]},
    ),
    "length": Scenario(
        Reply.text("One, two", finish_reason="length", completion_tokens=2),
        {"messages": [{"role": "user", "content": "Count."}], "options": {"num_predict": 2}},
        {"messages": [{"role": "user", "content": "Count."}], "max_tokens": 2},
    ),
    "schema": Scenario(
        Reply.text('{"name": "cat"}'),
        {"messages": [{"role": "user", "content": "An animal."}], "format": SCHEMA},
        {
            "messages": [{"role": "user", "content": "An animal."}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "animal", "schema": SCHEMA},
            },
        },
    ),
    "image": Scenario(
        Reply.text("A transparent pixel.", completion_tokens=0),
        {"messages": [{"role": "user", "content": "What is it?", "images": [PNG]}]},
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is it?"},
                        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                    ],
                }
            ]
        },
    ),
}


@pytest.fixture(scope="module")
def emulator() -> Iterator[OllamaEmulator]:
    with OllamaEmulator() as running:
        yield running


@pytest.fixture(scope="module")
def client(emulator: OllamaEmulator) -> Iterator[ollama.Client]:
    with ollama.Client(host=emulator.base_url) as sdk:
        yield sdk


def _sdk_seen(answer: Any) -> Seen:
    message = answer.message
    return Seen(
        content=message.content or "",
        thinking=message.thinking or "",
        calls=tuple(
            (call.function.name, dict(call.function.arguments)) for call in message.tool_calls or ()
        ),
        done_reason=answer.done_reason,
        counts=(answer.prompt_eval_count or 0, answer.eval_count or 0),
    )


def _sdk_stream_seen(parts: Iterator[Any]) -> Seen:
    content, thinking, calls = [], [], []
    last = None
    for part in parts:
        content.append(part.message.content or "")
        thinking.append(part.message.thinking or "")
        calls += [
            (call.function.name, dict(call.function.arguments))
            for call in part.message.tool_calls or ()
        ]
        last = part
    assert last is not None
    assert last.done
    return Seen(
        content="".join(content),
        thinking="".join(thinking),
        calls=tuple(calls),
        done_reason=last.done_reason,
        counts=(last.prompt_eval_count or 0, last.eval_count or 0),
    )


def _llmkit_seen(answer: Any) -> Seen:
    choice = answer.choices[0]
    usage = answer.usage
    return Seen(
        content=answer.text,
        thinking=choice.message.reasoning or "",
        calls=tuple(
            (call.function.name, json.loads(call.function.arguments)) for call in answer.tool_calls
        ),
        done_reason=choice.native_finish_reason,
        counts=(usage.prompt_tokens, usage.completion_tokens),
    )


@pytest.mark.parametrize("name", sorted(SCENARIOS))
@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "stream"])
def test_the_sdk_and_llmkit_read_the_same_answer(
    emulator: OllamaEmulator, client: ollama.Client, name: str, streamed: bool
) -> None:
    scenario = SCENARIOS[name]
    emulator.reset()
    emulator.enqueue(scenario.reply, scenario.reply)
    if streamed:
        sdk = _sdk_stream_seen(client.chat(MODEL, stream=True, **scenario.sdk))
    else:
        sdk = _sdk_seen(client.chat(MODEL, stream=False, **scenario.sdk))
    config = {"api_base": emulator.base_url, "options": scenario.options}
    if streamed:
        ours = _llmkit_seen(core.stream("ollama", MODEL, scenario.request, config).collect())
    else:
        ours = _llmkit_seen(core.completion("ollama", MODEL, scenario.request, config))
    assert ours == sdk
    # Both requests passed the strict checks, and say the same where it counts.
    first, second = (request.json for request in emulator.requests)
    for field in ("model", "messages", "tools", "format", "think"):
        # (the client sends "tools": [] for none)
        assert (first.get(field) or None) == (second.get(field) or None), field
    if name == "length":
        assert first["options"] == second["options"] == {"num_predict": 2}


def test_the_answers_carry_what_was_scripted(emulator: OllamaEmulator) -> None:
    # The comparison above is not between two empty readings.
    emulator.reset()
    emulator.enqueue(SCENARIOS["tools"].reply)
    answer = core.completion(
        "ollama", MODEL, SCENARIOS["tools"].request, {"api_base": emulator.base_url}
    )
    assert _llmkit_seen(answer) == Seen(
        content="Let me look.",
        thinking="",
        calls=(("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})),
        done_reason="stop",
        counts=(10, 5),
    )
    assert answer.choices[0].finish_reason == "tool_calls"


def _sdk_chat(client: ollama.Client, messages: list[Any], streamed: bool) -> Any:
    if streamed:
        return list(client.chat(MODEL, messages=messages, stream=True))
    return client.chat(MODEL, messages=messages)


@pytest.mark.parametrize(
    ("status", "message", "error"),
    [
        (404, "model 'qwen3' not found", NotFoundError),
        (400, "invalid think value", LLMError),
        (500, "llama runner process has terminated", ServiceUnavailableError),
    ],
    ids=["404", "400", "500"],
)
@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "stream"])
def test_error_answers_read_the_same(
    emulator: OllamaEmulator,
    client: ollama.Client,
    status: int,
    message: str,
    error: type[LLMError],
    streamed: bool,
) -> None:
    emulator.reset()
    emulator.enqueue(Reply.error(status, message=message), Reply.error(status, message=message))
    messages = [{"role": "user", "content": "Hi"}]
    with pytest.raises(ollama.ResponseError) as sdk:
        _sdk_chat(client, messages, streamed)
    config = {"api_base": emulator.base_url, "retries": 0}
    call = core.stream if streamed else core.completion
    with pytest.raises(error) as ours:
        call("ollama", MODEL, {"messages": messages}, config)
    assert sdk.value.status_code == ours.value.status == status
    assert sdk.value.error == message
    assert ours.value.message.startswith(message)


def test_an_error_line_mid_stream_reads_the_same(
    emulator: OllamaEmulator, client: ollama.Client
) -> None:
    reply = Reply.text("Once upon a time", chunk_size=4, error_after=2, message="out of memory")
    emulator.reset()
    emulator.enqueue(reply, reply)
    sdk_text: list[str] = []
    with pytest.raises(ollama.ResponseError) as sdk:  # noqa: PT012
        for part in client.chat(MODEL, messages=[{"role": "user", "content": "Hi"}], stream=True):
            sdk_text.append(part.message.content or "")
    ours_text = []
    config = {"api_base": emulator.base_url}
    with pytest.raises(ServiceUnavailableError) as ours:  # noqa: PT012
        for chunk in core.stream(
            "ollama", MODEL, {"messages": [{"role": "user", "content": "Hi"}]}, config
        ):
            ours_text.append(chunk.text)
    assert "".join(sdk_text) == "".join(ours_text) == "Once upo"
    assert sdk.value.error == "out of memory"
    assert ours.value.message.startswith("out of memory")


def test_a_tool_loop_from_the_sdk_passes_the_strict_checks(
    emulator: OllamaEmulator, client: ollama.Client
) -> None:
    # The documented loop: the model's calls, then the results by tool_name.
    emulator.reset()
    emulator.enqueue(Reply.tool_calls([("get_weather", '{"city": "Paris"}')]), Reply.text("18 C"))
    first = client.chat(MODEL, messages=QUESTION, tools=[WEATHER])
    history: list[Any] = [
        *QUESTION,
        first.message,
        {"role": "tool", "content": "18 C", "tool_name": "get_weather"},
    ]
    second = client.chat(MODEL, messages=history, tools=[WEATHER])
    assert second.message.content == "18 C"
    sent = emulator.requests[-1].json["messages"]
    assert sent[1]["tool_calls"][0]["function"]["arguments"] == {"city": "Paris"}
