"""The generic functions: llmkit's multimethod layer.

Every façade reaches providers only through these functions, which dispatch
on the type of the provider key (the first argument), as a Clojure
multimethod dispatches on ``:openai``. A provider registers methods::

    from llmkit.generics import encode_request

    @encode_request.dispatch
    def _(key: MyProvider, request: ChatRequest, config: Config) -> Any: ...

:func:`completion` and :func:`acompletion` have one default method for every
:class:`ProviderKey` that composes the provider's codec with the transport,
so a provider usually registers only the codec functions. Methods are
annotated ``-> Any``: the typed façades (``llmkit.core``) give callers real
types. The dispatcher is private to llmkit, never plum's global one.

Keep signatures faithful (plain classes, no ``Literal`` or ``type[...]``):
plum then caches each resolution, about half a microsecond a call.
"""

from __future__ import annotations

from typing import Any, cast

import plum

from llmkit import _http
from llmkit._framing import SSEEvent
from llmkit.config import Config
from llmkit.errors import LLMError, scrub
from llmkit.keys import ProviderKey
from llmkit.streaming import AsyncStream, EventPipeline, Stream
from llmkit.types import ChatRequest, HttpCall, HttpResponse, StreamState

__all__ = [
    "acompletion",
    "capabilities",
    "completion",
    "decode_error",
    "decode_event",
    "decode_response",
    "encode_request",
    "generic_functions",
]

_dispatch = plum.Dispatcher()


@_dispatch.abstract
def encode_request(key: Any, request: Any, config: Any) -> Any:
    """Turn a ``ChatRequest`` into the provider's :class:`~llmkit.types.HttpCall`.

    Called as ``encode_request(key, request, config)`` with a resolved
    :class:`~llmkit.config.Config` (API key and base URL filled in).
    Raises :class:`~llmkit.InvalidRequestError` for a request the provider
    cannot express.
    """


@_dispatch.abstract
def decode_response(key: Any, response: Any, request: Any) -> Any:
    """Turn a successful :class:`~llmkit.types.HttpResponse` into a ``ChatResponse``.

    Called as ``decode_response(key, response, request)``.
    """


@_dispatch.abstract
def decode_event(key: Any, event: Any, state: Any) -> Any:
    """Turn one stream event into a ``StreamChunk``, ``None`` (nothing to emit) or an ``LLMError``.

    Called as ``decode_event(key, event, state)``; ``event`` is an SSE event
    or an NDJSON line (bytes), as the call's ``framing`` says; ``state`` is
    the stream's :class:`~llmkit.types.StreamState`, where the codec sets
    ``done`` on the provider's end marker.
    """


@_dispatch.abstract
def decode_error(key: Any, response: Any, request: Any) -> Any:
    """Turn an error :class:`~llmkit.types.HttpResponse` into the right ``LLMError``.

    Called as ``decode_error(key, response, request)``.
    """


@_dispatch.abstract
def capabilities(key: Any) -> Any:
    """Return the provider's :class:`~llmkit.types.Capabilities`."""


@_dispatch.abstract
def completion(key: Any, request: Any, config: Any) -> Any:
    """Run one chat completion; return a ``ChatResponse`` or, for ``request.stream``, a ``Stream``.

    Called as ``completion(key, request, config)`` with a validated request
    and a resolved config.
    """


@_dispatch.abstract
def acompletion(key: Any, request: Any, config: Any) -> Any:
    """The async twin of :func:`completion`: returns an awaitable.

    plum cannot dispatch ``async def`` methods, so the method returns a
    coroutine; await the result. Streams come back as ``AsyncStream``.
    """


def _on_error(key: ProviderKey, request: ChatRequest, config: Config) -> _http.ErrorFactory:
    def build(response: HttpResponse) -> LLMError:
        error = cast(LLMError, decode_error(key, response, request))
        if error.provider is None:
            error.provider = key.name
        if error.model is None:
            error.model = request.model
        if error.status is None:
            error.status = response.status
        if error.request_id is None:
            error.request_id = response.headers.get("x-request-id") or response.headers.get(
                "request-id"
            )
        if error.retry_after is None:
            error.retry_after = _http.parse_retry_after(response.headers)
        # Providers sometimes echo the key back ("Incorrect API key provided: sk-...").
        error.message = scrub(error.message, config.api_key)
        error.args = (error.message,)
        return error

    return build


def _pipeline(key: ProviderKey, request: ChatRequest, framing: str) -> EventPipeline:
    state = StreamState(provider=key.name, model=request.model)
    # Resolve the method once per stream rather than dispatching on every event.
    event_type = bytes if framing == "ndjson" else SSEEvent
    method = decode_event.invoke(type(key), event_type, StreamState)

    def step(event: Any, state: StreamState) -> Any:
        return method(key, event, state)

    return EventPipeline(framing, step, state)


@completion.dispatch
def _completion(key: ProviderKey, request: ChatRequest, config: Config) -> Any:
    call = cast(HttpCall, encode_request(key, request, config))
    on_error = _on_error(key, request, config)
    if call.stream:
        body = _http.send(call, config, on_error)
        return Stream(body, _pipeline(key, request, call.framing), body.close)
    response = _http.send(call, config, on_error)
    return decode_response(key, response, request)


async def _acompletion_body(key: ProviderKey, request: ChatRequest, config: Config) -> Any:
    call = cast(HttpCall, encode_request(key, request, config))
    on_error = _on_error(key, request, config)
    if call.stream:
        body = await _http.asend(call, config, on_error)
        return AsyncStream(body, _pipeline(key, request, call.framing), body.aclose)
    response = await _http.asend(call, config, on_error)
    return decode_response(key, response, request)


@acompletion.dispatch
def _acompletion(key: ProviderKey, request: ChatRequest, config: Config) -> Any:
    return _acompletion_body(key, request, config)


def generic_functions() -> dict[str, Any]:
    """Return the generic functions by name (for introspection and dispatch checks)."""
    return {
        "encode_request": encode_request,
        "decode_response": decode_response,
        "decode_event": decode_event,
        "decode_error": decode_error,
        "capabilities": capabilities,
        "completion": completion,
        "acompletion": acompletion,
    }
