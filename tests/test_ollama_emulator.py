"""The Ollama emulator, and llmkit's native Ollama provider against it end to end.

The emulator's checks follow the server's (Go's JSON decoding, then model,
capabilities, options, format); the end-to-end cases are the failures
users meet: a model that has not been pulled, a server that is not
running, a stream that stops before its ``done`` line, an error line in
the middle of a stream, and ``OLLAMA_HOST`` in its several forms.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from typing import Any, cast

import httpx
import pytest

import llmkit_providers.ollama  # registers "ollama" before the per-test snapshot
from llmkit import core
from llmkit.provider import (
    APIConnectionError,
    InvalidRequestError,
    NotFoundError,
    ProbeResult,
    ServiceUnavailableError,
    StreamInterruptedError,
    build_call,
    prepare,
    probe,
)
from llmkit_contracts import PROTOCOLS
from llmkit_contracts.emulator import Reply
from llmkit_contracts.emulators.ollama import OllamaEmulator, OllamaProtocol

assert llmkit_providers.ollama.Ollama.name == "ollama"

HI: dict[str, Any] = {"messages": [{"role": "user", "content": "Hi"}]}
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
PULLED = {"qwen3": ("tools", "thinking", "vision"), "gemma3:4b": ("vision",)}


@pytest.fixture
def ollama() -> Iterator[OllamaEmulator]:
    with OllamaEmulator(PULLED) as running:
        yield running


def _post(emulator: OllamaEmulator, payload: Any, path: str = "/api/chat") -> httpx.Response:
    return httpx.post(emulator.base_url + path, json=payload, timeout=10)


def _config(emulator: OllamaEmulator, **extra: Any) -> dict[str, Any]:
    return {"api_base": emulator.base_url, "retries": 0, **extra}


# --- the protocol on its own -------------------------------------------------------------


def test_ollama_is_a_registered_protocol() -> None:
    assert PROTOCOLS["ollama"] is OllamaProtocol


def test_unknown_capabilities_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown capabilities"):
        OllamaProtocol({"qwen3": ("telepathy",)})


@pytest.mark.parametrize(
    ("payload", "status", "error"),
    [
        (
            {"model": 5, **HI},
            400,
            "cannot unmarshal number into Go struct field ChatRequest.model of type string",
        ),
        (
            {"model": "qwen3", "messages": "Hi"},
            400,
            "cannot unmarshal string into Go struct field ChatRequest.messages",
        ),
        (
            {
                "model": "qwen3",
                "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
            },
            400,
            "cannot unmarshal array into Go struct field ChatRequest.messages.content of type string",
        ),
        (
            {
                "model": "qwen3",
                "messages": [
                    {"role": "user", "content": "x", "images": ["data:image/png;base64,AA"]}
                ],
            },
            400,
            "illegal base64 data at input byte 4",
        ),
        (
            {
                "model": "qwen3",
                "messages": [
                    {
                        "role": "assistant",
                        "content": "",
                        "tool_calls": [{"function": {"name": "f", "arguments": '{"a": 1}'}}],
                    }
                ],
            },
            400,
            "cannot unmarshal string into Go value of type map",
        ),
        ({**HI, "model": "qwen3", "stream": "yes"}, 400, "ChatRequest.stream of type bool"),
        ({**HI, "model": "qwen3", "think": "extreme"}, 400, 'invalid think value: "extreme"'),
        ({**HI, "model": "qwen3", "think": 1}, 400, "think must be a boolean or string"),
        ({**HI, "model": "qwen3", "keep_alive": "ten"}, 400, 'time: invalid duration "ten"'),
        (
            {
                **HI,
                "model": "qwen3",
                "tools": [
                    {
                        "type": "function",
                        "function": {
                            "name": "f",
                            "parameters": {"type": "object", "properties": {"a": {"type": 3}}},
                        },
                    }
                ],
            },
            400,
            "cannot unmarshal number into Go value of type []string",
        ),
        (
            {**HI, "model": "qwen3", "top_logprobs": 30},
            400,
            "top_logprobs must be between 0 and 20",
        ),
        (HI, 400, "model is required"),
        ({**HI, "model": ""}, 400, "model is required"),
        ({**HI, "model": "llama3.2"}, 404, "model 'llama3.2' not found"),
        ({**HI, "model": "gemma3:4b", "think": True}, 400, '"gemma3:4b" does not support thinking'),
        (
            {**HI, "model": "gemma3:4b", "tools": [WEATHER]},
            400,
            "registry.ollama.ai/library/gemma3:4b does not support tools",
        ),
        (
            {**HI, "model": "qwen3", "options": {"temperature": "hot"}},
            500,
            'option "temperature" must be of type float32',
        ),
        (
            {**HI, "model": "qwen3", "options": {"num_ctx": True}},
            500,
            'option "num_ctx" must be of type integer',
        ),
        (
            {**HI, "model": "qwen3", "options": {"stop": [1]}},
            500,
            'option "stop" must be of an array of strings',
        ),
        (
            {**HI, "model": "qwen3", "format": "yaml"},
            500,
            'invalid format: "\\"yaml\\""; expected "json" or a valid JSON Schema object',
        ),
        ({**HI, "model": "qwen3", "format": 5}, 500, 'invalid format: "5"'),
    ],
    ids=lambda v: None if isinstance(v, dict | int) else v[:40],
)
def test_requests_are_checked_as_ollama_checks_them(
    ollama: OllamaEmulator, payload: Any, status: int, error: str
) -> None:
    response = _post(ollama, payload)
    assert response.status_code == status
    assert error in response.json()["error"]


def test_what_ollama_ignores_passes(ollama: OllamaEmulator) -> None:
    # Unknown fields and options are ignored, as Go and Options.FromMap ignore them;
    # "qwen3" is "qwen3:latest".
    payload = {
        **HI,
        "model": "qwen3:latest",
        "stream": False,
        "options": {"mirostat_x": 1, "num_ctx": 4096.0},
        "tool_choice": "auto",
    }
    response = _post(ollama, payload)
    assert response.status_code == 200
    assert response.json()["message"]["content"] == "Echo: Hi"


def test_no_messages_loads_the_model(ollama: OllamaEmulator) -> None:
    load = _post(ollama, {"model": "qwen3", "messages": []}).json()
    assert (load["done"], load["done_reason"]) == (True, "load")
    unload = _post(ollama, {"model": "qwen3", "messages": [], "keep_alive": 0}).json()
    assert unload["done_reason"] == "unload"


def test_other_paths_are_gos_plain_404(ollama: OllamaEmulator) -> None:
    response = _post(ollama, HI, "/v1/api/chat")
    assert response.status_code == 404
    assert response.text == "404 page not found"
    assert response.headers["content-type"].startswith("text/plain")
    assert httpx.get(ollama.base_url + "/api/chat").status_code == 404


def test_it_streams_ndjson_unless_told_not_to(ollama: OllamaEmulator) -> None:
    ollama.enqueue(Reply.text("Hello there", reasoning="Hm.", chunk_size=5, completion_tokens=0))
    response = _post(ollama, {**HI, "model": "qwen3"})
    assert response.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["done"] for line in lines] == [False, False, False, False, True]
    assert [line["message"].get("thinking") for line in lines[:1]] == ["Hm."]
    assert "".join(line["message"]["content"] for line in lines) == "Hello there"
    done = lines[-1]
    assert done["done_reason"] == "stop"
    # Go's omitempty: a count of 0 is left out.
    assert done["prompt_eval_count"] == 10
    assert "eval_count" not in done


def test_think_false_hides_the_thinking(ollama: OllamaEmulator) -> None:
    ollama.enqueue(Reply.text("42", reasoning="Six sevens."))
    message = _post(ollama, {**HI, "model": "qwen3", "stream": False, "think": False}).json()[
        "message"
    ]
    assert "thinking" not in message


def test_tool_calls_have_ids_on_current_servers_only() -> None:
    reply = Reply.tool_calls([("get_weather", '{"city": "Paris"}')])
    for ids, expected in ((True, {"id": "call_0"}), (False, {})):
        with OllamaEmulator(tool_call_ids=ids) as emulator:
            emulator.enqueue(reply)
            payload = {**HI, "model": "qwen3", "stream": False, "tools": [WEATHER]}
            calls = _post(emulator, payload).json()["message"]["tool_calls"]
        assert calls == [
            {
                **expected,
                "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}},
            }
        ]


@pytest.mark.parametrize(
    ("request_", "choice"),
    [
        (HI, "none"),
        ({**HI, "tools": [WEATHER]}, "auto"),
        ({**HI, "tools": [WEATHER], "tool_choice": "none"}, "none"),
        ({**HI, "tools": [WEATHER], "tool_choice": "required"}, "required"),
        (
            {
                **HI,
                "tools": [WEATHER, {"type": "function", "function": {"name": "get_time"}}],
                "tool_choice": "required",
            },
            "required",
        ),
        (
            {
                **HI,
                "tools": [WEATHER, {"type": "function", "function": {"name": "get_time"}}],
                "tool_choice": {"type": "function", "function": {"name": "get_time"}},
            },
            "function:get_time",
        ),
    ],
    ids=["no-tools", "auto", "none", "required-one", "required-two", "named"],
)
def test_received_reads_the_choice_the_model_had(request_: dict[str, Any], choice: str) -> None:
    key, req, cfg = prepare("ollama", "qwen3", request_, None, False)
    payload = json.loads(build_call(key, req, cfg).body)
    assert OllamaProtocol().received("/api/chat", payload).tool_choice == choice


def test_received_reads_format_options_and_turns() -> None:
    payload = {
        "model": "qwen3",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Look", "images": [PNG]},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": {"a": 1}}}],
            },
            {"role": "tool", "content": "done", "tool_call_id": "c1", "tool_name": "f"},
        ],
        "options": {"num_predict": 5, "stop": ["x"], "temperature": 0.5},
        "format": "json",
    }
    received = OllamaProtocol().received("/api/chat", payload)
    assert received.system == "Be brief."
    assert [(t.role, t.text, t.images) for t in received.turns] == [
        ("user", "Look", 1),
        ("assistant", "", 0),
        ("tool", "done", 0),
    ]
    assert received.turns[1].calls == (("c1", "f", {"a": 1}),)
    assert received.turns[2].tool_call_id == "c1"
    assert (received.max_tokens, received.stop, received.temperature) == (5, ("x",), 0.5)
    assert received.response_format == "json_object"
    assert received.stream  # Ollama's default
    schema = {**payload, "format": {"type": "object"}, "stream": False}
    assert OllamaProtocol().received("/api/chat", schema).response_format == "json_schema"
    assert not OllamaProtocol().received("/api/chat", schema).stream


# --- llmkit against it ------------------------------------------------------------------


def test_a_model_not_pulled_is_not_found_with_the_pull_hint(ollama: OllamaEmulator) -> None:
    with pytest.raises(NotFoundError) as raised:
        core.completion("ollama", "llama3.2", HI, _config(ollama))
    error = raised.value
    assert error.status == 404
    assert "model 'llama3.2' not found" in error.message
    assert "`ollama pull llama3.2`" in error.message
    with pytest.raises(NotFoundError, match=r"ollama pull llama3\.2"):
        core.stream("ollama", "llama3.2", HI, _config(ollama))


def test_what_the_model_cannot_do_is_a_400_naming_it(ollama: OllamaEmulator) -> None:
    with pytest.raises(InvalidRequestError, match="does not support thinking") as raised:
        core.completion("ollama", "gemma3:4b", HI, _config(ollama, options={"think": True}))
    assert "ollama show gemma3:4b" in raised.value.message
    with pytest.raises(InvalidRequestError, match="does not support tools"):
        core.completion("ollama", "gemma3:4b", {**HI, "tools": [WEATHER]}, _config(ollama))


def _cut_lines() -> list[bytes]:
    line = {"model": "qwen3", "created_at": "2025-07-07T20:22:19Z", "done": False}
    return [
        json.dumps({**line, "message": {"role": "assistant", "content": piece}}).encode() + b"\n"
        for piece in ("Once ", "upon ", "a time")
    ]


def test_a_stream_without_its_done_line_is_interrupted(ollama: OllamaEmulator) -> None:
    # The body ends cleanly (chunked encoding finished) but no line said done: true.
    ollama.enqueue(Reply.raw(200, _cut_lines(), headers={"content-type": "application/x-ndjson"}))
    seen: list[str] = []
    with pytest.raises(StreamInterruptedError, match="incomplete"):  # noqa: PT012
        for chunk in core.stream("ollama", "qwen3", HI, _config(ollama)):
            seen.append(chunk.text)
    assert "".join(seen) == "Once upon a time"


def test_a_stream_without_its_done_line_is_interrupted_async(ollama: OllamaEmulator) -> None:
    ollama.enqueue(Reply.raw(200, _cut_lines(), headers={"content-type": "application/x-ndjson"}))

    async def read() -> None:
        stream = await core.astream("ollama", "qwen3", HI, _config(ollama))
        async for _ in stream:
            pass

    with pytest.raises(StreamInterruptedError):
        asyncio.run(read())


def test_a_stream_cut_mid_line_is_interrupted(ollama: OllamaEmulator) -> None:
    ollama.enqueue(Reply.text("Once upon a time", chunk_size=4, disconnect_after=2))
    with pytest.raises(StreamInterruptedError):
        core.stream("ollama", "qwen3", HI, _config(ollama)).collect()


def test_an_error_line_mid_stream_raises_it(ollama: OllamaEmulator) -> None:
    ollama.enqueue(
        Reply.text(
            "Once upon a time",
            chunk_size=4,
            error_after=2,
            message="model runner has unexpectedly stopped",
        )
    )
    stream = core.stream("ollama", "qwen3", HI, _config(ollama))
    assert next(stream).text == "Once"
    with pytest.raises(ServiceUnavailableError, match="unexpectedly stopped"):
        stream.collect()


@pytest.mark.parametrize(
    "options",
    [
        {"model_options": {"temperature": "hot"}},
        {"model_options": {"stop": "x"}},
        {"model_options": {"num_ctx": float("nan")}},
        {"keep_alive": float("nan")},
        {"keep_alive": 10**30},
    ],
    ids=["temperature-str", "stop-str", "num_ctx-nan", "keep_alive-nan", "keep_alive-huge"],
)
def test_options_ollama_cannot_use_are_refused_before_any_request(
    ollama: OllamaEmulator, options: dict[str, Any]
) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        core.completion("ollama", "qwen3", HI, _config(ollama, retries=2, options=options))
    assert not raised.value.retryable
    assert ollama.requests == []


@pytest.mark.parametrize("stream", [False, True], ids=["body", "stream"])
def test_the_servers_500_for_an_option_of_the_wrong_type_is_not_retried(
    ollama: OllamaEmulator, stream: bool
) -> None:
    # extra_body goes out unchecked: the server's own check answers.
    request = {**HI, "extra_body": {"options": {"temperature": "hot"}}}
    config = _config(ollama, retries=2)

    def call() -> object:
        if stream:
            return core.stream("ollama", "qwen3", request, config).collect()
        return core.completion("ollama", "qwen3", request, config)

    with pytest.raises(InvalidRequestError, match='option "temperature" must be of type float32'):
        call()
    assert len(ollama.requests) == 1


def test_image_data_that_is_no_base64_never_reaches_the_server(ollama: OllamaEmulator) -> None:
    content = [{"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}]
    with pytest.raises(InvalidRequestError, match="not valid base64"):
        core.completion(
            "ollama", "qwen3", {"messages": [{"role": "user", "content": content}]}, _config(ollama)
        )
    assert ollama.requests == []


def test_json_schema_and_think_end_to_end(ollama: OllamaEmulator) -> None:
    ollama.enqueue(Reply.text('{"name": "cat"}', reasoning="A cat it is."))
    fmt = {"type": "json_schema", "json_schema": {"name": "animal", "schema": {"type": "object"}}}
    answer = core.ollama_completion(
        "qwen3", {**HI, "response_format": fmt}, api_base=ollama.base_url, options={"think": True}
    )
    assert answer.text == '{"name": "cat"}'
    assert answer.choices[0].message.reasoning == "A cat it is."
    sent = ollama.requests[-1].json
    assert (sent["format"], sent["think"], sent["stream"]) == ({"type": "object"}, True, False)


def test_images_reach_the_server_as_base64(ollama: OllamaEmulator) -> None:
    content = [
        {"type": "text", "text": "What?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    ]
    core.completion(
        "ollama", "gemma3:4b", {"messages": [{"role": "user", "content": content}]}, _config(ollama)
    )
    assert ollama.requests[-1].json["messages"][0]["images"] == [PNG]


# --- where the server is -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "base"),
    [
        ("127.0.0.1:11434", "http://127.0.0.1:11434"),
        ("http://gpu-box:8080", "http://gpu-box:8080"),
        ("0.0.0.0", "http://127.0.0.1:11434"),
        ("gpu-box", "http://gpu-box:11434"),
        ("https://ollama.example.com/", "https://ollama.example.com:443"),
    ],
)
def test_ollama_host_sets_the_base_url(
    monkeypatch: pytest.MonkeyPatch, value: str, base: str
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", value)
    _, _, config = prepare("ollama", "qwen3", HI, None, False)
    assert config.api_base == base


def test_without_ollama_host_the_default_url_is_used() -> None:
    _, _, config = prepare("ollama", "qwen3", HI, None, False)
    assert config.api_base == "http://localhost:11434"
    # api_base= wins over the variable.
    _, _, config = prepare("ollama", "qwen3", HI, {"api_base": "http://10.0.0.2:11434"}, False)
    assert config.api_base == "http://10.0.0.2:11434"


def test_a_bad_ollama_host_is_refused_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "gpu-box:99999")
    with pytest.raises(InvalidRequestError, match="OLLAMA_HOST"):
        prepare("ollama", "qwen3", HI, None, False)


def test_ollama_host_reaches_the_server(
    monkeypatch: pytest.MonkeyPatch, ollama: OllamaEmulator
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{ollama.port}")
    assert core.chat("ollama", "qwen3", "Hi") == "Echo: Hi"


def _closed_port() -> int:
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        return int(probe_socket.getsockname()[1])


def test_a_refused_connection_says_to_start_ollama_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{_closed_port()}")
    with pytest.raises(APIConnectionError) as raised:
        core.completion("ollama", "qwen3", HI, {"retries": 0})
    assert "`ollama serve`" in raised.value.message
    assert raised.value.retryable


def test_a_refused_connection_to_the_default_url_says_to_start_ollama_serve() -> None:
    # No socket is opened: the refusal is the transport's, for localhost:11434.
    seen: list[str] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    with httpx.Client(transport=httpx.MockTransport(refuse)) as client:
        with pytest.raises(APIConnectionError) as raised:
            core.completion("ollama", "qwen3", HI, {"retries": 0, "http_client": client})
        with pytest.raises(APIConnectionError, match="ollama serve"):
            core.stream("ollama", "qwen3", HI, {"retries": 0, "http_client": client})
    assert seen[0] == "http://localhost:11434/api/chat"
    message = raised.value.message
    assert "localhost:11434" in message
    assert message.count("ollama serve") == 1


def test_other_providers_get_no_ollama_hint() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with (
        httpx.Client(transport=httpx.MockTransport(refuse)) as client,
        pytest.raises(APIConnectionError) as raised,
    ):
        core.completion(
            "openai",
            "gpt-4o-mini",
            HI,
            {"api_key": "sk-test-000000000", "retries": 0, "http_client": client},
        )
    assert "ollama" not in raised.value.message


def test_the_health_probe_lists_the_pulled_models() -> None:
    def serve(request: httpx.Request) -> httpx.Response:
        assert (request.method, request.url.path) == ("GET", "/v1/models")
        return httpx.Response(
            200, json={"object": "list", "data": [{"id": "qwen3:latest"}, {"id": "gemma3:4b"}]}
        )

    with httpx.Client(transport=httpx.MockTransport(serve)) as client:
        key, _, config = prepare("ollama", "qwen3", HI, {"http_client": client}, False)
        result = cast(ProbeResult, probe(key, config))
    assert result.models == ("qwen3:latest", "gemma3:4b")
