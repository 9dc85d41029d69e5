"""Servers that misbehave on purpose: slow headers, events after the end, redirects.

A small raw-socket HTTP/1.1 server (:class:`FakeServer`) lets each test script
exactly what goes on the wire and records what it could send before the
client hung up, so "the client stopped early" is proven by counts the server
saw, never by a clock.
"""

from __future__ import annotations

import asyncio
import gc
import json
import select
import socket
import threading
import warnings
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, cast

import httpx
import pytest

import llmkit
from llmkit import _http, core
from llmkit.config import Config
from llmkit.types import ChatResponse, StreamChunk
from llmkit_contracts import OpenAIEmulator, Reply

KEY = "sk-test-0123456789"
HI = {"messages": [{"role": "user", "content": "Hi"}]}
EVIL = "https://evil.example.com/steal"


# --- a raw-socket HTTP/1.1 server ---------------------------------------------------------


class FakeServer:
    """A listening socket on 127.0.0.1 whose connections each run ``script``.

    The script gets the connected socket and this server; it records what it
    managed to do in ``lines_sent``, ``hung_up`` and ``requests``. Leaving the
    ``with`` block stops the server and joins every thread.
    """

    def __init__(self, script: Callable[[socket.socket, FakeServer], None]) -> None:
        self._script = script
        self.stopping = threading.Event()
        self.requests: list[bytes] = []
        self.lines_sent = 0
        self.hung_up = False
        self.errors: list[BaseException] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)

    @property
    def port(self) -> int:
        return cast(int, self._listener.getsockname()[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def config(self, **extra: Any) -> dict[str, Any]:
        return {"api_key": KEY, "api_base": self.base_url, **extra}

    def __enter__(self) -> FakeServer:
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self._listener.settimeout(0.05)
        self._acceptor.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stopping.set()
        self._acceptor.join(timeout=5.0)
        for thread in list(self._threads):
            thread.join(timeout=5.0)
        self._listener.close()
        if exc_type is None and self.errors:
            raise AssertionError(f"the fake server's script failed: {self.errors!r}")

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5.0)
            try:
                self._script(conn, self)
            except BaseException as exc:  # surfaced by __exit__, never lost in a thread
                self.errors.append(exc)

    def finish(self) -> None:
        """Let every connection's script run to its end (bounded: scripts stop by themselves)."""
        for thread in list(self._threads):
            thread.join(timeout=8.0)

    # -- helpers for scripts ----------------------------------------------------------------

    def wait(self, seconds: float) -> bool:
        """Sleep, or return True at once when the test is stopping the server."""
        return self.stopping.wait(seconds)

    def peer_closed(self, conn: socket.socket) -> bool:
        """Whether the client has closed its end (EOF or reset), without blocking."""
        readable, _, _ = select.select([conn], [], [], 0)
        if not readable:
            return False
        try:
            return conn.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def read_request(self, conn: socket.socket) -> bytes:
        """Read one request (head and Content-Length body) and record it."""
        data = b""
        while b"\r\n\r\n" not in data:
            piece = self._recv(conn)
            if not piece:
                return data
            data += piece
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(body) < length:
            piece = self._recv(conn)
            if not piece:
                break
            body += piece
        request = head + b"\r\n\r\n" + body
        self.requests.append(request)
        return request

    def _recv(self, conn: socket.socket) -> bytes:
        while not self.stopping.is_set():
            readable, _, _ = select.select([conn], [], [], 0.05)
            if readable:
                try:
                    return conn.recv(65536)
                except OSError:
                    return b""
        return b""

    def send(self, conn: socket.socket, data: bytes) -> bool:
        """Send ``data``; return False (and note the hang-up) when the client is gone."""
        try:
            conn.sendall(data)
        except OSError:
            self.hung_up = True
            return False
        return True

    def linger(self, conn: socket.socket) -> None:
        """Half-close, then wait until the client closes too (or the test stops)."""
        try:
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            return
        while self._recv(conn):
            pass


# --- wire data ----------------------------------------------------------------------------


def _chunk(content: str, finish_reason: str | None = None) -> bytes:
    return json.dumps(
        {
            "id": "c1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [
                {"index": 0, "delta": {"content": content}, "finish_reason": finish_reason}
            ],
        }
    ).encode()


def _event(data: bytes) -> bytes:
    return b"data: " + data + b"\n\n"


ERROR_EVENT = _event(b'{"error": {"message": "boom", "type": "server_error"}}')
AFTER_DONE = [
    _event(_chunk("Hi")),
    _event(b"[DONE]"),
    _event(_chunk(" INJECTED", "length")),
    ERROR_EVENT,
]
BEFORE_ERROR = [_event(_chunk("Hi")), _event(_chunk(" there")), ERROR_EVENT]


def _sse_head(length: int | None) -> bytes:
    framing = (
        b"Transfer-Encoding: chunked\r\n"
        if length is None
        else f"Content-Length: {length}\r\n".encode()
    )
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        + framing
        + b"Connection: close\r\n\r\n"
    )


def _sse_script(
    events: list[bytes], *, chunked: bool, split: bool
) -> Callable[[socket.socket, FakeServer], None]:
    """Answer one request with ``events``: in one send, or one send per event."""

    def frame(data: bytes) -> bytes:
        return f"{len(data):x}\r\n".encode() + data + b"\r\n" if chunked else data

    pieces = [frame(event) for event in events]
    trailer = b"0\r\n\r\n" if chunked else b""
    head = _sse_head(None if chunked else sum(len(event) for event in events))

    def script(conn: socket.socket, server: FakeServer) -> None:
        server.read_request(conn)
        if not split:
            server.send(conn, head + b"".join(pieces) + trailer)
        else:
            # The head goes with the first event: then each event is its own network read.
            sends = [head + pieces[0], *pieces[1:]]
            if trailer:
                sends[-1] += trailer
            for index, data in enumerate(sends):
                if index and server.wait(0.05):
                    return
                if not server.send(conn, data):
                    return
        server.linger(conn)

    return script


# --- 1. the deadline covers the header phase ------------------------------------------------

SLOW_LINES = 24


def _trickle_headers(conn: socket.socket, server: FakeServer) -> None:
    """Send a status line, then one header line every 0.25 s; never end the headers."""
    server.read_request(conn)
    if not server.send(conn, b"HTTP/1.1 200 OK\r\n"):
        return
    for n in range(1, SLOW_LINES + 1):
        if server.wait(0.25):
            return
        if server.peer_closed(conn):
            server.hung_up = True
            return
        if not server.send(conn, f"X-Slow-N: {n}\r\n".encode()):
            return
        server.lines_sent += 1
    # Every line went out and the client still waits: drop the connection.


def _deadline_config(server: FakeServer) -> dict[str, Any]:
    return server.config(deadline=1.0, retries=0)


def _assert_deadline_stopped_headers(error: llmkit.LLMError, server: FakeServer) -> None:
    # The script notices the hang-up at its next line (0.25 s on) and ends there.
    server.finish()
    assert isinstance(error, llmkit.TimeoutError), repr(error)
    assert "deadline" in str(error)
    assert server.hung_up, f"the client never hung up ({server.lines_sent} header lines sent)"
    assert server.lines_sent < SLOW_LINES


def _start_stream_sync(config: dict[str, Any]) -> None:
    with core.stream("openai", "m", HI, config) as stream:
        stream.collect()


@pytest.mark.parametrize(
    "call",
    [
        lambda config: core.completion("openai", "m", HI, config),
        _start_stream_sync,
    ],
    ids=["completion", "stream"],
)
def test_deadline_covers_trickled_headers_sync(call: Callable[[dict[str, Any]], object]) -> None:
    with FakeServer(_trickle_headers) as server:
        with pytest.raises(llmkit.LLMError) as info:
            call(_deadline_config(server))
        _assert_deadline_stopped_headers(info.value, server)
    assert len(server.requests) == 1


async def _acompletion(config: dict[str, Any]) -> object:
    return await core.acompletion("openai", "m", HI, config)


async def _astream_collect(config: dict[str, Any]) -> object:
    async with await core.astream("openai", "m", HI, config) as stream:
        return await stream.acollect()


@pytest.mark.anyio
@pytest.mark.parametrize("call", [_acompletion, _astream_collect], ids=["acompletion", "astream"])
async def test_deadline_covers_trickled_headers_async(
    call: Callable[[dict[str, Any]], Awaitable[object]],
) -> None:
    with FakeServer(_trickle_headers) as server:
        with pytest.raises(llmkit.LLMError) as info:
            await call(_deadline_config(server))
        _assert_deadline_stopped_headers(info.value, server)
    assert len(server.requests) == 1


# --- 2. nothing after the end marker counts -------------------------------------------------

DELIVERIES = [
    pytest.param(False, False, id="length-one-send"),
    pytest.param(True, False, id="chunked-one-send"),
    pytest.param(False, True, id="length-per-event"),
    pytest.param(True, True, id="chunked-per-event"),
]


def _assert_only_hi(response: ChatResponse) -> None:
    assert response.text == "Hi"
    assert response.choices[0].finish_reason != "length"


@pytest.mark.parametrize(("chunked", "split"), DELIVERIES)
def test_stream_collect_ignores_events_after_done(chunked: bool, split: bool) -> None:
    with (
        FakeServer(_sse_script(AFTER_DONE, chunked=chunked, split=split)) as server,
        core.stream("openai", "m", HI, server.config(retries=0)) as stream,
    ):
        response = stream.collect()
    _assert_only_hi(response)


@pytest.mark.parametrize(("chunked", "split"), DELIVERIES)
def test_stream_iteration_ends_at_done(chunked: bool, split: bool) -> None:
    with (
        FakeServer(_sse_script(AFTER_DONE, chunked=chunked, split=split)) as server,
        core.stream("openai", "m", HI, server.config(retries=0)) as stream,
    ):
        chunks = list(stream)
    assert [chunk.text for chunk in chunks] == ["Hi"]
    assert chunks[0].id == "c1"
    assert chunks[0].choices[0].finish_reason is None


@pytest.mark.anyio
@pytest.mark.parametrize(("chunked", "split"), DELIVERIES)
async def test_astream_acollect_ignores_events_after_done(chunked: bool, split: bool) -> None:
    with FakeServer(_sse_script(AFTER_DONE, chunked=chunked, split=split)) as server:
        async with await core.astream("openai", "m", HI, server.config(retries=0)) as stream:
            response = await stream.acollect()
    _assert_only_hi(response)


@pytest.mark.anyio
@pytest.mark.parametrize(("chunked", "split"), DELIVERIES)
async def test_astream_iteration_ends_at_done(chunked: bool, split: bool) -> None:
    with FakeServer(_sse_script(AFTER_DONE, chunked=chunked, split=split)) as server:
        async with await core.astream("openai", "m", HI, server.config(retries=0)) as stream:
            chunks = [chunk async for chunk in stream]
    assert [chunk.text for chunk in chunks] == ["Hi"]


# --- 3. chunks read together with an error event are still yielded ---------------------------

BEFORE_ERROR_BODY = b"".join(BEFORE_ERROR)


def _sse_mock_handler(request: httpx.Request) -> httpx.Response:
    # One bytes body: httpx hands it to llmkit in a single read.
    return httpx.Response(
        200, content=BEFORE_ERROR_BODY, headers={"Content-Type": "text/event-stream"}
    )


def _read_sync(stream: llmkit.Stream, seen: list[StreamChunk]) -> None:
    with stream:
        for chunk in stream:
            seen.append(chunk)


async def _read_async(stream: llmkit.AsyncStream, seen: list[StreamChunk]) -> None:
    async with stream:
        async for chunk in stream:
            seen.append(chunk)


def _assert_chunks_then_error(seen: list[StreamChunk], error: llmkit.LLMError) -> None:
    assert [chunk.text for chunk in seen] == ["Hi", " there"]
    assert "boom" in str(error)


ERROR_DELIVERIES = ["socket-one-read", "mock-one-read", "socket-three-sends"]


@pytest.mark.parametrize("delivery", ERROR_DELIVERIES, ids=ERROR_DELIVERIES)
def test_stream_yields_chunks_read_with_an_error_event(delivery: str) -> None:
    seen: list[StreamChunk] = []
    if delivery == "mock-one-read":
        with httpx.Client(transport=httpx.MockTransport(_sse_mock_handler)) as client:
            config = {"api_key": KEY, "http_client": client, "retries": 0}
            with pytest.raises(llmkit.ServiceUnavailableError) as info:
                _read_sync(core.stream("openai", "m", HI, config), seen)
    else:
        script = _sse_script(BEFORE_ERROR, chunked=False, split=delivery == "socket-three-sends")
        with (
            FakeServer(script) as server,
            pytest.raises(llmkit.ServiceUnavailableError) as info,
        ):
            _read_sync(core.stream("openai", "m", HI, server.config(retries=0)), seen)
    _assert_chunks_then_error(seen, info.value)


@pytest.mark.anyio
@pytest.mark.parametrize("delivery", ERROR_DELIVERIES, ids=ERROR_DELIVERIES)
async def test_astream_yields_chunks_read_with_an_error_event(delivery: str) -> None:
    seen: list[StreamChunk] = []
    if delivery == "mock-one-read":
        transport = httpx.MockTransport(_sse_mock_handler)
        async with httpx.AsyncClient(transport=transport) as client:
            config = {"api_key": KEY, "async_http_client": client, "retries": 0}
            with pytest.raises(llmkit.ServiceUnavailableError) as info:
                await _read_async(await core.astream("openai", "m", HI, config), seen)
    else:
        script = _sse_script(BEFORE_ERROR, chunked=False, split=delivery == "socket-three-sends")
        with FakeServer(script) as server:
            config = server.config(retries=0)
            with pytest.raises(llmkit.ServiceUnavailableError) as info:
                await _read_async(await core.astream("openai", "m", HI, config), seen)
    _assert_chunks_then_error(seen, info.value)


# --- 4. Retry-After that asks for no wait at all ------------------------------------------


def _rate_limited(headers: dict[str, str]) -> tuple[httpx.Client, list[httpx.Request]]:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        body = {"error": {"message": "slow", "type": "rate_limit_error"}}
        return httpx.Response(429, json=body, headers=headers)

    return httpx.Client(transport=httpx.MockTransport(handler)), calls


def _record_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waits: list[float] = []
    monkeypatch.setattr(_http, "_sleep", waits.append)
    return waits


@pytest.mark.parametrize(
    "headers",
    [
        {"Retry-After": "0"},
        {"Retry-After": "-5"},
        {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"},
        {"retry-after-ms": "0"},
    ],
    ids=["zero", "negative", "past-date", "ms-zero"],
)
def test_retry_after_without_a_wait_keeps_base_backoff(
    monkeypatch: pytest.MonkeyPatch, headers: dict[str, str]
) -> None:
    waits = _record_sleeps(monkeypatch)
    client, calls = _rate_limited(headers)
    with client, pytest.raises(llmkit.RateLimitError):
        core.completion("openai", "m", HI, {"api_key": KEY, "http_client": client, "retries": 3})
    assert len(calls) == 4
    assert len(waits) == 3
    assert all(wait >= 0.5 for wait in waits), waits


def test_retry_after_positive_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    waits = _record_sleeps(monkeypatch)
    client, calls = _rate_limited({"Retry-After": "2"})
    with client, pytest.raises(llmkit.RateLimitError):
        core.completion("openai", "m", HI, {"api_key": KEY, "http_client": client, "retries": 3})
    assert len(calls) == 4
    assert waits == [2.0, 2.0, 2.0]


# --- 5. a redirect is an error, never followed ------------------------------------------------

REDIRECTS = [301, 302, 307, 308]
STOLEN_STREAM = _event(_chunk("stolen", "stop")) + _event(b"[DONE]")


def _redirecting(request: httpx.Request, calls: list[httpx.Request], status: int) -> httpx.Response:
    calls.append(request)
    if request.url.host == "evil.example.com":
        # What a followed redirect would get: an answer that looks fine.
        if b'"stream":true' in request.content:
            return httpx.Response(
                200, content=STOLEN_STREAM, headers={"Content-Type": "text/event-stream"}
            )
        message = {"role": "assistant", "content": "stolen"}
        return httpx.Response(200, json={"choices": [{"index": 0, "message": message}]})
    return httpx.Response(status, headers={"Location": EVIL}, content=b"moved")


def _complete_or_collect(kind: str, config: Config | dict[str, Any]) -> object:
    if kind == "completion":
        return core.completion("openai", "m", HI, config)
    with core.stream("openai", "m", HI, config) as stream:
        return stream.collect()


def _assert_redirect_error(error: llmkit.LLMError, calls: list[httpx.Request]) -> None:
    text = str(error)
    assert "evil.example.com" in text
    assert "redirect" in text.lower()
    assert KEY not in text
    assert len(calls) == 1
    assert calls[0].url.host != "evil.example.com"


@pytest.mark.parametrize("kind", ["completion", "stream"], ids=["completion", "stream"])
@pytest.mark.parametrize("follow", [False, True], ids=["client-default", "client-follows"])
@pytest.mark.parametrize("status", REDIRECTS, ids=[str(status) for status in REDIRECTS])
def test_redirect_is_an_error_never_followed(status: int, follow: bool, kind: str) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        return _redirecting(request, calls, status)

    transport = httpx.MockTransport(handler)
    with httpx.Client(transport=transport, follow_redirects=follow) as client:
        config = {"api_key": KEY, "http_client": client, "retries": 2}
        with pytest.raises(llmkit.LLMError) as info:
            _complete_or_collect(kind, config)
    _assert_redirect_error(info.value, calls)


@pytest.mark.anyio
@pytest.mark.parametrize("follow", [False, True], ids=["client-default", "client-follows"])
@pytest.mark.parametrize("status", REDIRECTS, ids=[str(status) for status in REDIRECTS])
async def test_redirect_async_is_an_error_never_followed(status: int, follow: bool) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        return _redirecting(request, calls, status)

    transport = httpx.MockTransport(handler)
    async with httpx.AsyncClient(transport=transport, follow_redirects=follow) as client:
        config = {"api_key": KEY, "async_http_client": client, "retries": 2}
        with pytest.raises(llmkit.LLMError) as info:
            await core.acompletion("openai", "m", HI, config)
    _assert_redirect_error(info.value, calls)


# --- 6. pooled async clients under a loop managed by hand -------------------------------------


def _aclose_clients() -> Callable[[], Coroutine[Any, Any, None]]:
    # New public API of llmkit.core; looked up by name so this file type-checks before it exists.
    function: Callable[[], Coroutine[Any, Any, None]] = cast(Any, core).aclose_clients
    return function


def _resource_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


def test_aclose_clients_closes_pooled_clients_of_a_manual_loop(emulator: OpenAIEmulator) -> None:
    aclose_clients = _aclose_clients()
    emulator.enqueue(Reply.text("pooled"))
    config = {"api_key": KEY, "api_base": emulator.base_url, "retries": 0}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loop = asyncio.new_event_loop()
        try:
            response = loop.run_until_complete(core.acompletion("openai", "m", HI, config))
            loop.run_until_complete(aclose_clients())
        finally:
            loop.close()  # no shutdown_asyncgens(): llmkit's own closer never runs
        del loop
        gc.collect()
    assert response.text == "pooled"
    assert _resource_warnings(caught) == []


def test_aclose_clients_on_a_fresh_loop_is_harmless() -> None:
    aclose_clients = _aclose_clients()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(aclose_clients())
            finally:
                loop.close()
        del loop
        gc.collect()
    assert _resource_warnings(caught) == []


# --- 7. credentials in api_base are refused before any network --------------------------------

USERINFO_BASES = [
    "http://user:pw-secret-123@127.0.0.1:1/v1",
    "https://:pw-secret-123@127.0.0.1:1/v1",
    "http://pw-secret-123@127.0.0.1:1/v1",
]


@pytest.mark.parametrize("kind", ["completion", "stream"], ids=["completion", "stream"])
@pytest.mark.parametrize("form", ["dict", "Config"], ids=["dict", "Config"])
@pytest.mark.parametrize("api_base", USERINFO_BASES, ids=["user-password", "password", "user"])
def test_api_base_with_userinfo_refused_before_network(api_base: str, form: str, kind: str) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if kind == "stream":
            return httpx.Response(
                200, content=STOLEN_STREAM, headers={"Content-Type": "text/event-stream"}
            )
        message = {"role": "assistant", "content": "sent"}
        return httpx.Response(200, json={"choices": [{"index": 0, "message": message}]})

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        fields: dict[str, Any] = {"api_key": KEY, "api_base": api_base, "http_client": client}
        with pytest.raises(llmkit.InvalidRequestError) as info:
            # Config(...) may refuse it itself; either place is fine.
            _complete_or_collect(kind, fields if form == "dict" else Config(**fields))
    assert "pw-secret-123" not in str(info.value)
    assert calls == []


# --- found by a second hostile review --------------------------------------------------------

LONG_KEY = "sk-test-0123456789abcdefghijklmnopqrstuvwxyz"


def _answer(status: int, body: bytes) -> Callable[[socket.socket, FakeServer], None]:
    def script(conn: socket.socket, server: FakeServer) -> None:
        server.read_request(conn)
        head = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
        head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        server.send(conn, head.encode() + body)
        server.linger(conn)

    return script


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, b'{"choices": [{"index": 0, "message": {"role": "KEY", "content": "x"}}]}'),
        (401, b'{"detail": "' + b"x" * 469 + b'KEY"}'),
        (401, b'{"detail": "\\u0073k-test-0123456789abcdefghijklmnopqrstuvwxyz"}'),
        (401, b'{"detail": "sk-test-0123456789abcdefghijkl\\/mnopqrstuvwxyz"}'),
    ],
    ids=["chained-decode-error", "cut-at-500", "unicode-escape", "slash-escape"],
)
def test_error_never_shows_the_key_even_in_a_traceback(status: int, body: bytes) -> None:
    import traceback

    wire = body.replace(b"KEY", LONG_KEY.encode())
    # Keys may hold "/" (base64 alphabets), which JSON may escape as "\/".
    key = LONG_KEY.replace("lm", "l/m") if b"\\/" in body else LONG_KEY
    with FakeServer(_answer(status, wire)) as server:
        config = {"api_key": key, "api_base": server.base_url, "retries": 0}
        with pytest.raises(llmkit.LLMError) as info:
            core.completion("openai", "m", HI, config)
    printed = "".join(traceback.format_exception(info.value))
    assert info.value.__cause__ is None
    # Not the key, nor any 12-character piece of it.
    assert not any(key[i : i + 12] in printed for i in range(len(key) - 11))


def _hold_after_done(conn: socket.socket, server: FakeServer) -> None:
    """Send a chunk and [DONE], then hold the connection open without ending the body."""
    server.read_request(conn)
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    body = _event(_chunk("Hi")) + _event(b"[DONE]")
    if not server.send(conn, head + f"{len(body):x}\r\n".encode() + body + b"\r\n"):
        return
    for _ in range(100):  # 10 s at most, ended early by the client's hang-up
        if server.wait(0.1):
            return
        if server.peer_closed(conn):
            server.hung_up = True
            return


@pytest.mark.parametrize("injected", [False, True], ids=["pooled", "injected-no-timeout"])
def test_stream_ends_at_done_while_the_server_holds_on(injected: bool) -> None:
    with FakeServer(_hold_after_done) as server:
        config = server.config(retries=0)
        if injected:
            config["http_client"] = httpx.Client(timeout=None)
        texts = [chunk.text for chunk in core.stream("openai", "m", HI, config)]
        server.finish()
    assert texts == ["Hi"]
    # The loop ended and the connection was let go long before the server's 10 s.
    assert server.hung_up


@pytest.mark.anyio
async def test_astream_ends_at_done_while_the_server_holds_on() -> None:
    with FakeServer(_hold_after_done) as server:
        stream = await core.astream("openai", "m", HI, server.config(retries=0))
        texts = [chunk.text async for chunk in stream]
        await asyncio.to_thread(server.finish)
    assert texts == ["Hi"]
    assert server.hung_up


def _stall_mid_body(conn: socket.socket, server: FakeServer) -> None:
    """Send the head and one chunk, then nothing for up to 10 s."""
    server.read_request(conn)
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    body = _event(_chunk("Hi"))
    if not server.send(conn, head + f"{len(body):x}\r\n".encode() + body + b"\r\n"):
        return
    for _ in range(100):
        if server.wait(0.1):
            return
        if server.peer_closed(conn):
            server.hung_up = True
            return
        server.lines_sent += 1


def test_deadline_bounds_a_stream_body_that_stalls() -> None:
    with FakeServer(_stall_mid_body) as server:
        seen: list[str] = []
        stream = core.stream("openai", "m", HI, server.config(deadline=1.0, retries=0))
        with pytest.raises(llmkit.TimeoutError, match="deadline"):
            seen.extend(chunk.text for chunk in stream)
        server.finish()
    assert seen == ["Hi"]
    assert server.hung_up
    assert server.lines_sent < 100


@pytest.mark.anyio
async def test_deadline_bounds_an_async_stream_body_that_stalls() -> None:
    with FakeServer(_stall_mid_body) as server:
        seen: list[str] = []
        stream = await core.astream("openai", "m", HI, server.config(deadline=1.0, retries=0))

        async def read() -> None:
            async for chunk in stream:
                seen.append(chunk.text)

        with pytest.raises(llmkit.TimeoutError, match="deadline"):
            await read()
        await asyncio.to_thread(server.finish)
    assert seen == ["Hi"]
    assert server.hung_up


@pytest.mark.parametrize(
    "api_base",
    [
        "http://127.0.0.1:99999/v1",
        "http://127.0.0.1:0/v1",
        "http://127.0.0.1:" + "9" * 5000 + "/v1",
        "http://127.0.0.1/v1?api-version=1",
        "http://127.0.0.1/v1#frag",
    ],
    ids=["port-high", "port-zero", "port-huge", "query", "fragment"],
)
def test_api_base_that_would_misroute_is_refused(api_base: str) -> None:
    async def call() -> None:
        await core.acompletion("openai", "m", HI, {"api_key": KEY, "api_base": api_base})

    with pytest.raises(llmkit.InvalidRequestError, match="api_base"):
        asyncio.run(call())
    with pytest.raises(llmkit.InvalidRequestError, match="api_base"):
        core.completion("openai", "m", HI, {"api_key": KEY, "api_base": api_base})


def test_api_base_scheme_is_case_insensitive() -> None:
    assert Config(api_base="HTTPS://example.test/v1").api_base == "HTTPS://example.test/v1"


@pytest.mark.parametrize("api_key", ["", "  \n"], ids=["empty", "blank"])
def test_empty_api_key_is_refused_before_sending(api_key: str) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(500)

    client = httpx.Client(transport=httpx.MockTransport(handler))
    with pytest.raises(llmkit.AuthenticationError, match="OPENAI_API_KEY"):
        core.completion("openai", "m", HI, {"api_key": api_key, "http_client": client})
    assert calls == []


def test_config_headers_are_a_checked_read_only_copy() -> None:
    mine = {"X-Ok": "1"}
    config = Config(api_key=KEY, headers=mine)
    mine["Host"] = "evil.example"
    assert dict(config.headers or {}) == {"X-Ok": "1"}
    with pytest.raises(TypeError):
        config.headers["Host"] = "evil.example"  # type: ignore[index]


@pytest.mark.parametrize("name", ["Cookie", "X-Auth-Token", "Ocp-Apim-Subscription-Key"])
def test_more_credential_headers_are_masked(name: str) -> None:
    assert "s3cret-value-123" not in repr(Config(headers={name: "s3cret-value-123"}))


def test_codec_returning_no_http_call_is_an_llm_error() -> None:
    from llmkit.generics import capabilities, encode_request
    from llmkit.keys import ProviderKey

    class Sloppy(ProviderKey):
        name = "testsloppy"
        default_base_url = "http://127.0.0.1:9"

    def encode(key: Sloppy, request: Any, config: Any) -> Any:
        return {"url": "http://127.0.0.1:9"}

    def caps(key: Sloppy, model: str) -> Any:
        raise ValueError("broken")

    encode.__annotations__ = {"key": Sloppy, "request": Any, "config": Any}
    caps.__annotations__ = {"key": Sloppy, "model": str}
    encode_request.dispatch(encode)
    capabilities.dispatch(caps)
    with pytest.raises(llmkit.LLMError, match="not an HttpCall"):
        core.completion(Sloppy(), "m", HI, {"api_key": KEY})
    with pytest.raises(llmkit.LLMError, match="not an HttpCall"):
        core.validate_request(Sloppy(), {**HI, "model": "m"})
    with pytest.raises(llmkit.LLMError, match="capabilities method raised ValueError"):
        core.provider_info(Sloppy())


def test_request_mapping_that_fails_to_read_is_refused() -> None:
    from collections.abc import Mapping

    class Liar(Mapping[str, Any]):
        def __getitem__(self, key: str) -> Any:
            raise RuntimeError("no")

        def __iter__(self) -> Iterator[str]:
            return iter(["messages"])

        def __len__(self) -> int:
            return 1

    with pytest.raises(llmkit.InvalidRequestError, match="could not be read"):
        core.validate_request("openai", Liar())


def test_config_headers_given_read_only_are_still_checked() -> None:
    from types import MappingProxyType

    with pytest.raises(llmkit.InvalidRequestError, match="set by the transport"):
        Config(api_key=KEY, headers=MappingProxyType({"Host": "evil.example"}))  # type: ignore[arg-type]
