"""OpenAI chat completions, and the codec every OpenAI-compatible provider shares.

The codec is registered on :class:`OpenAICompatible`; :class:`OpenAI` and
later compatible providers (Groq, OpenRouter, DeepSeek, vLLM, ...) derive
from it and override only what differs, as Clojure's ``derive`` does.

Wire facts this module rests on (from recorded traffic):

* usage arrives in a last chunk with ``"choices": []``, and only when the
  request asks for it with ``stream_options.include_usage``;
* a stream ends with ``data: [DONE]`` (every recorded OpenAI, OpenRouter,
  Groq and DeepSeek stream does), so only that marks a clean end: a stream
  cut after the finish reason but before the usage chunk still raises; an
  error mid-stream arrives as ``data: {"error": {...}}``;
* tool-call deltas carry ``index`` on every piece and ``id``/``name`` only
  on the first (the accumulator in ``llmkit.streaming`` assembles them);
* reasoning models (o1, o3, o4, gpt-5) refuse ``max_tokens`` and want
  ``max_completion_tokens``.
"""

from __future__ import annotations

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
    auth_headers,
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
]


class OpenAICompatible(ProviderKey):
    """Base key of every provider that speaks OpenAI's chat-completions protocol.

    Not registered under a name itself: subclass it with ``name``,
    ``default_base_url`` and ``api_key_env`` to add a compatible provider,
    and set the class data below where the provider differs.

    Attributes:
        chat_path: appended to ``api_base``.
        max_completion_tokens_models: model-name prefixes (after any
            ``vendor/``) for which ``max_tokens`` is sent as
            ``max_completion_tokens``.
        drop_fields: request fields the provider refuses; left out.
        rename_fields: request fields the provider names otherwise.
    """

    __slots__ = ()
    chat_path: ClassVar[str] = "/chat/completions"
    max_completion_tokens_models: ClassVar[tuple[str, ...]] = ()
    drop_fields: ClassVar[frozenset[str]] = frozenset()
    rename_fields: ClassVar[Mapping[str, str]] = MappingProxyType({})


class OpenAI(OpenAICompatible):
    """OpenAI's own API (``api.openai.com``); key from ``OPENAI_API_KEY``."""

    __slots__ = ()
    name = "openai"
    default_base_url = "https://api.openai.com/v1"
    api_key_env = "OPENAI_API_KEY"
    # Reasoning models refuse max_tokens.
    max_completion_tokens_models = ("o1", "o3", "o4", "gpt-5")


# --- wire structs: only the fields the codec reads ------------------------------


class _ErrorBody(msgspec.Struct):
    message: str = ""
    type: str | None = None
    code: str | int | None = None
    param: str | None = None
    status_code: int | None = None  # Groq puts the would-be status in stream errors


class _ErrorEnvelope(msgspec.Struct):
    error: _ErrorBody | str | None = None
    message: str | None = None


_ENCODE = msgspec.json.Encoder()
_DECODE_RESPONSE = msgspec.json.Decoder(ChatResponse)
_DECODE_CHUNK = msgspec.json.Decoder(StreamChunk)
_DECODE_ERROR = msgspec.json.Decoder(_ErrorEnvelope)
_INCLUDE_USAGE = StreamOptions(include_usage=True)
_DONE = b"[DONE]"


def _is_reasoning(key: OpenAICompatible, model: str) -> bool:
    # The models that want max_completion_tokens are the reasoning ones.
    prefixes = key.max_completion_tokens_models
    return bool(prefixes and model) and model.rsplit("/", 1)[-1].startswith(prefixes)


def build_headers(key: ProviderKey, request: ChatRequest, config: Config) -> dict[str, str]:
    """Return the JSON headers, the key's auth header, config headers and extra headers."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    headers.update(auth_headers(key, config))
    if request.extra_headers:
        headers.update(request.extra_headers)
    return headers


def encode_openai_request(
    key: OpenAICompatible, request: ChatRequest, config: Config, *, path: str | None = None
) -> HttpCall:
    """Build the HTTP call for an OpenAI-shaped chat-completions endpoint.

    What differs between compatible providers comes from the key's class
    data (``chat_path``, ``max_completion_tokens_models``, ``drop_fields``,
    ``rename_fields``). Streams ask for usage on the last chunk unless the
    request says otherwise; calls that do not stream send no
    ``stream_options`` (providers refuse it there).
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
        # Reasoning text and other providers' opaque data stay in the history
        # but never reach OpenAI, which refuses unknown message fields.
        changes["messages"] = [
            msgspec.structs.replace(m, reasoning=None, provider_data=None)
            if m.reasoning is not None or m.provider_data is not None
            else m
            for m in request.messages
        ]
    wire = msgspec.structs.replace(request, **changes) if changes else request
    if extra or key.drop_fields or key.rename_fields:
        payload = msgspec.to_builtins(wire)
        for name in key.drop_fields:
            payload.pop(name, None)
        for old, new in key.rename_fields.items():
            if old in payload:
                payload[new] = payload.pop(old)
        if extra:
            payload.update(extra)
        body = _ENCODE.encode(payload)
    else:
        body = _ENCODE.encode(wire)
    path = key.chat_path if path is None else path
    return HttpCall(
        url=config.api_base + path if config.api_base else path,
        body=body,
        headers=build_headers(key, request, config),
        stream=request.stream,
    )


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
    if not chunk.choices and chunk.usage is None and not chunk.id:
        # An error envelope, or a chunk that carries nothing for us (Azure opens
        # streams with {"id": "", "choices": [], "prompt_filter_results": [...]}).
        if _has_error(data):
            return error_from_body(key, None, data, state.model)
        return None
    return chunk


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
    ``status_code`` or error type then stands in for it (500 when neither
    says more).
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
            message = envelope.error.message
            code = None if envelope.error.code is None else str(envelope.error.code)
            kind = envelope.error.type
            if status is None:
                status = envelope.error.status_code
        elif isinstance(envelope.error, str):
            message = envelope.error
        elif envelope.message:
            message = envelope.message
    if status is None:
        status = _STATUS_OF_TYPE.get(kind or "", 500)
    if not message:
        message = _shown_body(body)[:500] or f"HTTP {status} with an empty body"
    return _classify(key, status, message, code, kind, model)


def _shown_body(body: bytes) -> str:
    # JSON is shown re-encoded, so escapes a server used ("\\u0073k-...",
    # "\\/") cannot hide an echoed key from the scrubber. Only the start of
    # a huge body is looked at.
    if len(body) <= 65_536:
        try:
            return _ENCODE.encode(msgspec.json.decode(body)).decode()
        except (msgspec.DecodeError, UnicodeError):
            pass
    return body[:4096].decode("utf-8", "replace").strip()


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
    return Capabilities(
        streaming=True,
        tools=True,
        parallel_tool_calls=True,
        vision=True,
        audio_input="audio" in model,
        file_input=True,
        json_mode=True,
        json_schema=True,
        reasoning=_is_reasoning(key, model),
    )
