from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from llmkit_contracts import OpenAIEmulator, RecordedRequest, Reply

CHAT = [{"role": "user", "content": "hello there"}]
AUTH = {"authorization": "Bearer sk-emulator"}


@pytest.fixture
def client(emulator: OpenAIEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator.base_url, timeout=5.0, headers=AUTH) as http_client:
        yield http_client


def _events(body: bytes) -> list[bytes]:
    """Split an SSE body into the payloads of its ``data:`` events."""
    payloads = []
    for raw in body.split(b"\n\n"):
        if not raw:
            continue
        assert raw.startswith(b"data: "), raw
        payloads.append(raw[len(b"data: ") :])
    return payloads


def _chunks(body: bytes) -> list[dict[str, Any]]:
    payloads = _events(body)
    assert payloads[-1] == b"[DONE]"
    return [json.loads(payload) for payload in payloads[:-1]]


def _post_stream(client: httpx.Client, **extra: Any) -> httpx.Response:
    payload = {"model": "gpt-test", "messages": CHAT, "stream": True, **extra}
    return client.post("/chat/completions", json=payload)


def _raw_request(
    port: int, payload: dict[str, Any], *, path: str = "/v1/chat/completions"
) -> bytes:
    """Send one request on a fresh socket and read until the server closes it."""
    body = json.dumps(payload).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Authorization: Bearer sk-emulator\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5.0) as sock:
        sock.sendall(head + body)
        received = bytearray()
        while data := sock.recv(65536):
            received += data
    return bytes(received)


def _dechunk(data: bytes) -> tuple[bytes, bool]:
    """Decode a chunked body; return the payload and whether it was terminated."""
    payload = bytearray()
    while data:
        line, _, rest = data.partition(b"\r\n")
        size = int(line, 16)
        if size == 0:
            return bytes(payload), True
        payload += rest[:size]
        assert rest[size : size + 2] == b"\r\n"
        data = rest[size + 2 :]
    return bytes(payload), False


# --------------------------------------------------------------------- plain JSON


def test_emulator_text_non_stream(emulator: OpenAIEmulator, client: httpx.Client) -> None:
    emulator.enqueue(Reply.text("Hello, world out there", prompt_tokens=7))
    response = client.post("/chat/completions", json={"model": "gpt-test", "messages": CHAT})

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"] == "req_emu_1"
    assert int(response.headers["content-length"]) == len(response.content)
    data = response.json()
    assert data["id"] == "chatcmpl-emu-1"
    assert data["object"] == "chat.completion"
    assert isinstance(data["created"], int)
    assert data["model"] == "gpt-test"
    assert data["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello, world out there"},
            "finish_reason": "stop",
        }
    ]
    assert data["usage"] == {"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11}


def test_emulator_text_options(emulator: OpenAIEmulator, client: httpx.Client) -> None:
    emulator.enqueue(
        Reply.text(
            "cut",
            finish_reason="length",
            completion_tokens=99,
            model="other-model",
            headers={"X-Extra": "yes"},
        )
    )
    response = client.post("/chat/completions", json={"model": "gpt-test", "messages": CHAT})
    data = response.json()
    assert response.headers["x-extra"] == "yes"
    assert data["model"] == "other-model"
    assert data["choices"][0]["finish_reason"] == "length"
    assert data["usage"]["completion_tokens"] == 99


def test_emulator_echo_when_queue_empty(client: httpx.Client) -> None:
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ignored"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "multi"}, {"type": "text", "text": "part"}],
        },
    ]
    response = client.post("/chat/completions", json={"model": "m", "messages": messages})
    assert response.json()["choices"][0]["message"]["content"] == "Echo: multipart"

    with OpenAIEmulator(strict=False) as lenient, httpx.Client(base_url=lenient.base_url) as raw:
        response = raw.post("/chat/completions", json={"model": "m", "messages": []})
    assert response.json()["choices"][0]["message"]["content"] == "Echo: "


def test_emulator_default_reply_and_fifo() -> None:
    with (
        OpenAIEmulator(default=Reply.text("fallback")) as emu,
        httpx.Client(base_url=emu.base_url, headers=AUTH) as http_client,
    ):
        emu.enqueue(Reply.text("one"), Reply.text("two"))
        emu.enqueue(Reply.text("three"))
        contents = [
            http_client.post("/chat/completions", json={"model": "m", "messages": CHAT}).json()[
                "choices"
            ][0]["message"]["content"]
            for _ in range(5)
        ]
    assert contents == ["one", "two", "three", "fallback", "fallback"]


def test_emulator_tool_calls_non_stream(emulator: OpenAIEmulator, client: httpx.Client) -> None:
    emulator.enqueue(Reply.tool_calls([("get_weather", '{"city": "Paris"}'), ("get_time", "{}")]))
    response = client.post("/chat/completions", json={"model": "m", "messages": CHAT})
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_0",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            },
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_time", "arguments": "{}"},
            },
        ],
    }
    assert response.json()["usage"] == {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
    }


# ---------------------------------------------------------------------- streaming


def test_emulator_stream_with_usage(emulator: OpenAIEmulator, client: httpx.Client) -> None:
    emulator.enqueue(Reply.text("Hello world!", chunk_size=5, prompt_tokens=3))
    response = _post_stream(client, stream_options={"include_usage": True})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.headers["x-request-id"] == "req_emu_1"
    chunks = _chunks(response.content)
    for chunk in chunks:
        assert chunk["id"] == "chatcmpl-emu-1"
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["model"] == "gpt-test"
    deltas = [chunk["choices"][0]["delta"] for chunk in chunks[:-1]]
    assert deltas == [
        {"role": "assistant", "content": ""},
        {"content": "Hello"},
        {"content": " worl"},
        {"content": "d!"},
        {},
    ]
    assert [chunk["choices"][0]["finish_reason"] for chunk in chunks[:-1]] == [None] * 4 + ["stop"]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def test_emulator_stream_without_usage(client: httpx.Client) -> None:
    response = _post_stream(client)
    chunks = _chunks(response.content)
    assert all("usage" not in chunk for chunk in chunks)
    text = "".join(chunk["choices"][0]["delta"].get("content", "") for chunk in chunks)
    assert text == "Echo: hello there"
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop"}


def test_emulator_stream_tool_calls_reassembly(
    emulator: OpenAIEmulator, client: httpx.Client
) -> None:
    arguments = '{"city": "Paris", "unit": "celsius"}'
    emulator.enqueue(
        Reply.tool_calls([("get_weather", arguments), ("noop", "")], content="Let me check.")
    )
    chunks = _chunks(_post_stream(client).content)

    text = ""
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        delta = chunk["choices"][0]["delta"]
        text += delta.get("content") or ""
        for fragment in delta.get("tool_calls", []):
            if "id" in fragment:
                assert fragment["type"] == "function"
                assert fragment["function"]["arguments"] == ""
                calls[fragment["index"]] = {
                    "id": fragment["id"],
                    "name": fragment["function"]["name"],
                    "arguments": "",
                }
            else:
                assert set(fragment) == {"index", "function"}
                assert set(fragment["function"]) == {"arguments"}
                calls[fragment["index"]]["arguments"] += fragment["function"]["arguments"]
    assert text == "Let me check."
    assert calls == {
        0: {"id": "call_0", "name": "get_weather", "arguments": arguments},
        1: {"id": "call_1", "name": "noop", "arguments": ""},
    }
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    argument_chunks = [
        c
        for c in chunks
        if "tool_calls" in c["choices"][0]["delta"]
        and "id" not in c["choices"][0]["delta"]["tool_calls"][0]
    ]
    assert len(argument_chunks) == -(-len(arguments) // 4)


def test_emulator_stream_incremental_delivery(
    emulator: OpenAIEmulator, client: httpx.Client
) -> None:
    emulator.enqueue(Reply.text("abcdefgh", chunk_size=2, chunk_delay=0.05))
    payload = {"model": "m", "messages": CHAT, "stream": True}
    arrivals: list[float] = []
    start = time.monotonic()
    with client.stream("POST", "/chat/completions", json=payload) as response:
        for line in response.iter_lines():
            if line:
                arrivals.append(time.monotonic() - start)
    # role, 4 content pieces, finish, [DONE]: 7 events with 6 gaps of 50 ms.
    assert len(arrivals) == 7
    assert arrivals[-1] >= 0.25
    assert arrivals[0] < arrivals[-1] - 0.2


# ------------------------------------------------------------------------- errors


def test_emulator_error_with_retry_after(emulator: OpenAIEmulator, client: httpx.Client) -> None:
    emulator.enqueue(
        Reply.error(
            429, message="Slow down", code="rate_limit_exceeded", headers={"retry-after": "0"}
        )
    )
    response = client.post("/chat/completions", json={"model": "m", "messages": CHAT})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "0"
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"] == "req_emu_1"
    assert response.json() == {
        "error": {
            "message": "Slow down",
            "type": "rate_limit_error",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    # The keep-alive connection stays usable after an error.
    assert (
        client.post("/chat/completions", json={"model": "m", "messages": CHAT}).status_code == 200
    )


def test_emulator_error_on_stream_request_is_plain_json(
    emulator: OpenAIEmulator, client: httpx.Client
) -> None:
    emulator.enqueue(Reply.error(500, message="boom"))
    response = _post_stream(client)
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "server_error"


def test_emulator_error_raw_body(emulator: OpenAIEmulator, client: httpx.Client) -> None:
    emulator.enqueue(
        Reply.error(502, body=b"<html>bad gateway</html>", headers={"content-type": "text/html"})
    )
    response = client.post("/chat/completions", json={"model": "m", "messages": CHAT})
    assert response.status_code == 502
    assert response.headers["content-type"] == "text/html"
    assert response.content == b"<html>bad gateway</html>"


def test_emulator_unknown_path_is_404(emulator: OpenAIEmulator, client: httpx.Client) -> None:
    emulator.enqueue(Reply.text("kept"))
    response = client.post("/completions", json={"prompt": "x"})
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert client.get("/models").status_code == 404
    # The queued reply was not consumed by the 404s.
    response = client.post("/chat/completions", json={"model": "m", "messages": CHAT})
    assert response.json()["choices"][0]["message"]["content"] == "kept"


def test_emulator_wrong_method_is_405(client: httpx.Client) -> None:
    response = client.get("/chat/completions")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert "error" in response.json()


def test_emulator_invalid_json_is_400(emulator: OpenAIEmulator, client: httpx.Client) -> None:
    response = client.post(
        "/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert client.post("/chat/completions", content=b"[1, 2]").status_code == 400
    assert emulator.requests[0].json is None
    assert emulator.requests[0].body == b"{not json"


# ------------------------------------------------------------ timing and failures


def test_emulator_delay(emulator: OpenAIEmulator, client: httpx.Client) -> None:
    emulator.enqueue(Reply.text("slow", delay=0.3))
    start = time.monotonic()
    response = client.post("/chat/completions", json={"model": "m", "messages": CHAT})
    assert time.monotonic() - start >= 0.3
    assert response.json()["choices"][0]["message"]["content"] == "slow"


def test_emulator_delay_triggers_client_timeout(emulator: OpenAIEmulator) -> None:
    emulator.enqueue(Reply.text("too slow", delay=1.0))
    with (
        httpx.Client(base_url=emulator.base_url, timeout=0.1, headers=AUTH) as http_client,
        pytest.raises(httpx.ReadTimeout),
    ):
        http_client.post("/chat/completions", json={"model": "m", "messages": CHAT})


def test_emulator_disconnect_after_httpx(emulator: OpenAIEmulator, client: httpx.Client) -> None:
    emulator.enqueue(Reply.text("a long answer that never finishes", disconnect_after=3))
    payload = {"model": "m", "messages": CHAT, "stream": True}
    received: list[str] = []

    def consume() -> None:
        with client.stream("POST", "/chat/completions", json=payload) as response:
            assert response.status_code == 200
            received.extend(line for line in response.iter_lines() if line)

    with pytest.raises(httpx.RemoteProtocolError):
        consume()
    assert 1 <= len(received) <= 3
    assert all("[DONE]" not in line for line in received)
    # The client recovers on a new connection.
    response = client.post("/chat/completions", json={"model": "m", "messages": CHAT})
    assert response.status_code == 200


def test_emulator_disconnect_after_raw_socket(emulator: OpenAIEmulator) -> None:
    emulator.enqueue(Reply.text("abcdefghijkl", disconnect_after=2))
    data = _raw_request(emulator.port, {"model": "m", "messages": CHAT, "stream": True})
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"transfer-encoding: chunked" in head.lower()
    payload, terminated = _dechunk(body)
    assert not terminated
    assert not body.endswith(b"0\r\n\r\n")
    events = _events(payload)
    assert len(events) == 2
    assert b"[DONE]" not in payload


def test_emulator_disconnect_after_zero_sends_only_headers(emulator: OpenAIEmulator) -> None:
    emulator.enqueue(Reply.text("x").with_(disconnect_after=0))
    data = _raw_request(emulator.port, {"model": "m", "messages": CHAT, "stream": True})
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert body == b""


def test_emulator_complete_stream_is_terminated_raw_socket(emulator: OpenAIEmulator) -> None:
    # A complete stream keeps the connection open, so ask for Connection: close to read to EOF.
    data = b""
    body = json.dumps({"model": "m", "messages": CHAT, "stream": True}).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Authorization: Bearer sk-emulator\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    with socket.create_connection(("127.0.0.1", emulator.port), timeout=5.0) as sock:
        sock.sendall(request)
        while chunk := sock.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower()
    payload, terminated = _dechunk(rest)
    assert terminated
    assert rest.endswith(b"0\r\n\r\n")
    assert _events(payload)[-1] == b"[DONE]"


def test_emulator_client_abort_mid_stream_is_harmless(
    emulator: OpenAIEmulator, client: httpx.Client
) -> None:
    emulator.enqueue(Reply.text("x" * 400, chunk_size=1, chunk_delay=0.005))
    payload = {"model": "m", "messages": CHAT, "stream": True}
    with client.stream("POST", "/chat/completions", json=payload) as response:
        next(response.iter_lines())
    response = client.post("/chat/completions", json={"model": "m", "messages": CHAT})
    assert response.status_code == 200


# ---------------------------------------------------------------------- recording


def test_emulator_records_requests(emulator: OpenAIEmulator, client: httpx.Client) -> None:
    payload = {"model": "gpt-test", "messages": CHAT}
    client.post("/chat/completions", json=payload, headers={"Authorization": "Bearer sk-test"})
    client.get("/models?limit=1")

    first, second = emulator.requests
    assert isinstance(first, RecordedRequest)
    assert first.method == "POST"
    assert first.path == "/v1/chat/completions"
    assert first.headers["authorization"] == "Bearer sk-test"
    assert first.headers["content-type"] == "application/json"
    assert all(name == name.lower() for name in first.headers)
    assert json.loads(first.body) == payload
    assert first.json == payload
    assert second.method == "GET"
    assert second.path == "/v1/models?limit=1"
    assert second.body == b""
    assert second.json is None
    # The property returns a snapshot.
    emulator.requests.clear()
    assert len(emulator.requests) == 2


def test_emulator_chunked_request_body(emulator: OpenAIEmulator, client: httpx.Client) -> None:
    payload = json.dumps(
        {"model": "m", "messages": [{"role": "user", "content": "chunky"}]}
    ).encode()

    def parts() -> Iterator[bytes]:
        yield payload[:10]
        yield payload[10:]

    response = client.post("/chat/completions", content=parts())
    assert response.json()["choices"][0]["message"]["content"] == "Echo: chunky"
    assert emulator.requests[0].headers["transfer-encoding"] == "chunked"
    assert emulator.requests[0].body == payload


# ---------------------------------------------------------- connections and speed


def test_emulator_keep_alive_reuse(emulator: OpenAIEmulator, client: httpx.Client) -> None:
    local_addresses = set()
    for index in range(200):
        emulator.enqueue(Reply.text(f"answer {index}"))
        response = client.post("/chat/completions", json={"model": "m", "messages": CHAT})
        assert response.json()["choices"][0]["message"]["content"] == f"answer {index}"
        local_addresses.add(response.extensions["network_stream"].get_extra_info("client_addr"))
    assert len(local_addresses) == 1
    assert len(emulator.requests) == 200


def test_emulator_many_sequential_requests(emulator: OpenAIEmulator, client: httpx.Client) -> None:
    payload = {"model": "m", "messages": CHAT}
    for _ in range(1000):
        assert client.post("/chat/completions", json=payload).status_code == 200
    assert len(emulator.requests) == 1000


def test_emulator_concurrent_clients(emulator: OpenAIEmulator) -> None:
    emulator.enqueue(*(Reply.text(f"r{index}", delay=0.01) for index in range(40)))
    results: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        with httpx.Client(base_url=emulator.base_url, timeout=5.0, headers=AUTH) as http_client:
            for _ in range(10):
                data = http_client.post(
                    "/chat/completions", json={"model": "m", "messages": CHAT}
                ).json()
                with lock:
                    results.append(data["choices"][0]["message"]["content"])

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == sorted(f"r{index}" for index in range(40))
    assert len(emulator.requests) == 40


# -------------------------------------------------------------------- lifecycle


def test_emulator_stop_frees_port_quickly() -> None:
    emu = OpenAIEmulator().start()
    port = emu.port
    assert emu.base_url == f"http://127.0.0.1:{port}/v1"
    with httpx.Client(base_url=emu.base_url, headers=AUTH) as http_client:
        # Leave an idle keep-alive connection open while stopping.
        assert (
            http_client.post("/chat/completions", json={"model": "m", "messages": CHAT}).status_code
            == 200
        )
        emu.stop()
        with pytest.raises(httpx.TransportError):
            http_client.post("/chat/completions", json={"model": "m", "messages": CHAT})

    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()
    emu.stop()  # idempotent


def test_emulator_stop_interrupts_pending_delay() -> None:
    emu = OpenAIEmulator().start()
    emu.enqueue(Reply.text("never", delay=30.0))
    errors: list[BaseException] = []

    def call() -> None:
        try:
            with httpx.Client(base_url=emu.base_url, timeout=10.0, headers=AUTH) as http_client:
                http_client.post("/chat/completions", json={"model": "m", "messages": CHAT})
        except httpx.TransportError as exc:
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    waited = 0.0
    while not emu.requests and waited < 10.0:
        time.sleep(0.005)
        waited += 0.005
    assert emu.requests
    start = time.monotonic()
    emu.stop()
    # The reply was scripted to wait 30 s; stop() must not wait for it.
    assert time.monotonic() - start < 10.0
    thread.join(10.0)
    assert not thread.is_alive()
    assert len(errors) == 1


def test_emulator_start_stop_restart() -> None:
    emu = OpenAIEmulator()
    with pytest.raises(RuntimeError):
        _ = emu.base_url
    with emu:
        with pytest.raises(RuntimeError):
            emu.start()
        assert (
            httpx.post(
                f"{emu.base_url}/chat/completions",
                json={"model": "m", "messages": CHAT},
                headers=AUTH,
            ).status_code
            == 200
        )
    with emu:
        assert (
            httpx.post(
                f"{emu.base_url}/chat/completions",
                json={"model": "m", "messages": CHAT},
                headers=AUTH,
            ).status_code
            == 200
        )
    assert len(emu.requests) == 2


# ------------------------------------------------------------------ Reply objects


def test_emulator_reply_with_options() -> None:
    base = Reply.text("hi", headers={"A": "1"})
    changed = base.with_(
        delay=0.5, chunk_delay=0.1, chunk_size=2, disconnect_after=3, headers={"b": "2"}
    )
    assert (changed.delay, changed.chunk_delay, changed.chunk_size, changed.disconnect_after) == (
        0.5,
        0.1,
        2,
        3,
    )
    assert changed.headers == (("a", "1"), ("b", "2"))
    assert changed.content == "hi"
    assert base.delay == 0.0
    assert changed.with_(disconnect_after=None).disconnect_after is None
    assert changed.with_().disconnect_after == 3
    assert Reply.text("one two three").completion_tokens == 3
    assert Reply.text("").completion_tokens == 1


@pytest.mark.parametrize(
    "build",
    [
        lambda: Reply.text("x", chunk_size=0),
        lambda: Reply.text("x", delay=-1),
        lambda: Reply.text("x", disconnect_after=-1),
        lambda: Reply.text("x", headers={"bad\nname": "v"}),
        lambda: Reply.text("x", headers={"ok": "bad\r\nvalue"}),
        lambda: Reply.tool_calls([]),
        lambda: Reply.error(100),
        lambda: Reply.error(204),
    ],
)
def test_emulator_reply_validation(build: Any) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        build()


def test_emulator_enqueue_rejects_non_replies(emulator: OpenAIEmulator) -> None:
    with pytest.raises(TypeError):
        emulator.enqueue("not a reply")  # type: ignore[arg-type]
