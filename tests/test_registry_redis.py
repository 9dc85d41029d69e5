"""RedisState against a real redis-server on 127.0.0.1: shared limits, cooldowns, cache, outages.

Each test module run starts its own server on a free port and stops it.
Without a ``redis-server`` binary these tests skip, except under CI
(``CI=true``), where a missing server fails the run: ``.ci/run`` installs it.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmkit.errors import RateLimitError
from llmkit.registry import RedisState, Registry
from llmkit_contracts import OpenAIEmulator, Reply

HI = {"messages": [{"role": "user", "content": "Hi"}]}
KEY = "sk-emulator-000000"

try:
    import redis
except ImportError:  # pragma: no cover - the redis client is a test extra
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("the redis client is not installed (a test extra)", allow_module_level=True)

# Both processes read the same fixed time, 20 s into a rate-limit window, so
# the minute cannot turn between them.
FIXED_NOW = 1_000_040.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A redis-server child process on 127.0.0.1, with nothing saved to disk."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_timeout=0.5)
        for _ in range(200):
            try:
                client.ping()
                return
            except redis.RedisError:
                time.sleep(0.025)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail(
                "CI=true but no redis-server binary: .ci/run installs Debian's redis-server"
            )
        pytest.skip("no redis-server binary on PATH (apt install redis-server to run these)")
    running = RedisServer(binary, tmp_path_factory.mktemp("redis"))
    running.start()
    yield running
    running.stop()


@pytest.fixture
def url(server: RedisServer) -> str:
    if server.proc is None:
        server.start()
    redis.Redis.from_url(server.url).flushall()
    return server.url


def test_state_operations_round_trip(url: str) -> None:
    state = RedisState(url, prefix="t1")
    now = time.time()
    assert state.take("d", 2, None, 10, now) == 0.0
    assert state.take("d", 2, None, 10, now) == 0.0
    assert state.take("d", 2, None, 10, now) > 0  # the third in a minute does not fit
    assert state.fail("d", now, 2, 10.0, 30.0) is False
    assert state.fail("d", now, 2, 10.0, 30.0) is True
    assert state.cooling(["d", "e"], now) == {"d": pytest.approx(now + 30.0)}
    assert state.get("k", now) is None
    state.put("k", b"value", 60.0, now)
    assert state.get("k", now) == b"value"
    assert not state.degraded


_OTHER_PROCESS = textwrap.dedent(
    """
    import sys
    from llmkit.registry import RedisState, Registry

    url, base, key, now = sys.argv[1:5]
    config = {"api_key": key, "api_base": base}
    reg = Registry(state=RedisState(url, prefix="shared"), clock=lambda: float(now))
    reg.register("main", {
        "deployments": [
            {"provider": "openai", "model": "gpt-4o-mini", "config": config, "rpm": 2},
            {"provider": "openai", "model": "gpt-4o", "config": config},
        ],
        "strategy": "round_robin", "retries": 0,
        "cooldown": {"failures": 1, "window": 60, "seconds": 60},
    })
    # mini answers; then gpt-4o fails (cooling it in Redis) and hands over to
    # mini, which has used up its two requests of this minute.
    for _ in range(2):
        reply = reg.completion("main", {"messages": [{"role": "user", "content": "Hi"}]})
        print(reply.text, reply.served_by.model)
    """
)


def test_two_processes_share_rate_limits_and_cooldowns(url: str, emulator: OpenAIEmulator) -> None:
    emulator.enqueue(Reply.text("one"), Reply.error(503), Reply.text("two"))
    out = subprocess.run(
        [sys.executable, "-c", _OTHER_PROCESS, url, emulator.base_url, KEY, repr(FIXED_NOW)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    assert out == ["one gpt-4o-mini", "two gpt-4o-mini"]
    served = [request.json["model"] for request in emulator.requests if request.json]
    assert served == ["gpt-4o-mini", "gpt-4o", "gpt-4o-mini"]

    # This process, same config and name, same Redis: mini is full for this
    # minute and gpt-4o is cooling, so nothing is left to call.
    config = {"api_key": KEY, "api_base": emulator.base_url}
    reg = Registry(state=RedisState(url, prefix="shared"), clock=lambda: FIXED_NOW)
    reg.register(
        "main",
        {
            "deployments": [
                {"provider": "openai", "model": "gpt-4o-mini", "config": config, "rpm": 2},
                {"provider": "openai", "model": "gpt-4o", "config": config},
            ],
            "when_limited": "move",
            "retries": 0,
            "cooldown": {"failures": 1, "window": 60, "seconds": 60},
        },
    )
    before = len(emulator.requests)
    with pytest.raises(RateLimitError, match="every deployment of 'main' is at its RPM"):
        reg.completion("main", HI)
    assert len(emulator.requests) == before  # refused here, before any network call
    cooled = reg.state.cooling(["main:1:openai/gpt-4o"], FIXED_NOW)
    assert cooled == {"main:1:openai/gpt-4o": FIXED_NOW + 60}


def test_redis_matches_memory_on_windows_and_token_corrections(url: str) -> None:
    from llmkit.registry import MemoryState

    for state in (RedisState(url, prefix="same"), MemoryState()):
        # Sliding cooldown window: failures at 0, 40, 70, 80 with window 60 cool at 80.
        cooled = [state.fail("d", t, 3, 60.0, 30.0) for t in (0.0, 40.0, 70.0, 80.0)]
        assert cooled == [False, False, False, True], state
        # A correction into a fresh window never leaves a negative count behind.
        state.add_tokens("t", -70, FIXED_NOW + 60)
        assert state.take("t", None, 100, 80, FIXED_NOW + 60) == 0.0
        assert state.take("t", None, 100, 80, FIXED_NOW + 60) > 0, state


def test_the_response_cache_is_shared(url: str, emulator: OpenAIEmulator) -> None:
    config = {"api_key": KEY, "api_base": emulator.base_url}
    spec = {"provider": "openai", "model": "gpt-4o-mini", "config": config, "cache": True}
    one, two = Registry(state=RedisState(url)), Registry(state=RedisState(url))
    one.register("c", spec)
    two.register("c", spec)
    emulator.enqueue(Reply.text("cached"))
    assert not one.completion("c", HI).served_by.cached
    again = two.completion("c", HI)
    assert again.served_by.cached
    assert again.text == "cached"
    assert len(emulator.requests) == 1


def test_redis_stopped_mid_run_loses_no_call(
    server: RedisServer, url: str, emulator: OpenAIEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    config = {"api_key": KEY, "api_base": emulator.base_url}
    state = RedisState(url, timeout=0.2, retry_after=60)
    reg = Registry(state=state)
    reg.register(
        "main",
        {
            "deployments": [
                {"provider": "openai", "model": "gpt-4o-mini", "config": config, "rpm": 1000}
            ],
            "cache": True,
        },
    )
    answers = []
    for i in range(40):
        if i == 20:
            server.stop()
        emulator.enqueue(Reply.text(f"answer {i}"))
        with caplog.at_level(logging.WARNING, logger="llmkit"):
            answers.append(
                reg.completion("main", {"messages": [{"role": "user", "content": str(i)}]}).text
            )
    assert answers == [f"answer {i}" for i in range(40)]
    assert state.degraded
    warnings = [r for r in caplog.records if r.name == "llmkit" and r.levelno == logging.WARNING]
    assert len(warnings) == 1  # one record per outage, not one per call
    assert "Redis failed" in warnings[0].getMessage()
    assert KEY not in warnings[0].getMessage()


def test_a_redis_that_never_answers_degrades_within_its_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A server that accepts connections and says nothing: a hung Redis.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        port = listener.getsockname()[1]
        state = RedisState(f"redis://127.0.0.1:{port}/0", timeout=0.2)
        with caplog.at_level(logging.WARNING, logger="llmkit"):
            began = time.monotonic()
            assert state.take("d", 1, None, 1, time.time()) == 0.0  # counted locally
            # Not a speed check: a hung server would otherwise hold this forever.
            assert time.monotonic() - began < 10
            assert state.take("d", 1, None, 1, time.time()) > 0  # the local count holds
        assert state.degraded
        assert any("Redis failed" in r.getMessage() for r in caplog.records)
    finally:
        stop.set()
        thread.join(timeout=5)
        for sock in held:
            sock.close()
        listener.close()


def test_redis_state_needs_a_url_or_client() -> None:
    from llmkit.errors import InvalidRequestError

    with pytest.raises(InvalidRequestError, match="url="):
        RedisState()


def test_registry_refuses_a_state_that_is_not_one() -> None:
    from llmkit.errors import InvalidRequestError

    state: Any = object()
    with pytest.raises(InvalidRequestError, match="state must be"):
        Registry(state=state)
