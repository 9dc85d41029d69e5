from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

import llmkit
from llmkit import _http, core
from llmkit._http import parse_retry_after

SECRET = "sk-test-secret-0123456789"
HI = {"messages": [{"role": "user", "content": "Hi"}]}
OK = {
    "id": "chatcmpl-1",
    "model": "gpt-4o-mini",
    "created": 1,
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
    ],
}


def _client(responses: list[httpx.Response | Exception], seen: list[httpx.Request]) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        item = responses.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    return httpx.Client(transport=httpx.MockTransport(handler))


def _call(client: httpx.Client, **config: object) -> llmkit.ChatResponse:
    return core.completion(
        "openai", "gpt-4o-mini", HI, {"api_key": SECRET, "http_client": client, **config}
    )


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waits: list[float] = []
    monkeypatch.setattr(_http, "_sleep", waits.append)
    return waits


def test_http_retries_rate_limit_honouring_retry_after(no_sleep: list[float]) -> None:
    seen: list[httpx.Request] = []
    responses: list[httpx.Response | Exception] = [
        httpx.Response(429, headers={"retry-after": "1.5"}, json={"error": {"message": "slow"}}),
        httpx.Response(200, json=OK),
    ]
    with _client(responses, seen) as client:
        assert _call(client).text == "ok"
    assert len(seen) == 2
    assert no_sleep == [1.5]


def test_http_retries_server_errors_with_backoff(no_sleep: list[float]) -> None:
    seen: list[httpx.Request] = []
    responses: list[httpx.Response | Exception] = [
        httpx.Response(503, text="overloaded"),
        httpx.Response(500, json={"error": {"message": "oops", "type": "server_error"}}),
        httpx.Response(200, json=OK),
    ]
    with _client(responses, seen) as client:
        assert _call(client).text == "ok"
    assert len(seen) == 3
    # Jittered between the 0.5 s floor and a ceiling that doubles per retry.
    assert len(no_sleep) == 2
    assert 0.5 <= no_sleep[0] <= 1.0
    assert 0.5 <= no_sleep[1] <= 2.0


def test_http_gives_up_after_retries(no_sleep: list[float]) -> None:
    seen: list[httpx.Request] = []
    responses: list[httpx.Response | Exception] = [httpx.Response(503, text="down")] * 3
    with (
        _client(list(responses), seen) as client,
        pytest.raises(llmkit.ServiceUnavailableError) as info,
    ):
        _call(client, retries=2)
    assert len(seen) == 3
    assert info.value.status == 503
    assert info.value.retryable is True


def test_http_does_not_retry_client_errors(no_sleep: list[float]) -> None:
    seen: list[httpx.Request] = []
    responses: list[httpx.Response | Exception] = [
        httpx.Response(
            400,
            headers={"x-request-id": "req_9"},
            json={"error": {"message": "bad", "code": "invalid_value"}},
        )
    ]
    with _client(responses, seen) as client, pytest.raises(llmkit.InvalidRequestError) as info:
        _call(client)
    assert len(seen) == 1
    assert info.value.request_id == "req_9"
    assert info.value.code == "invalid_value"
    assert no_sleep == []


def test_http_quota_429_is_not_retried(no_sleep: list[float]) -> None:
    seen: list[httpx.Request] = []
    body = {
        "error": {
            "message": "You exceeded your current quota",
            "type": "insufficient_quota",
            "code": "insufficient_quota",
        }
    }
    with (
        _client([httpx.Response(429, json=body)], seen) as client,
        pytest.raises(llmkit.RateLimitError) as info,
    ):
        _call(client)
    assert info.value.retryable is False
    assert "credits" in info.value.message
    assert len(seen) == 1


def test_http_retry_after_too_long_raises_at_once(no_sleep: list[float]) -> None:
    seen: list[httpx.Request] = []
    with (
        _client(
            [
                httpx.Response(
                    429, headers={"retry-after": "3600"}, json={"error": {"message": "wait"}}
                )
            ],
            seen,
        ) as client,
        pytest.raises(llmkit.RateLimitError) as info,
    ):
        _call(client)
    assert info.value.retry_after == 3600
    assert len(seen) == 1


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx.ConnectError("refused"), llmkit.APIConnectionError),
        (httpx.ReadTimeout("slow"), llmkit.TimeoutError),
        (httpx.ConnectTimeout("slow"), llmkit.TimeoutError),
    ],
    ids=["connect-error", "read-timeout", "connect-timeout"],
)
def test_http_translates_transport_errors(
    no_sleep: list[float], exc: Exception, expected: type[llmkit.LLMError]
) -> None:
    seen: list[httpx.Request] = []
    with _client([exc, exc], seen) as client, pytest.raises(expected) as info:
        _call(client, retries=1)
    # httpx errors hold the request (and its key): never chained, only named.
    assert info.value.__cause__ is None
    assert info.value.__context__ is None
    assert type(exc).__name__ in str(info.value)
    assert len(seen) == 2


def test_http_key_never_in_error(no_sleep: list[float]) -> None:
    seen: list[httpx.Request] = []
    body = {
        "error": {"message": f"Incorrect API key provided: {SECRET}.", "code": "invalid_api_key"}
    }
    with (
        _client([httpx.Response(401, json=body)], seen) as client,
        pytest.raises(llmkit.AuthenticationError) as info,
    ):
        _call(client)
    error = info.value
    for text in (str(error), repr(error), *map(str, error.args), error.message):
        assert SECRET not in text
    assert seen[0].headers["authorization"] == f"Bearer {SECRET}"


def test_http_deadline_stops_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[httpx.Request] = []
    responses: list[httpx.Response | Exception] = [
        httpx.Response(429, headers={"retry-after": "5"}, json={"error": {"message": "x"}})
    ] * 3
    with _client(list(responses), seen) as client, pytest.raises(llmkit.RateLimitError):
        _call(client, deadline=1.0)
    assert len(seen) == 1


def test_http_passed_deadline_raises_timeout() -> None:
    seen: list[httpx.Request] = []
    with _client([], seen) as client, pytest.raises(llmkit.TimeoutError, match="deadline"):
        _call(client, deadline=1e-9)
    assert seen == []


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "2"}, 2.0),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
    ids=["seconds", "milliseconds", "garbage", "absent"],
)
def test_http_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(httpx.Headers(headers)) == expected


def test_http_parse_retry_after_http_date() -> None:
    future = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    wait = parse_retry_after(httpx.Headers({"retry-after": future}))
    assert wait is not None
    assert 25 <= wait <= 31


def test_http_pooled_client_is_reused() -> None:
    transport = _http.Transport()
    config = llmkit.Config(timeout=12.0)
    pooled = transport.sync_client
    try:
        assert pooled(config) is pooled(config)
        assert pooled(llmkit.Config(timeout=13.0)) is not pooled(config)
        assert len(transport._sync) == 2
        # Another transport shares nothing with this one.
        assert _http.Transport().sync_client(config) is not pooled(config)
    finally:
        transport.close()
    assert transport._sync == {}


def test_http_retry_after_not_finite_is_ignored() -> None:
    assert parse_retry_after(httpx.Headers({"retry-after": "nan"})) is None
    assert parse_retry_after(httpx.Headers({"retry-after-ms": "inf", "retry-after": "3"})) == 3.0


def test_http_key_with_line_break_fails_before_network() -> None:
    seen: list[httpx.Request] = []
    with _client([], seen) as client, pytest.raises(llmkit.AuthenticationError) as info:
        _call(client, api_key="sk-abc\ndef-123456789")
    assert "sk-abc" not in str(info.value)
    assert "line breaks" in str(info.value)
    assert seen == []


def test_http_key_with_trailing_newline_is_stripped() -> None:
    seen: list[httpx.Request] = []
    with _client([httpx.Response(200, json=OK)], seen) as client:
        _call(client, api_key=SECRET + "\n")
    assert seen[0].headers["authorization"] == f"Bearer {SECRET}"


def test_http_api_base_without_scheme_is_refused() -> None:
    with pytest.raises(llmkit.InvalidRequestError, match="http:// or https://"):
        core.completion("openai", "m", HI, {"api_key": SECRET, "api_base": "localhost:8000/v1"})


def test_http_local_protocol_error_is_not_retried_and_hides_cause(no_sleep: list[float]) -> None:
    seen: list[httpx.Request] = []
    leak = httpx.LocalProtocolError(f"Illegal header value b'Bearer {SECRET}'")
    with _client([leak, leak], seen) as client, pytest.raises(llmkit.InvalidRequestError) as info:
        _call(client)
    assert len(seen) == 1
    assert info.value.__cause__ is None
    assert SECRET not in str(info.value)
    assert no_sleep == []


def test_http_transport_errors_carry_provider_and_model(no_sleep: list[float]) -> None:
    seen: list[httpx.Request] = []
    with (
        _client([httpx.ConnectError("refused")], seen) as client,
        pytest.raises(llmkit.APIConnectionError) as info,
    ):
        _call(client, retries=0)
    assert info.value.provider == "openai"
    assert info.value.model == "gpt-4o-mini"
    assert info.value.retryable is True


def test_http_wrong_client_types_are_refused() -> None:
    with pytest.raises(llmkit.InvalidRequestError, match=r"must be an httpx\.Client"):
        core.completion("openai", "m", HI, {"api_key": SECRET, "http_client": object()})


@pytest.mark.anyio
async def test_http_async_call_refuses_sync_only_client() -> None:
    seen: list[httpx.Request] = []
    with (
        _client([httpx.Response(200, json=OK)], seen) as client,
        pytest.raises(llmkit.InvalidRequestError, match="async_http_client"),
    ):
        await core.acompletion("openai", "m", HI, {"api_key": SECRET, "http_client": client})
    assert seen == []


def test_http_injected_client_honours_config_timeout() -> None:
    timeouts: list[dict[str, float | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        timeouts.append(request.extensions["timeout"])
        return httpx.Response(200, json=OK)

    with httpx.Client(transport=httpx.MockTransport(handler), timeout=99.0) as client:
        _call(client, timeout=7.0, connect_timeout=2.0)
        _call(client)
    assert timeouts[0] == {"connect": 2.0, "read": 7.0, "write": 7.0, "pool": 7.0}
    assert timeouts[1]["read"] == 99.0


def test_http_deadline_bounds_a_trickling_body() -> None:
    sent: list[int] = []

    def trickle() -> Iterator[bytes]:
        for _ in range(20):
            time.sleep(0.1)
            sent.append(1)
            yield b" "

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=trickle())

    with (
        httpx.Client(transport=httpx.MockTransport(handler)) as client,
        pytest.raises(llmkit.TimeoutError, match="deadline") as info,
    ):
        _call(client, deadline=0.35)
    # The body takes 20 pieces; the deadline stops reading long before the last.
    assert len(sent) < 20
    assert info.value.provider == "openai"


def test_http_async_clients_close_with_their_loop() -> None:
    import asyncio

    from llmkit_contracts import OpenAIEmulator, Reply

    with OpenAIEmulator(default=Reply.text("hi")) as emulator:
        config = {"api_key": SECRET, "api_base": emulator.base_url}
        clients: list[httpx.AsyncClient] = []
        for _ in range(3):

            async def one() -> None:
                await core.acompletion("openai", "m", HI, config)
                loop = asyncio.get_running_loop()
                clients.extend(_http.default_transport._async[loop].clients.values())

            asyncio.run(one())
    assert len(_http.default_transport._async) == 0
    assert len(clients) == 3
    assert all(client.is_closed for client in clients)


# --- the async shell behaves as the sync one ---------------------------------------------


def _async_client(
    responses: list[httpx.Response | Exception], seen: list[httpx.Request]
) -> httpx.AsyncClient:
    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        item = responses.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


@pytest.fixture
def no_async_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    import anyio

    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(anyio, "sleep", record)
    return waits


@pytest.mark.anyio
async def test_http_async_retries_like_sync(no_async_sleep: list[float]) -> None:
    seen: list[httpx.Request] = []
    responses: list[httpx.Response | Exception] = [
        httpx.Response(429, headers={"retry-after": "2"}, json={"error": {"message": "slow"}}),
        httpx.ConnectError("refused"),
        httpx.Response(200, json=OK),
    ]
    async with _async_client(responses, seen) as client:
        reply = await core.acompletion(
            "openai", "gpt-4o-mini", HI, {"api_key": SECRET, "async_http_client": client}
        )
    assert reply.text == "ok"
    assert len(seen) == 3
    assert no_async_sleep[0] == 2.0
    assert len(no_async_sleep) == 2


@pytest.mark.anyio
async def test_http_async_errors_like_sync(no_async_sleep: list[float]) -> None:
    seen: list[httpx.Request] = []
    responses: list[httpx.Response | Exception] = [
        httpx.ReadTimeout("slow"),
        httpx.ReadTimeout("slow"),
    ]
    async with _async_client(responses, seen) as client:
        with pytest.raises(llmkit.TimeoutError) as info:
            await core.acompletion(
                "openai",
                "gpt-4o-mini",
                HI,
                {"api_key": SECRET, "async_http_client": client, "retries": 1},
            )
    assert info.value.provider == "openai"
    assert len(seen) == 2
    leak = httpx.LocalProtocolError(f"Illegal header value b'Bearer {SECRET}'")
    async with _async_client([leak], []) as client:
        with pytest.raises(llmkit.InvalidRequestError) as bad:
            await core.acompletion(
                "openai", "gpt-4o-mini", HI, {"api_key": SECRET, "async_http_client": client}
            )
    assert bad.value.__cause__ is None
    assert SECRET not in str(bad.value)


@pytest.mark.anyio
async def test_http_async_deadline_bounds_a_trickling_body() -> None:
    import asyncio

    sent: list[int] = []

    async def trickle() -> AsyncIterator[bytes]:
        for _ in range(20):
            await asyncio.sleep(0.1)
            sent.append(1)
            yield b" "

    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=trickle())

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(llmkit.TimeoutError, match="deadline"):
            await core.acompletion(
                "openai",
                "gpt-4o-mini",
                HI,
                {"api_key": SECRET, "async_http_client": client, "deadline": 0.35},
            )
    assert len(sent) < 20


@pytest.mark.anyio
async def test_http_async_deadline_completes_fast_body() -> None:
    seen: list[httpx.Request] = []
    async with _async_client([httpx.Response(200, json=OK)], seen) as client:
        reply = await core.acompletion(
            "openai",
            "gpt-4o-mini",
            HI,
            {"api_key": SECRET, "async_http_client": client, "deadline": 30},
        )
    assert reply.text == "ok"


def test_http_deadline_completes_fast_body() -> None:
    seen: list[httpx.Request] = []
    with _client([httpx.Response(200, json=OK)], seen) as client:
        assert _call(client, deadline=30).text == "ok"
    assert seen[0].extensions["timeout"]["read"] <= 30
