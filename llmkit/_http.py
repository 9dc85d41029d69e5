"""The HTTP transport: sends codecs' calls over httpx (or httpx2) and translates its errors.

It sends the :class:`~llmkit.types.HttpCall` a codec built and hands back an
:class:`~llmkit.types.HttpResponse` or a byte stream. It owns what is shared
across calls and providers:

* long-lived pooled sync clients per HTTP backend and timeout setting (one
  for every 16 threads that call, up to 4, as httpcore's pool lock convoys
  under more), and one ``AsyncClient`` per backend and timeout setting per
  asyncio event loop, closed when the loop shuts down (building a client
  costs about 20 ms, mostly the TLS context, so it is done once);
* retries with exponential backoff and full jitter, honouring ``Retry-After``;
* the optional total deadline of a call;
* the translation of the HTTP library's exceptions into llmkit's, done here only.

The HTTP library itself (httpx by default, httpx2 when selected) is reached
through :mod:`llmkit._backend`, the one module that imports either.

Errors are completed (provider, model, request id, no API key) by the
:class:`CallContext` the caller passes in, so this module needs no codec.
"""

from __future__ import annotations

import atexit
import builtins
import contextlib
import contextvars
import itertools
import math
import random
import threading
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from llmkit import _backend
from llmkit._backend import Backend
from llmkit.config import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_RETRIES,
    HTTP_BACKEND_VARIABLE,
    HTTP_BACKENDS,
    Config,
)
from llmkit.errors import (
    APIConnectionError,
    InvalidRequestError,
    LLMError,
    StreamInterruptedError,
    TimeoutError,
)
from llmkit.types import HttpCall, HttpResponse

if TYPE_CHECKING:
    import asyncio

__all__ = [
    "AsyncByteStream",
    "AttemptEvent",
    "AttemptHook",
    "ByteStream",
    "CallContext",
    "Transport",
    "aclose_clients",
    "close_clients",
    "default_transport",
    "parse_retry_after",
]


class CallContext(Protocol):
    """What the transport needs from its caller to build complete errors and events."""

    provider: str
    model: str

    def from_response(self, response: HttpResponse) -> LLMError:
        """Return the error for a response with an error status."""
        ...

    def annotate(self, error: LLMError, headers: Any = None) -> LLMError:
        """Fill in provider, model and request id, scrub the key; return ``error``."""
        ...


_BACKOFF_BASE = 0.5
_BACKOFF_CAP = 8.0
# A provider asking for a longer wait than this gets the error at once:
# sleeping minutes inside a call surprises users more than an exception does.
_MAX_RETRY_AFTER = 60.0

# Looked up at call time, so tests can replace it without touching time.sleep.
_sleep = time.sleep

# The moment the current call must be over, read by every socket operation
# of llmkit's own sync pools (see llmkit._backend).
_call_deadline = _backend.call_deadline


# The moment every call made in this context must be over, set by
# :func:`deadline_scope` (``llmkit.registry.with_timeout``): it bounds calls
# the scope's code makes without passing them a config, and a call's own
# ``deadline=`` still applies when it is sooner.
_scope_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "llmkit_scope_deadline", default=None
)


@contextlib.contextmanager
def deadline_scope(seconds: float) -> Iterator[float]:
    """Make every llmkit call in this context end within ``seconds``; yield the deadline.

    A call still running then fails with ``TimeoutError`` (its socket read is
    cut off, not waited out). Nested scopes keep the sooner deadline.
    """
    deadline = time.monotonic() + seconds
    outer = _scope_deadline.get()
    if outer is not None and outer < deadline:
        deadline = outer
    token = _scope_deadline.set(deadline)
    try:
        yield deadline
    finally:
        _scope_deadline.reset(token)


def scope_deadline() -> float | None:
    """The deadline :func:`deadline_scope` set for this context, if any (``time.monotonic``)."""
    return _scope_deadline.get()


class _LoopClients:
    """The async clients of one event loop, and the generator that closes them."""

    __slots__ = ("clients", "closer")

    def __init__(self) -> None:
        self.clients: dict[tuple[str, float, float], Any] = {}
        self.closer: AsyncGenerator[None, None] | None = None


def _timeouts(config: Config) -> tuple[float, float]:
    connect = (
        config.connect_timeout if config.connect_timeout is not None else DEFAULT_CONNECT_TIMEOUT
    )
    read = config.timeout if config.timeout is not None else DEFAULT_READ_TIMEOUT
    return connect, read


def _injected_sync(config: Config) -> Any:
    injected = config.http_client
    if injected is not None:
        found = _backend.owner(injected)
        if found is None or not found[1]:
            raise InvalidRequestError(
                f"http_client must be an httpx.Client (or httpx2.Client), not "
                f"{type(injected).__name__}; pass an AsyncClient as async_http_client="
            )
        return injected
    if config.async_http_client is not None:
        # Falling back to the pooled client would send a test's request to the network.
        raise InvalidRequestError(
            "async_http_client= is used by async calls only; pass http_client="
            "httpx.Client(...) for sync calls"
        )
    return None


def _injected_async(config: Config) -> Any:
    injected = config.async_http_client
    if injected is not None:
        found = _backend.owner(injected)
        if found is None or found[1]:
            raise InvalidRequestError(
                f"async_http_client must be an httpx.AsyncClient (or httpx2.AsyncClient), "
                f"not {type(injected).__name__}"
            )
        return injected
    if config.http_client is not None:
        # Falling back to the pooled client would send a test's request to the network.
        raise InvalidRequestError(
            "http_client= is used by sync calls only; pass async_http_client="
            "httpx.AsyncClient(...) for async calls"
        )
    return None


def _seconds(value: str, scale: float = 1.0) -> float | None:
    try:
        seconds = float(value) * scale
    except ValueError:
        return None
    # "nan" and "inf" parse as floats but are no wait at all; zero or less is
    # no advice either (obeyed, it would make retries back to back).
    return seconds if math.isfinite(seconds) and seconds > 0 else None


def parse_retry_after(headers: Any) -> float | None:
    """Return the wait in seconds asked for by ``retry-after-ms`` or ``Retry-After``.

    ``Retry-After`` may be seconds or an HTTP date; anything else, and a
    wait of zero or less (a date in the past), gives ``None``.
    """
    value = headers.get("retry-after-ms")
    if value:
        seconds = _seconds(value, 0.001)
        if seconds is not None:
            return seconds
    value = headers.get("retry-after")
    if not value:
        return None
    seconds = _seconds(value)
    if seconds is not None:
        return seconds
    # An HTTP date is rare here, and email.utils costs 6 ms to import.
    import email.utils

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    seconds = when.timestamp() - time.time()
    return seconds if seconds > 0 else None


def _past_deadline() -> TimeoutError:
    return TimeoutError("the call's deadline passed; raise deadline= or drop it", retryable=False)


class _Retry:
    """Counts attempts, computes the wait before the next one, keeps the deadline."""

    __slots__ = ("backend", "base", "deadline", "left", "tries")

    def __init__(self, config: Config, client: Any, backend: Backend | None = None) -> None:
        if backend is None:
            found = _backend.owner(client)
            backend = found[0] if found is not None else _backend.get("httpx")
        self.backend = backend
        self.left = config.retries if config.retries is not None else DEFAULT_RETRIES
        self.tries = 0
        self.deadline = time.monotonic() + config.deadline if config.deadline is not None else None
        scoped = _scope_deadline.get()
        if scoped is not None and (self.deadline is None or scoped < self.deadline):
            self.deadline = scoped
        # The client's own timeouts (an injected client keeps its settings; a
        # pooled one was built from the config), with the fields the user set
        # replaced: connect_timeout the connect phase, timeout the other three.
        user_connect, user_read = config.connect_timeout, config.timeout
        if user_connect is None and user_read is None and self.deadline is None:
            self.base: tuple[float, float, float, float] | None = None
        else:
            own = client.timeout
            self.base = (
                _or_inf(user_connect if user_connect is not None else own.connect),
                _or_inf(user_read if user_read is not None else own.read),
                _or_inf(user_read if user_read is not None else own.write),
                _or_inf(user_read if user_read is not None else own.pool),
            )

    def timeout(self) -> Any:
        """Per-request timeout: the client's with the user's fields, capped by the deadline.

        Raises:
            TimeoutError: the deadline has passed.
        """
        base = self.base
        if base is None:
            return self.backend.use_client_default
        if self.deadline is None:
            return self.backend.timeout(
                _or_none(base[0]), _or_none(base[1]), _or_none(base[2]), _or_none(base[3])
            )
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise _past_deadline()
        connect, read, write, pool = (min(part, remaining) for part in base)
        return self.backend.timeout(connect, read, write, pool)

    def past_deadline(self) -> bool:
        """Whether the deadline (if any) has passed, give or take 10 ms."""
        return self.deadline is not None and time.monotonic() >= self.deadline - 0.01

    def delay(self, error: LLMError) -> float | None:
        """Seconds to wait before retrying after ``error``, or ``None`` to give up."""
        if not error.retryable or self.left <= 0:
            return None
        if error.retry_after is not None and error.retry_after > 0:
            if error.retry_after > _MAX_RETRY_AFTER:
                return None
            # Never below the base: a server saying "0.001" must not get a storm.
            wait = max(error.retry_after, _BACKOFF_BASE)
        else:
            # Jitter keeps many clients that failed together from retrying
            # together; the floor keeps any of them from retrying at once.
            ceiling = min(_BACKOFF_CAP, _BACKOFF_BASE * 2 ** (self.tries + 1))
            wait = random.uniform(_BACKOFF_BASE, ceiling)
        if self.deadline is not None and time.monotonic() + wait >= self.deadline:
            return None
        self.left -= 1
        self.tries += 1
        return wait


def _or_inf(value: float | None) -> float:
    return math.inf if value is None else value


def _or_none(value: float) -> float | None:
    # httpx spells "no timeout" as None.
    return None if value == math.inf else value


def _host(url: str) -> str:
    # Only the host goes into messages: a URL may carry a key in its query.
    rest = url.split("://", 1)[-1]
    return rest.split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1] or "the provider"


def _translate(exc: Exception, call: HttpCall, retry: _Retry) -> LLMError:
    host = _host(call.url)
    backend = retry.backend
    if isinstance(exc, backend.timeout_error) and retry.past_deadline():
        return _past_deadline()
    if isinstance(exc, backend.pool_timeout):
        return TimeoutError(
            f"every pooled connection to {host} stayed busy; close streams you stop "
            "reading (use `with`), or pass http_client= with larger limits"
        )
    if isinstance(exc, backend.timeout_error):
        return TimeoutError(
            f"{type(exc).__name__} talking to {host}; raise timeout= (read) or "
            "connect_timeout=, or retry later"
        )
    # Client-side protocol errors may quote a header value (the API key among them).
    if isinstance(exc, backend.local_errors):
        return InvalidRequestError(
            f"could not send the request to {host} ({type(exc).__name__}); check that "
            "api_base starts with http:// or https:// and that the API key and headers "
            "hold no line breaks or non-ASCII characters",
            retryable=False,
        )
    return APIConnectionError(
        f"could not reach {host} ({type(exc).__name__}: {exc}); check api_base and the network"
    )


def _interrupted(
    exc: Exception, call: HttpCall, deadline: float | None, backend: Backend
) -> LLMError:
    host = _host(call.url)
    timed_out = isinstance(exc, backend.timeout_error)
    if timed_out and deadline is not None and time.monotonic() >= deadline - 0.01:
        return _past_deadline()
    if timed_out:
        return TimeoutError(
            f"stream from {host} went idle past the read timeout; "
            "raise timeout= if the model thinks for long",
            retryable=False,
        )
    return StreamInterruptedError(
        f"stream from {host} broke off ({type(exc).__name__}: {exc}); "
        "the answer is incomplete, retry the call"
    )


class _OpenBody:
    """What both stream shells hold: the open response and what its errors need."""

    __slots__ = (
        "_backend",
        "_call",
        "_context",
        "_deadline",
        "_raw",
        "_response",
        "bounded",
        "headers",
        "status",
    )
    _iterate = ""  # the response's method that iterates its body

    def __init__(
        self,
        response: Any,
        call: HttpCall,
        deadline: float | None,
        context: CallContext,
        backend: Backend,
        bounded: bool = False,
    ) -> None:
        self._response = response
        self._backend = backend
        # Whether the response came from llmkit's own pool, whose reads the
        # deadline contextvar bounds (an injected client's do not).
        self.bounded = bounded
        # The one iterator over the body: the drain after the end marker
        # continues it where the stream stopped.
        self._raw: Any = getattr(response, self._iterate)()
        self._call = call
        self._deadline = deadline
        self._context = context
        self.status = response.status_code
        self.headers = response.headers


# After the provider's end marker the rest of the body is read and dropped,
# so that the connection goes back to the pool, but no more than this: a
# server that keeps talking (or holds the connection open) past its end
# loses the connection. Servers send the end of the body right behind the
# marker, so the wait is short.
_DRAIN_BYTES = 65_536
_DRAIN_SECONDS = 0.1


class ByteStream(_OpenBody):
    """The open body of a streamed response; iterate for raw bytes, then close."""

    __slots__ = ()
    _iterate = "iter_bytes"

    def __iter__(self) -> Iterator[bytes]:
        deadline = self._deadline
        failure: LLMError | None = None
        try:
            if deadline is None:
                yield from self._raw
                return
            raw = self._raw
            while True:
                # Every read of llmkit's own pools ends by the deadline.
                token = _call_deadline.set(deadline)
                try:
                    data = next(raw, None)
                finally:
                    _call_deadline.reset(token)
                if data is None:
                    return
                yield data
                if time.monotonic() > deadline:
                    raise self._context.annotate(_past_deadline(), self.headers)
        except self._backend.http_error as exc:
            failure = self._context.annotate(
                _interrupted(exc, self._call, deadline, self._backend), self.headers
            )
        except LLMError:
            raise
        except Exception as exc:
            failure = self._context.annotate(_broken(exc, self._call), self.headers)
        if failure is not None:
            raise failure  # outside the except block: nothing chained

    def drain(self) -> None:
        """Read and drop what is left of the body (bounded), then close the response.

        Only llmkit's pooled clients can bound the wait; with an injected
        client the response is closed at once (its connection is dropped
        unless the body had ended).
        """
        try:
            if self.bounded:
                cap = time.monotonic() + _DRAIN_SECONDS
                if self._deadline is not None and self._deadline < cap:
                    cap = self._deadline
                token = _call_deadline.set(cap)
                left = _DRAIN_BYTES
                try:
                    for data in self._raw:
                        left -= len(data)
                        if left < 0:
                            break
                finally:
                    _call_deadline.reset(token)
        except Exception:
            pass
        finally:
            self._response.close()

    def close(self) -> None:
        """Abort the response and return its connection to the pool (or drop it)."""
        self._response.close()


class AsyncByteStream(_OpenBody):
    """The async twin of :class:`ByteStream`; the deadline cancels a read that passes it."""

    __slots__ = ()
    _iterate = "aiter_bytes"

    async def __aiter__(self) -> AsyncIterator[bytes]:
        deadline = self._deadline
        failure: LLMError | None = None
        try:
            if deadline is None:
                async for data in self._raw:
                    yield data
                return
            import anyio

            raw = self._raw
            while True:
                try:
                    with anyio.fail_after(max(deadline - time.monotonic(), 0.0)):
                        data = await raw.__anext__()
                except StopAsyncIteration:
                    return
                yield data
        except builtins.TimeoutError:
            failure = self._context.annotate(_past_deadline(), self.headers)
        except self._backend.http_error as exc:
            failure = self._context.annotate(
                _interrupted(exc, self._call, deadline, self._backend), self.headers
            )
        except LLMError:
            raise
        except Exception as exc:
            failure = self._context.annotate(_broken(exc, self._call), self.headers)
        if failure is not None:
            raise failure

    async def adrain(self) -> None:
        """The async twin of :meth:`ByteStream.drain`, bounded for any client."""
        import anyio

        grace = _DRAIN_SECONDS
        if self._deadline is not None:
            grace = max(min(grace, self._deadline - time.monotonic()), 0.0)
        left = _DRAIN_BYTES
        try:
            with anyio.move_on_after(grace):
                async for data in self._raw:
                    left -= len(data)
                    if left < 0:
                        break
        except Exception:
            pass
        finally:
            await self._response.aclose()

    async def aclose(self) -> None:
        """Abort the response."""
        await self._response.aclose()


def _read_before(response: Any, deadline: float, context: CallContext) -> bytes:
    # With a deadline the body is read piece by piece, so a server that
    # trickles bytes cannot hold the call past it.
    parts = []
    try:
        for part in response.iter_bytes():
            parts.append(part)
            if time.monotonic() > deadline:
                raise context.annotate(_past_deadline(), response.headers)
    finally:
        response.close()
    return b"".join(parts)


async def _aread_before(response: Any, deadline: float, context: CallContext) -> bytes:
    parts = []
    try:
        async for part in response.aiter_bytes():
            parts.append(part)
            if time.monotonic() > deadline:
                raise context.annotate(_past_deadline(), response.headers)
    finally:
        await response.aclose()
    return b"".join(parts)


def _error_body(
    response: Any, deadline: float | None, context: CallContext, backend: Backend
) -> bytes:
    try:
        if deadline is not None:
            return _read_before(response, deadline, context)
        body: bytes = response.read()
        return body
    except backend.http_error:
        return b""
    finally:
        response.close()


async def _aerror_body(
    response: Any, deadline: float | None, context: CallContext, backend: Backend
) -> bytes:
    try:
        if deadline is not None:
            return await _aread_before(response, deadline, context)
        body: bytes = await response.aread()
        return body
    except backend.http_error:
        return b""
    finally:
        await response.aclose()


def _broken(exc: Exception, call: HttpCall) -> LLMError:
    # Anything the HTTP stack raises that is not one of httpx's errors (an
    # ExceptionGroup from anyio, an OverflowError from a socket call):
    # still an LLMError, and still never chained.
    return APIConnectionError(
        f"talking to {_host(call.url)} failed ({type(exc).__name__}); check api_base, "
        "or report it to llmkit if it persists",
        retryable=False,
    )


def _redirected(call: HttpCall, status: int, location: str | None) -> LLMError:
    here = _host(call.url)
    there = _host(location) if location and "://" in location else here
    # Following would send the API key to wherever the Location points.
    return LLMError(
        f"{here} answered HTTP {status}, a redirect to {there}; llmkit never follows "
        "redirects (the API key would go along): set api_base to the endpoint itself",
        status=status,
        retryable=False,
    )


# What sending may raise besides an LLMError is the backend's send_errors:
# the library's errors, a URL it refuses, and a header value that is not
# ASCII. None of them is ever chained to llmkit's error (neither as __cause__
# nor as __context__): they hold the request, whose headers carry the API
# key, and client-side protocol errors quote header values. Each llmkit
# message names the error's type instead.


class AttemptEvent(msgspec.Struct, frozen=True, kw_only=True):
    """What one HTTP attempt of a call did, for metrics and callbacks.

    Attributes:
        provider: the provider's name.
        model: the model asked for.
        attempt: 1 for the first try, 2 for the first retry, ...
        status: the HTTP status, or ``None`` when no response arrived.
        latency: seconds from sending to the end of the attempt (to the
            response headers for a stream that opened).
        first_byte: seconds from sending to the response headers, when a
            response arrived; for a plain call without a deadline httpx
            reads the body before it returns, so this equals ``latency``.
        wait: seconds slept before the next attempt, or ``None`` when this
            attempt ended the call.
        error: the error of a failed attempt, or ``None``.
    """

    provider: str
    model: str
    attempt: int
    status: int | None
    latency: float
    first_byte: float | None
    wait: float | None
    error: LLMError | None


AttemptHook = Callable[[AttemptEvent], None]


# httpcore's sync pool does each request's bookkeeping under one lock, and
# scans every connection while it holds it. With dozens of threads on one
# client that lock convoys: at 64 threads on 2 cores a raw httpx.Client
# swung between about 450 and 1,350 calls/s within one run, its CPU per call
# doubling in the slow spells, where four clients each serving 16 of the
# threads stayed at 850-1,200. So the first 16 threads that call a transport
# share one pooled client per setting, the next 16 another, and so on over
# at most 4; a thread keeps its client. A few threads still share one pool,
# whose connections never outnumber the calls they run at once.
_THREADS_PER_CLIENT = 16
_CLIENTS_PER_SETTING = 4


class Transport:
    """Sends codecs' calls: owns its pooled clients, retries, deadlines and attempt events.

    ``llmkit.core`` uses one process-wide transport; a ``System`` (or a
    test) builds its own and closes it without touching anyone else's. The
    TLS context is shared by all: one per process and HTTP library.

    Args:
        on_attempt: called with an :class:`AttemptEvent` after every HTTP
            attempt, from the calling thread or task. With none set,
            nothing is measured. An exception it raises is ignored.
        backend: the HTTP library of the pooled clients, ``"httpx"`` or
            ``"httpx2"``, for calls whose config names none. By default the
            ``LLMKIT_HTTP_BACKEND`` environment variable (read at the first
            call), else httpx.

    Raises:
        InvalidRequestError: an unknown ``backend``.
    """

    def __init__(
        self, *, on_attempt: AttemptHook | None = None, backend: str | None = None
    ) -> None:
        if backend is not None and backend not in HTTP_BACKENDS:
            raise InvalidRequestError(
                f"Transport backend must be 'httpx' or 'httpx2', not {backend!r}"
            )
        self.on_attempt = on_attempt
        self._backend = backend
        self._backend_source = "Transport(backend=...)"
        self._lock = threading.Lock()
        self._sync: dict[tuple[str, float, float, int], Any] = {}
        self._threads = threading.local()
        self._thread_count = itertools.count()
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClients] = (
            weakref.WeakKeyDictionary()
        )

    # --- pools ------------------------------------------------------------------------------

    def _pool_key(self, config: Config) -> tuple[str, float, float]:
        # Which pooled client a call uses: its backend and its two timeouts.
        name = config.http_backend or self._backend
        if name is None:
            name = self._backend = _backend.from_environment() or "httpx"
            self._backend_source = HTTP_BACKEND_VARIABLE
        connect, read = _timeouts(config)
        return name, connect, read

    def _shard(self) -> int:
        # Which of a setting's pooled sync clients this thread uses.
        try:
            shard: int = self._threads.shard
        except AttributeError:
            ordinal = next(self._thread_count)
            shard = (ordinal // _THREADS_PER_CLIENT) % _CLIENTS_PER_SETTING
            self._threads.shard = shard
        return shard

    def _library(self, name: str, config: Config) -> Backend:
        source = "config http_backend" if config.http_backend else self._backend_source
        return _backend.get(name, source)

    def sync_client(self, config: Config) -> Any:
        """Return the client for a sync call: the injected one, or a pooled one.

        Raises:
            InvalidRequestError: an injected client of the wrong kind, or a
                backend that is not installed (the message names the extra).
        """
        injected = _injected_sync(config)
        if injected is not None:
            return injected
        name, connect, read = self._pool_key(config)
        key = (name, connect, read, self._shard())
        client = self._sync.get(key)
        if client is None:
            library = self._library(name, config)
            with self._lock:
                client = self._sync.get(key)
                if client is None:
                    client = library.sync_client(connect, read)
                    self._sync[key] = client
        return client

    async def _close_at_shutdown(self, entry: _LoopClients) -> AsyncGenerator[None, None]:
        # An async generator that never finishes is closed by the loop's
        # shutdown_asyncgens() (asyncio.run calls it), inside the loop: the one
        # moment llmkit can still await its clients' aclose().
        import asyncio

        try:
            yield
        finally:
            self._async.pop(asyncio.get_running_loop(), None)
            for client in entry.clients.values():
                await client.aclose()
            entry.clients.clear()

    async def async_client(self, config: Config) -> Any:
        """Return the client for an async call: the injected one, or one pooled per loop.

        Raises:
            InvalidRequestError: an injected client of the wrong kind, a
                backend that is not installed, or no asyncio loop for a
                pooled client (under trio, inject one).
        """
        injected = _injected_async(config)
        if injected is not None:
            return injected
        # asyncio costs 25-30 ms to import; sync-only programs never pay it.
        import asyncio

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise InvalidRequestError(
                "llmkit's pooled async clients need asyncio; under another event loop "
                "(trio) pass async_http_client=httpx.AsyncClient(...)"
            ) from None
        entry = self._async.get(loop)
        if entry is None:
            for old in [old for old in self._async if old.is_closed()]:
                # A loop closed without shutdown_asyncgens(): drop its clients.
                self._async.pop(old, None)
            entry = self._async[loop] = _LoopClients()
            entry.closer = self._close_at_shutdown(entry)
            await entry.closer.__anext__()
        key = self._pool_key(config)
        client = entry.clients.get(key)
        if client is None:
            client = self._library(key[0], config).async_client(key[1], key[2])
            entry.clients[key] = client
        return client

    def close(self) -> None:
        """Close the pooled sync clients; later calls open new ones.

        Async clients close when their event loop shuts down (``asyncio.run``
        does that), or with :meth:`aclose`.
        """
        with self._lock:
            clients = list(self._sync.values())
            self._sync.clear()
        for client in clients:
            client.close()

    async def aclose(self) -> None:
        """Close the pooled async clients of the running asyncio loop (if it has any)."""
        import asyncio

        entry = self._async.pop(asyncio.get_running_loop(), None)
        if entry is not None and entry.closer is not None:
            # Its finally closes the clients; the loop's shutdown then has nothing to do.
            await entry.closer.aclose()

    # --- attempt events -------------------------------------------------------------------

    def _report(
        self,
        context: CallContext,
        attempt: int,
        started: float,
        first_byte: float | None,
        status: int | None,
        error: LLMError | None,
        wait: float | None,
    ) -> None:
        hook = self.on_attempt
        if hook is None:
            return
        now = time.perf_counter()
        event = AttemptEvent(
            provider=context.provider,
            model=context.model,
            attempt=attempt,
            status=status,
            latency=now - started,
            first_byte=None if first_byte is None else first_byte - started,
            wait=wait,
            error=error,
        )
        # A listener's bug must not turn a good call into a failed one.
        with contextlib.suppress(Exception):
            hook(event)

    # --- sending --------------------------------------------------------------------------

    def send(self, call: HttpCall, config: Config, context: CallContext) -> Any:
        """Send ``call``, retrying retryable failures; return the response or an open stream.

        Returns an :class:`HttpResponse` for a plain call and a :class:`ByteStream`
        when ``call.stream`` is set (retries apply until the status line arrives).
        Redirects are never followed.

        Raises:
            LLMError: the provider's error (built by ``context``), a redirect, or a
                transport failure, once retries are spent or when it is not retryable.
        """
        client = self.sync_client(config)
        pooled = config.http_client is None
        retry = _Retry(config, client)
        backend = retry.backend
        deadline = retry.deadline
        timed = self.on_attempt is not None
        attempt = 0
        while True:
            attempt += 1
            try:
                timeout = retry.timeout()
            except LLMError as passed:
                raise context.annotate(passed) from None
            failure: LLMError | None = None
            status: int | None = None
            started = time.perf_counter() if timed else 0.0
            headers_at: float | None = None
            token = _call_deadline.set(deadline) if deadline is not None else None
            try:
                request = client.build_request(
                    call.method, call.url, headers=call.headers, content=call.body, timeout=timeout
                )
                response = client.send(
                    request, stream=call.stream or deadline is not None, follow_redirects=False
                )
                status = response.status_code
                if timed:
                    headers_at = time.perf_counter()
                if status < 300:
                    if call.stream:
                        result: Any = ByteStream(response, call, deadline, context, backend, pooled)
                    elif deadline is None:
                        result = HttpResponse(
                            status=status, headers=response.headers, body=response.content
                        )
                    else:
                        body = _read_before(response, deadline, context)
                        result = HttpResponse(status=status, headers=response.headers, body=body)
                    if timed:
                        self._report(context, attempt, started, headers_at, status, None, None)
                    return result
                if status < 400:
                    response.close()
                    failure = context.annotate(
                        _redirected(call, status, response.headers.get("location")),
                        response.headers,
                    )
                else:
                    body = _error_body(response, deadline, context, backend)
            except backend.send_errors as exc:
                failure = context.annotate(_translate(exc, call, retry))
            except LLMError as error:
                if timed:
                    self._report(context, attempt, started, headers_at, status, error, None)
                raise
            except Exception as exc:
                failure = context.annotate(_broken(exc, call))
            finally:
                if token is not None:
                    _call_deadline.reset(token)
            if failure is None:
                failure = context.from_response(
                    HttpResponse(status=status or 0, headers=response.headers, body=body)
                )
            wait = retry.delay(failure)
            if timed:
                self._report(context, attempt, started, headers_at, status, failure, wait)
            if wait is None:
                raise failure  # outside the except block, so nothing is chained
            _sleep(wait)

    async def asend(self, call: HttpCall, config: Config, context: CallContext) -> Any:
        """The async twin of :meth:`send`; returns an :class:`AsyncByteStream` for streams.

        The deadline is kept by cancelling the attempt, which bounds any client.

        Raises:
            LLMError: as :meth:`send` does.
        """
        import anyio

        client = await self.async_client(config)
        retry = _Retry(config, client)
        backend = retry.backend
        deadline = retry.deadline
        timed = self.on_attempt is not None
        attempt = 0
        while True:
            attempt += 1
            try:
                timeout = retry.timeout()
            except LLMError as passed:
                raise context.annotate(passed) from None
            failure: LLMError | None = None
            started = time.perf_counter() if timed else 0.0
            marks: list[Any] = [None, None]  # status and the time the headers came
            try:
                if deadline is None:
                    outcome = await _attempt(client, call, timeout, None, context, backend, marks)
                else:
                    with anyio.fail_after(max(deadline - time.monotonic(), 0.0)):
                        outcome = await _attempt(
                            client, call, timeout, deadline, context, backend, marks
                        )
            except backend.send_errors as exc:
                failure = context.annotate(_translate(exc, call, retry))
            except builtins.TimeoutError as exc:
                # fail_after's signal; without a deadline it can only be a stray one.
                stray = deadline is None
                failure = context.annotate(_broken(exc, call) if stray else _past_deadline())
            except LLMError as error:
                if timed:
                    self._report(context, attempt, started, marks[1], marks[0], error, None)
                raise
            except Exception as exc:
                failure = context.annotate(_broken(exc, call))
            else:
                if not isinstance(outcome, LLMError):
                    if timed:
                        self._report(context, attempt, started, marks[1], marks[0], None, None)
                    return outcome
                failure = outcome
            wait = retry.delay(failure)
            if timed:
                self._report(context, attempt, started, marks[1], marks[0], failure, wait)
            if wait is None:
                raise failure
            await anyio.sleep(wait)


async def _attempt(
    client: Any,
    call: HttpCall,
    timeout: Any,
    deadline: float | None,
    context: CallContext,
    backend: Backend,
    marks: list[Any],
) -> Any:
    # One try of asend: the result, or the error to retry on (the HTTP
    # library's errors propagate to asend, which translates them). ``marks`` gets the
    # status and the moment the headers arrived.
    request = client.build_request(
        call.method, call.url, headers=call.headers, content=call.body, timeout=timeout
    )
    response = await client.send(
        request, stream=call.stream or deadline is not None, follow_redirects=False
    )
    status = marks[0] = response.status_code
    marks[1] = time.perf_counter()
    if status < 300:
        if call.stream:
            return AsyncByteStream(response, call, deadline, context, backend)
        if deadline is None:
            body = response.content
        else:
            body = await _aread_before(response, deadline, context)
        return HttpResponse(status=status, headers=response.headers, body=body)
    if status < 400:
        await response.aclose()
        return context.annotate(
            _redirected(call, status, response.headers.get("location")), response.headers
        )
    body = await _aerror_body(response, deadline, context, backend)
    return context.from_response(HttpResponse(status=status, headers=response.headers, body=body))


#: The transport of ``llmkit.core``: one per process.
default_transport = Transport()


def close_clients() -> None:
    """Close the default transport's pooled sync clients."""
    default_transport.close()


async def aclose_clients() -> None:
    """Close the default transport's pooled async clients of the running loop."""
    await default_transport.aclose()


# Pooled connections are closed on exit rather than left to the garbage collector.
atexit.register(close_clients)
