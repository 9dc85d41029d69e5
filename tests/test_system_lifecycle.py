"""llmkit.system lifecycle: bounded queues, shutdown (drain, cancel, leaks), global and scoped use."""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

import pytest

import llmkit
from llmkit import _http, core, system
from llmkit.system import System
from llmkit_contracts import OpenAIEmulator, Reply

KEY = "sk-system-test-0123456789"
MODEL = "gpt-4o-mini"
REQUEST = {"messages": [{"role": "user", "content": "Hello there"}]}
FOREVER = 3600.0

Make = Callable[..., System]


@pytest.fixture
def make_system(emulator: OpenAIEmulator) -> Iterator[Make]:
    made: list[System] = []

    def make(**extra: Any) -> System:
        config = {"providers": {"openai": {"api_key": KEY, "api_base": emulator.base_url}}}
        created = system.create_system({**config, **extra})
        made.append(created)
        return created

    yield make
    for created in made:
        created.shutdown(timeout=10, cancel=True)


@pytest.fixture(autouse=True)
def _no_global_system() -> Iterator[None]:
    yield
    system.shutdown(timeout=10, cancel=True)


def _wait_until(check: Callable[[], bool], what: str) -> None:
    # A guard against a hang, not a timing threshold.
    event = threading.Event()
    for _ in range(2000):
        if check():
            return
        event.wait(0.005)
    raise AssertionError(f"never happened: {what}")


def _pool(made: System) -> Any:
    return made.metrics()["pools"]["api_calls"]


def _counters(made: System) -> Any:
    return made.metrics()["providers"]["openai"][MODEL]


def _one_running_one_queued(made: System, emulator: OpenAIEmulator) -> list[Future[Any]]:
    """Fill a pool of one slot and a queue of one place with slow calls."""
    emulator.enqueue(Reply.text("first", delay=0.3), Reply.text("second"))
    running = made.submit("openai", MODEL, REQUEST)
    _wait_until(lambda: len(emulator.requests) == 1, "the first call reached the server")
    queued = made.submit("openai", MODEL, REQUEST)
    assert _pool(made)["queued"] == 1
    return [running, queued]


# --- bounded queues ------------------------------------------------------------------------


FULL = {"api_calls": {"pool_size": 1, "queue_size": 1, "when_full": "raise"}}


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.submit("openai", MODEL, REQUEST),
        lambda s: s.completion("openai", MODEL, REQUEST),
        lambda s: s.completion("openai", MODEL, REQUEST, stream=True),
        lambda s: asyncio.run(s.acompletion("openai", MODEL, REQUEST)),
    ],
    ids=["submit", "completion", "stream", "acompletion"],
)
def test_system_full_queue_raises_naming_pool_and_size(
    make_system: Make, emulator: OpenAIEmulator, call: Callable[[System], Any]
) -> None:
    made = make_system(thread_pools=FULL)
    futures = _one_running_one_queued(made, emulator)
    with pytest.raises(llmkit.ServiceUnavailableError) as caught:
        call(made)
    error = caught.value
    assert error.retryable
    assert "api_calls pool is full" in str(error)
    assert "thread_pools.api_calls.queue_size=1" in str(error)
    assert error.provider == "openai"
    assert [future.result(timeout=30).text for future in futures] == ["first", "second"]
    counters = _counters(made)
    assert counters["errors"] == {"ServiceUnavailableError": 1}
    assert (counters["requests"], counters["successes"]) == (3, 2)
    assert _pool(made)["rejected"] == 1


def test_system_full_queue_blocks_until_there_is_room(
    make_system: Make, emulator: OpenAIEmulator
) -> None:
    made = make_system(thread_pools={"api_calls": {"pool_size": 1, "queue_size": 1}})
    futures = _one_running_one_queued(made, emulator)
    blocked: list[Future[Any]] = []
    caller = threading.Thread(target=lambda: blocked.append(made.submit("openai", MODEL, REQUEST)))
    caller.start()
    caller.join()  # returns once the first call ended and a place in the queue came free
    assert [f.result(timeout=30).text for f in [*futures, *blocked]] == [
        "first",
        "second",
        "Echo: Hello there",
    ]


def test_system_queued_inline_calls_count_as_queue_depth(
    make_system: Make, emulator: OpenAIEmulator
) -> None:
    made = make_system(thread_pools={"api_calls": {"pool_size": 1, "queue_size": 5}})
    emulator.enqueue(Reply.text("first", delay=0.3))
    running = made.submit("openai", MODEL, REQUEST)
    _wait_until(lambda: len(emulator.requests) == 1, "the first call reached the server")
    out: list[str] = []
    caller = threading.Thread(
        target=lambda: out.append(made.completion("openai", MODEL, REQUEST).text)
    )
    caller.start()
    _wait_until(lambda: _counters(made)["queue_depth"] == 1, "the inline call waits in the queue")
    assert _counters(made)["in_flight"] == 1
    caller.join()
    assert running.result(timeout=30).text == "first"
    assert out == ["Echo: Hello there"]
    assert (_counters(made)["queue_depth"], _counters(made)["in_flight"]) == (0, 0)


def test_system_full_queue_blocks_a_coroutine_not_the_loop(
    make_system: Make, emulator: OpenAIEmulator
) -> None:
    made = make_system(thread_pools={"api_calls": {"pool_size": 1, "queue_size": 0}})
    emulator.enqueue(Reply.text("first", delay=0.3))

    async def main() -> tuple[list[str], int]:
        first = asyncio.ensure_future(made.acompletion("openai", MODEL, REQUEST, stream=False))
        while not emulator.requests:
            await asyncio.sleep(0.005)
        second = asyncio.ensure_future(made.acompletion("openai", MODEL, REQUEST, stream=False))
        ticks = 0
        while not second.done():
            ticks += 1
            await asyncio.sleep(0.01)
        return [(await first).text, (await second).text], ticks

    texts, ticks = asyncio.run(main())
    assert texts == ["first", "Echo: Hello there"]
    assert ticks > 2


def test_system_health_pool_full_raises(make_system: Make) -> None:
    made = make_system(
        thread_pools={"health_checks": {"pool_size": 1, "queue_size": 0, "when_full": "raise"}}
    )
    made.add_provider(
        "second",
        {"provider": "openai", "api_key": KEY, "api_base": made.get_provider("openai")["api_base"]},
    )
    with pytest.raises(llmkit.ServiceUnavailableError, match="health_checks pool is full"):
        made.health_check()


# --- shutdown ------------------------------------------------------------------------------


def test_system_shutdown_drains_in_flight_work(make_system: Make, emulator: OpenAIEmulator) -> None:
    made = make_system(thread_pools={"api_calls": {"pool_size": 1, "queue_size": 5}})
    futures = _one_running_one_queued(made, emulator)
    system.shutdown_system(made)
    assert [future.result(timeout=0).text for future in futures] == ["first", "second"]
    assert made.closed


def test_system_shutdown_cancel_stops_queued_and_running_work(
    make_system: Make, emulator: OpenAIEmulator
) -> None:
    made = make_system(thread_pools={"api_calls": {"pool_size": 2, "queue_size": 5}})
    emulator.enqueue(Reply.text("never", delay=FOREVER), Reply.text("words", chunk_delay=FOREVER))
    running = made.submit("openai", MODEL, REQUEST)
    _wait_until(lambda: len(emulator.requests) == 1, "the first call reached the server")
    handle = made.completion("openai", MODEL, REQUEST, stream=True)
    next(handle)
    queued = made.submit("openai", MODEL, REQUEST)
    made.shutdown(cancel=True)
    for future in (running, queued):
        with pytest.raises(llmkit.LLMError, match="shut down"):
            future.result(timeout=0)
    with pytest.raises(llmkit.LLMError, match="shut down"):
        list(handle)
    assert _pool(made)["running"] == 0
    assert len(emulator.requests) == 2  # the queued call never went out


def test_system_shutdown_after_timeout_cancels_what_is_left(
    make_system: Make, emulator: OpenAIEmulator
) -> None:
    made = make_system()
    emulator.enqueue(Reply.text("never", delay=FOREVER))
    running = made.submit("openai", MODEL, REQUEST)
    _wait_until(lambda: len(emulator.requests) == 1, "the call reached the server")
    made.shutdown(timeout=0.05)
    with pytest.raises(llmkit.LLMError, match="shut down"):
        running.result(timeout=0)


def test_system_shutdown_is_idempotent_and_a_context_manager(emulator: OpenAIEmulator) -> None:
    config = {"providers": {"openai": {"api_key": KEY, "api_base": emulator.base_url}}}
    with system.create_system(config) as made:
        assert not made.closed
    assert made.closed
    made.shutdown()
    system.shutdown_system(made, timeout=1)
    assert made.system_info()["state"] == "shut down"
    assert repr(made) == "<System shut down, providers: openai>"


CALLS_AFTER_SHUTDOWN: list[tuple[str, Callable[[System], Any]]] = [
    ("completion", lambda s: system.completion(s, "openai", MODEL, REQUEST)),
    ("stream", lambda s: s.completion("openai", MODEL, REQUEST, stream=True)),
    (
        "make_request",
        lambda s: system.make_request(s, {"provider": "openai", "model": MODEL, **REQUEST}),
    ),
    ("submit", lambda s: system.submit(s, "openai", MODEL, REQUEST)),
    ("acompletion", lambda s: asyncio.run(system.acompletion(s, "openai", MODEL, REQUEST))),
    ("health_check", lambda s: system.health_check(s)),
    (
        "add_provider",
        lambda s: system.add_provider(s, "more", {"provider": "openai", "api_key": KEY}),
    ),
    ("remove_provider", lambda s: system.remove_provider(s, "openai")),
]


@pytest.mark.parametrize(
    "call", [c for _, c in CALLS_AFTER_SHUTDOWN], ids=[n for n, _ in CALLS_AFTER_SHUTDOWN]
)
def test_system_call_after_shutdown_raises_a_clear_error(
    make_system: Make, emulator: OpenAIEmulator, call: Callable[[System], Any]
) -> None:
    made = make_system()
    made.shutdown()
    with pytest.raises(
        llmkit.LLMError, match=r"this system is shut down; create a new one"
    ) as caught:
        call(made)
    assert not caught.value.retryable
    assert emulator.requests == []
    # What only reads still works.
    assert made.list_providers() == ["openai"]
    assert made.metrics()["pools"]["api_calls"]["closed"]


def test_system_shutdown_from_its_own_pool_thread_is_refused(make_system: Make) -> None:
    made = make_system()
    seen: list[BaseException] = []
    done = threading.Event()

    def on_done(_: Future[Any]) -> None:
        # Done callbacks run on the pool thread that finished the call.
        try:
            made.shutdown()
        except BaseException as exc:
            seen.append(exc)
        done.set()

    made.submit("openai", MODEL, REQUEST).add_done_callback(on_done)
    done.wait(30)
    assert len(seen) == 1
    assert isinstance(seen[0], llmkit.InvalidRequestError)
    assert "own pool threads" in str(seen[0])


def test_system_shutdown_closes_only_its_own_clients(
    make_system: Make, emulator: OpenAIEmulator
) -> None:
    core_config = {"api_key": KEY, "api_base": emulator.base_url}
    assert core.completion("openai", MODEL, REQUEST, core_config).text == "Echo: Hello there"
    core_clients = list(_http.default_transport._sync.values())
    made = make_system()
    made.completion("openai", MODEL, REQUEST)
    owned = list(made._providers["openai"].transport._sync.values())
    assert owned
    made.shutdown()
    assert all(client.is_closed for client in owned)
    assert core_clients
    assert not any(client.is_closed for client in core_clients)
    assert core.completion("openai", MODEL, REQUEST, core_config).text == "Echo: Hello there"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/fd")
def test_system_shutdown_leaks_no_threads_or_sockets() -> None:
    with OpenAIEmulator() as emulator:
        core.list_providers()  # entry points load outside the measure
        threads_before = set(threading.enumerate())
        fds_before = set(os.listdir("/proc/self/fd"))
        config = {
            "providers": {"openai": {"api_key": KEY, "api_base": emulator.base_url}},
            "thread_pools": {"api_calls": {"pool_size": 4}},
            "health_checks": {"interval": 0.01, "timeout": 5},
        }
        made = system.create_system(config)
        made.completion("openai", MODEL, REQUEST)
        made.completion("openai", MODEL, REQUEST, stream=True).collect()
        futures = [made.submit("openai", MODEL, REQUEST) for _ in range(8)]
        emulator.enqueue(Reply.text("cut short", chunk_size=1, chunk_delay=FOREVER))
        early = made.completion("openai", MODEL, REQUEST, stream=True)
        next(early)
        early.close()

        async def both() -> None:
            await made.acompletion("openai", MODEL, REQUEST)
            handle = await made.acompletion("openai", MODEL, REQUEST, stream=True)
            await handle.acollect()

        asyncio.run(both())
        made.health_check()
        _wait_until(lambda: made.health()["openai"].checked_at is not None, "a periodic check")
        made.add_provider(
            "extra", {"provider": "openai", "api_key": KEY, "api_base": emulator.base_url}
        )
        made.completion("extra", MODEL, REQUEST)
        made.remove_provider("extra")
        assert all(future.result(timeout=30) for future in futures)
        assert len(threading.enumerate()) > len(threads_before)
        made.shutdown()
    # The emulator's own threads end (and close their server-side sockets)
    # soon after it stops; whatever the system opened must be gone already,
    # while the system object still exists (nothing is left for the garbage
    # collector to close).
    _wait_until(
        lambda: (
            not any(
                t.name.startswith("llmkit-emulator") and t not in threads_before
                for t in threading.enumerate()
            )
        ),
        "the emulator's threads ended",
    )
    assert made.closed
    assert early is not None
    leaked_threads = [t for t in set(threading.enumerate()) - threads_before if t.is_alive()]
    assert leaked_threads == []
    assert set(os.listdir("/proc/self/fd")) <= fds_before


# --- global and scoped systems ---------------------------------------------------------------


def test_system_global_init_and_shutdown(emulator: OpenAIEmulator) -> None:
    config = {"providers": {"openai": {"api_key": KEY, "api_base": emulator.base_url}}}
    assert system.get_global_system() is None
    made = system.init(config)
    assert system.get_global_system() is made
    with pytest.raises(llmkit.InvalidRequestError, match="already running"):
        system.init(config)
    assert made.completion("openai", MODEL, REQUEST).text == "Echo: Hello there"
    system.shutdown()
    assert made.closed
    assert system.get_global_system() is None
    system.shutdown()  # without a global system: nothing to do


def test_system_with_config_installs_and_restores(emulator: OpenAIEmulator) -> None:
    config = {"providers": {"openai": {"api_key": KEY, "api_base": emulator.base_url}}}
    outer = system.create_system(config)
    system.set_global_system(outer)
    with system.with_config(config) as inner:
        assert system.get_global_system() is inner
        assert system.completion(inner, "openai", MODEL, REQUEST).text == "Echo: Hello there"
    assert inner.closed
    assert system.get_global_system() is outer
    system.set_global_system(None)
    assert system.get_global_system() is None
    outer.shutdown()
    with pytest.raises(llmkit.InvalidRequestError, match="must be a System"):
        system.set_global_system("x")  # type: ignore[arg-type]


def test_system_with_system_is_scoped_to_the_context(make_system: Make) -> None:
    made = make_system()
    seen_elsewhere: list[System | None] = []
    with system.with_system(made) as bound:
        assert bound is made
        assert system.get_global_system() is made
        thread = threading.Thread(target=lambda: seen_elsewhere.append(system.get_global_system()))
        thread.start()
        thread.join()
    assert seen_elsewhere == [None]  # another thread does not see this block's system
    assert system.get_global_system() is None


def test_system_dropped_without_shutdown_stops_its_threads(emulator: OpenAIEmulator) -> None:
    config = {"providers": {"openai": {"api_key": KEY, "api_base": emulator.base_url}}}
    made = system.create_system(config)
    made.submit("openai", MODEL, REQUEST).result(timeout=30)
    threads = list(made._api._threads)
    assert threads
    del made
    gc.collect()
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive()
