"""Streams of chunks, sync and async, and the one accumulator.

A stream is three stages: the transport's raw bytes, the framing decoder
(SSE or NDJSON) that cuts them into events, and the provider's
``decode_event`` method that turns an event into a :class:`StreamChunk`.
The stages are shared by :class:`Stream` and :class:`AsyncStream`; only
the loop that pulls bytes differs.

Delta assembly lives here and nowhere else: :func:`accumulate` turns the
chunks of any provider into the final :class:`ChatResponse`.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Iterator,
)
from types import TracebackType
from typing import Any

from llmkit._framing import Framer, framing
from llmkit.errors import InvalidRequestError, LLMError, StreamInterruptedError
from llmkit.types import (
    ChatResponse,
    Choice,
    FunctionCall,
    Message,
    StreamChunk,
    StreamState,
    ToolCall,
    ToolCallDelta,
    Usage,
)

__all__ = ["Accumulator", "AsyncStream", "EventPipeline", "Stream", "accumulate"]

EventDecoder = Callable[[Any, StreamState], "StreamChunk | LLMError | None"]
Annotate = Callable[[LLMError], LLMError]


def _same(error: LLMError) -> LLMError:
    return error


class EventPipeline:
    """Bytes in, chunks out: framing plus the provider's event decoder.

    Two things end a stream early, whatever else the same network read
    holds: the provider's end marker (``state.done``), after which nothing
    is decoded, and an error event, kept in :attr:`error` after the chunks
    that came before it. The stream shells yield those chunks, then raise.
    """

    __slots__ = ("_annotate", "_decode", "_framer", "error", "state")

    def __init__(
        self,
        framing_name: str,
        decode: EventDecoder,
        state: StreamState,
        annotate: Annotate = _same,
    ) -> None:
        spec = framing(framing_name)
        if spec is None:
            raise InvalidRequestError(f"unknown stream framing {framing_name!r}")
        self._framer: Framer = spec.new()
        self._decode = decode
        self._annotate = annotate
        self.state = state
        self.error: LLMError | None = None

    def _run(self, events: Iterable[Any]) -> list[StreamChunk]:
        out: list[StreamChunk] = []
        if self.error is not None:
            return out
        decode = self._decode
        state = self.state
        for event in events:
            if state.done:
                break  # the end marker ends the stream: what follows is not the answer
            try:
                item = decode(event, state)
            except LLMError as exc:
                self.error = self._annotate(exc)
                break
            except Exception as exc:
                # A codec bug or an event it cannot read must not escape the hierarchy.
                error = LLMError(
                    f"could not decode a stream event from {state.provider or 'the provider'} "
                    f"({type(exc).__name__}: {exc}); report it to the provider package",
                )
                self.error = self._annotate(error)
                break
            if type(item) is StreamChunk:
                out.append(item)
                continue
            if item is None:
                continue
            if isinstance(item, LLMError):
                self.error = self._annotate(item)
                break
            if not isinstance(item, StreamChunk):
                self.error = self._annotate(
                    LLMError(
                        f"{state.provider or 'the provider'}'s decode_event returned "
                        f"{type(item).__name__}, not a StreamChunk, None or an LLMError; "
                        "report it to the provider package"
                    )
                )
                break
            out.append(item)
        return out

    def feed(self, data: bytes) -> list[StreamChunk]:
        """Return the chunks completed by ``data``.

        After an error event, :attr:`error` is set and the chunks before it
        are returned; after the end marker, ``state.done`` is set.
        """
        try:
            events = self._framer.feed(data)
        except Exception as exc:
            # A framer (a registered one above all) that cannot cut the bytes.
            self.error = self._annotate(self._unframed(exc))
            return []
        return self._run(events)

    def _unframed(self, exc: Exception) -> LLMError:
        return StreamInterruptedError(
            f"the stream from {self.state.provider or 'the provider'} could not be cut into "
            f"events ({type(exc).__name__}: {exc}); the answer is incomplete, retry the call",
            provider=self.state.provider or None,
            model=self.state.model or None,
        )

    def finish(self) -> list[StreamChunk]:
        """Flush the framing at end of body and check the stream really ended.

        Raises:
            StreamInterruptedError: the body ended before the provider's end marker.
        """
        if self.state.done:
            return []
        try:
            events = self._framer.flush()
        except Exception as exc:
            self.error = self._annotate(self._unframed(exc))
            return []
        out = self._run(events)
        if self.error is not None:
            if self.state.done:
                return out
            # A half-received last event fails to decode; the cause is the cut, not the event.
            cut = self._interrupted()
            cut.__cause__ = self.error
            self.error = cut
            return out
        if not self.state.done:
            self.error = self._interrupted()
        return out

    def _interrupted(self) -> LLMError:
        return self._annotate(
            StreamInterruptedError(
                "stream ended before the provider's end marker; the answer is incomplete, "
                "retry the call",
                provider=self.state.provider or None,
                model=self.state.model or None,
            )
        )


class Stream:
    """A synchronous stream of :class:`StreamChunk`.

    Iterate it for chunks; :meth:`collect` drains what is left and returns
    the whole :class:`ChatResponse`. Closing it (or leaving its ``with``
    block) aborts the HTTP response. A failure mid-stream raises
    :class:`llmkit.StreamInterruptedError` rather than ending quietly.
    """

    __slots__ = ("_close", "_gen", "_record", "provider")

    def __init__(
        self,
        body: Iterable[bytes],
        pipeline: EventPipeline,
        close: Callable[[], None],
        drain: Callable[[], None] | None = None,
    ) -> None:
        self._close = close
        self._record = _Record()
        self.provider = pipeline.state.provider
        self._gen = _chunks(body, pipeline, self._record, close, drain)
        # The response is closed when the generator goes, however it goes:
        # finished, broken off, or dropped before it ever ran (a generator that
        # never started has no finally to run). It must not refer back to the
        # Stream, so dropping an unfinished stream frees it at once.
        weakref.finalize(self._gen, close).atexit = False

    def __iter__(self) -> Iterator[StreamChunk]:
        return self._gen

    def __next__(self) -> StreamChunk:
        return next(self._gen)

    def collect(self) -> ChatResponse:
        """Read the rest of the stream and return the assembled response.

        Raises:
            LLMError: as iteration does.
        """
        for _ in self._gen:
            pass
        return self._record.collected()

    def close(self) -> None:
        """Stop reading and release the connection."""
        self._gen.close()
        self._close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncStream:
    """The async twin of :class:`Stream`: ``async for``, ``acollect``, ``aclose``."""

    __slots__ = ("_aclose", "_gen", "_record", "provider")

    def __init__(
        self,
        body: AsyncIterable[bytes],
        pipeline: EventPipeline,
        aclose: Callable[[], Awaitable[None]],
        adrain: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._aclose = aclose
        self._record = _Record()
        self.provider = pipeline.state.provider
        self._gen = _achunks(body, pipeline, self._record, aclose, adrain)
        weakref.finalize(self._gen, _schedule_close, self._record, aclose).atexit = False

    def __aiter__(self) -> AsyncIterator[StreamChunk]:
        return self._gen

    async def __anext__(self) -> StreamChunk:
        return await self._gen.__anext__()

    async def acollect(self) -> ChatResponse:
        """Read the rest of the stream and return the assembled response.

        Raises:
            LLMError: as iteration does.
        """
        async for _ in self._gen:
            pass
        return self._record.collected()

    async def aclose(self) -> None:
        """Stop reading and release the connection."""
        await self._gen.aclose()
        await self._aclose()

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


async def _drain(closing: Awaitable[None]) -> None:
    await closing


def _schedule_close(record: _Record, aclose: Callable[[], Awaitable[None]]) -> None:
    # A stream that ended has closed its response in the generator's finally.
    if record.end is not None:
        return
    # Closing an async response is a coroutine; a finalizer can only hand it
    # to the running loop (without one, the connection goes with the client).
    with contextlib.suppress(Exception):
        import asyncio

        asyncio.get_running_loop().create_task(_drain(aclose()))


class _Record:
    """What a stream has yielded, folded as it goes, and how it ended."""

    __slots__ = ("end", "folded")

    def __init__(self) -> None:
        self.folded = Accumulator()
        # None while reading; then True (complete) or the error that ended it.
        self.end: bool | LLMError | None = None

    def collected(self) -> ChatResponse:
        if self.end is True:
            return self.folded.result()
        if isinstance(self.end, LLMError):
            # The stream already failed; a half answer must not pass for a whole one.
            raise self.end
        raise StreamInterruptedError(
            "the stream was closed before its end, so there is no complete response to "
            "collect; call collect() instead of close(), or keep the chunks you read"
        )


def _chunks(
    body: Iterable[bytes],
    pipeline: EventPipeline,
    record: _Record,
    close: Callable[[], None],
    drain: Callable[[], None] | None,
) -> Generator[StreamChunk, None, None]:
    seen = record.folded.add
    state = pipeline.state
    try:
        for data in body:
            for chunk in pipeline.feed(data):
                seen(chunk)
                yield chunk
            if pipeline.error is not None:
                raise pipeline.error
            if state.done:
                break
        else:
            for chunk in pipeline.finish():
                seen(chunk)
                yield chunk
            if pipeline.error is not None:
                raise pipeline.error
        record.end = True
        if drain is not None and state.done:
            drain()
    except LLMError as error:
        record.end = error
        raise
    finally:
        close()


async def _achunks(
    body: AsyncIterable[bytes],
    pipeline: EventPipeline,
    record: _Record,
    aclose: Callable[[], Awaitable[None]],
    adrain: Callable[[], Awaitable[None]] | None,
) -> AsyncGenerator[StreamChunk, None]:
    seen = record.folded.add
    state = pipeline.state
    try:
        async for data in body:
            for chunk in pipeline.feed(data):
                seen(chunk)
                yield chunk
            if pipeline.error is not None:
                raise pipeline.error
            if state.done:
                break
        else:
            for chunk in pipeline.finish():
                seen(chunk)
                yield chunk
            if pipeline.error is not None:
                raise pipeline.error
        record.end = True
        if adrain is not None and state.done:
            await adrain()
    except LLMError as error:
        record.end = error
        raise
    finally:
        await aclose()


class _CallParts:
    __slots__ = ("args", "id", "name", "type")

    def __init__(self, call_id: str) -> None:
        self.id = call_id
        self.name = ""
        self.type = "function"
        self.args: list[str] = []


class _ChoiceParts:
    __slots__ = (
        "by_index",
        "calls",
        "data",
        "finish_reason",
        "native",
        "reasoning",
        "refusal",
        "role",
        "text",
    )

    def __init__(self) -> None:
        self.role = "assistant"
        self.text: list[str] = []
        self.refusal: list[str] = []
        self.reasoning: list[str] = []
        self.data: dict[str, Any] | None = None
        self.calls: list[_CallParts] = []
        self.by_index: dict[int, _CallParts] = {}
        self.finish_reason: str | None = None
        self.native: str | None = None

    def add_calls(self, pieces: list[ToolCallDelta]) -> None:
        for piece in pieces:
            call = self.by_index.get(piece.index)
            if call is None or (piece.id and call.id and piece.id != call.id):
                call = _CallParts(piece.id or "")
                self.by_index[piece.index] = call
                self.calls.append(call)
            elif piece.id and not call.id:
                call.id = piece.id
            if piece.type:
                call.type = piece.type
            function = piece.function
            if function is not None:
                if function.name and not call.name:
                    call.name = function.name
                if function.arguments:
                    call.args.append(function.arguments)

    def message(self) -> Message:
        calls = [
            ToolCall(
                id=c.id,
                type=c.type,
                function=FunctionCall(name=c.name, arguments="".join(c.args) or "{}"),
            )
            for c in self.calls
        ]
        text = "".join(self.text)
        return Message(
            role="assistant",
            content=text if text or not calls else None,
            tool_calls=calls or None,
            refusal="".join(self.refusal) or None,
            reasoning="".join(self.reasoning) or None,
            # A copy: later chunks must not change a response already handed out.
            provider_data=dict(self.data) if self.data is not None else None,
        )


class Accumulator:
    """Folds streamed chunks, as they arrive, into the response a non-streaming call returns.

    Text, refusals and reasoning are concatenated per choice; tool calls are
    assembled by ``index``, a new ``id`` at a known index starting a new
    call (some providers reuse index 0 for parallel calls); provider data is
    merged by provider; the last ``finish_reason`` (with its native value) and the last ``usage``
    win. Chunks are not kept: memory grows with the answer, not with the
    number of chunks.
    """

    __slots__ = ("_choices", "_created", "_id", "_model", "_usage")

    def __init__(self) -> None:
        self._choices: dict[int, _ChoiceParts] = {}
        self._id = ""
        self._model = ""
        self._created = 0
        self._usage: Usage | None = None

    def add(self, chunk: StreamChunk) -> None:
        """Fold one chunk in."""
        if not self._id and chunk.id:
            self._id, self._model, self._created = chunk.id, chunk.model, chunk.created
        if chunk.usage is not None:
            self._usage = chunk.usage
        choices = self._choices
        for choice in chunk.choices:
            parts = choices.get(choice.index)
            if parts is None:
                parts = choices[choice.index] = _ChoiceParts()
            delta = choice.delta
            if delta.content:
                parts.text.append(delta.content)
            if delta.refusal:
                parts.refusal.append(delta.refusal)
            if delta.reasoning:
                parts.reasoning.append(delta.reasoning)
            if delta.provider_data:
                if parts.data is None:
                    parts.data = {}
                parts.data.update(delta.provider_data)
            if delta.tool_calls:
                parts.add_calls(delta.tool_calls)
            if choice.finish_reason is not None:
                parts.finish_reason = choice.finish_reason
                parts.native = choice.native_finish_reason

    def result(self) -> ChatResponse:
        """Return the response assembled so far."""
        return ChatResponse(
            id=self._id,
            model=self._model,
            created=self._created,
            choices=[
                Choice(
                    index=index,
                    message=parts.message(),
                    finish_reason=parts.finish_reason,
                    native_finish_reason=parts.native,
                )
                for index, parts in sorted(self._choices.items())
            ],
            usage=self._usage,
        )


def accumulate(chunks: Iterable[StreamChunk]) -> ChatResponse:
    """Assemble streamed chunks into the response a non-streaming call returns.

    See :class:`Accumulator` for the rules.
    """
    folded = Accumulator()
    add = folded.add
    for chunk in chunks:
        add(chunk)
    return folded.result()
