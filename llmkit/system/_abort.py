"""Calls that another thread can abort, and the transport that makes them so.

A system must stop a call from outside the thread running it: a stream its
reader closed early, a call whose asyncio task was cancelled, everything at
``shutdown_system(cancel=True)``. The thread is usually blocked in a socket
read, which neither closing the response nor closing the socket from
another thread interrupts on Linux; shutting the socket down does.

Each call the system runs gets an :class:`AbortCell`, set in a context
variable for the thread running it. The system's transport wraps the
network streams of the clients it owns: while a read or write of that
thread is under way, the cell holds its socket, so :meth:`AbortCell.abort`
shuts down exactly that socket and no other (once the call ends, the
connection may serve another call; the cell no longer holds it). The
blocked read returns, and the call raises the cell's error, which httpx and
the transport pass through unchanged (it is an ``LLMError``), so it is not
retried. A client passed in as ``http_client`` is the user's and is never
wrapped: its calls stop at their next read instead.
"""

from __future__ import annotations

import contextlib
import contextvars
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any

from llmkit._http import Transport
from llmkit.config import Config
from llmkit.errors import LLMError

__all__ = ["AbortCell", "SystemTransport", "current_cell"]


class AbortCell:
    """The abort switch of one call."""

    __slots__ = ("_error", "_lock", "_socket", "aborted", "on_abort")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._socket: Any = None
        self._error: tuple[type[LLMError], str] | None = None
        self.aborted = False
        #: Called once, outside the lock, after an abort (a stream ends its buffer).
        self.on_abort: Callable[[LLMError], None] | None = None

    def error(self) -> LLMError:
        """A fresh copy of the error the aborted call raises."""
        kind, message = self._error or (LLMError, "the call was aborted")
        return kind(message, retryable=False)

    def abort(self, kind: type[LLMError], message: str) -> None:
        """Stop the call: shut down the socket it is reading, fail its next I/O.

        Calling it again, or after the call ended, does nothing harmful.
        """
        with self._lock:
            if self.aborted:
                return
            self.aborted = True
            self._error = (kind, message)
            sock = self._socket
            if sock is not None:
                # The base class's shutdown: an SSLSocket's own would drop its
                # TLS object under the reading thread's feet.
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
        hook = self.on_abort
        if hook is not None:
            hook(self.error())

    def io(self, sock: Any, operation: Callable[..., Any], *args: Any) -> Any:
        """Run one socket operation of the call, abortable while it runs.

        Raises:
            LLMError: the cell's error, when the call was aborted before or during it.
        """
        with self._lock:
            if self.aborted:
                raise self.error()
            self._socket = sock
        try:
            result = operation(*args)
        except Exception:
            if self.aborted:
                raise self.error() from None
            raise
        finally:
            with self._lock:
                self._socket = None
        if self.aborted:
            raise self.error()
        return result


_current: contextvars.ContextVar[AbortCell | None] = contextvars.ContextVar(
    "llmkit_system_call", default=None
)


def current_cell() -> contextvars.ContextVar[AbortCell | None]:
    """The context variable holding the running call's cell (set by the system)."""
    return _current


class _AbortableStream:
    """A network stream whose reads and writes the running call's cell can abort."""

    __slots__ = ("_inner", "_socket")

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._socket = inner.get_extra_info("socket")

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        cell = _current.get()
        if cell is None:
            return self._inner.read(max_bytes, timeout)  # type: ignore[no-any-return]
        return cell.io(self._socket, self._inner.read, max_bytes, timeout)  # type: ignore[no-any-return]

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        cell = _current.get()
        if cell is None:
            self._inner.write(buffer, timeout)
        else:
            cell.io(self._socket, self._inner.write, buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> Any:
        return _AbortableStream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _AbortableBackend:
    """Wraps a pool's network backend so that its streams are :class:`_AbortableStream`."""

    __slots__ = ("_inner",)

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def _check(self) -> None:
        cell = _current.get()
        if cell is not None and cell.aborted:
            raise cell.error()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> Any:
        self._check()
        inner = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _AbortableStream(inner)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> Any:
        self._check()
        return _AbortableStream(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


_MARK = "_llmkit_system_abortable"


def _make_abortable(client: Any) -> None:
    # httpx has no public way to hand its pools a network backend; the
    # transport module reaches the same place for its deadlines. A test
    # (a stream closed while its server is silent) fails if httpx moves it.
    for transport in (client._transport, *client._mounts.values()):
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if backend is not None and not isinstance(backend, _AbortableBackend):
            pool._network_backend = _AbortableBackend(backend)  # type: ignore[union-attr]
    setattr(client, _MARK, True)


class SystemTransport(Transport):
    """A :class:`~llmkit.Transport` whose own pooled clients' calls can be aborted."""

    def sync_client(self, config: Config) -> Any:
        """Return the client for a sync call, its pools made abortable once.

        Raises:
            InvalidRequestError: an injected client of the wrong kind.
        """
        client = super().sync_client(config)
        if config.http_client is None and not getattr(client, _MARK, False):
            with self._lock:
                if not getattr(client, _MARK, False):
                    _make_abortable(client)
        return client
