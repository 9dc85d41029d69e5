"""Stream handles: a pool thread reads the provider's stream into a bounded buffer.

The feeding thread waits whenever the buffer holds ``stream_buffer`` chunks
the reader has not taken (backpressure: a slow reader never makes memory
grow). The reader takes chunks with a plain iterator or an async iterator;
the async face waits on an asyncio future the feeder resolves, so the
event loop never blocks. Closing the handle (or dropping it) stops the
feeder at once: its HTTP response is aborted and its pool thread freed.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Any

from llmkit.errors import LLMError, StreamInterruptedError
from llmkit.streaming import Accumulator
from llmkit.system._abort import AbortCell
from llmkit.types import ChatResponse, StreamChunk

__all__ = ["Channel", "SystemStream"]

_END: Any = object()


class Channel:
    """A bounded buffer between one feeding thread and one reader."""

    __slots__ = ("_capacity", "_closed", "_cond", "_done", "_items", "_loop", "_waiter", "error")

    def __init__(self, capacity: int) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._items: deque[StreamChunk] = deque()
        self._capacity = capacity
        self._closed = False  # the reader gave up
        self._done = False  # the feeder ended (or was stopped)
        self._waiter: Any = None  # the asyncio future an async reader awaits
        self._loop: Any = None
        self.error: LLMError | None = None

    # --- the feeding side --------------------------------------------------------------------

    def put(self, chunk: StreamChunk) -> bool:
        """Hand over one chunk, waiting while the buffer is full; ``False`` once nobody reads."""
        with self._cond:
            while len(self._items) >= self._capacity and not (self._closed or self._done):
                self._cond.wait()
            if self._closed or self._done:
                return False
            self._items.append(chunk)
            self._wake()
            return True

    def end(
        self,
        error: LLMError | None = None,
        settle: Callable[[LLMError | None], None] | None = None,
    ) -> None:
        """The stream ended (with ``error``, if it failed); the first end wins.

        ``settle`` gets the error that won (what the reader will see), before
        the reader can see it: the feeder keeps its books by it.
        """
        with self._cond:
            if not self._done:
                self._done = True
                self.error = error
            if settle is not None:
                settle(self.error)
            self._wake()
            self._cond.notify_all()

    def _wake(self) -> None:
        # Lock held.
        self._cond.notify()
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            with contextlib.suppress(RuntimeError):  # the reader's loop is closed
                self._loop.call_soon_threadsafe(_resolve, waiter)

    # --- the reading side --------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether the reader gave up."""
        return self._closed

    @property
    def buffered(self) -> int:
        """How many chunks wait in the buffer."""
        return len(self._items)

    def close(self) -> None:
        """The reader gives up: drop what is buffered, release the feeder."""
        with self._cond:
            self._closed = True
            self._items.clear()
            self._cond.notify_all()

    def get(self) -> Any:
        """The next chunk, or ``_END`` once the stream ended (see :attr:`error`)."""
        with self._cond:
            while not self._items:
                if self._done or self._closed:
                    return _END
                self._cond.wait()
            chunk = self._items.popleft()
            self._cond.notify()  # room for the feeder
            return chunk

    async def aget(self) -> Any:
        """The asyncio twin of :meth:`get`."""
        import asyncio

        while True:
            with self._cond:
                if self._items:
                    chunk = self._items.popleft()
                    self._cond.notify()
                    return chunk
                if self._done or self._closed:
                    return _END
                loop = asyncio.get_running_loop()
                waiter = loop.create_future()
                self._waiter, self._loop = waiter, loop
            try:
                await waiter
            finally:
                with self._cond:
                    if self._waiter is waiter:
                        self._waiter = None


def _resolve(future: Any) -> None:
    if not future.done():
        future.set_result(None)


class SystemStream:
    """A stream handle from a system: iterate it, or ``async for`` it, or ``collect()`` it.

    A pool thread reads the provider's stream into a bounded buffer that
    this handle drains. Close it (or leave its ``with`` / ``async with``
    block) to stop early: the HTTP response is aborted and the pool thread
    freed at once. A failure raises while iterating, after the chunks that
    came before it; a stream that ends before the provider's end marker
    raises :class:`~llmkit.StreamInterruptedError`.

    Attributes:
        provider: the provider's name in the system.
        model: the model asked for.
    """

    __slots__ = ("__weakref__", "_cell", "_channel", "_end", "_folded", "model", "provider")

    def __init__(self, provider: str, model: str, channel: Channel, cell: AbortCell) -> None:
        self.provider = provider
        self.model = model
        self._channel = channel
        self._cell = cell
        self._folded = Accumulator()
        # None while reading; True once complete; the error that ended it; or
        # False when closed early.
        self._end: bool | LLMError | None = None
        # A handle dropped unread must not keep a pool thread waiting on its buffer.
        weakref.finalize(self, _stop, channel, cell).atexit = False

    def _next(self, item: Any) -> StreamChunk:
        if item is _END:
            if self._end is None:
                error = self._channel.error
                self._end = error if error is not None else (self._end or True)
                if error is not None:
                    raise error
            raise StopIteration
        self._folded.add(item)
        return item  # type: ignore[no-any-return]

    def __iter__(self) -> SystemStream:
        return self

    def __next__(self) -> StreamChunk:
        if self._end is not None:
            raise StopIteration
        return self._next(self._channel.get())

    def __aiter__(self) -> SystemStream:
        return self

    async def __anext__(self) -> StreamChunk:
        if self._end is not None:
            raise StopAsyncIteration
        item = await self._channel.aget()
        try:
            return self._next(item)
        except StopIteration:
            raise StopAsyncIteration from None

    def collect(self) -> ChatResponse:
        """Read the rest of the stream and return the whole response.

        Raises:
            LLMError: as iterating does; ``StreamInterruptedError`` after :meth:`close`.
        """
        for _ in self:
            pass
        return self._collected()

    async def acollect(self) -> ChatResponse:
        """The async twin of :meth:`collect`.

        Raises:
            LLMError: as :meth:`collect` does.
        """
        async for _ in self:
            pass
        return self._collected()

    def _collected(self) -> ChatResponse:
        if self._end is True:
            return self._folded.result()
        if isinstance(self._end, LLMError):
            raise self._end
        raise StreamInterruptedError(
            "the stream was closed before its end, so there is no complete response to "
            "collect; call collect() instead of close(), or keep the chunks you read",
            provider=self.provider,
            model=self.model,
        )

    @property
    def buffered(self) -> int:
        """How many chunks the pool thread has read ahead of the reader (stream_buffer at most)."""
        return self._channel.buffered

    def close(self) -> None:
        """Stop reading: abort the HTTP response and free the pool thread. Idempotent."""
        if self._end is None:
            self._end = False
        _stop(self._channel, self._cell)

    async def aclose(self) -> None:
        """The async twin of :meth:`close` (which never blocks)."""
        self.close()

    def __enter__(self) -> SystemStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> SystemStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        end = self._end
        state = (
            "open"
            if end is None
            else "complete"
            if end is True
            else "closed"
            if end is False
            else "failed"
        )
        return f"<SystemStream {self.provider}/{self.model} {state}>"


def _stop(channel: Channel, cell: AbortCell) -> None:
    channel.close()
    cell.abort(
        StreamInterruptedError,
        "the stream was closed by its reader; the feeding call stopped",
    )
