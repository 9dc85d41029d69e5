"""OpenAI chat completions, and the codec every OpenAI-compatible provider shares.

The codec is registered on :class:`OpenAICompatible`; :class:`OpenAI` and
the compatible providers (Groq, OpenRouter, DeepSeek, vLLM, ...) derive
from it and override only what differs, as Clojure's ``derive`` does. What
differs is class data on the key, read by this one codec: where reasoning
text arrives, what goes back in the history, extra headers, fields to drop
or rename, in-stream error events, which models want
``max_completion_tokens``. A key that sets none of it takes exactly
OpenAI's path, at OpenAI's speed.

Wire facts this module rests on (from recorded traffic):

* usage arrives in a last chunk with ``"choices": []``, and only when the
  request asks for it with ``stream_options.include_usage``;
* a stream ends with ``data: [DONE]`` (every recorded OpenAI, OpenRouter,
  Groq and DeepSeek stream does), so only that marks a clean end: a stream
  cut after the finish reason but before the usage chunk still raises; an
  error mid-stream arrives as ``data: {"error": {...}}`` (Groq adds the
  would-be ``status_code``; OpenRouter puts the error on a chunk that also
  has choices, with an HTTP status as its ``code``);
* tool-call deltas carry ``index`` on every piece and ``id``/``name`` only
  on the first (the accumulator in ``llmkit.streaming`` assembles them);
* reasoning models (o1, o3, o4, gpt-5) refuse ``max_tokens`` and want
  ``max_completion_tokens``;
* reasoning text arrives as ``reasoning`` (OpenRouter, Groq, Cerebras,
  Ollama) or as ``reasoning_content`` (DeepSeek, Moonshot, Z.ai, xAI).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import msgspec

from llmkit.provider import (
    AuthenticationError,
    Capabilities,
    ChatRequest,
    ChatResponse,
    Config,
    ContentFilterError,
    ContextWindowError,
    Delta,
    HttpCall,
    HttpResponse,
    InvalidRequestError,
    LLMError,
    NotFoundError,
    PermissionDeniedError,
    ProviderKey,
    RateLimitError,
    ServiceUnavailableError,
    SSEEvent,
    StreamChunk,
    StreamOptions,
    StreamState,
    Usage,
    auth_headers,
    body_text,
    capabilities,
    decode_error,
    decode_event,
    decode_response,
    encode_request,
)

__all__ = [
    "OpenAI",
    "OpenAICompatible",
    "build_headers",
    "encode_openai_request",
    "error_from_body",
    "shown_body",
]

_NONE: Mapping[str, str] = MappingProxyType({})
_FULL = Capabilities(
    streaming=True,
    tools=True,
    parallel_tool_calls=True,
    vision=True,
    file_input=True,
    json_mode=True,
    json_schema=True,
)


class OpenAICompatible(ProviderKey):
    """Base key of every provider that speaks OpenAI's chat-completions protocol.

    Not registered under a name itself: subclass it with ``name``,
    ``default_base_url`` and ``api_key_env`` to add a compatible provider,
    and set the class data below where the provider differs. The data is
    read once, when the subclass is defined.

    Attributes:
        chat_path: appended to ``api_base``.
        max_completion_tokens_models: model-name prefixes (after any
            ``vendor/``) for which ``max_tokens`` is sent as
            ``max_completion_tokens``.
        drop_fields: request fields the provider refuses; left out.
        rename_fields: request fields the provider names otherwise.
        default_headers: headers every call sends (a user's headers win).
        option_headers: provider-option fields sent as headers, by header name.
        option_fields: provider-option fields sent as request fields of the same name.
        regional_base_urls: base URLs by the ``region`` provider option,
            used while ``api_base`` is the default one.
        optional_api_key_env: a variable whose key is sent when set, for a
            provider that needs none (a local server started with a key).
        reasoning_fields: more message and delta fields that carry the
            reasoning text (``reasoning_content``); ``reasoning`` is read anyway.
        reasoning_echo: the assistant-message field reasoning from the
            history is sent back in, or ``None``: it is left out.
        message_data_fields: message and delta fields kept in
            ``provider_data[name]`` and sent back on assistant messages
            (OpenRouter's ``reasoning_details``).
        choice_data_fields: choice fields kept in the message's ``provider_data[name]``.
        response_data_fields: top-level fields kept in each message's
            ``provider_data[name]`` (Perplexity's ``citations``).
        usage_fields: top-level objects whose ``usage`` stands in when the
            top-level ``usage`` is missing (Groq's ``x_groq``).
        chunk_errors: an error may ride on a chunk that also has choices.
        base_capabilities: what every model of the provider supports.
        model_flags: more capability flags by the model-name prefixes
            (after any ``vendor/``, in any case) of the models that have
            them: ``{"reasoning": ("deepseek-reasoner",)}``. Models in
            ``max_completion_tokens_models`` reason too.
        audio_models: model-name parts of the models that take audio input.
    """

    __slots__ = ()
    chat_path: ClassVar[str] = "/chat/completions"
    max_completion_tokens_models: ClassVar[tuple[str, ...]] = ()
    drop_fields: ClassVar[frozenset[str]] = frozenset()
    rename_fields: ClassVar[Mapping[str, str]] = _NONE
    default_headers: ClassVar[Mapping[str, str]] = _NONE
    option_headers: ClassVar[Mapping[str, str]] = _NONE
    option_fields: ClassVar[tuple[str, ...]] = ()
    regional_base_urls: ClassVar[Mapping[str, str]] = _NONE
    optional_api_key_env: ClassVar[str | None] = None
    reasoning_fields: ClassVar[tuple[str, ...]] = ()
    reasoning_echo: ClassVar[str | None] = None
    message_data_fields: ClassVar[tuple[str, ...]] = ()
    choice_data_fields: ClassVar[tuple[str, ...]] = ()
    response_data_fields: ClassVar[tuple[str, ...]] = ()
    usage_fields: ClassVar[tuple[str, ...]] = ()
    chunk_errors: ClassVar[bool] = False
    base_capabilities: ClassVar[Capabilities] = _FULL
    model_flags: ClassVar[Mapping[str, tuple[str, ...]]] = MappingProxyType({})
    audio_models: ClassVar[tuple[str, ...]] = ("audio",)
    # What the class data above asks of the codec, compiled once; None for
    # a key that differs from OpenAI in nothing but names (the fast path).
    _wire: ClassVar[_Wire | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        unknown = set(cls.model_flags) - set(Capabilities.__struct_fields__)
        if unknown:
            raise ValueError(f"model_flags of {cls.__name__} name no capability: {sorted(unknown)}")
        # Compiled before the name is published, so no call sees it without.
        cls._wire = _Wire.of(cls)
        super().__init_subclass__(**kwargs)


# --- wire structs: only the fields the codec reads ------------------------------


class _ErrorBody(msgspec.Struct):
    message: str = ""
    type: str | None = None
    code: str | int | None = None
    param: str | None = None
    status_code: int | None = None  # Groq puts the would-be status in stream errors
    metadata: dict[str, Any] | None = None  # OpenRouter: the upstream provider's error


class _ErrorEnvelope(msgspec.Struct):
    error: _ErrorBody | str | None = None
    message: str | None = None


_ENCODE = msgspec.json.Encoder()
_DECODE_RESPONSE = msgspec.json.Decoder(ChatResponse)
_DECODE_CHUNK = msgspec.json.Decoder(StreamChunk)
_DECODE_ERROR = msgspec.json.Decoder(_ErrorEnvelope)
_INCLUDE_USAGE = StreamOptions(include_usage=True)
_DONE = b"[DONE]"
# Text fields of typed pieces (OpenRouter's reasoning_details) that arrive cut
# across stream chunks; other fields of a piece take their latest value.
_JOINED = frozenset({"text", "summary", "data"})


class _Wire:
    """What a key's class data asks of the codec, compiled when the key is defined.

    Attributes:
        always: every request is reshaped (fields dropped or renamed).
        echoes: history reasoning or provider data goes back on assistant messages.
        headers: calls get headers besides the key's auth header.
        triggers: byte strings whose presence in a body or chunk means the
            extra fields must be read (a second, narrow decode).
        extras: the decoder of those extra fields, or ``None``.
    """

    __slots__ = ("always", "echoes", "extras", "headers", "regional", "triggers")

    def __init__(self, key: type[OpenAICompatible]) -> None:
        self.always = bool(key.drop_fields or key.rename_fields)
        self.echoes = bool(key.reasoning_echo or key.message_data_fields)
        self.headers = bool(key.default_headers or key.option_headers or key.optional_api_key_env)
        self.regional = bool(key.regional_base_urls)
        fields = (
            *key.reasoning_fields,
            *key.message_data_fields,
            *key.choice_data_fields,
            *key.response_data_fields,
            *key.usage_fields,
        )
        if key.chunk_errors:
            fields = (*fields, "error")
        self.triggers = tuple(b'"' + name.encode() + b'"' for name in dict.fromkeys(fields))
        self.extras = _extras_decoder(key) if fields else None

    @classmethod
    def of(cls, key: type[OpenAICompatible]) -> _Wire | None:
        """The compiled data of ``key``, or ``None`` when it takes OpenAI's own path."""
        wire = cls(key)
        if wire.always or wire.echoes or wire.headers or wire.regional or wire.extras:
            return wire
        if key.option_fields:
            return wire
        return None

    def triggered(self, data: bytes) -> bool:
        """Whether ``data`` may hold one of the extra fields."""
        return any(trigger in data for trigger in self.triggers)


def _extras_decoder(key: type[OpenAICompatible]) -> msgspec.json.Decoder[Any]:
    """A decoder of only the extra fields ``key`` reads from bodies and chunks."""

    def optional(names: tuple[str, ...]) -> list[tuple[str, Any, Any]]:
        return [(name, Any, None) for name in dict.fromkeys(names)]

    message = msgspec.defstruct(
        "_MessageExtras", optional((*key.reasoning_fields, *key.message_data_fields))
    )
    choice = msgspec.defstruct(
        "_ChoiceExtras",
        [
            ("index", int, 0),
            ("message", message | None, None),
            ("delta", message | None, None),
            *optional(key.choice_data_fields),
        ],
    )
    top = [*optional((*key.response_data_fields, *key.usage_fields))]
    if key.chunk_errors:
        top.append(("error", Any, None))
    body = msgspec.defstruct("_BodyExtras", [("choices", list[choice], []), *top])  # type: ignore[valid-type]
    return msgspec.json.Decoder(body)


class OpenAI(OpenAICompatible):
    """OpenAI's own API (``api.openai.com``); key from ``OPENAI_API_KEY``."""

    __slots__ = ()
    name = "openai"
    default_base_url = "https://api.openai.com/v1"
    api_key_env = "OPENAI_API_KEY"
    # Reasoning models refuse max_tokens.
    max_completion_tokens_models = ("o1", "o3", "o4", "gpt-5")


def _is_reasoning(key: OpenAICompatible, model: str) -> bool:
    # The models that want max_completion_tokens are the reasoning ones.
    prefixes = key.max_completion_tokens_models
    return bool(prefixes and model) and model.rsplit("/", 1)[-1].startswith(prefixes)


def _named(prefixes: tuple[str, ...], model: str) -> bool:
    if not prefixes or not model:
        return False
    bare = model.rsplit("/", 1)[-1].lower()
    return any(bare.startswith(prefix.lower()) for prefix in prefixes)


def build_headers(key: ProviderKey, request: ChatRequest, config: Config) -> dict[str, str]:
    """Return the JSON headers, the key's own headers, its auth header, config and extra headers.

    Raises:
        AuthenticationError: the key's optional key variable holds a value
            no HTTP header can carry.
    """
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    wire: _Wire | None = getattr(key, "_wire", None)
    if wire is not None and wire.headers:
        _add_key_headers(key, headers, config)  # type: ignore[arg-type]
    headers.update(auth_headers(key, config))
    if request.extra_headers:
        headers.update(request.extra_headers)
    return headers


def _add_key_headers(key: OpenAICompatible, headers: dict[str, str], config: Config) -> None:
    headers.update(key.default_headers)
    options = config.options
    if options is not None:
        for field, header in key.option_headers.items():
            value = getattr(options, field, None)
            if value is not None:
                headers[header] = str(value)
    variable = key.optional_api_key_env
    if variable and config.api_key is None and key.auth_header:
        # Read here, not in resolve_config: a missing key is no error for
        # these providers, and the framework knows only required ones.
        value = os.environ.get(variable, "").strip()
        if value:
            if not (value.isascii() and value.isprintable() and " " not in value):
                raise AuthenticationError(
                    f"the API key in {variable} holds spaces, line breaks or non-ASCII "
                    f"characters; fix {variable} or pass api_key=",
                    provider=key.name,
                )
            headers[key.auth_header] = key.auth_prefix + value


def encode_openai_request(
    key: OpenAICompatible,
    request: ChatRequest,
    config: Config,
    *,
    path: str | None = None,
    url: str | None = None,
    headers: dict[str, str] | None = None,
) -> HttpCall:
    """Build the HTTP call for an OpenAI-shaped chat-completions endpoint.

    What differs between compatible providers comes from the key's class
    data (see :class:`OpenAICompatible`). Streams ask for usage on the last
    chunk unless the request says otherwise; calls that do not stream send
    no ``stream_options`` (providers refuse it there). ``url`` replaces
    ``api_base`` plus ``path`` (Azure builds its own), ``headers`` the
    headers :func:`build_headers` makes.

    Raises:
        AuthenticationError: as :func:`build_headers`.
    """
    extra = request.extra_body
    changes: dict[str, Any] = {}
    if extra is not None:
        changes["extra_body"] = None
    if request.extra_headers is not None:
        changes["extra_headers"] = None
    if not request.stream:
        if request.stream_options is not None:
            changes["stream_options"] = None
    elif request.stream_options is None:
        changes["stream_options"] = _INCLUDE_USAGE
    if (
        request.max_tokens is not None
        and request.max_completion_tokens is None
        and _is_reasoning(key, request.model)
    ):
        changes["max_tokens"] = None
        changes["max_completion_tokens"] = request.max_tokens
    for first in request.messages:  # a plain loop: the cheapest per message
        if first.reasoning is not None or first.provider_data is not None:
            break
    else:
        first = None
    if first is not None:
        # Reasoning text and providers' opaque data stay in the history but
        # never reach the wire as they are: OpenAI refuses unknown message
        # fields. A key that takes some of them back puts them in below.
        changes["messages"] = [
            msgspec.structs.replace(m, reasoning=None, provider_data=None)
            if m.reasoning is not None or m.provider_data is not None
            else m
            for m in request.messages
        ]
    wire = msgspec.structs.replace(request, **changes) if changes else request
    quirks = key._wire
    if extra or (
        quirks is not None
        and (
            quirks.always
            or (quirks.echoes and first is not None)
            or (config.options is not None and key.option_fields)
        )
    ):
        payload = msgspec.to_builtins(wire)
        if quirks is not None:
            _reshape(key, payload, request, config, first is not None)
        if extra:
            payload.update(extra)
        body = _ENCODE.encode(payload)
    else:
        body = _ENCODE.encode(wire)
    if url is None:
        base = config.api_base
        if quirks is not None and quirks.regional and config.options is not None:
            base = _regional_base(key, config)
        path = key.chat_path if path is None else path
        url = base + path if base else path
    return HttpCall(
        url=url,
        body=body,
        headers=build_headers(key, request, config) if headers is None else headers,
        stream=request.stream,
    )


def _reshape(
    key: OpenAICompatible,
    payload: dict[str, Any],
    request: ChatRequest,
    config: Config,
    history: bool,
) -> None:
    """Apply the key's request quirks to the JSON payload, in place."""
    for name in key.drop_fields:
        payload.pop(name, None)
    for old, new in key.rename_fields.items():
        if old in payload:
            payload[new] = payload.pop(old)
    options = config.options
    if options is not None:
        for name in key.option_fields:
            value = getattr(options, name, None)
            if value is not None:
                payload[name] = msgspec.to_builtins(value)
    if history and key._wire is not None and key._wire.echoes:
        _echo(key, payload["messages"], request)


def _echo(key: OpenAICompatible, sent: list[dict[str, Any]], request: ChatRequest) -> None:
    """Put back on assistant messages what the provider wants to see again."""
    echo = key.reasoning_echo
    fields = key.message_data_fields
    for out, message in zip(sent, request.messages, strict=True):
        if message.role != "assistant":
            continue
        if echo and message.reasoning is not None:
            out[echo] = message.reasoning
        data = message.provider_data.get(key.name) if message.provider_data else None
        if isinstance(data, dict):
            for name in fields:
                if data.get(name) is not None:
                    out[name] = data[name]


def _regional_base(key: OpenAICompatible, config: Config) -> str | None:
    """The base URL of the ``region`` option, while ``api_base`` is the default.

    Raises:
        InvalidRequestError: the region is not one the key knows.
    """
    region = getattr(config.options, "region", None)
    if region is None or config.api_base != key.default_base_url:
        return config.api_base
    base = key.regional_base_urls.get(region)
    if base is None:
        known = ", ".join(sorted(key.regional_base_urls))
        raise InvalidRequestError(
            f"{key.name} has no region {region!r}; pass one of {known}, or api_base=",
            provider=key.name,
        )
    return base


@encode_request.dispatch
def _encode(key: OpenAICompatible, request: ChatRequest, config: Config) -> Any:
    return encode_openai_request(key, request, config)


@decode_response.dispatch
def _decode_response(key: OpenAICompatible, response: HttpResponse, request: ChatRequest) -> Any:
    try:
        decoded = _DECODE_RESPONSE.decode(response.body)
    except msgspec.DecodeError as exc:
        return _raise_malformed(key, response, request, exc)
    if not decoded.choices:
        # Some gateways answer 200 with an error envelope; others with {} when
        # api_base points at something that is not a chat-completions endpoint.
        if _has_error(response.body):
            raise error_from_body(key, None, response.body, request.model)
        raise LLMError(
            f"{key.name} answered {response.status} with a body that is not a chat "
            "completion (it has no choices); check api_base points at an "
            "OpenAI-compatible /chat/completions endpoint",
            provider=key.name,
            model=request.model,
            status=response.status,
        )
    wire = key._wire
    if wire is not None and wire.extras is not None:
        return _with_extras(key, decoded, wire.extras.decode(response.body))
    return decoded


def _raise_malformed(
    key: ProviderKey, response: HttpResponse, request: ChatRequest, exc: Exception
) -> Any:
    raise LLMError(
        f"{key.name} answered {response.status} with a body that is not a chat completion "
        f"({exc}); check api_base points at an OpenAI-compatible endpoint",
        provider=key.name,
        model=request.model,
        status=response.status,
    ) from None


@decode_event.dispatch
def _decode_event(key: OpenAICompatible, event: SSEEvent, state: StreamState) -> Any:
    data = event.data
    if data == _DONE:
        state.done = True
        return None
    try:
        chunk = _DECODE_CHUNK.decode(data)
    except msgspec.DecodeError as exc:
        return LLMError(
            f"{key.name} sent a stream event that is not a chunk ({exc})",
            provider=key.name,
            model=state.model,
        )
    wire = key._wire
    if wire is not None and wire.extras is not None and wire.triggered(data):
        result = _chunk_with_extras(key, chunk, wire.extras.decode(data), data, state)
        if not isinstance(result, StreamChunk):
            return result
        chunk = result
    if not chunk.choices and chunk.usage is None and not chunk.id:
        # An error envelope, or a chunk that carries nothing for us (Azure opens
        # streams with {"id": "", "choices": [], "prompt_filter_results": [...]}).
        if _has_error(data):
            return error_from_body(key, None, data, state.model)
        return None
    for choice in chunk.choices:
        if choice.delta.tool_calls and _unopened_call(choice.index, choice.delta, state):
            return LLMError(
                f"{key.name} sent a tool call delta for an index it never opened (no id or "
                "name came first); the stream is corrupt, retry the call",
                provider=key.name,
                model=state.model,
            )
    return chunk


def _unopened_call(index: int, delta: Delta, state: StreamState) -> bool:
    """Record the tool calls ``delta`` opens; return whether it continues one never opened."""
    opened: set[tuple[int, int]] = state.data.setdefault("openai_calls", set())
    for call in delta.tool_calls or ():
        slot = (index, call.index)
        if call.id or (call.function is not None and call.function.name):
            opened.add(slot)
        elif slot not in opened:
            return True
    return False


# --- extra fields: reasoning under other names, provider data, usage elsewhere ---


def _text_of(extras: Any, names: tuple[str, ...]) -> str | None:
    """The first non-empty text among ``names`` of a message's or delta's extras."""
    if extras is None:
        return None
    for name in names:
        value = getattr(extras, name)
        if isinstance(value, str) and value:
            return value
    return None


def _data_of(
    key: OpenAICompatible, extras: Any, choice: Any, top: dict[str, Any]
) -> dict[str, Any]:
    """The provider data of one choice: message or delta fields, choice fields, top fields.

    Empty values (``null``, ``[]``, ``{}``, ``""``) say nothing and are left
    out: a stream repeats ``"reasoning_details": []`` after the pieces that count.
    """
    data = dict(top)
    if extras is not None:
        for name in key.message_data_fields:
            value = getattr(extras, name)
            if _said(value):
                data[name] = value
    if choice is not None:
        for name in key.choice_data_fields:
            value = getattr(choice, name)
            if _said(value):
                data[name] = value
    return data


def _said(value: Any) -> bool:
    return value is not None and value != [] and value != {} and value != ""


def _top_data(key: OpenAICompatible, extras: Any) -> dict[str, Any]:
    return {
        name: value for name in key.response_data_fields if _said(value := getattr(extras, name))
    }


def _usage_of(key: OpenAICompatible, extras: Any) -> Usage | None:
    for name in key.usage_fields:
        holder = getattr(extras, name)
        usage = holder.get("usage") if isinstance(holder, dict) else None
        if isinstance(usage, dict):
            try:
                return msgspec.convert(usage, Usage)
            except msgspec.ValidationError:
                return None
    return None


def _with_data(provider_data: dict[str, Any] | None, name: str, data: dict[str, Any]) -> Any:
    merged = dict(provider_data) if provider_data else {}
    merged[name] = data
    return merged


def _with_extras(key: OpenAICompatible, decoded: ChatResponse, extras: Any) -> ChatResponse:
    """``decoded`` with the key's extra fields read from the same body."""
    top = _top_data(key, extras)
    by_index = {choice.index: choice for choice in extras.choices}
    choices = []
    for choice in decoded.choices:
        extra = by_index.get(choice.index)
        found = extra.message if extra is not None else None
        message = choice.message
        reasoning = message.reasoning
        if reasoning is None:
            reasoning = _text_of(found, key.reasoning_fields)
        data = _data_of(key, found, extra, top)
        if reasoning is not message.reasoning or data:
            message = msgspec.structs.replace(
                message,
                reasoning=reasoning,
                provider_data=_with_data(message.provider_data, key.name, data)
                if data
                else message.provider_data,
            )
            choice = msgspec.structs.replace(choice, message=message)
        choices.append(choice)
    usage = decoded.usage if decoded.usage is not None else _usage_of(key, extras)
    return msgspec.structs.replace(decoded, choices=choices, usage=usage)


def _chunk_with_extras(
    key: OpenAICompatible, chunk: StreamChunk, extras: Any, data: bytes, state: StreamState
) -> StreamChunk | LLMError:
    """``chunk`` with the key's extra fields, or the error the chunk carries."""
    if key.chunk_errors and extras.error is not None:
        return error_from_body(key, None, data, state.model)
    top = _top_data(key, extras)
    by_index = {choice.index: choice for choice in extras.choices}
    choices = []
    for choice in chunk.choices:
        extra = by_index.get(choice.index)
        found = extra.delta if extra is not None else None
        delta = choice.delta
        reasoning = delta.reasoning
        if reasoning is None:
            reasoning = _text_of(found, key.reasoning_fields)
        pieces = _data_of(key, found, extra, top)
        provider_data = delta.provider_data
        if pieces:
            provider_data = _with_data(
                provider_data, key.name, _assembled(state, choice.index, pieces)
            )
        if reasoning is not delta.reasoning or provider_data is not delta.provider_data:
            delta = msgspec.structs.replace(delta, reasoning=reasoning, provider_data=provider_data)
            choice = msgspec.structs.replace(choice, delta=delta)
        choices.append(choice)
    usage = chunk.usage if chunk.usage is not None else _usage_of(key, extras)
    return msgspec.structs.replace(chunk, choices=choices, usage=usage)


def _assembled(state: StreamState, index: int, pieces: dict[str, Any]) -> dict[str, Any]:
    """The provider data of choice ``index`` so far, ``pieces`` folded in.

    The accumulator keeps the last provider data a delta carries, so each
    delta carries everything so far: typed pieces cut across chunks
    (``{"type": "reasoning.text", "index": 0, "text": "..."}``) are joined,
    other fields keep their latest value.
    """
    kept: dict[int, dict[str, Any]] = state.data.setdefault("provider_data", {})
    so_far = dict(kept.get(index) or {})
    for name, value in pieces.items():
        old = so_far.get(name)
        if _typed_pieces(value) and isinstance(old, list):
            so_far[name] = _joined(old, value)
        else:
            so_far[name] = value
    kept[index] = so_far
    return so_far


def _typed_pieces(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(p, dict) and "type" in p for p in value)
    )


def _joined(old: list[Any], new: list[Any]) -> list[Any]:
    """``old`` then ``new``, a piece of the same type and index as the last one joined to it."""
    out = [dict(piece) if isinstance(piece, dict) else piece for piece in old]
    for piece in new:
        last = out[-1] if out else None
        if (
            isinstance(last, dict)
            and last.get("type") == piece.get("type")
            and last.get("index") == piece.get("index")
        ):
            for name, value in piece.items():
                if name in _JOINED and isinstance(value, str) and isinstance(last.get(name), str):
                    last[name] += value
                elif value is not None:
                    last[name] = value
        else:
            out.append(dict(piece))
    return out


# --- errors ----------------------------------------------------------------------


def _has_error(data: bytes) -> bool:
    try:
        return _DECODE_ERROR.decode(data).error is not None
    except msgspec.DecodeError:
        return False


# Errors inside a 200 stream have no status of their own; their type tells it.
_STATUS_OF_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "rate_limit_error": 429,
    "rate_limit_exceeded": 429,
    "tokens": 429,
    "insufficient_quota": 429,
    "server_error": 500,
    "overloaded_error": 503,
}


def error_from_body(
    key: ProviderKey, status: int | None, body: bytes, model: str | None
) -> LLMError:
    """Map an OpenAI-shaped error body and HTTP status to the llmkit error.

    ``status`` is ``None`` for an error event inside a stream; the body's
    ``status_code``, a numeric ``code`` (OpenRouter's are HTTP statuses) or
    the error type then stands in for it (500 when none says more).
    """
    message = ""
    code: str | None = None
    kind: str | None = None
    try:
        envelope = _DECODE_ERROR.decode(body)
    except msgspec.DecodeError:
        envelope = None
    if envelope is not None:
        if isinstance(envelope.error, _ErrorBody):
            found = envelope.error
            message = found.message + _upstream(found.metadata)
            code = None if found.code is None else str(found.code)
            kind = found.type
            if status is None:
                status = found.status_code
            if status is None and type(found.code) is int and 400 <= found.code < 600:
                status = found.code
        elif isinstance(envelope.error, str):
            message = envelope.error
        elif envelope.message:
            message = envelope.message
    if status is None:
        status = _STATUS_OF_TYPE.get(kind or "", 500)
    if not message:
        message = shown_body(body)[:500] or f"HTTP {status} with an empty body"
    return _classify(key, status, message, code, kind, model)


def _upstream(metadata: dict[str, Any] | None) -> str:
    # OpenRouter says "Provider returned error" and puts the provider's own
    # words under metadata.raw; they are what tells the user what to do.
    if not metadata:
        return ""
    raw = metadata.get("raw")
    if not isinstance(raw, str) or not raw:
        return ""
    name = metadata.get("provider_name")
    who = f"{name}: " if isinstance(name, str) and name else ""
    return f" ({who}{raw[:500]})"


def shown_body(body: bytes, limit: int = 500) -> str:
    """An error body as message text an echoed key cannot hide in.

    JSON is shown re-encoded, so the string escapes a server used (a
    backslash-u per letter of a key) are resolved for the scrubber; a body too big (over 64 KB) or
    too deep to decode shows its first ``limit`` characters, escapes
    resolved (:func:`llmkit.provider.body_text`).
    """
    if len(body) <= 65_536:
        try:
            return _ENCODE.encode(msgspec.json.decode(body)).decode()
        except (msgspec.DecodeError, UnicodeError, RecursionError):
            pass
    return body_text(body, limit)


def _classify(
    key: ProviderKey,
    status: int,
    message: str,
    code: str | None,
    kind: str | None,
    model: str | None,
) -> LLMError:
    tag = code or kind
    common: dict[str, Any] = {"provider": key.name, "model": model, "status": status, "code": tag}
    if code == "context_length_exceeded" or "maximum context length" in message:
        return ContextWindowError(f"{message} Shorten the messages or lower max_tokens.", **common)
    if code == "content_filter" or code == "content_policy_violation":
        return ContentFilterError(message, **common)
    if status == 401:
        env = key.api_key_env or "the provider's key variable"
        return AuthenticationError(f"{message} Check {env} or api_key=.", **common)
    if status == 402:
        return PermissionDeniedError(
            f"{message} The account is out of credits; add credits with the provider.", **common
        )
    if status == 403:
        return PermissionDeniedError(
            f"{message} Check that the key's project or organization may use this model.",
            **common,
        )
    if status == 404:
        return NotFoundError(f"{message} Check the model name and api_base.", **common)
    if status == 429:
        # Quota exhaustion looks like a rate limit but retrying cannot help.
        quota = code == "insufficient_quota" or kind == "insufficient_quota"
        hint = " Add credits or raise the quota." if quota else " Slow down or retry later."
        return RateLimitError(message + hint, retryable=not quota, **common)
    if status in (400, 413, 422):
        return InvalidRequestError(message, **common)
    if status in (408, 409) or status >= 500:
        return ServiceUnavailableError(
            f"{message} The provider failed or is overloaded; retry later.", **common
        )
    return LLMError(message, **common)


@decode_error.dispatch
def _decode_error(key: OpenAICompatible, response: HttpResponse, request: ChatRequest) -> Any:
    return error_from_body(key, response.status, response.body, request.model)


@capabilities.dispatch
def _capabilities(key: OpenAICompatible, model: str) -> Any:
    caps = key.base_capabilities
    changes: dict[str, bool] = {}
    if not caps.reasoning and _is_reasoning(key, model):
        changes["reasoning"] = True
    if not caps.audio_input and any(part in model for part in key.audio_models):
        changes["audio_input"] = True
    for flag, prefixes in key.model_flags.items():
        if not getattr(caps, flag) and _named(prefixes, model):
            changes[flag] = True
    return msgspec.structs.replace(caps, **changes) if changes else caps
