"""The transport on its two HTTP backends: httpx (the default) and httpx2.

Both libraries are imported side by side here, as in a program that uses
the official SDKs (on httpx2) next to llmkit: each test that is about the
transport's behaviour runs once per library, with that library's
``MockTransport``, exceptions and pooled clients. ``tox -e httpx2`` also
runs the other transport tests with httpx2 standing in for httpx.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from types import ModuleType
from typing import Any

import httpx
import httpx2
import pytest

import llmkit
from llmkit import _backend, _http, core, system
from llmkit.config import Config
from llmkit_contracts import OpenAIEmulator

KEY = "sk-backend-test-0123456789"
MODEL = "gpt-4o-mini"
HI = {"messages": [{"role": "user", "content": "Hi"}]}
OK = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": MODEL,
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
    ],
}
VARIABLE = "LLMKIT_HTTP_BACKEND"
LIBRARIES = {"httpx": httpx, "httpx2": httpx2}


@pytest.fixture(params=sorted(LIBRARIES))
def lib(request: pytest.FixtureRequest) -> ModuleType:
    """httpx, then httpx2: the library a test's clients and errors come from."""
    module: ModuleType = LIBRARIES[request.param]
    return module


@pytest.fixture(autouse=True)
def _no_backend_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    # tox -e httpx2 sets it for the whole run; these tests choose for themselves.
    monkeypatch.delenv(VARIABLE, raising=False)


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waits: list[float] = []
    monkeypatch.setattr(_http, "_sleep", waits.append)
    return waits


@pytest.fixture
def no_async_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    import anyio

    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(anyio, "sleep", record)
    return waits


def _library_of(client: Any) -> str:
    return type(client).__module__.split(".")[0]


def _mock(lib: ModuleType, replies: list[Any], seen: list[Any]) -> Any:
    def handler(request: Any) -> Any:
        seen.append(request)
        item = replies.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    return lib.Client(transport=lib.MockTransport(handler))


def _amock(lib: ModuleType, replies: list[Any], seen: list[Any]) -> Any:
    async def handler(request: Any) -> Any:
        seen.append(request)
        item = replies.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    return lib.AsyncClient(transport=lib.MockTransport(handler))


# --- choosing the backend -------------------------------------------------------------------


def test_backend_default_is_httpx() -> None:
    transport = _http.Transport()
    try:
        assert type(transport.sync_client(Config())) is httpx.Client
    finally:
        transport.close()


@pytest.mark.parametrize(
    ("value", "expected"),
    [("httpx2", httpx2.Client), (" HTTPX2 ", httpx2.Client), ("httpx", httpx.Client)],
    ids=["httpx2", "httpx2-spaced-upper", "httpx"],
)
def test_backend_from_environment(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: type[Any]
) -> None:
    monkeypatch.setenv(VARIABLE, value)
    transport = _http.Transport()
    try:
        assert type(transport.sync_client(Config())) is expected
    finally:
        transport.close()


@pytest.mark.parametrize(
    ("variable", "chosen", "expected"),
    [("httpx2", "httpx", httpx.Client), ("httpx", "httpx2", httpx2.Client)],
    ids=["config-httpx", "config-httpx2"],
)
def test_backend_config_beats_environment(
    monkeypatch: pytest.MonkeyPatch, variable: str, chosen: str, expected: type[Any]
) -> None:
    monkeypatch.setenv(VARIABLE, variable)
    transport = _http.Transport()
    try:
        assert type(transport.sync_client(Config(http_backend=chosen))) is expected
    finally:
        transport.close()


def test_backend_chosen_by_transport_argument() -> None:
    transport = _http.Transport(backend="httpx2")
    try:
        assert type(transport.sync_client(Config())) is httpx2.Client
        assert type(transport.sync_client(Config(http_backend="httpx"))) is httpx.Client
        assert {key[0] for key in transport._sync} == {"httpx", "httpx2"}
    finally:
        transport.close()
    assert transport._sync == {}


def test_backend_unknown_names_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(llmkit.InvalidRequestError, match="'httpx' or 'httpx2', not 'aiohttp'"):
        Config(http_backend="aiohttp")
    with pytest.raises(llmkit.InvalidRequestError, match="'httpx' or 'httpx2'"):
        core.completion("openai", MODEL, HI, {"api_key": KEY, "http_backend": "requests"})
    with pytest.raises(llmkit.InvalidRequestError, match="Transport backend"):
        _http.Transport(backend="urllib3")
    monkeypatch.setenv(VARIABLE, "aiohttp")
    # A new transport: one reads the variable when it first needs a client.
    config = {"api_key": KEY, "api_base": "http://127.0.0.1:9", "transport": _http.Transport()}
    with pytest.raises(llmkit.InvalidRequestError, match=f"{VARIABLE} must be") as info:
        core.completion("openai", MODEL, HI, config)
    assert "fix or unset it" in str(info.value)


@pytest.fixture
def without_httpx2(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process in which ``import httpx2`` fails, as without the extra."""
    monkeypatch.setitem(sys.modules, "httpx2", None)
    monkeypatch.delitem(_backend._loaded, "httpx2", raising=False)


def test_backend_missing_httpx2_names_the_extra(
    without_httpx2: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A closed port: reaching the network would fail differently.
    config = {"api_key": KEY, "api_base": "http://127.0.0.1:9/v1", "http_backend": "httpx2"}
    with pytest.raises(llmkit.InvalidRequestError) as info:
        core.completion("openai", MODEL, HI, config)
    message = str(info.value)
    assert "pip install llmkit[httpx2]" in message
    assert "config http_backend" in message
    assert info.value.retryable is False
    with pytest.raises(llmkit.InvalidRequestError, match=r"llmkit\[httpx2\]"):
        asyncio.run(core.acompletion("openai", MODEL, HI, config))
    monkeypatch.setenv(VARIABLE, "httpx2")
    with pytest.raises(llmkit.InvalidRequestError, match=f"{VARIABLE} selects") as by_variable:
        _http.Transport().sync_client(Config())
    assert "pip install llmkit[httpx2]" in str(by_variable.value)


def _imported_after(code: str) -> bool:
    script = f"import sys\n{code}\nprint('httpx2' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "", "PYTHONPATH": ":".join(sys.path)},
    )
    return result.stdout.strip() == "True"


def test_backend_httpx2_is_imported_only_when_chosen() -> None:
    assert not _imported_after("import llmkit")
    pooled = (
        "from llmkit import _http, config\nt = _http.Transport({})\nt.sync_client(config.Config())"
    )
    assert not _imported_after(pooled.format(""))
    assert _imported_after(pooled.format("backend='httpx2'"))


def test_backend_of_a_system_from_its_config(emulator: OpenAIEmulator) -> None:
    settings = {"api_key": KEY, "api_base": emulator.base_url}
    config = {
        "providers": {
            "a": {"provider": "openai", **settings},
            "b": {"provider": "openai", **settings, "http_backend": "httpx"},
        },
        "defaults": {"http_backend": "httpx2"},
    }
    with system.create_system(config) as made:
        assert made.completion("a", MODEL, HI).text == "Echo: Hi"
        assert made.completion("b", MODEL, HI).text == "Echo: Hi"
        one = made.completion("b", MODEL, HI, {"http_backend": "httpx2"})
        assert one.text == "Echo: Hi"
        a = made._providers["a"].transport._sync
        b = made._providers["b"].transport._sync
        assert {_library_of(client) for client in a.values()} == {"httpx2"}
        assert {_library_of(client) for client in b.values()} == {"httpx", "httpx2"}
        assert made.system_info()["defaults"]["http_backend"] == "httpx2"
    assert all(client.is_closed for client in [*a.values(), *b.values()])


@pytest.mark.parametrize(
    ("config", "path"),
    [
        ({"defaults": {"http_backend": "curl"}}, "$.defaults.http_backend"),
        ({"providers": {"openai": {"api_key": KEY, "http_backend": "curl"}}}, "$.providers.openai"),
    ],
    ids=["defaults", "provider"],
)
def test_backend_bad_system_config_names_its_path(config: dict[str, Any], path: str) -> None:
    with pytest.raises(llmkit.InvalidRequestError, match="'httpx' or 'httpx2'") as info:
        system.create_system(config)
    assert path in str(info.value)


def test_backend_injected_client_decides(lib: ModuleType) -> None:
    seen: list[Any] = []
    other = "httpx" if lib is httpx2 else "httpx2"
    with _mock(lib, [lib.Response(200, json=OK)], seen) as client:
        config = {"api_key": KEY, "http_client": client, "http_backend": other}
        assert core.completion("openai", MODEL, HI, config).text == "ok"
    assert len(seen) == 1


@pytest.mark.anyio
async def test_backend_injected_async_client_decides(lib: ModuleType) -> None:
    seen: list[Any] = []
    async with _amock(lib, [lib.Response(200, json=OK)], seen) as client:
        config = {"api_key": KEY, "async_http_client": client}
        assert (await core.acompletion("openai", MODEL, HI, config)).text == "ok"
    assert len(seen) == 1


def test_backend_wrong_client_kinds_are_refused(lib: ModuleType) -> None:
    sync_client, async_client = lib.Client(), lib.AsyncClient()
    try:
        with pytest.raises(llmkit.InvalidRequestError, match=r"httpx2\.Client\), not Async"):
            core.completion("openai", MODEL, HI, {"api_key": KEY, "http_client": async_client})
        config = {"api_key": KEY, "async_http_client": sync_client}
        with pytest.raises(llmkit.InvalidRequestError, match=r"httpx2\.AsyncClient\), not Client"):
            asyncio.run(core.acompletion("openai", MODEL, HI, config))
    finally:
        sync_client.close()
        asyncio.run(async_client.aclose())
    with pytest.raises(llmkit.InvalidRequestError, match="not object"):
        core.completion("openai", MODEL, HI, {"api_key": KEY, "http_client": object()})


# --- the transport's behaviour, on each library -------------------------------------------


def test_backend_retries_and_reports_attempts(lib: ModuleType, no_sleep: list[float]) -> None:
    seen: list[Any] = []
    events: list[llmkit.AttemptEvent] = []
    replies = [
        lib.Response(429, headers={"retry-after": "3"}, json={"error": {"message": "slow"}}),
        lib.Response(503, json={"error": {"message": "busy", "type": "server_error"}}),
        lib.ConnectError("refused"),
        lib.Response(200, json=OK),
    ]
    transport = llmkit.Transport(on_attempt=events.append)
    with _mock(lib, replies, seen) as client:
        config = {"api_key": KEY, "http_client": client, "retries": 3, "transport": transport}
        assert core.completion("openai", MODEL, HI, config).text == "ok"
    assert len(seen) == 4
    assert no_sleep[0] == 3.0
    assert [type(event.error).__name__ for event in events] == [
        "RateLimitError",
        "ServiceUnavailableError",
        "APIConnectionError",
        "NoneType",
    ]
    assert [event.status for event in events] == [429, 503, None, 200]


@pytest.mark.anyio
async def test_backend_async_retries_and_reports_attempts(
    lib: ModuleType, no_async_sleep: list[float]
) -> None:
    seen: list[Any] = []
    events: list[llmkit.AttemptEvent] = []
    replies = [
        lib.Response(429, headers={"retry-after": "2"}, json={"error": {"message": "slow"}}),
        lib.ReadError("reset"),
        lib.Response(200, json=OK),
    ]
    transport = llmkit.Transport(on_attempt=events.append)
    async with _amock(lib, replies, seen) as client:
        config = {"api_key": KEY, "async_http_client": client, "transport": transport}
        assert (await core.acompletion("openai", MODEL, HI, config)).text == "ok"
    assert len(seen) == 3
    assert no_async_sleep[0] == 2.0
    assert [event.status for event in events] == [429, None, 200]


ERRORS = [
    ("ConnectError", llmkit.APIConnectionError, "check api_base"),
    ("ReadError", llmkit.APIConnectionError, "check api_base"),
    ("RemoteProtocolError", llmkit.APIConnectionError, "check api_base"),
    ("ReadTimeout", llmkit.TimeoutError, "raise timeout="),
    ("ConnectTimeout", llmkit.TimeoutError, "connect_timeout="),
    ("PoolTimeout", llmkit.TimeoutError, "stayed busy"),
]


@pytest.mark.parametrize(("name", "expected", "fix"), ERRORS, ids=[e[0] for e in ERRORS])
def test_backend_translates_transport_errors(
    lib: ModuleType,
    no_sleep: list[float],
    name: str,
    expected: type[llmkit.LLMError],
    fix: str,
) -> None:
    seen: list[Any] = []
    error = getattr(lib, name)(f"failed for Bearer {KEY}")
    with _mock(lib, [error, error], seen) as client, pytest.raises(expected) as info:
        core.completion("openai", MODEL, HI, {"api_key": KEY, "http_client": client, "retries": 1})
    assert len(seen) == 2
    assert fix in str(info.value)
    assert KEY not in str(info.value)
    # The library's errors hold the request (and its key): never chained.
    assert info.value.__cause__ is None
    assert info.value.__context__ is None
    assert info.value.provider == "openai"


@pytest.mark.anyio
@pytest.mark.parametrize(("name", "expected", "fix"), ERRORS, ids=[e[0] for e in ERRORS])
async def test_backend_async_translates_transport_errors(
    lib: ModuleType,
    no_async_sleep: list[float],
    name: str,
    expected: type[llmkit.LLMError],
    fix: str,
) -> None:
    seen: list[Any] = []
    error = getattr(lib, name)("failed")
    async with _amock(lib, [error, error], seen) as client:
        config = {"api_key": KEY, "async_http_client": client, "retries": 1}
        with pytest.raises(expected) as info:
            await core.acompletion("openai", MODEL, HI, config)
    assert len(seen) == 2
    assert fix in str(info.value)
    assert info.value.__cause__ is None


@pytest.mark.parametrize("name", ["LocalProtocolError", "UnsupportedProtocol"])
def test_backend_local_errors_are_not_retried_and_hide_the_key(
    lib: ModuleType, no_sleep: list[float], name: str
) -> None:
    seen: list[Any] = []
    leak = getattr(lib, name)(f"Illegal header value b'Bearer {KEY}'")
    with _mock(lib, [leak], seen) as client, pytest.raises(llmkit.InvalidRequestError) as info:
        core.completion("openai", MODEL, HI, {"api_key": KEY, "http_client": client})
    assert len(seen) == 1
    assert KEY not in str(info.value)
    assert info.value.__cause__ is None
    assert no_sleep == []


def _stream_body(lib: ModuleType) -> Any:
    first = (
        b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'
        b'"choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}\n\n'
    )

    class Broken(lib.SyncByteStream):  # type: ignore[name-defined,misc]
        def __iter__(self) -> Iterator[bytes]:
            yield first
            raise lib.ReadError("connection reset")

    class ABroken(lib.AsyncByteStream):  # type: ignore[name-defined,misc]
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield first
            raise lib.ReadError("connection reset")

    return Broken, ABroken


def test_backend_stream_broken_mid_body_raises(lib: ModuleType) -> None:
    broken, _ = _stream_body(lib)
    headers = {"content-type": "text/event-stream"}
    replies = [lib.Response(200, headers=headers, stream=broken())]
    with _mock(lib, replies, []) as client:
        chunks = iter(core.stream("openai", MODEL, HI, {"api_key": KEY, "http_client": client}))
        assert next(chunks).text == "Hel"
        with pytest.raises(llmkit.StreamInterruptedError, match="broke off") as info:
            next(chunks)
    assert info.value.__cause__ is None


@pytest.mark.anyio
async def test_backend_async_stream_broken_mid_body_raises(lib: ModuleType) -> None:
    _, broken = _stream_body(lib)
    headers = {"content-type": "text/event-stream"}
    replies = [lib.Response(200, headers=headers, stream=broken())]
    async with _amock(lib, replies, []) as client:
        config = {"api_key": KEY, "async_http_client": client}
        chunks = aiter(await core.astream("openai", MODEL, HI, config))
        assert (await anext(chunks)).text == "Hel"
        with pytest.raises(llmkit.StreamInterruptedError, match="broke off"):
            await anext(chunks)


# --- llmkit's own pools, on each library ----------------------------------------------------


def test_backend_pooled_clients_send_and_close(lib: ModuleType) -> None:
    name = lib.__name__
    transport = llmkit.Transport(backend=name)
    with OpenAIEmulator() as emulator:
        config = {"api_key": KEY, "api_base": emulator.base_url, "transport": transport}
        assert core.completion("openai", MODEL, HI, config).text == "Echo: Hi"
        with core.stream("openai", MODEL, HI, config) as stream:
            assert stream.collect().text == "Echo: Hi"
        clients = list(transport._sync.values())
        assert [_library_of(client) for client in clients] == [name]

        async def both() -> list[Any]:
            reply = await core.acompletion("openai", MODEL, HI, config)
            assert reply.text == "Echo: Hi"
            async with await core.astream("openai", MODEL, HI, config) as stream:
                assert (await stream.acollect()).text == "Echo: Hi"
            return list(transport._async[asyncio.get_running_loop()].clients.values())

        async_clients = asyncio.run(both())
    assert [_library_of(client) for client in async_clients] == [name]
    assert all(client.is_closed for client in async_clients)  # closed with their loop
    transport.close()
    assert all(client.is_closed for client in clients)


LINES = 24


class _Trickler:
    """A server that sends a status line, then one header line every 0.1 s, never ending."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.sent = 0
        self.hung_up = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/v1"

    def __exit__(self, *exc: object) -> None:
        self.thread.join(timeout=10)
        self.listener.close()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            conn.recv(65536)
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\n")
                for n in range(LINES):
                    if self.hung_up.wait(0.1):
                        return
                    conn.sendall(f"X-Slow-{n}: {n}\r\n".encode())
                    self.sent += 1
            except OSError:
                self.hung_up.set()


def test_backend_pooled_deadline_covers_trickled_headers(lib: ModuleType) -> None:
    # Every socket read of a pooled sync client ends by the deadline: the
    # network-backend wrapper works on httpcore and httpcore2 alike.
    transport = llmkit.Transport(backend=lib.__name__)
    try:
        with _Trickler() as base:
            config = {"api_key": KEY, "api_base": base, "deadline": 0.5, "retries": 0}
            with pytest.raises(llmkit.TimeoutError, match="deadline"):
                core.completion("openai", MODEL, HI, {**config, "transport": transport})
    finally:
        transport.close()


def test_backend_threads_are_dealt_over_a_few_pooled_clients(lib: ModuleType) -> None:
    # 16 threads share a pooled client; more get another, up to 4 per setting.
    transport = llmkit.Transport(backend=lib.__name__)
    config = Config()
    start = threading.Barrier(70)
    seen: dict[int, set[int]] = {}

    def call(n: int) -> None:
        start.wait()  # all alive at once: 70 distinct threads
        seen[n] = {id(transport.sync_client(config)) for _ in range(3)}

    threads = [threading.Thread(target=call, args=(n,)) for n in range(70)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert all(len(ids) == 1 for ids in seen.values())  # a thread keeps its client
        per_client: dict[int, int] = {}
        for ids in seen.values():
            per_client[next(iter(ids))] = per_client.get(next(iter(ids)), 0) + 1
        assert sorted(per_client.values()) == [16, 16, 16, 16 + 6]  # the 65th wraps around
        assert len(transport._sync) == 4
        assert {_library_of(client) for client in transport._sync.values()} == {lib.__name__}
    finally:
        transport.close()
