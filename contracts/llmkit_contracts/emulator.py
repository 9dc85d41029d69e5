"""In-process emulator of the OpenAI chat-completions HTTP API.

The emulator is a real HTTP/1.1 server bound to ``127.0.0.1`` on an ephemeral
port. It runs in a daemon thread and answers ``POST /v1/chat/completions`` with
scripted :class:`Reply` objects (first in, first out), falling back to a default
reply (an echo of the last user message unless configured otherwise).

Both plain JSON answers and ``text/event-stream`` answers (chunked transfer
encoding, OpenAI-shaped chunks, optional usage chunk, ``data: [DONE]``) are
supported, as are error answers, artificial latency and abrupt disconnects in
the middle of a stream. Every request received is recorded.

Only the standard library and :mod:`msgspec` are used, so the emulator can back
both the test-suite and the ``llmkit demo`` command.

Example:
    >>> with OpenAIEmulator() as emu:  # doctest: +SKIP
    ...     emu.enqueue(Reply.text("Hello!"))
    ...     client = SomeClient(base_url=emu.base_url)
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import http
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
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import msgspec

__all__ = ["OpenAIEmulator", "RecordedRequest", "Reply"]

_COMPLETIONS_PATH: Final = "/v1/chat/completions"
_SELECT_TIMEOUT: Final = 1.0
_STOP_JOIN_TIMEOUT: Final = 2.0
_MAX_LINE: Final = 65536
_DEFAULT_MODEL: Final = "emulator"

_CONTROLLED_HEADERS: Final = frozenset({"content-length", "transfer-encoding"})

_DEFAULT_ERROR_TYPES: Final[Mapping[int, str]] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}

_json_encode = msgspec.json.Encoder().encode
_json_decode = msgspec.json.Decoder().decode


class _Unset(enum.Enum):
    """Sentinel type for "argument not given" where ``None`` is meaningful."""

    UNSET = enum.auto()


_UNSET: Final = _Unset.UNSET


def _normalise_headers(headers: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    """Validate extra response headers and return them as lower-cased pairs.

    Args:
        headers: Header names mapped to values, or ``None``.

    Returns:
        The headers as a tuple of ``(lower-case name, value)`` pairs.

    Raises:
        ValueError: If a name or value cannot be sent on the wire.
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


@dataclass(frozen=True, slots=True)
class Reply:
    """A scripted answer of the emulator.

    Build replies with :meth:`text`, :meth:`tool_calls` or :meth:`error` and
    adjust the delivery options with :meth:`with_`.

    Attributes:
        kind: ``"text"``, ``"tool_calls"`` or ``"error"``.
        content: Assistant message content (``None`` for no content).
        calls: ``(name, arguments-json)`` pairs for tool-call replies.
        finish_reason: Finish reason reported to the client.
        prompt_tokens: Reported prompt token count.
        completion_tokens: Reported completion token count.
        model: Model name to report; ``None`` reports the requested model.
        status: HTTP status code (200 for non-error replies).
        body: Response body of error replies.
        headers: Extra response headers as lower-case ``(name, value)`` pairs.
        delay: Seconds to wait before sending the response headers.
        chunk_delay: Seconds to wait between two server-sent events.
        chunk_size: Characters of content or tool arguments per stream chunk.
        disconnect_after: For streaming answers only: close the connection
            abruptly after this many events, without ``data: [DONE]`` and
            without the terminating zero-length chunk. Ignored for
            non-streaming requests.
    """

    kind: Literal["text", "tool_calls", "error"]
    content: str | None = None
    calls: tuple[tuple[str, str], ...] = ()
    finish_reason: str = "stop"
    prompt_tokens: int = 10
    completion_tokens: int = 1
    model: str | None = None
    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    chunk_delay: float = 0.0
    chunk_size: int = 4
    disconnect_after: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("text", "tool_calls", "error"):
            raise ValueError(f"unknown reply kind {self.kind!r}")
        if self.kind == "error":
            if not 200 <= self.status <= 599 or self.status in (204, 304):
                raise ValueError(f"unsupported status {self.status}")
        elif self.status != 200:
            raise ValueError("only error replies may have a non-200 status")
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
        if self.disconnect_after is not None and self.disconnect_after < 0:
            raise ValueError("disconnect_after must not be negative")
        _normalise_headers(dict(self.headers))

    @classmethod
    def text(
        cls,
        content: str,
        *,
        finish_reason: str = "stop",
        prompt_tokens: int = 10,
        completion_tokens: int | None = None,
        model: str | None = None,
        delay: float = 0.0,
        chunk_delay: float = 0.0,
        chunk_size: int = 4,
        disconnect_after: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """Build a plain assistant text answer.

        Args:
            content: The assistant message text.
            finish_reason: Finish reason reported to the client.
            prompt_tokens: Reported prompt token count.
            completion_tokens: Reported completion token count; by default the
                number of whitespace-separated words in ``content`` (at least 1).
            model: Model name to report instead of the requested one.
            delay: Seconds to wait before sending the response headers.
            chunk_delay: Seconds to wait between two server-sent events.
            chunk_size: Characters of content per stream chunk.
            disconnect_after: Streaming only: drop the connection after this
                many events.
            headers: Extra response headers.

        Returns:
            The reply.
        """
        if completion_tokens is None:
            completion_tokens = len(content.split()) or 1
        return cls(
            kind="text",
            content=content,
            finish_reason=finish_reason,
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
        """Build an answer requesting function tool calls.

        Call ids are ``call_0``, ``call_1``, ... in order; the finish reason
        is ``"tool_calls"``.

        Args:
            calls: ``(function name, arguments as a JSON string)`` pairs.
            content: Optional assistant text sent along with the calls.
            prompt_tokens: Reported prompt token count.
            completion_tokens: Reported completion token count.
            model: Model name to report instead of the requested one.
            delay: Seconds to wait before sending the response headers.
            chunk_delay: Seconds to wait between two server-sent events.
            chunk_size: Characters of content or arguments per stream chunk.
            disconnect_after: Streaming only: drop the connection after this
                many events.
            headers: Extra response headers.

        Returns:
            The reply.
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
        """Build an error answer (always a plain, non-streamed response).

        Args:
            status: HTTP status code (200-599, except 204 and 304, so that a
                garbage 200 answer can be scripted with ``body``).
            message: ``error.message`` of the JSON body.
            type: ``error.type`` of the JSON body; by default derived from the
                status (e.g. ``rate_limit_error`` for 429, ``server_error`` for
                5xx).
            code: ``error.code`` of the JSON body.
            param: ``error.param`` of the JSON body.
            headers: Extra response headers, e.g. ``{"retry-after": "0"}``. A
                ``content-type`` given here replaces ``application/json``.
            body: Raw response body to send instead of the OpenAI error JSON.
            delay: Seconds to wait before sending the response.

        Returns:
            The reply.
        """
        if body is None:
            if type is None:
                type = _DEFAULT_ERROR_TYPES.get(
                    status, "server_error" if status >= 500 else "invalid_request_error"
                )
            body = _json_encode(
                {"error": {"message": message, "type": type, "param": param, "code": code}}
            )
        return cls(
            kind="error",
            status=status,
            body=bytes(body),
            finish_reason="",
            headers=_normalise_headers(headers),
            delay=delay,
        )

    def with_(
        self,
        *,
        delay: float | None = None,
        chunk_delay: float | None = None,
        chunk_size: int | None = None,
        disconnect_after: int | _Unset | None = _UNSET,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """Return a copy with different delivery options.

        Args:
            delay: New delay before the response headers.
            chunk_delay: New delay between server-sent events.
            chunk_size: New number of characters per stream chunk.
            disconnect_after: New disconnect point (``None`` disables it).
            headers: Extra headers merged over the existing ones.

        Returns:
            The modified copy; arguments left out keep their value.
        """
        changes: dict[str, Any] = {}
        if delay is not None:
            changes["delay"] = delay
        if chunk_delay is not None:
            changes["chunk_delay"] = chunk_delay
        if chunk_size is not None:
            changes["chunk_size"] = chunk_size
        if disconnect_after is not _UNSET:
            changes["disconnect_after"] = disconnect_after
        if headers is not None:
            changes["headers"] = _merge_headers(self.headers, _normalise_headers(headers))
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """A request received by the emulator.

    Attributes:
        method: HTTP method, e.g. ``"POST"``.
        path: Request target as sent (path plus any query string).
        headers: Request headers with lower-case names; repeated headers are
            joined with ``", "``.
        body: Raw request body.
        json: Parsed JSON body, or ``None`` if empty or not valid JSON.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any


def _last_user_text(payload: Any) -> str:
    """Return the text of the last user message of a chat request."""
    if not isinstance(payload, dict):
        return ""
    messages = payload.get("messages")
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return "".join(
                part["text"]
                for part in content
                if isinstance(part, dict) and isinstance(part.get("text"), str)
            )
        return ""
    return ""


def _split(text: str, size: int) -> list[str]:
    """Split ``text`` into pieces of at most ``size`` characters."""
    return [text[i : i + size] for i in range(0, len(text), size)]


def _usage(reply: Reply) -> dict[str, int]:
    """Return the OpenAI ``usage`` object of a reply."""
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
    }


def _completion_body(reply: Reply, *, completion_id: str, created: int, model: str) -> bytes:
    """Encode the non-streamed ``chat.completion`` object of a reply."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.calls:
        message["tool_calls"] = [
            {
                "id": f"call_{index}",
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            }
            for index, (name, arguments) in enumerate(reply.calls)
        ]
    return _json_encode(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": reply.finish_reason}],
            "usage": _usage(reply),
        }
    )


def _stream_events(
    reply: Reply, *, completion_id: str, created: int, model: str, include_usage: bool
) -> list[bytes]:
    """Encode the server-sent events of a streamed reply, ``[DONE]`` included."""

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        payload = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }
        return b"data: " + _json_encode(payload) + b"\n\n"

    size = reply.chunk_size
    events = [chunk({"role": "assistant", "content": ""})]
    events.extend(chunk({"content": piece}) for piece in _split(reply.content or "", size))
    for index, (name, arguments) in enumerate(reply.calls):
        head = {
            "index": index,
            "id": f"call_{index}",
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        events.append(chunk({"tool_calls": [head]}))
        events.extend(
            chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
            for piece in _split(arguments, size)
        )
    events.append(chunk({}, reply.finish_reason))
    if include_usage:
        usage_chunk = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [],
            "usage": _usage(reply),
        }
        events.append(b"data: " + _json_encode(usage_chunk) + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


def _error_body(message: str, type_: str, code: str | None = None) -> bytes:
    """Encode an OpenAI error object."""
    return _json_encode({"error": {"message": message, "type": type_, "param": None, "code": code}})


class _Server(ThreadingHTTPServer):
    """HTTP server that tracks its connections so it can stop promptly."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, emulator: OpenAIEmulator) -> None:
        self.emulator = emulator
        self.stopping = threading.Event()
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._connections_lock = threading.Lock()
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
        at once, which keeps :meth:`OpenAIEmulator.stop` fast.
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
            self._connections[request] = thread
        thread.start()

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
            threads = list(self._connections.values())
        deadline = time.monotonic() + timeout
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))


class _Abort(Exception):
    """Raised inside the handler to drop the connection without more output."""


class _Handler(BaseHTTPRequestHandler):
    """Request handler implementing the chat-completions endpoint."""

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
        try:
            body = self._read_body()
        except ValueError:
            self.close_connection = True
            seq = emulator._record(
                RecordedRequest(self.command, self.path, self._header_dict(), b"", None)
            )
            self._send(400, seq, _error_body("Malformed request body.", "invalid_request_error"))
            return
        parsed: Any = None
        valid_json = True
        if body:
            try:
                parsed = _json_decode(body)
            except msgspec.DecodeError:
                valid_json = False
        seq = emulator._record(
            RecordedRequest(self.command, self.path, self._header_dict(), body, parsed)
        )
        path = urlsplit(self.path).path
        if path != _COMPLETIONS_PATH:
            message = f"Unknown request URL: {self.command} {path}."
            self._send(404, seq, _error_body(message, "invalid_request_error", "unknown_url"))
            return
        if self.command != "POST":
            message = f"Method {self.command} not allowed on {path}."
            self._send(
                405,
                seq,
                _error_body(message, "invalid_request_error"),
                extra=(("allow", "POST"),),
            )
            return
        if not valid_json or not isinstance(parsed, dict):
            message = "We could not parse the JSON body of your request."
            self._send(400, seq, _error_body(message, "invalid_request_error"))
            return
        self._answer(seq, parsed, emulator._next_reply(parsed))

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
            ValueError: If the body framing is malformed.
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

    def _answer(self, seq: int, payload: dict[str, Any], reply: Reply) -> None:
        self._wait(reply.delay)
        if reply.kind == "error":
            self._send(reply.status, seq, reply.body, extra=reply.headers)
            return
        requested_model = payload.get("model")
        model = reply.model or (
            requested_model if isinstance(requested_model, str) else _DEFAULT_MODEL
        )
        completion_id = f"chatcmpl-emu-{seq}"
        created = int(time.time())
        if payload.get("stream") is not True:
            body = _completion_body(
                reply, completion_id=completion_id, created=created, model=model
            )
            self._send(200, seq, body, extra=reply.headers)
            return
        options = payload.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        events = _stream_events(
            reply,
            completion_id=completion_id,
            created=created,
            model=model,
            include_usage=include_usage,
        )
        self._stream(seq, reply, events)

    def _stream(self, seq: int, reply: Reply, events: list[bytes]) -> None:
        chunked = self.request_version != "HTTP/1.0"
        if not chunked:
            self.close_connection = True
        headers: tuple[tuple[str, str], ...] = (
            ("content-type", "text/event-stream; charset=utf-8"),
            ("cache-control", "no-cache"),
            ("x-request-id", f"req_emu_{seq}"),
        )
        if chunked:
            headers += (("transfer-encoding", "chunked"),)
        self.wfile.write(self._head(200, headers, reply.headers))
        if self.command == "HEAD":
            return
        limit = reply.disconnect_after
        for index, event in enumerate(events):
            if limit is not None and index >= limit:
                break
            if index:
                self._wait(reply.chunk_delay)
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event) if chunked else event)
        if limit is not None:
            # Abrupt end: no terminating zero-length chunk, connection closed.
            self.close_connection = True
            return
        if chunked:
            self.wfile.write(b"0\r\n\r\n")


class OpenAIEmulator:
    """A local HTTP server imitating the OpenAI chat-completions API.

    Use it as a context manager (or call :meth:`start` and :meth:`stop`),
    point a client at :attr:`base_url` and script answers with
    :meth:`enqueue`. Requests are answered with queued replies first in, first
    out; when the queue is empty the ``default`` reply is used, or, without
    one, an echo of the last user message (``"Echo: <text>"``).
    """

    def __init__(self, *, default: Reply | None = None) -> None:
        self._default = default
        self._lock = threading.Lock()
        self._queue: deque[Reply] = deque()
        self._requests: list[RecordedRequest] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> OpenAIEmulator:
        """Bind an ephemeral port on 127.0.0.1 and start serving.

        Returns:
            The emulator itself.

        Raises:
            RuntimeError: If the emulator is already running.
        """
        with self._lock:
            if self._server is not None:
                raise RuntimeError("the emulator is already running")
            server = _Server(self)
            thread = threading.Thread(
                target=server.serve,
                name="llmkit-emulator",
                daemon=True,
            )
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

    def __enter__(self) -> OpenAIEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The TCP port the emulator listens on.

        Raises:
            RuntimeError: If the emulator is not running.
        """
        server = self._server
        if server is None:
            raise RuntimeError("the emulator is not running")
        return server.server_port

    @property
    def base_url(self) -> str:
        """The API base URL, ``http://127.0.0.1:<port>/v1``.

        Raises:
            RuntimeError: If the emulator is not running.
        """
        return f"http://127.0.0.1:{self.port}/v1"

    def enqueue(self, *replies: Reply) -> None:
        """Append replies to the answer queue (thread-safe).

        Args:
            *replies: Replies used, in order, for the next completion requests.

        Raises:
            TypeError: If an argument is not a :class:`Reply`.
        """
        for reply in replies:
            if not isinstance(reply, Reply):
                raise TypeError(f"expected a Reply, got {type(reply).__name__}")
        with self._lock:
            self._queue.extend(replies)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

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
        return Reply.text(f"Echo: {_last_user_text(payload)}")
