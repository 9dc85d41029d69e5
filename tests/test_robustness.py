"""Failure paths found in review: leaks, misrouted clients, codec bugs, odd input."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest

import llmkit
from llmkit import core, generics
from llmkit._framing import SSEEvent
from llmkit.config import Config
from llmkit.keys import ProviderKey
from llmkit.types import ChatRequest, HttpCall, HttpResponse, Message, StreamState
from llmkit_contracts import OpenAIEmulator, Reply
from llmkit_providers.openai import OpenAI

SECRET = "sk-robust-0123456789abcdef"
HI = {"messages": [{"role": "user", "content": "Hi"}]}


def _one_connection() -> httpx.Client:
    # One pooled connection and a short pool wait: a leaked stream shows at once.
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    return httpx.Client(limits=limits, timeout=httpx.Timeout(10.0, pool=2.0))


def _one_async_connection() -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    return httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(10.0, pool=2.0))


def test_robust_abandoned_stream_returns_its_connection(emulator: OpenAIEmulator) -> None:
    with _one_connection() as client:
        config = {
            "api_key": SECRET,
            "api_base": emulator.base_url,
            "http_client": client,
            "retries": 0,
        }
        gc.disable()
        try:
            emulator.enqueue(Reply.text("many small pieces " * 20, chunk_size=2))
            stream = core.stream("openai", "m", HI, config)
            for _ in stream:
                break
            del stream  # no with, no close(): reference counting alone must free it
            emulator.enqueue(Reply.text("second"))
            assert core.completion("openai", "m", HI, config).text == "second"
            emulator.enqueue(Reply.text("never read"))
            unread = core.stream("openai", "m", HI, config)
            del unread
            emulator.enqueue(Reply.text("third"))
            assert core.completion("openai", "m", HI, config).text == "third"
        finally:
            gc.enable()


def test_robust_sync_call_refuses_async_only_client(emulator: OpenAIEmulator) -> None:
    with pytest.raises(llmkit.InvalidRequestError, match="http_client="):
        core.completion(
            "openai",
            "m",
            HI,
            {
                "api_key": SECRET,
                "api_base": emulator.base_url,
                "async_http_client": httpx.AsyncClient(),
            },
        )
    assert emulator.requests == []


@pytest.mark.parametrize("streaming", [False, True], ids=["plain", "stream"])
def test_robust_refused_header_leaves_no_context(streaming: bool) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.LocalProtocolError(f"Illegal header value b'{SECRET}'")

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        config = {"api_key": SECRET, "http_client": client}
        call = core.stream if streaming else core.completion
        with pytest.raises(llmkit.InvalidRequestError) as info:
            call("openai", "m", HI, config)
    error = info.value
    assert error.__cause__ is None
    assert error.__context__ is None
    assert SECRET not in str(error)


def test_robust_secret_header_is_scrubbed_from_errors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": {"message": "bad key azure-SECRET-123456 given"}})

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        config = {
            "api_key": SECRET,
            "http_client": client,
            "headers": {"api-key": "azure-SECRET-123456"},
        }
        with pytest.raises(llmkit.AuthenticationError) as info:
            core.completion("openai", "m", HI, config)
    assert "azure-SECRET-123456" not in str(info.value)


def test_robust_bad_header_value_refused_before_network() -> None:
    with pytest.raises(llmkit.InvalidRequestError, match="'api-key' must be one line") as info:
        core.completion("openai", "m", HI, {"api_key": SECRET, "headers": {"api-key": "x\ny"}})
    assert "x\ny" not in str(info.value)


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"retries": -1}, "retries"),
        ({"timeout": 0}, "timeout"),
        ({"deadline": "soon"}, "deadline"),
    ],
    ids=["retries", "timeout", "deadline"],
)
def test_robust_config_values_checked(config: dict[str, Any], fragment: str) -> None:
    with pytest.raises(llmkit.InvalidRequestError, match=fragment):
        core.completion("openai", "m", HI, {"api_key": SECRET, **config})
    with pytest.raises(llmkit.InvalidRequestError, match=fragment):
        Config(**config)


def test_robust_struct_request_with_dict_parts_converted_and_checked() -> None:
    # Dicts where structs belong are converted and validated, as in a dict request.
    request = ChatRequest(
        model="m",
        messages=[{"role": "user", "content": "hi"}],  # type: ignore[list-item]
        response_format={"type": "json_object"},  # type: ignore[arg-type]
        tools=[{"type": "function", "function": {"name": "f"}}],  # type: ignore[list-item]
    )
    checked = core.validate_request("openai", request)
    assert checked.messages == [Message(role="user", content="hi")]
    assert checked.response_format == llmkit.types.ResponseFormat(type="json_object")
    assert checked.tools is not None
    assert checked.tools[0].function.name == "f"
    bad = ChatRequest(model="m", messages=[{"role": "robot", "content": "hi"}])  # type: ignore[list-item]
    with pytest.raises(llmkit.InvalidRequestError, match=r"\$\.messages\[0\]\.role"):
        core.validate_request("openai", bad)


def test_robust_validate_request_rejects_non_mapping() -> None:
    with pytest.raises(llmkit.InvalidRequestError, match="must be a ChatRequest or a dict"):
        core.validate_request("openai", ["not", "a", "request"])  # type: ignore[arg-type]


# --- codecs that fail: every failure stays inside the hierarchy -----------------------


class Fragile(ProviderKey):
    __slots__ = ()
    name = "testfragile"
    default_base_url = "http://fragile.invalid"


@generics.encode_request.dispatch
def _encode(key: Fragile, request: ChatRequest, config: Config) -> Any:
    return HttpCall(url=f"{config.api_base}/x", body=b"{}", headers={}, stream=request.stream)


@generics.decode_response.dispatch
def _decode(key: Fragile, response: HttpResponse, request: ChatRequest) -> Any:
    return msgspec.json.decode(response.body, type=llmkit.ChatResponse)


@generics.decode_error.dispatch
def _error(key: Fragile, response: HttpResponse, request: ChatRequest) -> Any:
    return llmkit.ServiceUnavailableError(response.body.decode())  # raises on non-UTF-8


def _fragile(status: int, body: bytes) -> Any:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(status, content=body, headers={"x-request-id": "req_f"})

    return httpx.Client(transport=httpx.MockTransport(handler)), calls


def test_robust_codec_failing_on_error_body() -> None:
    client, _ = _fragile(502, b"\xff\xfe")
    with client, pytest.raises(llmkit.LLMError) as info:
        core.completion("testfragile", "m", HI, {"http_client": client, "retries": 0})
    assert info.value.status == 502
    assert info.value.request_id == "req_f"
    assert "could not read" in str(info.value)


def test_robust_codec_failing_on_success_body() -> None:
    client, _ = _fragile(200, b"<html>")
    with client, pytest.raises(llmkit.LLMError) as info:
        core.completion("testfragile", "m", HI, {"http_client": client})
    assert type(info.value) is llmkit.LLMError
    assert info.value.request_id == "req_f"
    assert info.value.__cause__ is None  # the message names it; a cause could hold the key
    assert "DecodeError" in str(info.value)


def test_robust_provider_without_stream_decoder_fails_before_sending() -> None:
    client, calls = _fragile(200, b"data: {}\n\n")
    with client, pytest.raises(llmkit.InvalidRequestError, match="cannot stream"):
        core.stream("testfragile", "m", HI, {"http_client": client})
    assert calls == []


def test_robust_stream_decoder_bug_is_an_llm_error() -> None:
    class Buggy(Fragile):
        __slots__ = ()
        name = "testbuggy"

    @generics.decode_event.dispatch
    def _event(key: Buggy, event: SSEEvent, state: StreamState) -> Any:
        raise KeyError("oops")

    client, _ = _fragile(200, b"data: {}\n\n")
    with client, pytest.raises(llmkit.LLMError, match="could not decode a stream event") as info:
        core.stream("testbuggy", "m", HI, {"http_client": client}).collect()
    assert info.value.__cause__ is None
    assert "KeyError" in str(info.value)
    assert info.value.request_id == "req_f"


def test_robust_azure_opening_chunk_is_skipped() -> None:
    data = b'{"id": "", "object": "", "created": 0, "model": "", "choices": [], "prompt_filter_results": [{"prompt_index": 0}]}'
    state = StreamState()
    assert generics.decode_event(OpenAI(), SSEEvent(None, data, None, None), state) is None


# --- the deadline --------------------------------------------------------------------


def test_robust_deadline_bounds_a_trickling_error_body() -> None:
    import time

    sent: list[int] = []

    def trickle() -> Iterator[bytes]:
        for _ in range(20):
            time.sleep(0.1)
            sent.append(1)
            yield b" "

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, content=trickle())

    with (
        httpx.Client(transport=httpx.MockTransport(handler)) as client,
        pytest.raises(llmkit.LLMError),
    ):
        core.completion(
            "openai", "m", HI, {"api_key": SECRET, "http_client": client, "deadline": 0.35}
        )
    assert len(sent) < 20


def test_robust_deadline_keeps_injected_client_timeouts() -> None:
    seen: list[dict[str, float]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return httpx.Response(
            200, json={"choices": [{"message": {"role": "assistant", "content": "ok"}}]}
        )

    with httpx.Client(transport=httpx.MockTransport(handler), timeout=10.0) as client:
        core.completion(
            "openai", "m", HI, {"api_key": SECRET, "http_client": client, "deadline": 300}
        )
    assert seen[0]["read"] == 10.0
    assert seen[0]["connect"] == 10.0


def test_robust_deadline_timeout_names_deadline(emulator: OpenAIEmulator) -> None:
    emulator.enqueue(Reply.text("late", delay=2.0))
    with pytest.raises(llmkit.TimeoutError, match="deadline"):
        core.completion(
            "openai", "m", HI, {"api_key": SECRET, "api_base": emulator.base_url, "deadline": 0.3}
        )


def test_robust_message_struct_check_keeps_messages() -> None:
    request = ChatRequest(model="m", messages=[Message(role="user", content="x")])
    assert core.validate_request("openai", request) is request


@pytest.mark.anyio
async def test_robust_abandoned_async_stream_returns_its_connection(
    emulator: OpenAIEmulator,
) -> None:
    async with _one_async_connection() as client:
        config = {
            "api_key": SECRET,
            "api_base": emulator.base_url,
            "async_http_client": client,
            "retries": 0,
        }
        gc.disable()
        try:
            emulator.enqueue(Reply.text("many small pieces " * 20, chunk_size=2))
            stream = await core.astream("openai", "m", HI, config)
            async for _ in stream:
                break
            await stream.aclose()
            emulator.enqueue(Reply.text("second"))
            assert (await core.acompletion("openai", "m", HI, config)).text == "second"
            emulator.enqueue(Reply.text("never read"))
            unread = await core.astream("openai", "m", HI, config)
            del unread  # dropped unread: llmkit schedules the close on the loop
            emulator.enqueue(Reply.text("third"))
            assert (await core.acompletion("openai", "m", HI, config)).text == "third"
        finally:
            gc.enable()


def test_robust_provider_without_capabilities_gets_defaults() -> None:
    info = core.provider_info("testfragile")
    assert info.capabilities.streaming is False
    assert info.capabilities.tools is False


def test_robust_iterating_a_temporary_stream(emulator: OpenAIEmulator) -> None:
    config = {"api_key": SECRET, "api_base": emulator.base_url}
    emulator.enqueue(Reply.text("read straight from the call", chunk_size=3))
    gc.disable()
    try:
        text = "".join(chunk.text for chunk in core.stream("openai", "m", HI, config))
    finally:
        gc.enable()
    assert text == "read straight from the call"


@pytest.mark.anyio
async def test_robust_iterating_a_temporary_async_stream(emulator: OpenAIEmulator) -> None:
    config = {"api_key": SECRET, "api_base": emulator.base_url}
    emulator.enqueue(Reply.text("read straight from the call", chunk_size=3))
    gc.disable()
    try:
        text = "".join(
            [chunk.text async for chunk in await core.astream("openai", "m", HI, config)]
        )
    finally:
        gc.enable()
    assert text == "read straight from the call"


@pytest.mark.parametrize(
    "pattern",
    ["iter-only", "zip-empty", "islice-zero", "list", "next-then-drop"],
)
def test_robust_every_way_of_dropping_a_stream_frees_it(
    emulator: OpenAIEmulator, pattern: str
) -> None:
    import itertools

    with _one_connection() as client:
        config = {
            "api_key": SECRET,
            "api_base": emulator.base_url,
            "http_client": client,
            "retries": 0,
        }
        gc.disable()
        try:
            emulator.enqueue(Reply.text("pieces " * 30, chunk_size=2))
            stream = core.stream("openai", "m", HI, config)
            if pattern == "iter-only":
                iterator = iter(stream)
                del iterator
            elif pattern == "zip-empty":
                assert list(zip([], stream, strict=False)) == []
            elif pattern == "islice-zero":
                assert list(itertools.islice(stream, 0)) == []
            elif pattern == "list":
                assert len(list(stream)) > 10
            else:
                next(stream)
            del stream
            emulator.enqueue(Reply.text("next call"))
            assert core.completion("openai", "m", HI, config).text == "next call"
        finally:
            gc.enable()


@pytest.mark.anyio
async def test_robust_async_iterator_dropped_unread_frees_it(emulator: OpenAIEmulator) -> None:
    async with _one_async_connection() as client:
        config = {
            "api_key": SECRET,
            "api_base": emulator.base_url,
            "async_http_client": client,
            "retries": 0,
        }
        gc.disable()
        try:
            emulator.enqueue(Reply.text("pieces " * 30, chunk_size=2))
            stream = await core.astream("openai", "m", HI, config)
            iterator = stream.__aiter__()
            del iterator, stream
            emulator.enqueue(Reply.text("next call"))
            assert (await core.acompletion("openai", "m", HI, config)).text == "next call"
        finally:
            gc.enable()


def test_robust_user_timeouts_replace_only_their_fields() -> None:
    seen: list[dict[str, float]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return httpx.Response(
            200, json={"choices": [{"message": {"role": "assistant", "content": "ok"}}]}
        )

    own = httpx.Timeout(connect=2.0, read=600.0, write=10.0, pool=1.0)
    with httpx.Client(transport=httpx.MockTransport(handler), timeout=own) as client:
        base = {"api_key": SECRET, "http_client": client}
        core.completion("openai", "m", HI, base)
        core.completion("openai", "m", HI, {**base, "deadline": 900})
        core.completion("openai", "m", HI, {**base, "timeout": 30})
        core.completion("openai", "m", HI, {**base, "deadline": 5})
    assert seen[0] == {"connect": 2.0, "read": 600.0, "write": 10.0, "pool": 1.0}
    assert seen[1] == {"connect": 2.0, "read": 600.0, "write": 10.0, "pool": 1.0}
    assert seen[2] == {"connect": 2.0, "read": 30.0, "write": 30.0, "pool": 30.0}
    assert seen[3]["connect"] == 2.0
    assert seen[3]["pool"] == 1.0
    assert seen[3]["read"] <= 5.0
