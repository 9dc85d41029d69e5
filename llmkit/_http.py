"""The HTTP transport: the only module of llmkit that imports httpx.

It sends the :class:`~llmkit.types.HttpCall` a codec built and hands back an
:class:`~llmkit.types.HttpResponse` or a byte stream. It owns what is shared
across calls and providers:

* one long-lived pooled ``httpx.Client`` per timeout setting, and one
  ``httpx.AsyncClient`` per timeout setting per event loop (building a
  client costs about 20 ms, mostly the TLS context, so it is done once);
* one ``SSLContext`` per process;
* retries with exponential backoff and full jitter, honouring ``Retry-After``;
* the translation of httpx's exceptions into llmkit's, done here only.
"""

from __future__ import annotations

import atexit
import email.utils
import random
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

import httpx

from llmkit.config import DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT, DEFAULT_RETRIES, Config
from llmkit.errors import (
    APIConnectionError,
    LLMError,
    StreamInterruptedError,
    TimeoutError,
)
from llmkit.types import HttpCall, HttpResponse

if TYPE_CHECKING:
    import asyncio

__all__ = ["AsyncByteStream", "ByteStream", "asend", "close_clients", "parse_retry_after", "send"]

ErrorFactory = Callable[[HttpResponse], LLMError]

_BACKOFF_BASE = 0.5
_BACKOFF_CAP = 8.0
# A provider asking for a longer wait than this gets the error at once:
# sleeping minutes inside a call surprises users more than an exception does.
_MAX_RETRY_AFTER = 60.0

# Looked up at call time, so tests can replace it without touching time.sleep.
_sleep = time.sleep

_lock = threading.Lock()
_ssl_context: Any = None
_sync_clients: dict[tuple[float, float], httpx.Client] = {}
_async_clients: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[float, float], httpx.AsyncClient]
] = weakref.WeakKeyDictionary()


def _timeouts(config: Config) -> tuple[float, float]:
    connect = (
        config.connect_timeout if config.connect_timeout is not None else DEFAULT_CONNECT_TIMEOUT
    )
    read = config.timeout if config.timeout is not None else DEFAULT_READ_TIMEOUT
    return connect, read


def _httpx_timeout(connect: float, read: float) -> httpx.Timeout:
    return httpx.Timeout(connect=connect, read=read, write=read, pool=read)


def _ssl() -> Any:
    global _ssl_context
    if _ssl_context is None:
        _ssl_context = httpx.create_ssl_context()
    return _ssl_context


_LIMITS = httpx.Limits(max_connections=256, max_keepalive_connections=64, keepalive_expiry=30.0)


def _sync_client(config: Config) -> httpx.Client:
    if config.http_client is not None:
        return config.http_client  # type: ignore[no-any-return]
    key = _timeouts(config)
    client = _sync_clients.get(key)
    if client is None:
        with _lock:
            client = _sync_clients.get(key)
            if client is None:
                client = httpx.Client(timeout=_httpx_timeout(*key), verify=_ssl(), limits=_LIMITS)
                _sync_clients[key] = client
    return client


def _async_client(config: Config) -> httpx.AsyncClient:
    if config.async_http_client is not None:
        return config.async_http_client  # type: ignore[no-any-return]
    # asyncio costs 25-30 ms to import; sync-only programs never pay it.
    import asyncio

    loop = asyncio.get_running_loop()
    key = _timeouts(config)
    per_loop = _async_clients.get(loop)
    if per_loop is None:
        per_loop = _async_clients.setdefault(loop, {})
    client = per_loop.get(key)
    if client is None:
        client = httpx.AsyncClient(timeout=_httpx_timeout(*key), verify=_ssl(), limits=_LIMITS)
        per_loop[key] = client
    return client


def close_clients() -> None:
    """Close llmkit's pooled sync clients (async ones close with their loop)."""
    with _lock:
        clients = list(_sync_clients.values())
        _sync_clients.clear()
    for client in clients:
        client.close()


# Pooled connections are closed on exit rather than left to the garbage collector.
atexit.register(close_clients)


def parse_retry_after(headers: Any) -> float | None:
    """Return the wait in seconds asked for by ``retry-after-ms`` or ``Retry-After``.

    ``Retry-After`` may be seconds or an HTTP date; anything else gives ``None``.
    """
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(float(value) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


class _Retry:
    """Counts attempts and computes the wait before the next one."""

    __slots__ = ("deadline", "left", "tries")

    def __init__(self, config: Config) -> None:
        self.left = config.retries if config.retries is not None else DEFAULT_RETRIES
        self.tries = 0
        self.deadline = time.monotonic() + config.deadline if config.deadline is not None else None

    def timeout(self, config: Config) -> httpx.Timeout | None:
        """Per-request timeout: the client's, shrunk to what the deadline leaves."""
        if self.deadline is None:
            return None
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise _past_deadline()
        connect, read = _timeouts(config)
        return _httpx_timeout(min(connect, remaining), min(read, remaining))

    def delay(self, error: LLMError) -> float | None:
        """Seconds to wait before retrying after ``error``, or ``None`` to give up."""
        if not error.retryable or self.left <= 0:
            return None
        if error.retry_after is not None:
            if error.retry_after > _MAX_RETRY_AFTER:
                return None
            wait = error.retry_after
        else:
            # Full jitter keeps many clients that failed together from retrying together.
            wait = random.uniform(0, min(_BACKOFF_CAP, _BACKOFF_BASE * 2**self.tries))
        if self.deadline is not None and time.monotonic() + wait >= self.deadline:
            return None
        self.left -= 1
        self.tries += 1
        return wait


def _past_deadline() -> TimeoutError:
    return TimeoutError("the call's deadline passed; raise deadline= or drop it", retryable=False)


def _translate(exc: httpx.HTTPError, call: HttpCall) -> LLMError:
    host = httpx.URL(call.url).host
    if isinstance(exc, httpx.TimeoutException):
        kind = type(exc).__name__
        return TimeoutError(
            f"{kind} talking to {host}; raise timeout= (read) or connect_timeout=, or retry later"
        )
    if isinstance(exc, httpx.TransportError):
        return APIConnectionError(
            f"could not reach {host} ({type(exc).__name__}: {exc}); check api_base and the network"
        )
    return APIConnectionError(f"HTTP failure talking to {host}: {type(exc).__name__}: {exc}")


def _interrupted(exc: httpx.HTTPError, call: HttpCall) -> LLMError:
    if isinstance(exc, httpx.TimeoutException):
        return TimeoutError(
            f"stream from {httpx.URL(call.url).host} went idle past the read timeout; "
            "raise timeout= if the model thinks for long",
            retryable=False,
        )
    return StreamInterruptedError(
        f"stream from {httpx.URL(call.url).host} broke off ({type(exc).__name__}: {exc}); "
        "the answer is incomplete, retry the call"
    )


class ByteStream:
    """The open body of a streamed response; iterate for raw bytes, then close."""

    __slots__ = ("_call", "_deadline", "_response", "headers", "status")

    def __init__(self, response: httpx.Response, call: HttpCall, deadline: float | None) -> None:
        self._response = response
        self._call = call
        self._deadline = deadline
        self.status = response.status_code
        self.headers = response.headers

    def __iter__(self) -> Iterator[bytes]:
        deadline = self._deadline
        try:
            for data in self._response.iter_bytes():
                yield data
                if deadline is not None and time.monotonic() > deadline:
                    raise _past_deadline()
        except httpx.HTTPError as exc:
            raise _interrupted(exc, self._call) from exc

    def close(self) -> None:
        """Abort the response and return its connection to the pool (or drop it)."""
        self._response.close()


class AsyncByteStream:
    """The async twin of :class:`ByteStream`."""

    __slots__ = ("_call", "_deadline", "_response", "headers", "status")

    def __init__(self, response: httpx.Response, call: HttpCall, deadline: float | None) -> None:
        self._response = response
        self._call = call
        self._deadline = deadline
        self.status = response.status_code
        self.headers = response.headers

    async def __aiter__(self) -> AsyncIterator[bytes]:
        deadline = self._deadline
        try:
            async for data in self._response.aiter_bytes():
                yield data
                if deadline is not None and time.monotonic() > deadline:
                    raise _past_deadline()
        except httpx.HTTPError as exc:
            raise _interrupted(exc, self._call) from exc

    async def aclose(self) -> None:
        """Abort the response."""
        await self._response.aclose()


def send(call: HttpCall, config: Config, on_error: ErrorFactory) -> Any:
    """Send ``call``, retrying retryable failures; return the response or an open stream.

    Returns an :class:`HttpResponse` for a plain call and a :class:`ByteStream`
    when ``call.stream`` is set (retries apply until the status line arrives).

    Raises:
        LLMError: the provider's error (built by ``on_error``) or a transport
            failure, once retries are spent or when it is not retryable.
    """
    client = _sync_client(config)
    retry = _Retry(config)
    while True:
        timeout = retry.timeout(config)
        try:
            request = client.build_request(
                call.method,
                call.url,
                headers=call.headers,
                content=call.body,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
            response = client.send(request, stream=call.stream)
        except httpx.HTTPError as exc:
            error = _translate(exc, call)
            wait = retry.delay(error)
            if wait is None:
                raise error from exc
            _sleep(wait)
            continue
        status = response.status_code
        if status < 400:
            if call.stream:
                return ByteStream(response, call, retry.deadline)
            return HttpResponse(status=status, headers=response.headers, body=response.content)
        try:
            body = response.read()
        except httpx.HTTPError:
            body = b""
        finally:
            response.close()
        error = on_error(HttpResponse(status=status, headers=response.headers, body=body))
        wait = retry.delay(error)
        if wait is None:
            raise error
        _sleep(wait)


async def asend(call: HttpCall, config: Config, on_error: ErrorFactory) -> Any:
    """The async twin of :func:`send`; returns an :class:`AsyncByteStream` for streams.

    Raises:
        LLMError: as :func:`send` does.
    """
    import asyncio

    client = _async_client(config)
    retry = _Retry(config)
    while True:
        timeout = retry.timeout(config)
        try:
            request = client.build_request(
                call.method,
                call.url,
                headers=call.headers,
                content=call.body,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
            response = await client.send(request, stream=call.stream)
        except httpx.HTTPError as exc:
            error = _translate(exc, call)
            wait = retry.delay(error)
            if wait is None:
                raise error from exc
            await asyncio.sleep(wait)
            continue
        status = response.status_code
        if status < 400:
            if call.stream:
                return AsyncByteStream(response, call, retry.deadline)
            return HttpResponse(status=status, headers=response.headers, body=response.content)
        try:
            body = await response.aread()
        except httpx.HTTPError:
            body = b""
        finally:
            await response.aclose()
        error = on_error(HttpResponse(status=status, headers=response.headers, body=body))
        wait = retry.delay(error)
        if wait is None:
            raise error
        await asyncio.sleep(wait)
