"""Streams of routed calls: the provider's stream, its opening already read.

A registry stream reads its opening (up to the first chunk with content)
before it is handed over, so a stream that fails before then can still
move on to a fallback. These wrappers give those chunks back first, then
the rest, and attach who served the stream to it and to what ``collect``
returns.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any

from llmkit.types import ChatResponse, RoutedResponse, ServedBy, StreamChunk

__all__ = ["AsyncRoutedStream", "RoutedStream"]


class _Routed:
    """What both routed streams hold: the provider's stream, its opening, who serves it."""

    __slots__ = ("_inner", "_on_complete", "_opening", "served_by")

    def __init__(
        self,
        inner: Any,
        opening: list[StreamChunk],
        served_by: ServedBy,
        on_complete: Callable[[RoutedResponse], None] | None = None,
    ) -> None:
        self._inner = inner
        self._opening = opening[::-1]  # popped from the end, in order
        self.served_by = served_by
        # Called once with the whole response when the stream is read to its end.
        self._on_complete = on_complete

    def _completed(self, response: ChatResponse) -> RoutedResponse:
        routed = RoutedResponse.of(response, self.served_by)
        hook, self._on_complete = self._on_complete, None
        if hook is not None:
            hook(routed)
        return routed

    def __repr__(self) -> str:
        served = self.served_by
        return f"<{type(self).__name__} {served.name!r} via {served.provider}/{served.model}>"


class RoutedStream(_Routed):
    """A stream from ``llmkit.registry.stream``: iterate it, ``collect()`` it, close it.

    ``served_by`` says which provider and model are answering. A failure
    mid-stream raises (``StreamInterruptedError``); it never moves to a
    fallback once a chunk has been read.
    """

    __slots__ = ()

    def __iter__(self) -> RoutedStream:
        return self

    def __next__(self) -> StreamChunk:
        if self._opening:
            return self._opening.pop()
        try:
            return next(self._inner)  # type: ignore[no-any-return]
        except StopIteration:
            if self._on_complete is not None:
                self._completed(self._inner.collect())
            raise

    def collect(self) -> RoutedResponse:
        """Read the rest and return the whole response, with ``served_by``.

        Raises:
            LLMError: as iteration does.
        """
        self._opening = []  # the provider's stream has them in its record already
        return self._completed(self._inner.collect())

    def close(self) -> None:
        """Stop reading and release the connection."""
        self._inner.close()

    def __enter__(self) -> RoutedStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncRoutedStream(_Routed):
    """The async twin of :class:`RoutedStream`: ``async for``, ``acollect``, ``aclose``."""

    __slots__ = ()

    def __aiter__(self) -> AsyncRoutedStream:
        return self

    async def __anext__(self) -> StreamChunk:
        if self._opening:
            return self._opening.pop()
        try:
            return await self._inner.__anext__()  # type: ignore[no-any-return]
        except StopAsyncIteration:
            if self._on_complete is not None:
                self._completed(await self._inner.acollect())
            raise

    async def acollect(self) -> RoutedResponse:
        """Read the rest and return the whole response, with ``served_by``.

        Raises:
            LLMError: as iteration does.
        """
        self._opening = []
        return self._completed(await self._inner.acollect())

    async def aclose(self) -> None:
        """Stop reading and release the connection."""
        await self._inner.aclose()

    async def __aenter__(self) -> AsyncRoutedStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
