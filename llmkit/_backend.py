"""The HTTP libraries the transport sends with: httpx (the default) and httpx2.

httpx2 is pydantic's fork of httpx: the same API under another name, on its
own fork of httpcore (``httpcore2``). Its async connection pool stays fast
with many requests in flight, where httpx's scans every connection on each
request and slows down (on loopback at 64 in flight, 1.5-2.5x more calls/s
for raw async clients); the official OpenAI and Anthropic SDKs send with it.

A :class:`Backend` holds what :mod:`llmkit._http` needs from one library:
its client classes and timeouts, pool limits, the exceptions to translate,
one TLS context, and the wrapper that bounds each socket operation of a
sync client by the call's deadline. This module is the only one in llmkit
that imports httpx or httpx2, and httpx2 only when it is first selected
(``Config(http_backend="httpx2")`` or ``LLMKIT_HTTP_BACKEND=httpx2``).
"""

from __future__ import annotations

import contextvars
import os
import sys
import threading
import time
from collections.abc import Iterable
from types import ModuleType
from typing import Any

import httpcore
import httpx

from llmkit.config import HTTP_BACKEND_VARIABLE, HTTP_BACKENDS
from llmkit.errors import InvalidRequestError

__all__ = ["Backend", "call_deadline", "from_environment", "get", "owner"]

# The moment the current call (in this thread or task) must be over, read by
# the network streams of llmkit's own sync pools on every connect, read and
# write. httpx's timeouts bound each socket operation alone, so a server that
# sends one header line every 0.25 s could hold a call forever; capping each
# operation by the time left bounds the whole call.
call_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "llmkit_call_deadline", default=None
)


def _capped(timeout: float | None, error: type[Exception]) -> float | None:
    deadline = call_deadline.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the call's deadline passed")
    return left if timeout is None or timeout > left else timeout


class _DeadlineStream:
    """A network stream whose every operation ends by the call's deadline.

    ``errors`` are the library's connect, read and write timeouts (httpcore's
    or httpcore2's), which its client maps to its own exceptions.
    """

    __slots__ = ("_errors", "_inner")

    def __init__(self, inner: Any, errors: tuple[type[Exception], ...]) -> None:
        self._inner = inner
        self._errors = errors

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _capped(timeout, self._errors[1]))  # type: ignore[no-any-return]

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _capped(timeout, self._errors[2]))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> _DeadlineStream:
        timeout = _capped(timeout, self._errors[0])
        inner = self._inner.start_tls(ssl_context, server_hostname, timeout)
        return _DeadlineStream(inner, self._errors)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend:
    """Wraps a pool's network backend so that its streams honour :data:`call_deadline`."""

    __slots__ = ("_errors", "_inner")

    def __init__(self, inner: Any, errors: tuple[type[Exception], ...]) -> None:
        self._inner = inner
        self._errors = errors

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> _DeadlineStream:
        timeout = _capped(timeout, self._errors[0])
        inner = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _DeadlineStream(inner, self._errors)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> _DeadlineStream:
        timeout = _capped(timeout, self._errors[0])
        inner = self._inner.connect_unix_socket(path, timeout, socket_options)
        return _DeadlineStream(inner, self._errors)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class Backend:
    """One HTTP library as the transport uses it: clients, timeouts, errors, TLS.

    Attributes:
        name: ``"httpx"`` or ``"httpx2"``.
        client_type, async_client_type: the library's ``Client`` and ``AsyncClient``.
        use_client_default: the library's "keep the client's timeout" marker.
        http_error: the base of the library's request errors.
        timeout_error, pool_timeout: its timeout exceptions.
        local_errors: errors raised before anything was sent (a bad URL or header).
        send_errors: what sending may raise besides an ``LLMError``.
    """

    def __init__(self, name: str, http: ModuleType, core: ModuleType, async_keepalive: int) -> None:
        self.name = name
        self.client_type: type[Any] = http.Client
        self.async_client_type: type[Any] = http.AsyncClient
        self._timeout_type: type[Any] = http.Timeout
        self.use_client_default: Any = http.USE_CLIENT_DEFAULT
        self.http_error: type[Exception] = http.HTTPError
        self.timeout_error: type[Exception] = http.TimeoutException
        self.pool_timeout: type[Exception] = http.PoolTimeout
        self.local_errors: tuple[type[Exception], ...] = (
            http.LocalProtocolError,
            http.UnsupportedProtocol,
            http.InvalidURL,
            UnicodeError,
        )
        # None of these is ever chained to llmkit's error: they hold the
        # request, whose headers carry the API key, and client-side protocol
        # errors quote header values.
        self.send_errors: tuple[type[Exception], ...] = (
            http.HTTPError,
            http.InvalidURL,
            UnicodeError,
        )
        self._network_backend: type[Any] = core.NetworkBackend
        self._core_timeouts: tuple[type[Exception], ...] = (
            core.ConnectTimeout,
            core.ReadTimeout,
            core.WriteTimeout,
        )
        self._create_ssl_context = http.create_ssl_context
        # The sync pool serves a thread pool of up to 64 callers without reconnecting.
        self._sync_limits = http.Limits(
            max_connections=256, max_keepalive_connections=64, keepalive_expiry=30.0
        )
        self._async_limits = http.Limits(
            max_connections=max(100, async_keepalive), max_keepalive_connections=async_keepalive
        )
        self._ssl: Any = None
        self._lock = threading.Lock()

    def timeout(
        self, connect: float | None, read: float | None, write: float | None, pool: float | None
    ) -> Any:
        """The library's ``Timeout`` (``None``: no limit for that phase)."""
        return self._timeout_type(connect=connect, read=read, write=write, pool=pool)

    def ssl_context(self) -> Any:
        """The TLS context of this library's pooled clients: one per process.

        Building one costs about 20 ms, so every pooled client shares it.
        """
        if self._ssl is None:
            with self._lock:
                if self._ssl is None:
                    self._ssl = self._create_ssl_context()
        return self._ssl

    def sync_client(self, connect: float, read: float) -> Any:
        """A new pooled sync client whose socket operations end by the call's deadline."""
        client = self.client_type(
            timeout=self.timeout(connect, read, read, read),
            verify=self.ssl_context(),
            limits=self._sync_limits,
        )
        # Neither library has a public way to hand its pools a network
        # backend, so the backend of each pool this client owns (direct and
        # proxied) is wrapped. A test that trickles response headers fails if
        # a new release moves it.
        for transport in (client._transport, *client._mounts.values()):
            pool = getattr(transport, "_pool", None)
            backend = getattr(pool, "_network_backend", None)
            if isinstance(backend, self._network_backend):
                pool._network_backend = _DeadlineBackend(backend, self._core_timeouts)  # type: ignore[union-attr]
        return client

    def async_client(self, connect: float, read: float) -> Any:
        """A new pooled async client (the async path keeps deadlines by cancelling)."""
        return self.async_client_type(
            timeout=self.timeout(connect, read, read, read),
            verify=self.ssl_context(),
            limits=self._async_limits,
        )

    def __repr__(self) -> str:
        return f"<llmkit HTTP backend {self.name}>"


# httpcore's async pool scans every connection on each request: on loopback
# at 64 in flight, 64 kept-alive connections made 80-95 calls/s where httpx's
# default limits (20 kept alive) made 340-420, so httpx's async pool keeps
# the defaults. httpcore2's pool does not scan, and keeps a connection per
# caller of a 64-wide gather.
_HTTPX_ASYNC_KEEPALIVE = 20
_HTTPX2_ASYNC_KEEPALIVE = 64

_loaded: dict[str, Backend] = {"httpx": Backend("httpx", httpx, httpcore, _HTTPX_ASYNC_KEEPALIVE)}
_load_lock = threading.Lock()
# Client class -> (its backend, whether it is the sync one).
_owners: dict[type[Any], tuple[Backend, bool]] = {
    httpx.Client: (_loaded["httpx"], True),
    httpx.AsyncClient: (_loaded["httpx"], False),
}


def _missing(source: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"{source} selects the httpx2 HTTP backend, but httpx2 is not installed: run "
        "`pip install llmkit[httpx2]`, or select http_backend='httpx' (the default)",
        retryable=False,
    )


def get(name: str, source: str = "config http_backend") -> Backend:
    """The backend called ``name``, importing its library on first use.

    ``source`` names where the choice came from, for the error message.

    Raises:
        InvalidRequestError: an unknown name, or httpx2 selected but not installed.
    """
    backend = _loaded.get(name)
    if backend is not None:
        return backend
    if name not in HTTP_BACKENDS:
        raise InvalidRequestError(
            f"{source} must be 'httpx' or 'httpx2', not {name!r}", retryable=False
        )
    with _load_lock:
        backend = _loaded.get(name)
        if backend is None:
            try:
                import httpcore2
                import httpx2
            except ImportError:
                raise _missing(source) from None
            backend = Backend(name, httpx2, httpcore2, _HTTPX2_ASYNC_KEEPALIVE)
            _owners[httpx2.Client] = (backend, True)
            _owners[httpx2.AsyncClient] = (backend, False)
            _loaded[name] = backend
    return backend


def from_environment() -> str | None:
    """The backend ``LLMKIT_HTTP_BACKEND`` names, or ``None`` when it is unset or empty.

    Raises:
        InvalidRequestError: the variable names no known backend.
    """
    value = os.environ.get(HTTP_BACKEND_VARIABLE, "").strip().lower()
    if not value:
        return None
    if value not in HTTP_BACKENDS:
        raise InvalidRequestError(
            f"{HTTP_BACKEND_VARIABLE} must be 'httpx' or 'httpx2', not {value[:40]!r}; "
            "fix or unset it",
            retryable=False,
        )
    return value


def owner(client: Any) -> tuple[Backend, bool] | None:
    """The backend whose ``Client`` (``True``) or ``AsyncClient`` (``False``) ``client`` is.

    ``None`` when it is neither library's client. httpx2 is never imported
    here: a program holding an httpx2 client has imported it already.
    """
    found = _owners.get(type(client))
    if found is not None:
        return found
    kinds = [("httpx", httpx)]
    if "httpx2" in sys.modules:
        kinds.append(("httpx2", sys.modules["httpx2"]))
    for name, module in kinds:
        for kind, sync in ((module.Client, True), (module.AsyncClient, False)):
            if isinstance(client, kind):  # a subclass
                backend = get(name)
                _owners[type(client)] = (backend, sync)
                return backend, sync
    return None
