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

import contextlib
import functools
import time
from collections.abc import Iterator, Mapping
from typing import Any, cast

import msgspec
import plum

from llmkit import _framing, _http, keys
from llmkit._checks import MAX_JSON_DEPTH, json_problem
from llmkit._framing import framing as framing_of
from llmkit.config import Config, auth_headers, resolve_config, secret_header_names, to_config
from llmkit.errors import APIConnectionError, InvalidRequestError, LLMError, scrub_error
from llmkit.keys import ProviderKey
from llmkit.streaming import AsyncStream, EventPipeline, Stream
from llmkit.types import (
    Capabilities,
    ChatRequest,
    HttpCall,
    HttpResponse,
    StreamState,
    check_request,
    to_request,
)

__all__ = [
    "ProbeResult",
    "acompletion",
    "build_call",
    "cached_dispatch",
    "capabilities",
    "completion",
    "decode_error",
    "decode_event",
    "decode_response",
    "encode_request",
    "generic_functions",
    "prepare",
    "probe",
    "scoped_providers",
]

_dispatch = plum.Dispatcher()


class ProbeResult(msgspec.Struct, frozen=True, kw_only=True):
    """What a provider's health probe saw.

    Attributes:
        status: the HTTP status of the probe's answer.
        latency: seconds from sending the probe to its answer.
        models: the model ids the provider listed, when its answer lists
            them in OpenAI's ``{"data": [{"id": ...}]}`` shape; else empty.
    """

    status: int
    latency: float
    models: tuple[str, ...] = ()


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

    Called as ``decode_event(key, event, state)``; ``event`` is what the
    call's framing yields (an ``SSEEvent`` for ``"sse"``, the bytes of one
    line for ``"ndjson"``, a registered framing's own type); ``state`` is
    the stream's :class:`~llmkit.types.StreamState`, where the codec sets
    ``done`` on the provider's end marker.
    """


@_dispatch.abstract
def decode_error(key: Any, response: Any, request: Any) -> Any:
    """Turn an error :class:`~llmkit.types.HttpResponse` into the right ``LLMError``.

    Called as ``decode_error(key, response, request)``.
    """


@_dispatch.abstract
def capabilities(key: Any, model: Any) -> Any:
    """Return the :class:`~llmkit.types.Capabilities` of the provider's ``model``.

    Called as ``capabilities(key, model)``; ``model`` is a string, ``""``
    when the caller asks about the provider as a whole.
    """


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


@_dispatch.abstract
def probe(key: Any, config: Any) -> Any:
    """Check that the provider answers with this config; return a :class:`ProbeResult`.

    Called as ``probe(key, config)`` with a resolved config, by health
    checks (``llmkit.system``). The default method sends ``GET
    {api_base}/models`` with the key's auth header through the config's
    transport; a provider whose API has no such endpoint registers its own.
    Raises the provider's ``LLMError`` when it answers with an error.
    """


def _secrets(
    key: ProviderKey, config: Config, request: ChatRequest, sent: Any = None
) -> tuple[str, ...]:
    found = [config.api_key] if config.api_key else []
    names = secret_header_names(key)
    for headers in (config.headers, request.extra_headers, sent):
        if not headers:
            continue
        for name, value in headers.items():
            if name.lower() in names and isinstance(value, str):
                found.append(value.strip())
                # "Bearer sk-...", "bearer sk-...", "Basic ...": the token alone too.
                scheme, _, token = value.strip().partition(" ")
                if token and scheme.isalpha():
                    found.append(token.strip())
    return tuple(found)


# What plum raises when no single method fits the arguments.
_DISPATCH_MISSES = (plum.NotFoundLookupError, plum.AmbiguousLookupError)


def _missing(key: ProviderKey, exc: Exception) -> LLMError:
    # plum's message quotes the call's arguments, the whole request among
    # them; only the function's name is taken from it.
    text = str(exc)
    name = text[1 : text.index("(")] if text.startswith("`") and "(" in text else "a method"
    return LLMError(
        f"{key.name} has no {name} method for these arguments: its provider package did "
        f"not register one (or is still being imported); fix or reinstall the package",
        provider=key.name,
    )


def build_call(key: ProviderKey, request: ChatRequest, config: Config) -> HttpCall:
    """Run the provider's ``encode_request``, turning every failure into an ``LLMError``.

    Raises:
        InvalidRequestError: the request holds something no wire can carry (a
            lone surrogate, an object JSON has no form for, nesting too deep);
            the message names its path.
        LLMError: the provider registers no ``encode_request``, or its codec failed.
    """
    try:
        call = encode_request(key, request, config)
    except LLMError:
        raise
    except _DISPATCH_MISSES as exc:
        raise _missing(key, exc) from None
    except Exception as exc:
        # Encoders stop at the first bad value without saying where it is;
        # the slow walk runs only now, on failure, to name the path.
        problem = json_problem(request, "$", max_depth=MAX_JSON_DEPTH)
        if problem is not None:
            raise InvalidRequestError(
                f"invalid request: {problem}", provider=key.name, model=request.model
            ) from None
        raise LLMError(
            f"{key.name}'s codec could not encode the request ({type(exc).__name__}); "
            "report it to the provider package",
            provider=key.name,
            model=request.model,
        ) from None
    if not (
        isinstance(call, HttpCall)
        and type(call.url) is str
        and type(call.body) is bytes
        and type(call.headers) is dict
    ):
        raise LLMError(
            f"{key.name}'s encode_request returned {type(call).__name__}, not an HttpCall "
            "with a str url, bytes body and a dict of headers; report it to the provider package",
            provider=key.name,
            model=request.model,
        )
    return call


def _unreadable(key: ProviderKey, response: HttpResponse, exc: Exception) -> LLMError:
    return LLMError(
        f"{key.name} answered HTTP {response.status} with a body its codec could not read "
        f"({type(exc).__name__}: {exc}); check api_base, or report it to the provider package",
        status=response.status,
    )


class _Context:
    """Completes the errors of one call: provider, model, request id, no secrets."""

    __slots__ = ("config", "headers", "key", "model", "provider", "request", "sent")

    def __init__(
        self,
        key: ProviderKey,
        request: ChatRequest,
        config: Config,
        sent: dict[str, str] | None = None,
    ) -> None:
        self.key = key
        self.request = request
        self.provider = key.name
        self.model = request.model
        # The headers the codec built: it may put secrets there (signatures).
        self.sent = sent
        # Secrets are collected only when an error needs scrubbing, off the hot path.
        self.config = config
        # The response headers, once a response arrived (for request ids).
        self.headers: Any = None

    def from_response(self, response: HttpResponse) -> LLMError:
        try:
            error = cast(LLMError, decode_error(self.key, response, self.request))
        except _DISPATCH_MISSES as exc:
            error = _missing(self.key, exc)
            error.retryable = False
        except Exception as exc:
            # A codec that fails on an error body must not hide the error itself.
            error = _unreadable(self.key, response, exc)
            error.retryable = response.status >= 500
        if error.status is None:
            error.status = response.status
        return self.annotate(error, response.headers)

    def annotate(self, error: LLMError, headers: Any = None) -> LLMError:
        if error.provider is None:
            error.provider = self.key.name
        if error.model is None:
            error.model = self.request.model
        if headers is None:
            headers = self.headers
        if headers is not None:
            if error.request_id is None:
                for name in self.key.request_id_headers:
                    value = headers.get(name)
                    if value:
                        error.request_id = value
                        break
            if error.retry_after is None and error.retryable:
                error.retry_after = _http.parse_retry_after(headers)
        hint = self.key.connect_hint
        if hint and type(error) is APIConnectionError and hint not in error.message:
            # Nothing answered: for a local server, say how to start it.
            error.message = f"{error.message}. {hint}"
        # Providers echo what they were sent ("Incorrect API key provided: sk-...").
        return scrub_error(error, _secrets(self.key, self.config, self.request, self.sent))


def _pipeline(
    key: ProviderKey, request: ChatRequest, framing: str, context: _Context
) -> EventPipeline:
    """Build the event pipeline of a stream; fails before any request is sent.

    Raises:
        InvalidRequestError: the provider has no ``decode_event`` method for
            this framing, so it cannot stream.
    """
    state = StreamState(provider=key.name, model=request.model)
    spec = framing_of(framing)
    if spec is None:
        raise InvalidRequestError(
            f"{key.name} asked for stream framing {framing!r}, which is not registered; "
            "the provider package must call register_framing() first",
            provider=key.name,
            model=request.model,
        )
    # Resolve the method once per stream rather than dispatching on every event,
    # and call its implementation directly: plum's invoke() wrapper adds about
    # 0.2 µs a chunk to convert a return type that is Any anyway.
    signature = plum.Signature(type(key), spec.event_type, StreamState)
    try:
        method, _ = decode_event.resolve_method(signature)
    except _DISPATCH_MISSES:
        raise InvalidRequestError(
            f"{key.name} cannot stream: it registers no decode_event method for "
            f"{framing} events; call completion() instead",
            provider=key.name,
            model=request.model,
        ) from None
    return EventPipeline(framing, functools.partial(method, key), state, context.annotate)


def _decoded(
    key: ProviderKey, response: HttpResponse, request: ChatRequest, context: _Context
) -> Any:
    try:
        return decode_response(key, response, request)
    except LLMError as error:
        # Never chained: a decoder's own exception may quote the body, and a
        # body can echo the key (a traceback would print it unscrubbed).
        raise context.annotate(error, response.headers) from None
    except _DISPATCH_MISSES as exc:
        raise context.annotate(_missing(key, exc), response.headers) from None
    except Exception as exc:
        raise context.annotate(_unreadable(key, response, exc), response.headers) from None


@capabilities.dispatch
def _no_capabilities(key: ProviderKey, model: str) -> Any:
    # A provider that declares nothing is assumed to support nothing optional:
    # the struct's defaults, which are all off.
    return Capabilities()


def _transport(key: ProviderKey, config: Config) -> _http.Transport:
    transport = config.transport
    if transport is None:
        return _http.default_transport
    if not isinstance(transport, _http.Transport):
        raise InvalidRequestError(
            f"config transport must be an llmkit Transport, not {type(transport).__name__}",
            provider=key.name,
        )
    return transport


def prepare(
    provider: str | ProviderKey,
    model: str,
    request: ChatRequest | Mapping[str, Any],
    config: Config | Mapping[str, Any] | None,
    stream: bool,
) -> tuple[ProviderKey, ChatRequest, Config]:
    """Check a call's input and return what the ``completion`` generics take.

    This is the front half of every façade call: the provider name
    becomes its key, the request (a dict or a ``ChatRequest``) is
    validated with ``model`` and ``stream`` set, and the config is
    resolved (key from the environment, default base URL, options).
    ``completion(*prepare(...))`` is then exactly ``llmkit.core``'s call;
    the contract suite drives providers this way.

    Raises:
        ProviderNotFoundError: unknown provider name.
        InvalidRequestError: bad request or config, naming the field.
        AuthenticationError: no API key where the provider needs one.
    """
    key = keys.resolve(provider)
    try:
        if type(model) is not str:
            raise InvalidRequestError(
                f"model must be a string such as 'gpt-4o-mini', not {type(model).__name__}"
            )
        req = to_request(request, model=model)
        if req.stream is not stream:
            req = msgspec.structs.replace(req, stream=stream)
        check_request(req)
        settings = resolve_config(key, to_config(config))
    except LLMError as exc:
        exc.provider = key.name
        if exc.model is None and type(model) is str:
            exc.model = model or None
        raise
    return key, req, settings


@completion.dispatch
def _completion(key: ProviderKey, request: ChatRequest, config: Config) -> Any:
    call = build_call(key, request, config)
    context = _Context(key, request, config, call.headers)
    transport = _transport(key, config)
    if call.stream:
        pipeline = _pipeline(key, request, call.framing, context)
        body = transport.send(call, config, context)
        context.headers = body.headers
        return Stream(body, pipeline, body.close, body.drain)
    response = transport.send(call, config, context)
    return _decoded(key, response, request, context)


async def _acompletion_body(key: ProviderKey, request: ChatRequest, config: Config) -> Any:
    call = build_call(key, request, config)
    context = _Context(key, request, config, call.headers)
    transport = _transport(key, config)
    if call.stream:
        pipeline = _pipeline(key, request, call.framing, context)
        body = await transport.asend(call, config, context)
        context.headers = body.headers
        return AsyncStream(body, pipeline, body.aclose, body.adrain)
    response = await transport.asend(call, config, context)
    return _decoded(key, response, request, context)


@acompletion.dispatch
def _acompletion(key: ProviderKey, request: ChatRequest, config: Config) -> Any:
    return _acompletion_body(key, request, config)


class _ListedModel(msgspec.Struct):
    id: str = ""


class _ModelList(msgspec.Struct):
    data: list[_ListedModel] = []


_DECODE_MODELS = msgspec.json.Decoder(_ModelList)


@probe.dispatch
def _probe(key: ProviderKey, config: Config) -> Any:
    if not config.api_base:
        raise InvalidRequestError(
            f"{key.name} has no api_base to probe; pass api_base=, or name a model for a "
            "completion probe",
            provider=key.name,
        )
    call = HttpCall(
        url=config.api_base + "/models", body=b"", headers=auth_headers(key, config), method="GET"
    )
    # No chat request exists; an empty one gives errors their provider and no model.
    context = _Context(key, ChatRequest(model="", messages=[]), config, call.headers)
    started = time.perf_counter()
    try:
        response = _transport(key, config).send(call, config, context)
    except LLMError as error:
        if not error.model:
            error.model = None  # the probe asked for no model
        raise
    latency = time.perf_counter() - started
    try:
        listed = tuple(entry.id for entry in _DECODE_MODELS.decode(response.body).data if entry.id)
    except (msgspec.DecodeError, msgspec.ValidationError):
        listed = ()  # reachable and authorised is what counts; the list is a bonus
    return ProbeResult(status=response.status, latency=latency, models=listed)


@contextlib.contextmanager
def scoped_providers() -> Iterator[None]:
    """Undo, when the block ends, every key, method and framing registered inside it.

    For tests (llmkit's own and provider packages'): a provider defined in a
    test does not outlive it. Installed providers (entry points) are loaded
    before the block starts and kept. Not meant for a process that is
    serving calls meanwhile.

    Raises:
        RuntimeError: the installed plum keeps its methods where llmkit does
            not expect them (pin ``plum-dispatch`` to a tested version).
    """
    # Installed providers load before the snapshot, so that the block cannot
    # forget one it loaded (its module would stay imported, methods gone).
    keys.load_entry_points()
    functions = list(generic_functions().values())
    saved: list[tuple[Any, list[Any]]] = []
    for function in functions:
        try:
            function._resolve_pending_registrations()
            saved.append((function, list(function._resolved)))
        except AttributeError as exc:
            raise RuntimeError(
                f"scoped_providers() does not know this plum version ({exc}); "
                "install plum-dispatch 2.10"
            ) from None
    saved_keys = keys._snapshot()
    saved_framings = _framing._snapshot()
    try:
        yield
    finally:
        for function, resolved in saved:
            function._resolve_pending_registrations()
            if function._resolved != resolved:
                # Back to the methods it had: they register again on next use.
                function._resolved = list(resolved)
                function.clear_cache(reregister=True)
        keys._restore(saved_keys)
        _framing._restore(saved_framings)


def cached_dispatch(key: ProviderKey) -> dict[str, int]:
    """How many dispatch-cache entries each generic function holds for ``key``'s type.

    Plum resolves a method once per argument types and caches it; a
    provider whose entries vanish between calls (a cache cleared by a
    late registration) pays the resolution on every call. The contract
    suite checks that the entries stay put after loading.
    """
    kind = type(key)
    counts: dict[str, int] = {}
    for name, function in generic_functions().items():
        cache = getattr(function, "_cache", {})
        counts[name] = sum(1 for types in cache if types and types[0] is kind)
    return counts


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
        "probe": probe,
    }
