"""The bodies of a system's calls: in the caller's thread, or as pool tasks.

Each body keeps the books of its call (the provider's calls in flight, the
pool's slot, the metrics) and sets the call's abort cell for the thread
that runs it. The :class:`~llmkit.system.System` methods check the input
and pick the body.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from concurrent.futures import Future
from time import perf_counter
from typing import Any, cast

from llmkit import generics
from llmkit.config import Config
from llmkit.errors import LLMError, StreamInterruptedError
from llmkit.system._abort import AbortCell, current_cell
from llmkit.system._entry import Entry
from llmkit.system._health import ProviderHealth, probe_once
from llmkit.system._metrics import Stats
from llmkit.system._pool import Pool, Task
from llmkit.system._stream import Channel, SystemStream
from llmkit.types import ChatRequest, ChatResponse

__all__ = ["accept", "call_task", "probe_task", "refuse", "run_here", "stream_task"]

_CELL = current_cell()


def run_here(
    pool: Pool, entry: Entry, stats: Stats, request: ChatRequest, config: Config
) -> ChatResponse:
    """Run a whole call on the caller's thread, once it holds one of ``pool``'s slots.

    Raises:
        ServiceUnavailableError: the pool's queue is full (when it raises).
        LLMError: the pool is closed, or the call failed.
    """
    entry.enter()
    try:
        try:
            pool.enter(stats.queue)
        except LLMError as exc:
            exc.provider, exc.model = entry.name, request.model
            stats.rejected(exc)
            raise
        stats.started()
        started = perf_counter()
        try:
            response = cast(ChatResponse, generics.completion(entry.key, request, config))
        except BaseException as exc:
            stats.failed(exc, perf_counter() - started)
            raise
        finally:
            pool.exit()
        stats.succeeded(perf_counter() - started, response.usage)
        return response
    finally:
        entry.exit()


def accept(entry: Entry, stats: Stats) -> None:
    """Count a task in before it is queued (a pool thread may start it at once).

    Raises:
        ProviderNotFoundError: the provider was removed.
    """
    entry.enter()
    stats.queue(1)


def refuse(entry: Entry, stats: Stats, request: ChatRequest, error: LLMError | None) -> None:
    """Undo :func:`accept` for a task the pool refused (``error``) or never queued (``None``)."""
    stats.queue(-1)
    if error is not None:
        error.provider, error.model = entry.name, request.model
        stats.rejected(error)
    entry.exit()


def _task(entry: Entry, stats: Stats, run: Any, on_cancel: Callable[[LLMError], None]) -> Task:
    def cancel(error: LLMError) -> None:
        # Dropped from the queue (shutdown): the call never ran.
        stats.queue(-1)
        stats.failed(error, None, running=False)
        try:
            on_cancel(error)
        finally:
            entry.exit()

    return Task(run, cancel)


def stream_task(
    entry: Entry, request: ChatRequest, config: Config, stats: Stats, buffer: int
) -> tuple[SystemStream, Task]:
    """A stream's handle, and the task whose pool thread feeds it."""
    channel = Channel(buffer)
    task = _task(
        entry, stats, functools.partial(_feed, entry, request, config, stats, channel), channel.end
    )
    # Whoever aborts the call (the reader, a shutdown) also ends the reader's wait.
    task.cell.on_abort = channel.end
    return SystemStream(entry.name, request.model, channel, task.cell), task


def _feed(
    entry: Entry,
    request: ChatRequest,
    config: Config,
    stats: Stats,
    channel: Channel,
    cell: AbortCell,
) -> None:
    # On a pool thread: open the stream, hand its chunks over, keep the books.
    stats.queue(-1)
    stats.running()
    token = _CELL.set(cell)
    started = perf_counter()
    stream: Any = None
    error: LLMError | None = None
    usage = None
    complete = False
    try:
        if channel.closed:
            return  # the reader gave up while the call was queued
        stream = generics.completion(entry.key, request, config)
        first = True
        for chunk in stream:
            if first:
                stats.first_token(perf_counter() - started)
                first = False
            if chunk.usage is not None:
                usage = chunk.usage
            if not channel.put(chunk):
                break
        else:
            complete = True
    except LLMError as exc:
        error = exc
    except Exception as exc:
        error = LLMError(
            f"reading the stream from {entry.name} failed ({type(exc).__name__}); "
            "report it to llmkit",
            provider=entry.name,
            model=request.model,
            retryable=False,
        )
    finally:
        if stream is not None and not complete:
            with contextlib.suppress(Exception):
                stream.close()
        _CELL.reset(token)
        seconds = perf_counter() - started

        def settle(ended: LLMError | None) -> None:
            # The books follow what the reader sees. A shutdown's abort ends
            # the reader's wait at once, so it may win the race against a
            # stream finishing its last read: then the reader gets the
            # shutdown's error, and the metrics count that error too.
            if complete and (ended is None or channel.closed):
                stats.succeeded(seconds, usage)
            elif channel.closed:
                stats.cancelled_call()
            else:
                stats.failed(
                    ended or error or StreamInterruptedError("the stream stopped"), seconds
                )

        channel.end(error, settle)
        entry.exit()


def call_task(
    entry: Entry,
    request: ChatRequest,
    config: Config,
    stats: Stats,
    future: Future[ChatResponse],
    closing: Callable[[], bool],
) -> Task:
    """The task of a whole call whose outcome goes into ``future``.

    ``closing()`` tells an abort by shutdown (a failure) from one by the
    caller (a cancellation).
    """

    def on_cancel(error: LLMError) -> None:
        if future.set_running_or_notify_cancel():
            future.set_exception(error)

    run = functools.partial(_run_task, entry, request, config, stats, future, closing)
    return _task(entry, stats, run, on_cancel)


def _run_task(
    entry: Entry,
    request: ChatRequest,
    config: Config,
    stats: Stats,
    future: Future[ChatResponse],
    closing: Callable[[], bool],
    cell: AbortCell,
) -> None:
    # On a pool thread: one whole call, its outcome into the future.
    stats.queue(-1)
    try:
        if not future.set_running_or_notify_cancel():
            stats.cancelled_call(running=False)
            return
        stats.running()
        token = _CELL.set(cell)
        started = perf_counter()
        try:
            response = cast(ChatResponse, generics.completion(entry.key, request, config))
        except BaseException as exc:
            if cell.aborted and not closing():
                stats.cancelled_call()
            else:
                stats.failed(exc, perf_counter() - started)
            future.set_exception(exc)
        else:
            stats.succeeded(perf_counter() - started, response.usage)
            future.set_result(response)
        finally:
            _CELL.reset(token)
    finally:
        entry.exit()


def probe_task(entry: Entry, timeout: float, future: Future[ProviderHealth]) -> Task:
    """The task of one health probe, its record into ``future``.

    The caller has counted the probe in (``entry.enter()``).
    """

    def cancel(error: LLMError) -> None:
        entry.exit()
        future.set_exception(error)

    return Task(functools.partial(_probe, entry, timeout, future), cancel)


def _probe(entry: Entry, timeout: float, future: Future[ProviderHealth], cell: AbortCell) -> None:
    token = _CELL.set(cell)
    started = perf_counter()
    try:
        error = probe_once(entry.key, entry.config, entry.settings.probe_model, timeout)
        future.set_result(entry.health.record(perf_counter() - started, error))
    except BaseException as exc:  # pragma: no cover - probe_once catches what it can
        future.set_exception(exc)
    finally:
        _CELL.reset(token)
        entry.exit()
