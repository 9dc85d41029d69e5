"""A bounded pool: ``pool_size`` slots, ``queue_size`` places to wait, then block or raise.

Work enters a pool two ways, and both count against the same bounds:

* **lent threads**: a synchronous call runs in its caller's thread once it
  holds a slot (:meth:`Pool.enter` / :meth:`Pool.exit`). Handing it to a
  pool thread and waiting for the answer costs about 45 µs of CPU a call
  (two thread wake-ups), half of a whole HTTP call's floor; taking a slot
  costs about one microsecond;
* **tasks**: futures, asyncio calls and the feeders of streams run on the
  pool's own threads (:meth:`Pool.submit`), started as they are needed, up
  to ``pool_size``.

A call waits (queued) while every slot is taken; at most ``queue_size``
calls wait. When that is full too, ``when_full="block"`` makes the caller
wait for room and ``"raise"`` raises a retryable ``ServiceUnavailableError``
that names the pool and its ``queue_size``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from llmkit.errors import LLMError, ServiceUnavailableError
from llmkit.system._abort import AbortCell

__all__ = ["Pool", "Task"]


class Task:
    """Work for a pool thread: ``run(cell)``, or ``cancel(error)`` if it never runs."""

    __slots__ = ("cancel", "cell", "run")

    def __init__(
        self,
        run: Callable[[AbortCell], None],
        cancel: Callable[[LLMError], None],
        cell: AbortCell | None = None,
    ) -> None:
        self.run = run
        self.cancel = cancel
        self.cell = cell if cell is not None else AbortCell()


ShutDown = Callable[[], LLMError]


class Pool:
    """A bounded pool of slots and threads; see the module docstring.

    Args:
        name: the pool's name in the system config (``"api_calls"``), for errors.
        size: how many calls run at once.
        queue_size: how many more may wait.
        block: wait for room in a full queue (else raise).
        shut_down: makes the error a call meets after :meth:`close`.
    """

    def __init__(
        self, name: str, size: int, queue_size: int, block: bool, shut_down: ShutDown
    ) -> None:
        self.name = name
        self.size = size
        self.queue_size = queue_size
        self.block = block
        self._shut_down = shut_down
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # idle threads wait for a task
        self._slot = threading.Condition(self._lock)  # queued lent threads wait for a slot
        self._room = threading.Condition(self._lock)  # blocked callers wait for queue room
        self._idle_pool = threading.Condition(self._lock)  # close() waits for the last call
        self._tasks: deque[Task] = deque()
        self._async_room: deque[Any] = deque()  # (loop, future) of blocked async callers
        self._active = 0  # slots taken
        self._waiting = 0  # lent threads queued for a slot
        self._room_waiters = 0  # threads blocked on a full queue
        self._idle = 0  # pool threads waiting for work
        self._threads: list[threading.Thread] = []
        self._cells: set[AbortCell] = set()
        self._closed = False
        self._cancelled = False
        self.completed = 0
        self.rejected = 0

    # --- admission --------------------------------------------------------------------------

    def _full(self) -> bool:
        return self._active + len(self._tasks) + self._waiting >= self.size + self.queue_size

    def _full_error(self) -> ServiceUnavailableError:
        self.rejected += 1
        return ServiceUnavailableError(
            f"the {self.name} pool is full: {self.size} calls running and "
            f"{self.queue_size} waiting (thread_pools.{self.name}.queue_size={self.queue_size}); "
            f"retry later, raise thread_pools.{self.name}.pool_size or queue_size, or set "
            f"thread_pools.{self.name}.when_full='block'"
        )

    def _wait_for_room(self) -> None:
        # Called with the lock held.
        if not self.block:
            raise self._full_error()
        self._room_waiters += 1
        try:
            while self._full() and not self._closed:
                self._room.wait()
        finally:
            self._room_waiters -= 1
        if self._closed:
            raise self._shut_down()

    def _freed_room(self) -> None:
        # One place in the queue came free (lock held): wake one blocked caller.
        if self._room_waiters:
            self._room.notify()
        while self._async_room:
            loop, future = self._async_room.popleft()
            if _wake(loop, future):
                break

    def enter(self, queued: Callable[[int], None] | None = None) -> None:
        """Take a slot for a call on the caller's thread; wait in the queue if none is free.

        ``queued(+1)`` and ``queued(-1)`` are called (lock held) when the call
        starts and stops waiting, for queue-depth metrics. Such a call has no
        abort cell: it runs on its caller's thread, bounded by its own
        timeouts, and :meth:`cancel` waits for it rather than aborting it.

        Raises:
            ServiceUnavailableError: the queue is full and the pool raises when full.
            LLMError: the pool is closed.
        """
        with self._lock:
            if self._closed:
                raise self._shut_down()
            if self._active < self.size and not self._tasks and not self._waiting:
                self._active += 1
                return
            if self._full():
                self._wait_for_room()
            self._waiting += 1
            if queued is not None:
                queued(1)
            try:
                while self._active >= self.size and not self._cancelled:
                    self._slot.wait()
            finally:
                self._waiting -= 1
                if queued is not None:
                    queued(-1)
                self._freed_room()
            if self._cancelled:
                raise self._shut_down()
            self._active += 1

    def exit(self, cell: AbortCell | None = None) -> None:
        """Give back the slot taken by :meth:`enter` (or by a pool thread's task)."""
        with self._lock:
            self._active -= 1
            self.completed += 1
            if cell is not None:
                self._cells.discard(cell)
            if self._room_waiters or self._async_room:
                self._freed_room()  # a slot counts as room too
            self._dispatch()
            if self._waiting:
                self._slot.notify()
            if self._closed:
                self._idle_pool.notify_all()

    def submit(self, task: Task) -> None:
        """Queue ``task`` for a pool thread, starting one if none is free.

        Raises:
            ServiceUnavailableError: the queue is full and the pool raises when full.
            LLMError: the pool is closed.
        """
        with self._lock:
            if self._closed:
                raise self._shut_down()
            if self._full():
                self._wait_for_room()
            self._queue(task)

    async def asubmit(self, task: Task) -> None:
        """The asyncio twin of :meth:`submit`: waits for room without blocking the loop.

        Raises:
            ServiceUnavailableError: the queue is full and the pool raises when full.
            LLMError: the pool is closed.
        """
        import asyncio

        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                if self._closed:
                    raise self._shut_down()
                if not self._full():
                    self._queue(task)
                    return
                if not self.block:
                    raise self._full_error()
                future = loop.create_future()
                self._async_room.append((loop, future))
            try:
                await future
            finally:
                with self._lock:
                    if (loop, future) in self._async_room:
                        self._async_room.remove((loop, future))

    def _queue(self, task: Task) -> None:
        # Lock held, room checked.
        self._tasks.append(task)
        self._dispatch()

    def _dispatch(self) -> None:
        # Lock held: a task waits and a slot is free, so wake an idle thread or start one.
        if self._tasks and self._active < self.size:
            if self._idle:
                # Counted down here, not by the waker: two dispatches in a row
                # must not both count on the same sleeping thread.
                self._idle -= 1
                self._work.notify()
            elif len(self._threads) < self.size:
                thread = threading.Thread(
                    target=self._serve,
                    name=f"llmkit-system-{self.name}-{len(self._threads)}",
                    daemon=True,
                )
                self._threads.append(thread)
                thread.start()

    def _wake_all_threads(self) -> None:
        self._idle = 0
        self._work.notify_all()

    # --- pool threads -----------------------------------------------------------------------

    def _serve(self) -> None:
        while True:
            with self._lock:
                while not (self._tasks and self._active < self.size):
                    if self._closed and not self._tasks:
                        return
                    self._idle += 1
                    self._work.wait()
                task = self._tasks.popleft()
                self._active += 1
                self._cells.add(task.cell)
                self._freed_room()
            cell = task.cell
            try:
                task.run(cell)
            except BaseException:  # pragma: no cover - tasks catch their own errors
                pass
            finally:
                # An idle thread must not keep the last task (and through it
                # the system) alive.
                del task
                self.exit(cell)

    # --- observation ------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """The pool's settings and load, as a plain dict."""
        with self._lock:
            return {
                "pool_size": self.size,
                "queue_size": self.queue_size,
                "when_full": "block" if self.block else "raise",
                "running": self._active,
                "queued": len(self._tasks) + self._waiting,
                "threads": sum(1 for thread in self._threads if thread.is_alive()),
                "completed": self.completed,
                "rejected": self.rejected,
                "closed": self._closed,
            }

    # --- shutdown ---------------------------------------------------------------------------

    def close(self) -> None:
        """Refuse new work; queued work still runs (see :meth:`cancel`)."""
        with self._lock:
            self._closed = True
            self._wake_all_threads()
            self._room.notify_all()
            waiters = list(self._async_room)
            self._async_room.clear()
        for loop, future in waiters:
            _wake(loop, future)

    def cancel(self, kind: type[LLMError], message: str) -> None:
        """Drop queued work (each task's ``cancel`` gets the error) and abort running calls."""
        with self._lock:
            self._closed = self._cancelled = True
            tasks = list(self._tasks)
            self._tasks.clear()
            cells = list(self._cells)
            self._wake_all_threads()
            self._slot.notify_all()
            self._room.notify_all()
        for task in tasks:
            task.cancel(self._shut_down())
        for cell in cells:
            cell.abort(kind, message)

    def wait(self, deadline: float | None) -> bool:
        """Wait until no call runs or waits (after :meth:`close`); ``False`` on the deadline."""
        with self._lock:
            while self._active or self._tasks or self._waiting:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._idle_pool.wait(left)
            return True

    def join(self, deadline: float | None) -> list[threading.Thread]:
        """Join the pool's threads; return those still alive at the deadline."""
        with self._lock:
            self._wake_all_threads()
            threads = list(self._threads)
        alive = []
        for thread in threads:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            thread.join(left)
            if thread.is_alive():
                alive.append(thread)
        return alive


def _wake(loop: Any, future: Any) -> bool:
    """Resolve an asyncio future from any thread; ``False`` if its loop is closed."""
    try:
        loop.call_soon_threadsafe(_resolve, future)
    except RuntimeError:  # the loop is closed
        return False
    return True


def _resolve(future: Any) -> None:
    if not future.done():
        future.set_result(None)
