"""End-to-end calls through the core façade against the OpenAI emulator on 127.0.0.1."""

from __future__ import annotations

import json
from typing import Any

import pytest

import llmkit
from llmkit import core
from llmkit.types import ChatRequest, Message
from llmkit_contracts import OpenAIEmulator, Reply

MODEL = "gpt-4o-mini"
HI = {"messages": [{"role": "user", "content": "Hi"}]}
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture
def config(emulator: OpenAIEmulator) -> dict[str, Any]:
    return {"api_key": "sk-emulator-000000", "api_base": emulator.base_url, "retries": 1}


def _summary(response: llmkit.ChatResponse) -> tuple[Any, ...]:
    choice = response.choices[0]
    calls = [(c.id, c.function.name, c.function.arguments) for c in response.tool_calls]
    usage = response.usage
    return (
        choice.message.content,
        calls,
        choice.finish_reason,
        None
        if usage is None
        else (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens),
    )


def test_core_completion_text(emulator: OpenAIEmulator, config: dict[str, Any]) -> None:
    emulator.enqueue(Reply.text("Paris.", prompt_tokens=9, completion_tokens=2))
    response = core.completion("openai", MODEL, HI, config)
    assert _summary(response) == ("Paris.", [], "stop", (9, 2, 11))
    sent = emulator.requests[-1]
    assert sent.json is not None
    assert sent.json["model"] == MODEL
    assert sent.json["messages"] == HI["messages"]
    assert sent.headers["authorization"] == "Bearer sk-emulator-000000"


def test_core_stream_text_with_usage(emulator: OpenAIEmulator, config: dict[str, Any]) -> None:
    emulator.enqueue(
        Reply.text("Hello there, friend.", chunk_size=3, prompt_tokens=4, completion_tokens=3)
    )
    with core.stream("openai", MODEL, HI, config) as stream:
        pieces = [chunk.text for chunk in stream]
        final = stream.collect()
    assert "".join(pieces) == "Hello there, friend."
    assert len([p for p in pieces if p]) == 7
    assert _summary(final) == ("Hello there, friend.", [], "stop", (4, 3, 7))
    sent = emulator.requests[-1].json
    assert sent is not None
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}


def test_core_tool_call_round_trip(emulator: OpenAIEmulator, config: dict[str, Any]) -> None:
    emulator.enqueue(
        Reply.tool_calls(
            [("get_weather", '{"city": "Paris"}'), ("get_weather", '{"city": "Rome"}')]
        ),
        Reply.text("Sunny in both."),
    )
    ask = {"role": "user", "content": "Weather?"}
    first = core.completion("openai", MODEL, {"messages": [ask], "tools": [TOOL]}, config)
    assert [(c.function.name, json.loads(c.function.arguments)) for c in first.tool_calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Rome"}),
    ]
    assert first.choices[0].finish_reason == "tool_calls"
    history = [
        ask,
        first.choices[0].message,
        *({"role": "tool", "tool_call_id": c.id, "content": "sunny"} for c in first.tool_calls),
    ]
    second = core.completion("openai", MODEL, {"messages": history, "tools": [TOOL]}, config)
    assert second.text == "Sunny in both."
    sent = emulator.requests[-1].json
    assert sent is not None
    assert sent["messages"][1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert sent["messages"][2] == {
        "role": "tool",
        "content": "sunny",
        "tool_call_id": first.tool_calls[0].id,
    }


def test_core_stream_tool_call_deltas(emulator: OpenAIEmulator, config: dict[str, Any]) -> None:
    emulator.enqueue(
        Reply.tool_calls([("a", '{"x": 1}'), ("b", '{"y": [1, 2, 3]}')]).with_(chunk_size=2)
    )
    stream = core.stream("openai", MODEL, {"messages": HI["messages"], "tools": [TOOL]}, config)
    final = stream.collect()
    assert [(c.function.name, c.function.arguments) for c in final.tool_calls] == [
        ("a", '{"x": 1}'),
        ("b", '{"y": [1, 2, 3]}'),
    ]
    assert final.choices[0].finish_reason == "tool_calls"


def test_core_stream_disconnect_raises(emulator: OpenAIEmulator, config: dict[str, Any]) -> None:
    emulator.enqueue(Reply.text("x" * 200, chunk_size=2, disconnect_after=5))
    stream = core.stream("openai", MODEL, HI, config)
    with pytest.raises(llmkit.StreamInterruptedError):
        for _ in stream:
            pass


def test_core_stream_idle_timeout_raises(emulator: OpenAIEmulator, config: dict[str, Any]) -> None:
    emulator.enqueue(Reply.text("slow answer", chunk_delay=1.0))
    stream = core.stream("openai", MODEL, HI, {**config, "timeout": 0.2})
    with pytest.raises(llmkit.TimeoutError):
        stream.collect()


def test_core_error_status_maps_and_retries(
    emulator: OpenAIEmulator, config: dict[str, Any]
) -> None:
    emulator.enqueue(
        Reply.error(
            429,
            message="Rate limit reached",
            code="rate_limit_exceeded",
            headers={"retry-after": "0"},
        ),
        Reply.text("after retry"),
    )
    assert core.completion("openai", MODEL, HI, config).text == "after retry"
    emulator.enqueue(
        Reply.error(404, message="The model `nope` does not exist", code="model_not_found")
    )
    with pytest.raises(llmkit.NotFoundError) as info:
        core.completion("openai", "nope", HI, config)
    assert info.value.status == 404
    assert info.value.code == "model_not_found"
    assert info.value.request_id is not None
    assert info.value.request_id.startswith("req_emu_")


def test_core_stream_error_before_body(emulator: OpenAIEmulator, config: dict[str, Any]) -> None:
    emulator.enqueue(Reply.error(401, message="Incorrect API key provided", code="invalid_api_key"))
    with pytest.raises(llmkit.AuthenticationError, match="OPENAI_API_KEY"):
        core.stream("openai", MODEL, HI, config)


def test_core_read_timeout(emulator: OpenAIEmulator, config: dict[str, Any]) -> None:
    emulator.enqueue(Reply.text("late", delay=1.0))
    with pytest.raises(llmkit.TimeoutError):
        core.completion("openai", MODEL, HI, {**config, "timeout": 0.2, "retries": 0})


def test_core_connection_refused() -> None:
    with OpenAIEmulator() as emu:
        base = emu.base_url
    with pytest.raises(llmkit.APIConnectionError, match="api_base"):
        core.completion(
            "openai", MODEL, HI, {"api_key": "sk-x-000000000", "api_base": base, "retries": 0}
        )


def test_core_bad_input_fails_before_network(
    emulator: OpenAIEmulator, config: dict[str, Any]
) -> None:
    before = len(emulator.requests)
    with pytest.raises(llmkit.InvalidRequestError, match="temperature"):
        core.completion("openai", MODEL, {**HI, "temperature": 9}, config)
    with pytest.raises(llmkit.InvalidRequestError, match="unknown field"):
        core.completion("openai", MODEL, HI, {**config, "api_kye": "x"})
    with pytest.raises(llmkit.ProviderNotFoundError):
        core.completion("opnai", MODEL, HI, config)
    assert len(emulator.requests) == before


def test_core_missing_key_names_env_var() -> None:
    with pytest.raises(llmkit.AuthenticationError, match="set OPENAI_API_KEY or pass api_key="):
        core.completion("openai", MODEL, HI)


def test_core_chat_and_shortcut(emulator: OpenAIEmulator, config: dict[str, Any]) -> None:
    emulator.enqueue(Reply.text("Bonjour"), Reply.text("Salut"))
    assert (
        core.chat("openai", MODEL, "Say hi in French", system_prompt="Be brief", **config)
        == "Bonjour"
    )
    sent = emulator.requests[-1].json
    assert sent is not None
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]
    request = ChatRequest(model="ignored", messages=[Message(role="user", content="hi")])
    assert core.openai_completion(MODEL, request, **config).text == "Salut"
    assert emulator.requests[-1].json == {
        "model": MODEL,
        "messages": [{"role": "user", "content": "hi"}],
    }


def test_core_extra_body_and_headers(emulator: OpenAIEmulator, config: dict[str, Any]) -> None:
    emulator.enqueue(Reply.text("ok"))
    core.completion(
        "openai",
        MODEL,
        {**HI, "extra_body": {"reasoning_effort": "low"}, "extra_headers": {"x-trace": "t1"}},
        {**config, "headers": {"OpenAI-Organization": "org-1"}},
    )
    sent = emulator.requests[-1]
    assert sent.json is not None
    assert sent.json["reasoning_effort"] == "low"
    assert "extra_body" not in sent.json
    assert sent.headers["x-trace"] == "t1"
    assert sent.headers["openai-organization"] == "org-1"


def test_core_reasoning_model_gets_max_completion_tokens(
    emulator: OpenAIEmulator, config: dict[str, Any]
) -> None:
    emulator.enqueue(Reply.text("ok"), Reply.text("ok"))
    core.completion("openai", "o3-mini", {**HI, "max_tokens": 50}, config)
    sent = emulator.requests[-1].json
    assert sent is not None
    assert sent["max_completion_tokens"] == 50
    assert "max_tokens" not in sent
    core.completion("openai", "gpt-4o", {**HI, "max_tokens": 50}, config)
    sent = emulator.requests[-1].json
    assert sent is not None
    assert sent["max_tokens"] == 50


def test_core_discovery() -> None:
    assert "openai" in core.list_providers()
    info = core.provider_info("openai")
    assert info.default_base_url == "https://api.openai.com/v1"
    assert info.api_key_env == "OPENAI_API_KEY"
    assert info.capabilities.tools
    assert info.capabilities.vision
    assert info.capabilities.json_schema
    assert core.provider_available("openai") is False
    assert core.provider_available("nope") is False


def test_core_provider_available_with_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-something-long")
    assert core.provider_available("openai") is True


def test_core_validate_request_without_network() -> None:
    request = core.validate_request("openai", {"model": MODEL, **HI})
    assert request.model == MODEL
    with pytest.raises(llmkit.InvalidRequestError, match="tool_call_id"):
        core.validate_request(
            "openai", {"model": MODEL, "messages": [{"role": "tool", "content": "x"}]}
        )
    with pytest.raises(llmkit.InvalidRequestError, match="model is empty"):
        core.validate_request("openai", HI)


# --- async, and parity with the sync path -------------------------------------------

SCRIPTS = {
    "text": lambda: Reply.text("The same answer, sync or async.", chunk_size=5),
    "tools": lambda: Reply.tool_calls([("get_weather", '{"city": "Oslo"}')]).with_(chunk_size=3),
}


@pytest.mark.anyio
@pytest.mark.parametrize("script", sorted(SCRIPTS), ids=sorted(SCRIPTS))
async def test_core_async_parity(
    emulator: OpenAIEmulator, config: dict[str, Any], script: str
) -> None:
    request = {"messages": HI["messages"], "tools": [TOOL]}
    emulator.enqueue(SCRIPTS[script](), SCRIPTS[script](), SCRIPTS[script](), SCRIPTS[script]())
    sync_plain = core.completion("openai", MODEL, request, config)
    async_plain = await core.acompletion("openai", MODEL, request, config)
    sync_stream = core.stream("openai", MODEL, request, config).collect()
    async with await core.astream("openai", MODEL, request, config) as stream:
        chunks = [chunk async for chunk in stream]
        async_stream = await stream.acollect()
    assert chunks
    expected = _summary(sync_plain)
    assert _summary(async_plain) == expected
    assert _summary(sync_stream)[:3] == expected[:3]
    assert _summary(async_stream) == _summary(sync_stream)


@pytest.mark.anyio
async def test_core_async_errors_and_disconnect(
    emulator: OpenAIEmulator, config: dict[str, Any]
) -> None:
    emulator.enqueue(Reply.error(400, message="bad things", code="invalid_value"))
    with pytest.raises(llmkit.InvalidRequestError, match="bad things"):
        await core.acompletion("openai", MODEL, HI, config)
    emulator.enqueue(Reply.text("y" * 100, chunk_size=2, disconnect_after=3))
    stream = await core.astream("openai", MODEL, HI, config)
    with pytest.raises(llmkit.StreamInterruptedError):
        async for _ in stream:
            pass


def test_core_collect_after_failure_or_close_raises(
    emulator: OpenAIEmulator, config: dict[str, Any]
) -> None:
    emulator.enqueue(Reply.text("x" * 200, chunk_size=2, disconnect_after=5))
    stream = core.stream("openai", MODEL, HI, config)
    with pytest.raises(llmkit.StreamInterruptedError) as info:
        for _ in stream:
            pass
    assert info.value.provider == "openai"
    assert info.value.model == MODEL
    assert info.value.request_id is not None
    with pytest.raises(llmkit.StreamInterruptedError):
        stream.collect()
    emulator.enqueue(Reply.text("a long answer " * 20, chunk_size=2))
    with core.stream("openai", MODEL, HI, config) as early:
        next(iter(early))
    with pytest.raises(llmkit.StreamInterruptedError, match="closed before its end"):
        early.collect()


def test_core_completion_drops_stream_options(
    emulator: OpenAIEmulator, config: dict[str, Any]
) -> None:
    emulator.enqueue(Reply.text("ok"))
    core.completion(
        "openai", MODEL, {**HI, "stream": True, "stream_options": {"include_usage": True}}, config
    )
    sent = emulator.requests[-1].json
    assert sent is not None
    assert "stream_options" not in sent
    assert sent.get("stream", False) is False
