"""A fast, local, OpenAI-shaped HTTP/1.1 server for llmkit's benchmarks.

Run it in its own process (the runner does)::

    python bench/server.py [--port 0] [--watch-stdin]

It binds 127.0.0.1 (an ephemeral port unless ``--port`` is given), prints the
port on the first line of stdout, and serves until it gets SIGTERM/SIGINT or,
with ``--watch-stdin``, until its stdin reaches EOF (so it dies with the
process that started it, even if that process crashes).

Routes:

* ``POST /v1/chat/completions`` with ``"stream": true`` absent or false:
  a fixed ``chat.completion`` JSON body with ``usage`` (Content-Length).
* ``POST /v1/chat/completions`` with ``"stream": true``: an SSE stream of N
  ``chat.completion.chunk`` events (N from the ``x-bench-chunks`` request
  header, default 5000), each carrying a few characters of content, then a
  ``finish_reason`` chunk, a usage chunk (``"choices": []``) and
  ``data: [DONE]``, sent with chunked transfer encoding. By default every SSE
  event is its own HTTP chunk, as OpenAI sends them; the
  ``x-bench-events-per-chunk`` header packs several events into one chunk.
* ``POST /v1/messages``: the same answers in Anthropic's Messages format:
  a ``message`` JSON body, or (with ``"stream": true``) ``message_start``,
  ``content_block_start``, ``ping``, N ``content_block_delta`` text events,
  ``content_block_stop``, ``message_delta`` and ``message_stop``.
* ``GET /health``: ``ok``.
* ``GET /stats``: what the server saw, as JSON: ``requests`` (chat
  requests), ``faults`` by kind, ``open`` (connections open now).

Faults, for load tests: a chat request with an ``x-bench-fault`` header gets
that fault instead of its answer on its first ``x-bench-fault-times``
attempts (default 1; attempts are counted per ``x-bench-call`` id), and its
answer after that:

* ``429``: HTTP 429 with ``Retry-After`` (seconds from ``x-bench-retry-after``,
  default ``0.05``) and an OpenAI error body;
* ``500``, ``503``: that status with an OpenAI error body;
* ``reset``: the connection is reset (RST) without an answer;
* ``truncate``: the answer is cut in the middle (a body shorter than its
  Content-Length, a stream without its end) and the connection closed;
* ``slow``: the answer comes after ``x-bench-delay`` seconds (default 0.2);
  the same delay past a client's read timeout makes it a stall.

Speed: it is an ``asyncio.Protocol`` (no streams layer), keeps connections
alive, and sends pre-rendered bytes: the plain response is a constant and
each stream shape is rendered once and cached. The request body is not
parsed as JSON; a regular expression looks for ``"stream": true``. Only the
standard library is used.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import struct
import sys
import threading

HOST = "127.0.0.1"
PATH = b"/v1/chat/completions"
ANTHROPIC_PATH = b"/v1/messages"
DEFAULT_CHUNKS = 5000
MAX_CHUNKS = 1_000_000
MAX_HEADER = 64 * 1024
MAX_BODY = 16 * 1024 * 1024

_STREAM_RE = re.compile(rb'"stream"\s*:\s*true')

# --- pre-rendered bodies ---------------------------------------------------------

MODEL = "gpt-4o-mini-2024-07-18"
CREATED = 1_700_000_000
REQUEST_ID = "req_bench0000000000000000000000"

COMPLETION_BODY = (
    b'{"id":"chatcmpl-bench000000000000000000000001","object":"chat.completion",'
    b'"created":1700000000,"model":"gpt-4o-mini-2024-07-18",'
    b'"choices":[{"index":0,"message":{"role":"assistant",'
    b'"content":"Hello! How can I help you today?","refusal":null,"annotations":[]},'
    b'"logprobs":null,"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":9,"completion_tokens":9,"total_tokens":18,'
    b'"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},'
    b'"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,'
    b'"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},'
    b'"service_tier":"default","system_fingerprint":"fp_bench0001"}'
)

_COMMON_HEADERS = (
    b"date: Thu, 01 Jan 2025 00:00:00 GMT\r\n"
    b"openai-organization: bench\r\n"
    b"openai-processing-ms: 1\r\n"
    b"openai-version: 2020-10-01\r\n"
    b"x-request-id: " + REQUEST_ID.encode() + b"\r\n"
)

COMPLETION_RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"content-type: application/json\r\n"
    b"content-length: "
    + str(len(COMPLETION_BODY)).encode()
    + b"\r\n"
    + _COMMON_HEADERS
    + b"\r\n"
    + COMPLETION_BODY
)

STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"content-type: text/event-stream; charset=utf-8\r\n"
    b"transfer-encoding: chunked\r\n"
    b"cache-control: no-cache\r\n" + _COMMON_HEADERS + b"\r\n"
)

# A few characters per chunk, as a tokenizer would cut English text.
_PIECES = (
    "Hello",
    ",",
    " this",
    " is",
    " a",
    " bench",
    "mark",
    " stream",
    " of",
    " tok",
    "ens",
    ".",
)

_CHUNK_PREFIX = (
    '{"id":"chatcmpl-bench000000000000000000000002","object":"chat.completion.chunk",'
    f'"created":{CREATED},"model":"{MODEL}","service_tier":"default",'
    '"system_fingerprint":"fp_bench0001","choices":[{"index":0,"delta":'
)


def _event(payload: str) -> bytes:
    return b"data: " + payload.encode() + b"\n\n"


def _chunk_event(delta: str, finish: str = "null") -> bytes:
    return _event(
        _CHUNK_PREFIX + delta + ',"logprobs":null,"finish_reason":' + finish + '}],"usage":null}'
    )


def _http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def render_stream_events(n: int) -> list[bytes]:
    """Return the SSE events of an ``n``-chunk stream (role, content..., stop, usage, DONE)."""
    events = [_chunk_event('{"role":"assistant","content":"","refusal":null}')]
    pieces = _PIECES
    for i in range(n):
        text = pieces[i % len(pieces)]
        events.append(_chunk_event('{"content":"' + text + '"}'))
    events.append(_chunk_event("{}", '"stop"'))
    events.append(
        _event(
            '{"id":"chatcmpl-bench000000000000000000000002","object":"chat.completion.chunk",'
            f'"created":{CREATED},"model":"{MODEL}","service_tier":"default",'
            '"system_fingerprint":"fp_bench0001","choices":[],'
            f'"usage":{{"prompt_tokens":9,"completion_tokens":{n},"total_tokens":{n + 9},'
            '"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},'
            '"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,'
            '"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}'
        )
    )
    events.append(b"data: [DONE]\n\n")
    return events


_stream_cache: dict[tuple[int, int], bytes] = {}


def stream_response(n: int, per_chunk: int) -> bytes:
    """Return the whole HTTP response (head and chunked body) of a stream, cached."""
    key = (n, per_chunk)
    data = _stream_cache.get(key)
    if data is None:
        events = render_stream_events(n)
        parts = [STREAM_HEAD]
        for i in range(0, len(events), per_chunk):
            parts.append(_http_chunk(b"".join(events[i : i + per_chunk])))
        parts.append(b"0\r\n\r\n")
        data = b"".join(parts)
        if len(_stream_cache) > 32:
            _stream_cache.clear()
        _stream_cache[key] = data
    return data


# --- Anthropic's Messages format -----------------------------------------------------

ANTHROPIC_MODEL = "claude-sonnet-4-5-20250929"
_ANTHROPIC_USAGE = (
    '"usage":{"input_tokens":9,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,'
    '"output_tokens":%d,"service_tier":"standard"}'
)
ANTHROPIC_BODY = (
    '{"id":"msg_bench0000000000000000001","type":"message","role":"assistant",'
    f'"model":"{ANTHROPIC_MODEL}",'
    '"content":[{"type":"text","text":"Hello! How can I help you today?"}],'
    '"stop_reason":"end_turn","stop_sequence":null,' + _ANTHROPIC_USAGE % 9 + "}"
).encode()
_ANTHROPIC_HEADERS = (
    b"date: Thu, 01 Jan 2025 00:00:00 GMT\r\n"
    b"request-id: req_bench0000000000000000000000\r\n"
    b"anthropic-organization-id: bench\r\n"
)
ANTHROPIC_RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
    + str(len(ANTHROPIC_BODY)).encode()
    + b"\r\n"
    + _ANTHROPIC_HEADERS
    + b"\r\n"
    + ANTHROPIC_BODY
)
ANTHROPIC_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"content-type: text/event-stream; charset=utf-8\r\n"
    b"transfer-encoding: chunked\r\n"
    b"cache-control: no-cache\r\n" + _ANTHROPIC_HEADERS + b"\r\n"
)


def _anthropic_event(kind: str, payload: str = "") -> bytes:
    fields = f'"type":"{kind}"' + ("," + payload if payload else "")
    return f"event: {kind}\ndata: {{{fields}}}\n\n".encode()


def render_anthropic_events(n: int) -> list[bytes]:
    """The SSE events of an ``n``-delta Anthropic stream, ``message_stop`` last."""
    events = [
        _anthropic_event(
            "message_start",
            '"message":{"id":"msg_bench0000000000000000002","type":"message",'
            f'"role":"assistant","model":"{ANTHROPIC_MODEL}","content":[],'
            '"stop_reason":null,"stop_sequence":null,' + _ANTHROPIC_USAGE % 1 + "}",
        ),
        _anthropic_event(
            "content_block_start", '"index":0,"content_block":{"type":"text","text":""}'
        ),
        _anthropic_event("ping"),
    ]
    pieces = _PIECES
    for i in range(n):
        text = pieces[i % len(pieces)]
        events.append(
            _anthropic_event(
                "content_block_delta",
                '"index":0,"delta":{"type":"text_delta","text":"' + text + '"}',
            )
        )
    events.append(_anthropic_event("content_block_stop", '"index":0'))
    events.append(
        _anthropic_event(
            "message_delta",
            '"delta":{"stop_reason":"end_turn","stop_sequence":null},'
            f'"usage":{{"output_tokens":{n}}}',
        )
    )
    events.append(_anthropic_event("message_stop"))
    return events


def _chunked(head: bytes, events: list[bytes], per_chunk: int) -> bytes:
    parts = [head]
    for i in range(0, len(events), per_chunk):
        parts.append(_http_chunk(b"".join(events[i : i + per_chunk])))
    parts.append(b"0\r\n\r\n")
    return b"".join(parts)


_anthropic_cache: dict[tuple[int, int], bytes] = {}


def anthropic_stream_response(n: int, per_chunk: int) -> bytes:
    """The whole HTTP response of an Anthropic stream, cached."""
    key = (n, per_chunk)
    data = _anthropic_cache.get(key)
    if data is None:
        data = _chunked(ANTHROPIC_STREAM_HEAD, render_anthropic_events(n), per_chunk)
        if len(_anthropic_cache) > 32:
            _anthropic_cache.clear()
        _anthropic_cache[key] = data
    return data


def _simple(status: bytes, body: bytes, close: bool = False) -> bytes:
    return (
        b"HTTP/1.1 "
        + status
        + b"\r\ncontent-type: text/plain\r\ncontent-length: "
        + str(len(body)).encode()
        + (b"\r\nconnection: close" if close else b"")
        + b"\r\n\r\n"
        + body
    )


def _error_response(status: bytes, kind: str, message: str, extra: bytes = b"") -> bytes:
    body = json.dumps(
        {"error": {"message": message, "type": kind, "param": None, "code": None}}
    ).encode()
    return (
        b"HTTP/1.1 "
        + status
        + b"\r\ncontent-type: application/json\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\n"
        + _COMMON_HEADERS
        + extra
        + b"\r\n"
        + body
    )


def too_many_requests(retry_after: bytes) -> bytes:
    """A 429 answer asking the client to wait ``retry_after`` seconds."""
    return _error_response(
        b"429 Too Many Requests",
        "requests",
        "Rate limit reached (injected by the bench server).",
        b"retry-after: " + retry_after + b"\r\n",
    )


SERVER_ERROR = _error_response(
    b"500 Internal Server Error", "server_error", "The server had an error (injected)."
)
UNAVAILABLE = _error_response(
    b"503 Service Unavailable", "server_error", "The engine is overloaded (injected)."
)
NOT_FOUND = _simple(b"404 Not Found", b"not found\n")
HEALTH = _simple(b"200 OK", b"ok\n")
BAD_REQUEST = _simple(b"400 Bad Request", b"bad request\n", close=True)


# Warm the default streams so the first streamed request is served at full speed.
stream_response(DEFAULT_CHUNKS, 1)
anthropic_stream_response(DEFAULT_CHUNKS, 1)


# --- faults --------------------------------------------------------------------

FAULTS = (b"429", b"500", b"503", b"reset", b"truncate", b"slow")
MAX_DELAY = 60.0


class Book:
    """What the server saw: requests, faults by kind, attempts per call id, open connections."""

    def __init__(self) -> None:
        self.requests = 0
        self.faults: dict[str, int] = {}
        self.attempts: dict[bytes, int] = {}
        self.open: set[BenchProtocol] = set()

    def fault(self, headers: dict[bytes, bytes]) -> bytes | None:
        """The fault this request gets, or ``None`` for its answer."""
        kind = headers.get(b"x-bench-fault")
        if kind is None or kind not in FAULTS:
            return None
        call = headers.get(b"x-bench-call", b"")
        seen = self.attempts.get(call, 0)
        self.attempts[call] = seen + 1
        if seen >= _int_header(headers, b"x-bench-fault-times", 1, 0, 1_000_000):
            return None
        name = kind.decode()
        self.faults[name] = self.faults.get(name, 0) + 1
        return kind

    def to_json(self) -> bytes:
        return json.dumps(
            {"requests": self.requests, "faults": self.faults, "open": len(self.open)}
        ).encode()


BOOK = Book()


def _seconds_header(headers: dict[bytes, bytes], name: bytes, default: float) -> float:
    try:
        value = float(headers.get(name, b""))
    except ValueError:
        return default
    return min(max(value, 0.0), MAX_DELAY)


# --- the protocol ----------------------------------------------------------------


def _int_header(headers: dict[bytes, bytes], name: bytes, default: int, lo: int, hi: int) -> int:
    raw = headers.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        return default
    return min(max(value, lo), hi)


class BenchProtocol(asyncio.Protocol):
    """One connection: parse pipelined HTTP/1.1 requests, answer with canned bytes."""

    __slots__ = ("__weakref__", "_buf", "_paused", "_transport")

    def __init__(self) -> None:
        self._buf = b""
        self._paused = False
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        BOOK.open.add(self)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        BOOK.open.discard(self)

    def _reset(self) -> None:
        # SO_LINGER with a zero timeout makes close() send RST, not FIN.
        transport = self._transport
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
        self._transport = None
        self._buf = b""

    def _resume(self, answer: bytes) -> None:
        # The end of a slow first byte: answer, then serve what came meanwhile.
        self._paused = False
        if self._transport is None:
            return  # the client gave up (its read timeout) and closed
        self._transport.write(answer)
        rest, self._buf = self._buf, b""
        self.data_received(rest)

    def _fault(self, kind: bytes, answer: bytes, headers: dict[bytes, bytes]) -> bool:
        """Send ``kind`` instead of ``answer``; whether the connection stays usable."""
        transport = self._transport
        assert transport is not None
        if kind == b"429":
            transport.write(too_many_requests(headers.get(b"x-bench-retry-after", b"0.05")))
        elif kind == b"500":
            transport.write(SERVER_ERROR)
        elif kind == b"503":
            transport.write(UNAVAILABLE)
        elif kind == b"truncate":
            # Closed, not reset: a reset would discard the half the client
            # has not read yet, so it would never see the answer begin.
            transport.write(answer[: len(answer) // 2])
            transport.close()
            self._transport = None
            return False
        elif kind == b"reset":
            self._reset()
            return False
        else:  # slow
            self._paused = True
            delay = _seconds_header(headers, b"x-bench-delay", 0.2)
            asyncio.get_running_loop().call_later(delay, self._resume, answer)
            return False
        return True

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        if self._paused:
            self._buf = buf
            return
        transport = self._transport
        while transport is not None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEADER:
                    self._fail()
                    return
                break
            head = buf[:end]
            lines = head.split(b"\r\n")
            try:
                method, target, _version = lines[0].split(b" ", 2)
            except ValueError:
                self._fail()
                return
            headers: dict[bytes, bytes] = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            if b"transfer-encoding" in headers:
                self._fail()  # request bodies are always sent with Content-Length here
                return
            length = _int_header(headers, b"content-length", 0, 0, MAX_BODY)
            start = end + 4
            if len(buf) - start < length:
                break  # wait for the rest of the body
            body = buf[start : start + length]
            buf = buf[start + length :]
            path = target.split(b"?", 1)[0]
            if method == b"POST" and path in (PATH, ANTHROPIC_PATH):
                BOOK.requests += 1
                anthropic = path == ANTHROPIC_PATH
                if _STREAM_RE.search(body):
                    n = _int_header(headers, b"x-bench-chunks", DEFAULT_CHUNKS, 0, MAX_CHUNKS)
                    per = _int_header(headers, b"x-bench-events-per-chunk", 1, 1, MAX_CHUNKS)
                    render = anthropic_stream_response if anthropic else stream_response
                    answer = render(n, per)
                else:
                    answer = ANTHROPIC_RESPONSE if anthropic else COMPLETION_RESPONSE
                kind = BOOK.fault(headers) if b"x-bench-fault" in headers else None
                if kind is None:
                    transport.write(answer)
                elif not self._fault(kind, answer, headers):
                    self._buf = buf if self._paused else b""
                    return
            elif method == b"GET" and path == b"/health":
                transport.write(HEALTH)
            elif method == b"GET" and path == b"/stats":
                stats = BOOK.to_json()
                transport.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                    + str(len(stats)).encode()
                    + b"\r\n\r\n"
                    + stats
                )
            else:
                transport.write(NOT_FOUND)
            if headers.get(b"connection", b"").lower() == b"close":
                transport.close()
                self._transport = None
                buf = b""
        self._buf = buf

    def _fail(self) -> None:
        if self._transport is not None:
            self._transport.write(BAD_REQUEST)
            self._transport.close()
            self._transport = None
        self._buf = b""


async def serve(port: int, watch_stdin: bool) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()

    def request_stop() -> None:
        if not stop.done():
            stop.set_result(None)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, request_stop)
    if watch_stdin:

        def watch() -> None:
            # os.read on the raw descriptor: no buffered-reader lock for a
            # daemon thread to hold while the interpreter shuts down.
            try:
                while os.read(0, 4096):
                    pass
            except OSError:
                pass
            with contextlib.suppress(RuntimeError):  # the loop may be closed already
                loop.call_soon_threadsafe(request_stop)

        threading.Thread(target=watch, name="stdin-watch", daemon=True).start()

    server = await loop.create_server(BenchProtocol, HOST, port, backlog=128, reuse_address=True)
    bound = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"{bound}\n")
    sys.stdout.flush()
    async with server:
        await stop


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port to bind (0: ephemeral)")
    parser.add_argument(
        "--watch-stdin", action="store_true", help="exit when stdin reaches EOF (parent died)"
    )
    args = parser.parse_args(argv)
    asyncio.run(serve(args.port, args.watch_stdin))


if __name__ == "__main__":
    main()
