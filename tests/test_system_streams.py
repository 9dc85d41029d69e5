"""llmkit.system stream handles: bounded buffer, backpressure, early close, async face."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import llmkit
from llmkit import system
from llmkit.system import System, SystemStream
from llmkit_contracts import OpenAIEmulator, Reply

KEY = "sk-system-test-0123456789"
MODEL = "gpt-4o-mini"
REQUEST = {"messages": [{"role": "user", "content": "Hello there"}]}
# Never sent in a test's lifetime: the emulator abandons the wait when it stops.
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


def _wait_until(check: Callable[[], bool], what: str) -> None:
    # A guard against a hang, not a timing threshold.
    event = threading.Event()
    for _ in range(2000):
        if check():
            return
        event.wait(0.005)
    raise AssertionError(f"never happened: {what}")


def _stream(made: System) -> SystemStream:
    return made.completion("openai", MODEL, REQUEST, stream=True)


def _pool(made: System) -> Any:
    return made.metrics()["pools"]["api_calls"]


def _counters(made: System) -> Any:
    return made.metrics()["providers"]["openai"][MODEL]


def test_system_stream_iterates_and_collects(make_system: Make) -> None:
    made = make_system()
    with _stream(made) as handle:
        texts = [chunk.text for chunk in handle]
        reply = handle.collect()
    assert "".join(texts) == reply.text == "Echo: Hello there"
    assert reply.choices[0].finish_reason == "stop"
    assert repr(handle) == "<SystemStream openai/gpt-4o-mini complete>"
    counters = _counters(made)
    assert counters["successes"] == 1
    assert counters["time_to_first_token"]["count"] == 1
    assert (counters["tokens_in"], counters["tokens_out"]) == (10, 3)


def test_system_stream_collect_at_once(make_system: Make) -> None:
    assert _stream(make_system()).collect().text == "Echo: Hello there"


def test_system_stream_backpressure_bounds_the_buffer(
    make_system: Make, emulator: OpenAIEmulator
) -> None:
    made = make_system(defaults={"stream_buffer": 2})
    emulator.enqueue(Reply.text("x" * 40, chunk_size=1))
    handle = _stream(made)
    first = next(handle)
    # The feeder reads ahead until the buffer is full, then waits.
    _wait_until(lambda: handle.buffered == 2, "the buffer filled")
    channel = handle._channel
    assert not channel._done  # the feeder waits; it has not read the whole stream
    rest = [chunk.text for chunk in handle]
    assert first.text + "".join(rest) == "x" * 40
    assert handle.buffered == 0


def test_system_stream_closed_early_frees_its_thread_at_once(
    make_system: Make, emulator: OpenAIEmulator
) -> None:
    made = make_system(thread_pools={"api_calls": {"pool_size": 1}})
    emulator.enqueue(Reply.text("one two three", chunk_size=4, chunk_delay=FOREVER))
    handle = _stream(made)
    assert next(handle).text == ""  # the role chunk, then the server goes silent
    handle.close()
    # The pool's only thread was blocked in a socket read; closing aborted
    # the response, so the next call gets the thread (and the slot) now.
    assert made.submit("openai", MODEL, REQUEST).result(timeout=30).text == "Echo: Hello there"
    _wait_until(lambda: _counters(made)["cancelled"] == 1, "the stream counted as cancelled")
    assert _pool(made)["running"] == 0
    with pytest.raises(llmkit.StreamInterruptedError, match="closed before its end"):
        handle.collect()
    assert list(handle) == []
    assert repr(handle).endswith("closed>")


def test_system_stream_closed_while_the_feeder_waits_for_room(
    make_system: Make, emulator: OpenAIEmulator
) -> None:
    made = make_system(thread_pools={"api_calls": {"pool_size": 1}}, defaults={"stream_buffer": 1})
    emulator.enqueue(Reply.text("y" * 50, chunk_size=1))
    handle = _stream(made)
    next(handle)
    _wait_until(lambda: handle.buffered == 1, "the feeder is blocked on a full buffer")
    handle.close()
    assert made.submit("openai", MODEL, REQUEST).result(timeout=30).text == "Echo: Hello there"


def test_system_stream_dropped_unclosed_frees_its_thread(
    make_system: Make, emulator: OpenAIEmulator
) -> None:
    made = make_system(thread_pools={"api_calls": {"pool_size": 1}})
    emulator.enqueue(Reply.text("z" * 30, chunk_size=1, chunk_delay=FOREVER))
    handle = _stream(made)
    next(handle)
    del handle
    gc.collect()
    assert made.submit("openai", MODEL, REQUEST).result(timeout=30).text == "Echo: Hello there"


def test_system_stream_closed_before_it_runs(make_system: Make, emulator: OpenAIEmulator) -> None:
    made = make_system(thread_pools={"api_calls": {"pool_size": 1}})
    emulator.enqueue(Reply.text("slow", delay=0.2))
    blocker = made.submit("openai", MODEL, REQUEST)
    handle = _stream(made)  # queued behind the blocker
    handle.close()
    assert blocker.result(timeout=30).text == "slow"
    _wait_until(lambda: _pool(made)["completed"] == 2, "the queued stream was skipped")
    assert len(emulator.requests) == 1  # the closed stream never reached the server
    assert _counters(made)["cancelled"] == 1


@pytest.mark.parametrize(
    ("reply", "error", "chunks"),
    [
        (
            Reply.text("abcdefgh", chunk_size=2, error_after=3, message="overloaded now"),
            llmkit.LLMError,
            2,
        ),
        (
            Reply.text("abcdefgh", chunk_size=2, disconnect_after=3),
            llmkit.StreamInterruptedError,
            2,
        ),
        (Reply.error(401, message="bad key"), llmkit.AuthenticationError, 0),
    ],
    ids=["error-event", "disconnect", "error-at-open"],
)
def test_system_stream_failures_raise_after_the_chunks_before_them(
    make_system: Make,
    emulator: OpenAIEmulator,
    reply: Reply,
    error: type[llmkit.LLMError],
    chunks: int,
) -> None:
    made = make_system()
    emulator.enqueue(reply)
    handle = _stream(made)
    seen: list[Any] = []

    def read() -> None:
        for chunk in handle:
            seen.append(chunk)

    with pytest.raises(error):
        read()
    assert len(seen) >= chunks
    with pytest.raises(error):
        handle.collect()
    assert list(handle) == []
    assert sum(_counters(made)["errors"].values()) == 1


def test_system_stream_async_face(make_system: Make, emulator: OpenAIEmulator) -> None:
    made = make_system()
    emulator.enqueue(Reply.text("async words here", chunk_size=3, chunk_delay=0.01))

    async def main() -> tuple[str, str]:
        handle = await made.acompletion("openai", MODEL, REQUEST, stream=True)
        async with handle:
            text = "".join([chunk.text async for chunk in handle])
        other = made.completion("openai", MODEL, REQUEST, stream=True)
        collected = await other.acollect()
        return text, collected.text

    assert asyncio.run(main()) == ("async words here", "Echo: Hello there")


def test_system_stream_async_close_early(make_system: Make, emulator: OpenAIEmulator) -> None:
    made = make_system(thread_pools={"api_calls": {"pool_size": 1}})
    emulator.enqueue(Reply.text("slow", chunk_delay=FOREVER))

    async def main() -> None:
        handle = await system.acompletion(made, "openai", MODEL, REQUEST, stream=True)
        await handle.__anext__()
        await handle.aclose()
        with pytest.raises(StopAsyncIteration):
            await handle.__anext__()

    asyncio.run(main())
    assert made.submit("openai", MODEL, REQUEST).result(timeout=30).text == "Echo: Hello there"


def test_system_stream_reader_in_another_thread(make_system: Make) -> None:
    made = make_system()
    handle = _stream(made)
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(handle.collect().text))
    reader.start()
    reader.join()
    assert out == ["Echo: Hello there"]


def test_system_streams_from_many_threads(make_system: Make) -> None:
    made = make_system(thread_pools={"api_calls": {"pool_size": 4, "queue_size": 100}})
    results: list[str] = []
    lock = threading.Lock()

    def read() -> None:
        for _ in range(5):
            text = _stream(made).collect().text
            with lock:
                results.append(text)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["Echo: Hello there"] * 40
    assert _counters(made)["successes"] == 40
    assert _pool(made)["threads"] <= 4
