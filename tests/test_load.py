"""The system under load: calls at 64 in flight, streams among them, 5% injected faults.

Every call ends in a response or a typed error, and the outcomes, the
system's metrics and what the server saw add up exactly; retries recover
the transient faults; after shutdown no thread and no socket is left. The
server is bench/server.py in its own process (faults on request, see its
docstring). The default run makes ``LLMKIT_LOAD_CALLS`` (600) calls on each
HTTP backend; ``tox -e load`` makes 5,000.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import llmkit
from llmkit import core, system

CALLS = int(os.environ.get("LLMKIT_LOAD_CALLS", "600"))
IN_FLIGHT = 64
FAULT_SHARE = 0.05
MODEL = "gpt-4o-mini"
KEY = "sk-load-test-0123456789"
REQUEST = {"messages": [{"role": "user", "content": "hi"}]}
CHUNKS = 6  # content events per stream: fewer than the stream buffer holds
READ_TIMEOUT = 2.0
RETRIES = 2
SERVER = Path(__file__).resolve().parents[1] / "bench" / "server.py"

PLAIN_TEXT = "Hello! How can I help you today?"
PIECES = (
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
STREAM_TEXT = "".join(PIECES[i % len(PIECES)] for i in range(CHUNKS))


@dataclass(frozen=True)
class Fault:
    """One kind of injected fault, and what a call meeting it must end with."""

    name: str
    headers: dict[str, str]
    plain: tuple[str, int]  # (outcome, attempts) of a whole call
    stream: tuple[str, int]  # the same for a stream
    attempt_errors: dict[str, int] = field(default_factory=dict)  # per call, by type
    stream_attempt_errors: dict[str, int] | None = None


OK = "ok"
FAULTS = (
    Fault("429", {"x-bench-fault": "429", "x-bench-retry-after": "0.05"},
          (OK, 2), (OK, 2), {"RateLimitError": 1}),
    Fault("500", {"x-bench-fault": "500"}, (OK, 2), (OK, 2), {"ServiceUnavailableError": 1}),
    # Failing every attempt: the call ends in the typed error once retries are spent.
    Fault("503", {"x-bench-fault": "503", "x-bench-fault-times": str(RETRIES + 1)},
          ("ServiceUnavailableError", RETRIES + 1), ("ServiceUnavailableError", RETRIES + 1),
          {"ServiceUnavailableError": RETRIES + 1}),
    Fault("reset", {"x-bench-fault": "reset"}, (OK, 2), (OK, 2), {"APIConnectionError": 1}),
    # A whole call reads its body before it returns, so a cut body is retried;
    # a stream has begun when the cut comes, so it must raise, never end short.
    Fault("truncate", {"x-bench-fault": "truncate"}, (OK, 2),
          ("StreamInterruptedError", 1), {"APIConnectionError": 1}, {}),
    Fault("slow", {"x-bench-fault": "slow", "x-bench-delay": "0.2"}, (OK, 1), (OK, 1)),
    # A first byte later than the read timeout: the attempt times out, the retry answers.
    Fault("stall", {"x-bench-fault": "slow", "x-bench-delay": str(READ_TIMEOUT * 1.5)},
          (OK, 2), (OK, 2), {"TimeoutError": 1}),
)  # fmt: skip


@dataclass
class Call:
    """One planned call: how it is made, its fault, and how it ended."""

    index: int
    shape: str  # "submit", "stream" or "async"
    fault: Fault | None
    run: str  # the server counts attempts per call id: unique across runs
    outcome: str | None = None
    text: str | None = None

    @property
    def stream(self) -> bool:
        return self.shape == "stream"

    @property
    def expected(self) -> tuple[str, int]:
        if self.fault is None:
            return OK, 1
        return self.fault.stream if self.stream else self.fault.plain

    @property
    def expected_attempt_errors(self) -> dict[str, int]:
        fault = self.fault
        if fault is None:
            return {}
        if self.stream and fault.stream_attempt_errors is not None:
            return fault.stream_attempt_errors
        return fault.attempt_errors

    def config(self) -> dict[str, Any] | None:
        headers: dict[str, str] = {}
        if self.stream:
            headers["x-bench-chunks"] = str(CHUNKS)
        if self.fault is not None:
            headers.update(self.fault.headers, **{"x-bench-call": f"{self.run}-{self.index}"})
        return {"headers": headers} if headers else None


def _plan(calls: int, run: str) -> list[Call]:
    # A fixed seed: the same calls meet the same faults on every run.
    rng = random.Random(12)
    shapes = ["submit"] * 7 + ["stream"] * 2 + ["async"]
    faulted = rng.sample(range(calls), round(calls * FAULT_SHARE))
    faults: dict[int, Fault] = {
        index: FAULTS[n % len(FAULTS)] for n, index in enumerate(sorted(faulted))
    }
    return [Call(i, shapes[rng.randrange(len(shapes))], faults.get(i), run) for i in range(calls)]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """bench/server.py in its own process; its base URL (it dies with its stdin)."""
    process = subprocess.Popen(
        [sys.executable, str(SERVER), "--watch-stdin"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    try:
        yield f"http://127.0.0.1:{int(process.stdout.readline())}"
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=30)
        process.stdout.close()


@pytest.fixture
def make_system() -> Iterator[Callable[[dict[str, Any]], system.System]]:
    """``create_system``, with every system shut down after the test, even a failed one."""
    made: list[system.System] = []

    def make(config: dict[str, Any]) -> system.System:
        made.append(system.create_system(config))
        return made[-1]

    yield make
    for each in made:
        each.shutdown(timeout=30, cancel=True)


def _stats(base: str) -> dict[str, Any]:
    with urllib.request.urlopen(base + "/stats", timeout=10) as reply:
        stats: dict[str, Any] = json.load(reply)
    return stats


def _wait_until(check: Callable[[], bool], what: str) -> None:
    # A guard against a hang, not a timing threshold.
    event = threading.Event()
    for _ in range(3000):
        if check():
            return
        event.wait(0.01)
    raise AssertionError(f"never happened: {what}")


def _end(call: Call, run: Callable[[], str]) -> None:
    try:
        call.text = run()
        call.outcome = OK
    except llmkit.LLMError as exc:
        call.outcome = type(exc).__name__


def _text_of_stream(handle: system.SystemStream) -> str:
    return "".join(chunk.text for chunk in handle)


def _text_of_future(future: Future[llmkit.ChatResponse]) -> str:
    return future.result().text


def _run_async(made: system.System, calls: list[Call]) -> None:
    async def one(call: Call) -> None:
        try:
            reply = await made.acompletion("openai", MODEL, REQUEST, call.config())
            call.text, call.outcome = reply.text, OK
        except llmkit.LLMError as exc:
            call.outcome = type(exc).__name__

    async def every() -> None:
        await asyncio.gather(*(one(call) for call in calls))

    asyncio.run(every())


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd")) if sys.platform.startswith("linux") else set()


@pytest.mark.parametrize("backend", ["httpx", "httpx2"])
def test_load_every_call_ends_and_the_books_balance(
    server: str, backend: str, make_system: Callable[[dict[str, Any]], system.System]
) -> None:
    core.list_providers()  # entry points load outside the measure
    calls = _plan(CALLS, backend)
    seen_before = _stats(server)
    threads_before = set(threading.enumerate())
    fds_before = _fds()
    made = make_system(
        {
            "providers": {
                "openai": {
                    "api_key": KEY,
                    "api_base": server + "/v1",
                    "timeout": READ_TIMEOUT,
                    "retries": RETRIES,
                }
            },
            "thread_pools": {"api_calls": {"pool_size": IN_FLIGHT, "queue_size": CALLS}},
            "defaults": {"http_backend": backend},
        }
    )
    started = time.perf_counter()
    futures: list[tuple[Call, Future[llmkit.ChatResponse]]] = []
    streams: list[tuple[Call, system.SystemStream]] = []
    asynchronous = [call for call in calls if call.shape == "async"]
    # The asyncio calls queue up alongside the others, from their own loop.
    loop_thread = threading.Thread(target=_run_async, args=(made, asynchronous))
    loop_thread.start()
    for call in calls:
        if call.shape == "submit":
            futures.append((call, made.submit("openai", MODEL, REQUEST, call.config())))
        elif call.shape == "stream":
            handle = made.completion("openai", MODEL, REQUEST, call.config(), stream=True)
            streams.append((call, handle))
    for call, handle in streams:
        _end(call, functools.partial(_text_of_stream, handle))
    for call, future in futures:
        _end(call, functools.partial(_text_of_future, future))
    loop_thread.join()
    seconds = time.perf_counter() - started

    # Every call ended, each as its fault says it must.
    assert all(call.outcome is not None for call in calls)
    wrong = [(c.index, c.shape, c.fault and c.fault.name, c.outcome) for c in calls
             if c.outcome != c.expected[0]]  # fmt: skip
    assert wrong == []
    for call in calls:
        if call.outcome == OK:
            assert call.text == (STREAM_TEXT if call.stream else PLAIN_TEXT), call
    outcomes = Counter(call.outcome for call in calls)
    assert sum(outcomes.values()) == CALLS
    faulted = [call for call in calls if call.fault is not None]
    assert len(faulted) == round(CALLS * FAULT_SHARE)
    recovered = [call for call in faulted if call.expected[1] > 1 and call.outcome == OK]
    assert recovered, "no transient fault was retried"

    # The metrics agree with the outcomes, attempt by attempt.
    pooled = made._providers["openai"].transport._sync
    assert {key[0] for key in pooled} == {backend}
    assert {type(client).__module__.split(".")[0] for client in pooled.values()} == {backend}
    counters = made.metrics()["providers"]["openai"][MODEL]
    attempts = sum(call.expected[1] for call in calls)
    attempt_errors: Counter[str] = Counter()
    for call in calls:
        attempt_errors.update(call.expected_attempt_errors)
    assert counters["requests"] == CALLS
    assert counters["successes"] == outcomes[OK]
    assert counters["errors"] == {name: n for name, n in outcomes.items() if name != OK}
    assert counters["cancelled"] == 0
    assert counters["attempts"] == attempts
    assert counters["retries"] == attempts - CALLS
    assert counters["attempt_errors"] == dict(attempt_errors)
    assert (counters["in_flight"], counters["queue_depth"]) == (0, 0)
    assert counters["latency"]["count"] == min(CALLS, 2048)
    assert counters["tokens_in"] == 9 * outcomes[OK]  # the server's usage: 9 prompt tokens

    # The server saw exactly those attempts, and the faults the plan holds.
    seen = _stats(server)
    assert seen["requests"] - seen_before["requests"] == attempts
    injected = Counter(seen["faults"]) - Counter(seen_before["faults"])
    planned: Counter[str] = Counter()
    for call in faulted:
        times = RETRIES + 1 if call.fault.name == "503" else 1  # type: ignore[union-attr]
        planned[call.fault.headers["x-bench-fault"]] += times  # type: ignore[union-attr]
    assert injected == planned

    made.shutdown(timeout=30)
    # Nothing the system opened is left: no thread, no socket on either side.
    leaked = [t for t in set(threading.enumerate()) - threads_before if t.is_alive()]
    assert leaked == []
    if sys.platform.startswith("linux"):
        assert _fds() <= fds_before
    # The one connection left open is the one asking for the stats.
    _wait_until(lambda: _stats(server)["open"] == 1, "the server's connections closed")
    print(
        f"\n{backend}: {CALLS} calls in {seconds:.2f} s ({CALLS / seconds:.0f} calls/s), "
        f"{len(faulted)} faulted, {dict(outcomes)}, attempts {attempts}"
    )


@pytest.mark.parametrize("backend", ["httpx", "httpx2"])
def test_load_shutdown_under_load_ends_every_call(
    server: str, backend: str, make_system: Callable[[dict[str, Any]], system.System]
) -> None:
    # shutdown(cancel=True) while calls run and wait: each still ends, in a
    # response or a typed error, and the books balance.
    core.list_providers()
    calls = _plan(min(CALLS, 600), f"shutdown-{backend}")
    threads_before = set(threading.enumerate())
    fds_before = _fds()
    made = make_system(
        {
            "providers": {
                "openai": {"api_key": KEY, "api_base": server + "/v1", "timeout": READ_TIMEOUT}
            },
            "thread_pools": {"api_calls": {"pool_size": IN_FLIGHT, "queue_size": len(calls)}},
            "defaults": {"http_backend": backend},
        }
    )
    futures: list[tuple[Call, Future[llmkit.ChatResponse]]] = []
    streams: list[tuple[Call, system.SystemStream]] = []
    loop_thread = threading.Thread(
        target=_run_async, args=(made, [call for call in calls if call.shape == "async"])
    )
    loop_thread.start()
    for call in calls:
        if call.shape == "submit":
            futures.append((call, made.submit("openai", MODEL, REQUEST, call.config())))
        elif call.shape == "stream":
            handle = made.completion("openai", MODEL, REQUEST, call.config(), stream=True)
            streams.append((call, handle))

    def counters() -> dict[str, Any]:
        counted: dict[str, Any] = made.metrics()["providers"]["openai"][MODEL]
        return counted

    _wait_until(lambda: counters()["successes"] >= len(calls) // 4, "a quarter of the calls")
    made.shutdown(timeout=30, cancel=True)
    for call, handle in streams:
        _end(call, functools.partial(_text_of_stream, handle))
    for call, future in futures:
        _end(call, functools.partial(_text_of_future, future))
    loop_thread.join()

    outcomes = Counter(call.outcome for call in calls)
    assert None not in outcomes
    assert outcomes[OK] >= len(calls) // 4
    assert sum(outcomes.values()) - outcomes[OK] > 0, "the shutdown stopped nothing"
    final = counters()
    assert final["requests"] == len(calls)
    assert final["successes"] == outcomes[OK]
    assert final["errors"] == {name: n for name, n in outcomes.items() if name != OK}
    assert final["cancelled"] == 0
    assert (final["in_flight"], final["queue_depth"]) == (0, 0)
    leaked = [t for t in set(threading.enumerate()) - threads_before if t.is_alive()]
    assert leaked == []
    if sys.platform.startswith("linux"):
        assert _fds() <= fds_before


def _stream_then_hold(listener: socket.socket, done: threading.Event) -> None:
    # One streamed answer whose body never ends after its [DONE]: the
    # feeder then drains (up to 0.1 s) after handing over the last chunk.
    conn, _ = listener.accept()
    with conn:
        conn.recv(65536)
        events = [
            b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'
            b'"choices":[{"index":0,"delta":{"content":"all"},"finish_reason":"stop"}]}\n\n',
            b"data: [DONE]\n\n",
        ]
        conn.sendall(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
            + b"".join(b"%x\r\n%s\r\n" % (len(event), event) for event in events)
        )
        done.wait(10)


def test_load_stream_books_follow_what_its_reader_saw() -> None:
    # A shutdown that aborts a stream after its last chunk, while it drains
    # the end of the body, must not count a success its reader never got.
    listener = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()
    serving = threading.Thread(target=_stream_then_hold, args=(listener, done))
    serving.start()
    try:
        base = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
        made = system.create_system({"providers": {"openai": {"api_key": KEY, "api_base": base}}})
        handle = made.completion("openai", MODEL, REQUEST, stream=True)
        first = next(handle)
        assert first.text == "all"
        made.shutdown(timeout=10, cancel=True)
        try:
            rest = list(handle)
            outcome = OK
        except llmkit.LLMError as exc:
            rest, outcome = [], type(exc).__name__
        counters = made.metrics()["providers"]["openai"][MODEL]
        assert all(chunk.text == "" for chunk in rest)
        assert counters["successes"] == (1 if outcome == OK else 0)
        assert counters["errors"] == ({} if outcome == OK else {outcome: 1})
    finally:
        done.set()
        serving.join(10)
        listener.close()
