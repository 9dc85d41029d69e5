"""The transport is an object: its own pools, and per-attempt events to one listener."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

import llmkit
from llmkit import _http, core
from llmkit_contracts import OpenAIEmulator, Reply

HI = {"messages": [{"role": "user", "content": "Hi"}]}
OK = {
    "id": "c1",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}],
}


def _flaky() -> httpx.MockTransport:
    replies = [
        httpx.Response(503, json={"error": {"message": "busy", "type": "server_error"}}),
        httpx.Response(200, json=OK),
    ]
    return httpx.MockTransport(lambda request: replies.pop(0))


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(_http, "_sleep", slept.append)
    return slept


def test_transport_reports_every_attempt(no_sleep: list[float]) -> None:
    events: list[llmkit.AttemptEvent] = []
    transport = llmkit.Transport(on_attempt=events.append)
    config = {
        "api_key": "sk-events-0123456789",
        "http_client": httpx.Client(transport=_flaky()),
        "retries": 1,
        "transport": transport,
    }
    assert core.completion("openai", "m", HI, config).text == "ok"
    assert [(e.attempt, e.status, e.wait is not None) for e in events] == [
        (1, 503, True),
        (2, 200, False),
    ]
    first, second = events
    assert isinstance(first.error, llmkit.ServiceUnavailableError)
    assert first.wait == no_sleep[0]
    assert second.error is None
    assert (second.provider, second.model) == ("openai", "m")
    assert second.latency >= 0
    assert second.first_byte is not None
    assert second.first_byte <= second.latency


def test_transport_reports_async_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_wait(seconds: float) -> None:
        return None

    import anyio

    monkeypatch.setattr(anyio, "sleep", no_wait)
    events: list[llmkit.AttemptEvent] = []
    transport = llmkit.Transport(on_attempt=events.append)
    config = {
        "api_key": "sk-events-0123456789",
        "async_http_client": httpx.AsyncClient(transport=_flaky()),
        "retries": 1,
        "transport": transport,
    }
    reply = asyncio.run(core.acompletion("openai", "m", HI, config))
    assert reply.text == "ok"
    assert [(e.attempt, e.status) for e in events] == [(1, 503), (2, 200)]


def test_transport_listener_failure_does_not_fail_the_call() -> None:
    def broken(event: llmkit.AttemptEvent) -> None:
        raise RuntimeError("listener bug")

    config = {
        "api_key": "sk-events-0123456789",
        "http_client": httpx.Client(
            transport=httpx.MockTransport(lambda r: httpx.Response(200, json=OK))
        ),
        "transport": llmkit.Transport(on_attempt=broken),
    }
    assert core.completion("openai", "m", HI, config).text == "ok"


def test_transport_owns_its_pools(emulator: OpenAIEmulator) -> None:
    emulator.enqueue(Reply.text("mine"))
    transport = llmkit.Transport()
    before = dict(_http.default_transport._sync)
    config = {
        "api_key": "sk-pool-0123456789",
        "api_base": emulator.base_url,
        "transport": transport,
    }
    assert core.completion("openai", "m", HI, config).text == "mine"
    assert len(transport._sync) == 1
    assert _http.default_transport._sync == before
    transport.close()
    assert transport._sync == {}


def test_transport_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(llmkit.InvalidRequestError, match="transport must be an llmkit Transport"):
        core.completion("openai", "m", HI, {"api_key": "sk-x-0123456789", "transport": object()})


def test_transport_without_listener_measures_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(_http.Transport, "_report", lambda *args: calls.append(args))
    config = {
        "api_key": "sk-events-0123456789",
        "http_client": httpx.Client(
            transport=httpx.MockTransport(lambda r: httpx.Response(200, json=OK))
        ),
    }
    core.completion("openai", "m", HI, config)
    assert calls == []
