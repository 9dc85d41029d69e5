"""The loopback server that every provider emulator shares.

An :class:`Emulator` is a real HTTP/1.1 server bound to ``127.0.0.1`` on an
ephemeral port, serving in daemon threads. What it speaks comes from a
:class:`WireProtocol`: one module per provider API under
:mod:`llmkit_contracts.emulators` says which paths it serves, how it checks
an incoming request (strictly, as the real API does) and how it writes a
scripted :class:`Reply` as a body, as stream events, or as an error.

A :class:`Reply` is protocol-neutral: text, tool calls, reasoning, usage,
an error by status, or raw recorded bytes. The same script therefore
becomes an OpenAI chunk stream, an Anthropic event stream or Gemini JSON,
depending on the protocol, which is what lets one contract case run
against every provider. Replies are answered first in, first out; with the
queue empty, a default reply (an echo of the last user text) is used.

Delivery can be shaped per reply: a delay before the headers, a delay
between stream events, an abrupt disconnect after some events, an error
event in the middle of a stream. Every request received is recorded,
with the connection it came on.

Only the standard library and :mod:`msgspec` are used, so the emulators
back the test suite, the contract suite and the ``llmkit demo`` command.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import http
import itertools
import selectors
import socket
import socketserver
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Final, Literal, Self

import msgspec

__all__ = [
    "Emulator",
    "Received",
    "RecordedRequest",
    "Reply",
    "Turn",
    "WireProtocol",
    "json_decode",
    "json_encode",
    "split_text",
]

_SELECT_TIMEOUT: Final = 1.0
_STOP_JOIN_TIMEOUT: Final = 2.0
_MAX_LINE: Final = 65536
_CONTROLLED_HEADERS: Final = frozenset({"content-length", "transfer-encoding"})
_FINISH_REASONS: Final = frozenset({"stop", "length", "tool_calls", "content_filter"})

json_encode = msgspec.json.Encoder().encode
json_decode = msgspec.json.Decoder().decode


class _Unset(enum.Enum):
    """Sentinel type for "argument not given" where ``None`` is meaningful."""

    UNSET = enum.auto()


_UNSET: Final = _Unset.UNSET


def _normalise_headers(headers: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    """Validate extra response headers and return them as lower-cased pairs.

    Raises:
        ValueError: a name or value cannot be sent on the wire.
    """
    if not headers:
        return ()
    result: list[tuple[str, str]] = []
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise ValueError("header names and values must be strings")
        if not name or any(c in name for c in " \t\r\n:"):
            raise ValueError(f"invalid header name {name!r}")
        if "\r" in value or "\n" in value:
            raise ValueError(f"invalid value for header {name!r}")
        try:
            name.encode("latin-1")
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(f"header {name!r} is not latin-1 encodable") from None
        result.append((name.lower(), value))
    return tuple(result)


def _merge_headers(
    base: tuple[tuple[str, str], ...], extra: tuple[tuple[str, str], ...]
) -> tuple[tuple[str, str], ...]:
    """Merge two header tuples; names in ``extra`` replace those in ``base``."""
    if not extra:
        return base
    names = {name for name, _ in extra}
    return tuple(pair for pair in base if pair[0] not in names) + extra


def split_text(text: str, size: int) -> list[str]:
    """Split ``text`` into pieces of at most ``size`` characters (none for ``""``)."""
    return [text[i : i + size] for i in range(0, len(text), size)]


@dataclass(frozen=True, slots=True)
class Reply:
    """A scripted answer, in no provider's format.

    Build replies with :meth:`text`, :meth:`tool_calls`, :meth:`error` or
    :meth:`raw`, and adjust delivery with :meth:`with_`. The emulator's
    protocol turns a reply into that provider's bytes.

    Attributes:
        kind: ``"text"``, ``"tool_calls"``, ``"error"`` or ``"raw"``.
        content: Assistant text (``None`` for none).
        calls: ``(name, arguments-json)`` pairs for tool-call replies.
        reasoning: Reasoning text the model shows before its answer.
        finish_reason: Normalized finish reason (``stop``, ``length``,
            ``tool_calls`` or ``content_filter``); each protocol writes its own.
        prompt_tokens: Reported prompt token count.
        completion_tokens: Reported completion token count.
        model: Model name to report; ``None`` reports the requested model.
        status: HTTP status (200 except for errors and raw replies).
        message: The error message of error replies and error events.
        error_type: The provider's error type; by default derived from the status.
        code: The error code, where the provider has one.
        param: The parameter an error is about, where the provider says.
        body: Error replies: the raw body to send instead of the
            protocol's error envelope.
        pieces: Raw replies: the body, sent one chunk per piece.
        headers: Extra response headers as lower-case ``(name, value)`` pairs.
        delay: Seconds to wait before sending the response headers.
        chunk_delay: Seconds to wait between two stream events (or raw pieces).
        chunk_size: Characters of content or tool arguments per stream event.
        disconnect_after: Streams and raw replies: close the connection
            abruptly after this many events, without the end of the body.
        error_after: Streams only: send the protocol's error event (built
            from ``message``, ``error_type`` and ``code``) after this many
            events, and end the stream there.
    """

    kind: Literal["text", "tool_calls", "error", "raw"]
    content: str | None = None
    calls: tuple[tuple[str, str], ...] = ()
    reasoning: str | None = None
    finish_reason: str = "stop"
    prompt_tokens: int = 10
    completion_tokens: int = 1
    model: str | None = None
    status: int = 200
    message: str = "Emulated error"
    error_type: str | None = None
    code: str | None = None
    param: str | None = None
    body: bytes = b""
    pieces: tuple[bytes, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    chunk_delay: float = 0.0
    chunk_size: int = 4
    disconnect_after: int | None = None
    error_after: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("text", "tool_calls", "error", "raw"):
            raise ValueError(f"unknown reply kind {self.kind!r}")
        if self.kind in ("error", "raw"):
            if not 200 <= self.status <= 599 or self.status in (204, 304):
                raise ValueError(f"unsupported status {self.status}")
        elif self.status != 200:
            raise ValueError("only error and raw replies may have a non-200 status")
        if self.kind in ("text", "tool_calls") and self.finish_reason not in _FINISH_REASONS:
            raise ValueError(
                f"finish_reason must be one of {sorted(_FINISH_REASONS)}, "
                f"not {self.finish_reason!r}; each protocol writes its own value"
            )
        if self.kind == "tool_calls" and not self.calls:
            raise ValueError("a tool-call reply needs at least one call")
        for call in self.calls:
            if (
                len(call) != 2
                or not isinstance(call[0], str)
                or not call[0]
                or not isinstance(call[1], str)
            ):
                raise ValueError(f"tool call must be a (name, arguments) pair of str, got {call!r}")
        if self.prompt_tokens < 0 or self.completion_tokens < 0:
            raise ValueError("token counts must not be negative")
        if self.delay < 0 or self.chunk_delay < 0:
            raise ValueError("delays must not be negative")
        if self.chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        for name in ("disconnect_after", "error_after"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative")
        if not all(isinstance(piece, bytes) for piece in self.pieces):
            raise ValueError("raw pieces must be bytes")
        _normalise_headers(dict(self.headers))

    @classmethod
    def text(
        cls,
        content: str,
        *,
        reasoning: str | None = None,
        finish_reason: str = "stop",
        prompt_tokens: int = 10,
        completion_tokens: int | None = None,
        model: str | None = None,
        delay: float = 0.0,
        chunk_delay: float = 0.0,
        chunk_size: int = 4,
        disconnect_after: int | None = None,
        error_after: int | None = None,
        message: str = "Emulated error",
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """Build a plain assistant text answer.

        ``completion_tokens`` defaults to the number of whitespace-separated
        words of ``content`` (at least 1). ``message`` is the text of the
        error event that ``error_after`` sends.
        """
        if completion_tokens is None:
            completion_tokens = len(content.split()) or 1
        return cls(
            kind="text",
            content=content,
            reasoning=reasoning,
            finish_reason=finish_reason,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            model=model,
            message=message,
            headers=_normalise_headers(headers),
            delay=delay,
            chunk_delay=chunk_delay,
            chunk_size=chunk_size,
            disconnect_after=disconnect_after,
            error_after=error_after,
        )

    @classmethod
    def tool_calls(
        cls,
        calls: Sequence[tuple[str, str]],
        *,
        content: str | None = None,
        prompt_tokens: int = 10,
        completion_tokens: int = 5,
        model: str | None = None,
        delay: float = 0.0,
        chunk_delay: float = 0.0,
        chunk_size: int = 4,
        disconnect_after: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """Build an answer that calls function tools.

        ``calls`` holds ``(function name, arguments as a JSON string)``
        pairs; protocols give them ids ``call_0``, ``call_1``, ... in order.
        The finish reason is ``tool_calls``.
        """
        return cls(
            kind="tool_calls",
            content=content,
            calls=tuple((name, arguments) for name, arguments in calls),
            finish_reason="tool_calls",
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            model=model,
            headers=_normalise_headers(headers),
            delay=delay,
            chunk_delay=chunk_delay,
            chunk_size=chunk_size,
            disconnect_after=disconnect_after,
        )

    @classmethod
    def error(
        cls,
        status: int,
        *,
        message: str = "Emulated error",
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        delay: float = 0.0,
    ) -> Reply:
        """Build an error answer (never streamed).

        Args:
            status: HTTP status (200-599 except 204 and 304, so that a garbage
                200 answer can be scripted with ``body``).
            message: The error message, in the protocol's error envelope.
            type: The error type; by default the protocol derives it from the status.
            code: The error code.
            param: The parameter the error is about.
            headers: Extra response headers, e.g. ``{"retry-after": "0"}``. A
                ``content-type`` given here replaces ``application/json``.
            body: A raw body to send instead of the protocol's envelope.
            delay: Seconds to wait before answering.
        """
        return cls(
            kind="error",
            status=status,
            message=message,
            error_type=type,
            code=code,
            param=param,
            body=b"" if body is None else bytes(body),
            headers=_normalise_headers(headers),
            delay=delay,
        )

    @classmethod
    def raw(
        cls,
        status: int,
        pieces: Sequence[bytes],
        *,
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
        chunk_delay: float = 0.0,
        disconnect_after: int | None = None,
    ) -> Reply:
        """Send recorded bytes as they are: one chunk of the chunked body per piece.

        Chunk boundaries reach the client's byte stream as they are sent,
        so a recorded body split into pieces tests a decoder on exactly
        those splits. ``disconnect_after`` cuts the body after that many
        pieces without its end. Give the recorded ``content-type`` in ``headers``.
        """
        return cls(
            kind="raw",
            status=status,
            pieces=tuple(bytes(piece) for piece in pieces),
            headers=_normalise_headers(headers),
            delay=delay,
            chunk_delay=chunk_delay,
            disconnect_after=disconnect_after,
        )

    def with_(
        self,
        *,
        delay: float | None = None,
        chunk_delay: float | None = None,
        chunk_size: int | None = None,
        disconnect_after: int | _Unset | None = _UNSET,
        error_after: int | _Unset | None = _UNSET,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """Return a copy with other delivery options; arguments left out keep their value."""
        changes: dict[str, Any] = {}
        if delay is not None:
            changes["delay"] = delay
        if chunk_delay is not None:
            changes["chunk_delay"] = chunk_delay
        if chunk_size is not None:
            changes["chunk_size"] = chunk_size
        if disconnect_after is not _UNSET:
            changes["disconnect_after"] = disconnect_after
        if error_after is not _UNSET:
            changes["error_after"] = error_after
        if headers is not None:
            changes["headers"] = _merge_headers(self.headers, _normalise_headers(headers))
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """A request the emulator received.

    Attributes:
        method: HTTP method, e.g. ``"POST"``.
        path: Request target as sent (path plus any query string).
        headers: Request headers with lower-case names; repeated headers are
            joined with ``", "``.
        body: Raw request body.
        json: Parsed JSON body, or ``None`` if empty or not valid JSON.
        connection: The number of the connection it came on (1, 2, ...).
    """

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any
    connection: int = 0


@dataclass(frozen=True, slots=True)
class Turn:
    """One message of a received request, in no provider's format.

    Attributes:
        role: ``"user"``, ``"assistant"`` or ``"tool"`` (system text goes to
            :attr:`Received.system`).
        text: The message's text parts joined, ``""`` for none.
        images: How many image parts it carries.
        calls: An assistant turn's tool calls as ``(id, name, arguments)``,
            the arguments parsed from JSON.
        tool_call_id: A tool turn's answer to that call id.
    """

    role: str
    text: str = ""
    images: int = 0
    calls: tuple[tuple[str, str, Any], ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True, slots=True)
class Received:
    """What a request asked for, read back from any protocol's wire format.

    Contract cases compare these fields with what they sent, so that "the
    system prompt reached the provider" is one check whether the protocol
    carries it as a message, a top-level field or a system instruction.

    Attributes:
        model: The model asked for.
        system: The system (and developer) text joined, or ``None``.
        turns: The other messages, in order.
        stream: Whether a stream was asked for.
        max_tokens: The output token limit, under whatever name.
        stop: Stop sequences.
        tools: The names of the function tools offered.
        tool_choice: ``"auto"``, ``"none"``, ``"required"``,
            ``"function:<name>"``, or ``None`` when not given.
        response_format: ``"json_object"``, ``"json_schema"`` or ``None``.
        temperature: The sampling temperature, if given.
    """

    model: str | None = None
    system: str | None = None
    turns: tuple[Turn, ...] = ()
    stream: bool = False
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()
    tool_choice: str | None = None
    response_format: str | None = None
    temperature: float | None = None


class WireProtocol:
    """One provider API's wire format, as its emulator speaks it.

    Subclasses live in :mod:`llmkit_contracts.emulators`, one module per
    protocol. The emulator core handles sockets, HTTP framing, delays and
    disconnects; a protocol only maps between bytes and meaning. Methods
    take the parsed JSON body of the request (``payload``) and the request
    path, since some APIs put the model or the streaming switch in the URL.

    Class attributes:
        name: The protocol's name, e.g. ``"openai"``.
        base_path: What follows ``http://127.0.0.1:<port>`` in the
            ``api_base`` a client is given, e.g. ``"/v1"``.
        stream_content_type: The content type of stream answers.
        key_env: The environment variable holding the provider's key.
    """

    name: ClassVar[str] = ""
    base_path: ClassVar[str] = ""
    stream_content_type: ClassVar[str] = "text/event-stream; charset=utf-8"

    def route(self, method: str, path: str) -> Reply | None:
        """``None`` when ``method`` and ``path`` (query left off) are served, else the error."""
        raise NotImplementedError

    def check(self, path: str, headers: Mapping[str, str], payload: Any) -> Reply | None:
        """Validate a request as the real API does: ``None``, or the error reply it gets.

        ``payload`` is the decoded JSON body, or ``None`` when the body was
        empty or not JSON.
        """
        raise NotImplementedError

    def wants_stream(self, path: str, payload: Any) -> bool:
        """Whether the request asks for a streamed answer."""
        raise NotImplementedError

    def model(self, path: str, payload: Any) -> str:
        """The model the request names."""
        raise NotImplementedError

    def body(self, reply: Reply, payload: Any, *, seq: int, model: str) -> bytes:
        """The 200 body of a text or tool-call reply."""
        raise NotImplementedError

    def events(self, reply: Reply, payload: Any, *, seq: int, model: str) -> list[bytes]:
        """The framed events of a streamed reply, its end marker included."""
        raise NotImplementedError

    def error_body(self, reply: Reply) -> bytes:
        """The body of an error reply, in the provider's error envelope."""
        raise NotImplementedError

    def error_event(self, reply: Reply) -> bytes:
        """A framed error event sent in the middle of a stream."""
        raise NotImplementedError

    def prompt(self, payload: Any) -> str:
        """The text of the last user message (the default reply echoes it)."""
        received = self.received("", payload)
        users = [turn.text for turn in received.turns if turn.role == "user"]
        return users[-1] if users else ""

    def received(self, path: str, payload: Any) -> Received:
        """Read a request that passed :meth:`check` back into neutral form."""
        raise NotImplementedError


class _Server(ThreadingHTTPServer):
    """HTTP server that tracks its connections so it can stop promptly."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.stopping = threading.Event()
        self._connections: dict[socket.socket, tuple[int, threading.Thread]] = {}
        self._connections_lock = threading.Lock()
        self._numbers = itertools.count(1)
        self._wake_reader, self._wake_writer = socket.socketpair()
        try:
            super().__init__(("127.0.0.1", 0), _Handler)
            self.socket.setblocking(False)
        except BaseException:
            self._close_wake_sockets()
            raise

    def serve(self) -> None:
        """Accept connections until :attr:`stopping` is set and :meth:`wake` called.

        Unlike ``serve_forever`` this loop does not poll: :meth:`wake` ends it
        at once, which keeps :meth:`Emulator.stop` fast.
        """
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_reader, selectors.EVENT_READ)
            while not self.stopping.is_set():
                for key, _ in selector.select(_SELECT_TIMEOUT):
                    if key.fileobj is self.socket and not self.stopping.is_set():
                        self._accept()

    def _accept(self) -> None:
        try:
            request, client_address = self.get_request()
        except OSError:  # e.g. BlockingIOError when the client already gave up
            return
        try:
            # Some platforms let accepted sockets inherit O_NONBLOCK.
            request.setblocking(True)
            self.process_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
            self.shutdown_request(request)

    def wake(self) -> None:
        """Interrupt :meth:`serve` (call after setting :attr:`stopping`)."""
        with contextlib.suppress(OSError):
            self._wake_writer.send(b"\0")

    def _close_wake_sockets(self) -> None:
        self._wake_reader.close()
        self._wake_writer.close()

    def server_close(self) -> None:
        super().server_close()
        self._close_wake_sockets()

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a (possibly slow) reverse DNS lookup.
        socketserver.TCPServer.server_bind(self)
        host, port = self.socket.getsockname()[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name="llmkit-emulator-connection",
            daemon=True,
        )
        with self._connections_lock:
            self._connections[request] = (next(self._numbers), thread)
        thread.start()

    def connection_number(self, request: Any) -> int:
        with self._connections_lock:
            entry = self._connections.get(request)
        return entry[0] if entry is not None else 0

    def open_connections(self) -> set[int]:
        with self._connections_lock:
            return {number for number, _ in self._connections.values()}

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.pop(request, None)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if self.stopping.is_set() or isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)

    def close_connections(self, timeout: float) -> None:
        """Shut down all open connections and wait for their threads."""
        with self._connections_lock:
            for conn in self._connections:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            threads = [thread for _, thread in self._connections.values()]
        deadline = time.monotonic() + timeout
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))


class _Abort(Exception):
    """Raised inside the handler to drop the connection without more output."""


class _Handler(BaseHTTPRequestHandler):
    """Reads a request, asks the protocol, writes the reply."""

    protocol_version = "HTTP/1.1"
    server_version = "llmkit-emulator"
    disable_nagle_algorithm = True

    @property
    def _srv(self) -> _Server:
        server = self.server
        assert isinstance(server, _Server)
        return server

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default per-request logging to stderr."""

    def handle(self) -> None:
        try:
            super().handle()
        except (OSError, _Abort):
            self.close_connection = True

    def _dispatch(self) -> None:
        server = self._srv
        if server.stopping.is_set():
            self.close_connection = True
            return
        emulator = server.emulator
        connection = server.connection_number(self.request)
        try:
            body = self._read_body()
        except ValueError:
            self.close_connection = True
            seq = emulator._record(
                RecordedRequest(self.command, self.path, self._header_dict(), b"", None, connection)
            )
            self._error(seq, Reply.error(400, message="Malformed request body."))
            return
        payload: Any = None
        if body:
            with contextlib.suppress(msgspec.DecodeError):
                payload = json_decode(body)
        headers = self._header_dict()
        seq = emulator._record(
            RecordedRequest(self.command, self.path, headers, body, payload, connection)
        )
        refusal = emulator.refusal(self.command, self.path, headers, payload)
        if refusal is not None:
            self._error(seq, refusal)
            return
        self._answer(seq, payload, emulator._next_reply(payload))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    def _header_dict(self) -> dict[str, str]:
        result: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            result[key] = f"{result[key]}, {value}" if key in result else value
        return result

    def _read_body(self) -> bytes:
        """Read the request body (Content-Length or chunked framing).

        Raises:
            ValueError: the body framing is malformed.
        """
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            parts: list[bytes] = []
            while True:
                line = self.rfile.readline(_MAX_LINE)
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size < 0:
                    raise ValueError("negative chunk size")
                if size == 0:
                    while self.rfile.readline(_MAX_LINE) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                data = self.rfile.read(size)
                if len(data) != size:
                    raise ValueError("truncated chunk")
                parts.append(data)
                self.rfile.readline(_MAX_LINE)
        length = self.headers.get("content-length")
        if length is None:
            return b""
        size = int(length)
        if size < 0:
            raise ValueError("negative content-length")
        data = self.rfile.read(size) if size else b""
        if len(data) != size:
            raise ValueError("truncated body")
        return data

    def _wait(self, seconds: float) -> None:
        """Sleep, but give up (dropping the connection) when the server stops."""
        if seconds > 0 and self._srv.stopping.wait(seconds):
            raise _Abort

    def _head(
        self,
        status: int,
        headers: tuple[tuple[str, str], ...],
        extra: tuple[tuple[str, str], ...],
    ) -> bytes:
        merged = _merge_headers(
            headers, tuple(pair for pair in extra if pair[0] not in _CONTROLLED_HEADERS)
        )
        try:
            phrase = http.HTTPStatus(status).phrase
        except ValueError:
            phrase = "Unknown"
        lines = [f"HTTP/1.1 {status} {phrase}"]
        lines.extend(f"{name}: {value}" for name, value in merged)
        if any(name == "connection" and value.lower() == "close" for name, value in merged):
            self.close_connection = True
        elif self.close_connection:
            lines.append("connection: close")
        lines.append("\r\n")
        return "\r\n".join(lines).encode("latin-1")

    def _send(
        self,
        status: int,
        seq: int,
        body: bytes,
        *,
        extra: tuple[tuple[str, str], ...] = (),
    ) -> None:
        headers = (
            ("content-type", "application/json"),
            ("x-request-id", f"req_emu_{seq}"),
            ("content-length", str(len(body))),
        )
        head = self._head(status, headers, extra)
        self.wfile.write(head if self.command == "HEAD" else head + body)

    def _error(self, seq: int, reply: Reply) -> None:
        self._wait(reply.delay)
        body = reply.body or self._srv.emulator.protocol.error_body(reply)
        self._send(reply.status, seq, body, extra=reply.headers)

    def _answer(self, seq: int, payload: Any, reply: Reply) -> None:
        if reply.kind == "error":
            self._error(seq, reply)
            return
        self._wait(reply.delay)
        if reply.kind == "raw":
            self._chunked(seq, reply.status, (), reply, list(reply.pieces))
            return
        protocol = self._srv.emulator.protocol
        model = reply.model or protocol.model(self.path, payload)
        if not protocol.wants_stream(self.path, payload):
            body = protocol.body(reply, payload, seq=seq, model=model)
            self._send(200, seq, body, extra=reply.headers)
            return
        events = protocol.events(reply, payload, seq=seq, model=model)
        if reply.error_after is not None:
            events = [*events[: reply.error_after], protocol.error_event(reply)]
        headers = (
            ("content-type", protocol.stream_content_type),
            ("cache-control", "no-cache"),
        )
        self._chunked(seq, 200, headers, reply, events)

    def _chunked(
        self,
        seq: int,
        status: int,
        headers: tuple[tuple[str, str], ...],
        reply: Reply,
        pieces: list[bytes],
    ) -> None:
        chunked = self.request_version != "HTTP/1.0"
        if not chunked:
            self.close_connection = True
        headers += (("x-request-id", f"req_emu_{seq}"),)
        if chunked:
            headers += (("transfer-encoding", "chunked"),)
        self.wfile.write(self._head(status, headers, reply.headers))
        if self.command == "HEAD":
            return
        limit = reply.disconnect_after
        for index, piece in enumerate(pieces):
            if limit is not None and index >= limit:
                break
            if index:
                self._wait(reply.chunk_delay)
            if not piece:
                continue  # a zero-length chunk would end the body
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
        if limit is not None:
            # Abrupt end: no terminating zero-length chunk, connection closed.
            self.close_connection = True
            return
        if chunked:
            self.wfile.write(b"0\r\n\r\n")


class Emulator:
    """A local HTTP server that speaks one provider's API.

    Use it as a context manager (or call :meth:`start` and :meth:`stop`),
    point a client at :attr:`base_url` and script answers with
    :meth:`enqueue`. Queued replies answer requests first in, first out;
    with the queue empty the ``default`` reply is used or, without one, an
    echo of the last user message (``"Echo: <text>"``).

    With ``strict`` (the default) every request is checked as the real API
    checks it, and one that breaks its rules gets the API's error instead
    of a scripted reply; the error consumes no queued reply.
    """

    def __init__(
        self, protocol: WireProtocol, *, default: Reply | None = None, strict: bool = True
    ) -> None:
        if not isinstance(protocol, WireProtocol):
            raise TypeError(f"expected a WireProtocol, got {type(protocol).__name__}")
        self.protocol = protocol
        self.strict = strict
        self._default = default
        self._lock = threading.Lock()
        self._queue: deque[Reply] = deque()
        self._requests: list[RecordedRequest] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        """Bind an ephemeral port on 127.0.0.1 and start serving.

        Raises:
            RuntimeError: the emulator is already running.
        """
        with self._lock:
            if self._server is not None:
                raise RuntimeError("the emulator is already running")
            server = _Server(self)
            thread = threading.Thread(target=server.serve, name="llmkit-emulator", daemon=True)
            thread.start()
            self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        """Stop serving, close the listening socket and all connections.

        Calling it on a stopped emulator does nothing. Streams in progress are
        cut off and pending delays are abandoned.
        """
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is None or thread is None:
            return
        server.stopping.set()
        server.wake()
        thread.join(_STOP_JOIN_TIMEOUT)
        server.server_close()
        server.close_connections(_STOP_JOIN_TIMEOUT)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _running(self) -> _Server:
        server = self._server
        if server is None:
            raise RuntimeError("the emulator is not running; call start() or use it in a with")
        return server

    @property
    def port(self) -> int:
        """The TCP port the emulator listens on.

        Raises:
            RuntimeError: the emulator is not running.
        """
        return self._running().server_port

    @property
    def base_url(self) -> str:
        """The ``api_base`` to give a client: ``http://127.0.0.1:<port>`` plus the protocol's path.

        Raises:
            RuntimeError: the emulator is not running.
        """
        return f"http://127.0.0.1:{self.port}{self.protocol.base_path}"

    def enqueue(self, *replies: Reply) -> None:
        """Append replies to the answer queue (thread-safe).

        Raises:
            TypeError: an argument is not a :class:`Reply`.
        """
        for reply in replies:
            if not isinstance(reply, Reply):
                raise TypeError(f"expected a Reply, got {type(reply).__name__}")
        with self._lock:
            self._queue.extend(replies)

    def reset(self) -> None:
        """Forget queued replies and recorded requests (between contract cases)."""
        with self._lock:
            self._queue.clear()
            self._requests.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def open_connections(self) -> set[int]:
        """The numbers of the client connections still open.

        Raises:
            RuntimeError: the emulator is not running.
        """
        return self._running().open_connections()

    def refusal(
        self, method: str, path: str, headers: Mapping[str, str], payload: Any
    ) -> Reply | None:
        """The error the emulator answers a request with instead of a scripted reply, or ``None``.

        A path or method the protocol does not serve, a body that is no JSON
        object and, when strict, whatever the protocol's ``check`` refuses.
        """
        refusal = self.protocol.route(method, path.partition("?")[0])
        if refusal is None and not isinstance(payload, dict):
            refusal = Reply.error(400, message="We could not parse the JSON body of your request.")
        if refusal is None and self.strict:
            refusal = self.protocol.check(path, headers, payload)
        return refusal

    def _record(self, request: RecordedRequest) -> int:
        """Record a request and return its 1-based sequence number."""
        with self._lock:
            self._requests.append(request)
            return len(self._requests)

    def _next_reply(self, payload: Any) -> Reply:
        """Pop the next queued reply, or build the default one."""
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        if self._default is not None:
            return self._default
        return Reply.text(f"Echo: {self.protocol.prompt(payload)}")
