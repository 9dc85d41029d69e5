"""The response cache: which requests may use it, their key, and cached answers as streams.

A request is looked up by a SHA-256 of the config (its name and where it
sends: providers, models, endpoints, router) and the request's canonical
JSON: the request checked as a ``ChatRequest`` (so ``0`` and ``0.0``, a
dict and a struct, a ``None`` and a missing field are alike), keys
sorted, without ``model`` and ``stream``, which the config and the call
decide; a router's custom keys are added, sorted. Requests whose answers
are meant to differ, ``n > 1`` or a nonzero ``temperature``, skip the
cache unless the config says ``always``. A cached answer is stored as the
whole response; a stream served from it yields one chunk per choice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from typing import Any

import msgspec

from llmkit.registry._spec import REQUEST_FIELDS, CacheSettings, Compiled
from llmkit.types import (
    ChatResponse,
    ChunkChoice,
    Delta,
    FunctionCallDelta,
    RoutedResponse,
    ServedBy,
    StreamChunk,
    ToolCallDelta,
    to_request,
)

__all__ = ["Replayed", "cache_key", "decode", "encode"]

_encode = msgspec.json.Encoder(order="sorted").encode
_decoder = msgspec.json.Decoder(RoutedResponse)
_UNKEYED = ("model", "stream", "stream_options")


def _field(request: Any, name: str) -> Any:
    if isinstance(request, Mapping):
        return request.get(name)
    return getattr(request, name, None)


def cache_key(compiled: Compiled, request: Any, settings: CacheSettings) -> str | None:
    """The cache key of ``request`` under ``compiled``, or ``None`` if it must not be cached."""
    if not settings.always:
        n, temperature = _field(request, "n"), _field(request, "temperature")
        if n not in (None, 1) or temperature not in (None, 0):
            return None
    try:
        custom: dict[str, Any] = {}
        if isinstance(request, Mapping):
            fields = {}
            for key, value in request.items():
                if key in REQUEST_FIELDS:
                    fields[key] = value
                else:
                    custom[key] = value
            request = fields
        plain = msgspec.to_builtins(to_request(request, model=""))
        for field in _UNKEYED:
            plain.pop(field, None)
        body = _encode([plain, custom])
    except Exception:
        return None  # the call itself names what is wrong with the request
    return hashlib.sha256(compiled.fingerprint.encode() + b"\0" + body).hexdigest()


def encode(response: RoutedResponse) -> bytes:
    """A response as the cache stores it."""
    return _encode(response)


def decode(value: bytes) -> RoutedResponse | None:
    """A cached response, marked as served from the cache; ``None`` if the bytes are not one."""
    try:
        response = _decoder.decode(value)
    except (msgspec.DecodeError, TypeError):
        return None
    served = msgspec.structs.replace(response.served_by, cached=True, attempts=0)
    return msgspec.structs.replace(response, served_by=served)


def _chunks(response: ChatResponse) -> list[StreamChunk]:
    chunks = []
    for choice in response.choices:
        message = choice.message
        content = message.content
        if content is not None and not isinstance(content, str):
            content = "".join(getattr(part, "text", "") for part in content)
        calls = None
        if message.tool_calls:
            calls = [
                ToolCallDelta(
                    index=i,
                    id=call.id,
                    type=call.type,
                    function=FunctionCallDelta(
                        name=call.function.name, arguments=call.function.arguments
                    ),
                )
                for i, call in enumerate(message.tool_calls)
            ]
        delta = Delta(
            role=message.role,
            content=content,
            tool_calls=calls,
            refusal=message.refusal,
            reasoning=message.reasoning,
            provider_data=message.provider_data,
        )
        chunks.append(
            StreamChunk(
                id=response.id,
                model=response.model,
                created=response.created,
                choices=[
                    ChunkChoice(
                        index=choice.index,
                        delta=delta,
                        finish_reason=choice.finish_reason,
                        native_finish_reason=choice.native_finish_reason,
                    )
                ],
            )
        )
    if response.usage is not None:
        chunks.append(
            StreamChunk(
                id=response.id, model=response.model, created=response.created, usage=response.usage
            )
        )
    return chunks


class Replayed:
    """A cached response played back as a stream: iterate it, collect it, close it."""

    __slots__ = ("_chunks", "_response")

    def __init__(self, response: RoutedResponse) -> None:
        self._response = response
        self._chunks: Iterator[StreamChunk] = iter(_chunks(response))

    def __iter__(self) -> Replayed:
        return self

    def __next__(self) -> StreamChunk:
        return next(self._chunks)

    async def __anext__(self) -> StreamChunk:
        try:
            return next(self._chunks)
        except StopIteration:
            raise StopAsyncIteration from None

    def collect(self) -> RoutedResponse:
        self._chunks = iter(())
        return self._response

    async def acollect(self) -> RoutedResponse:
        return self.collect()

    def close(self) -> None:
        self._chunks = iter(())

    async def aclose(self) -> None:
        self.close()

    @property
    def served_by(self) -> ServedBy:
        return self._response.served_by
