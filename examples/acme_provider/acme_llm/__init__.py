"""A sample third-party provider for llmkit: the (made-up) Acme generation API.

Acme's wire protocol is its own, not OpenAI's:

* ``POST {api_base}/generate``, the key in the ``x-acme-key`` header, a body
  ``{"model", "system", "turns": [{"speaker": "user" | "model", "text"}],
  "max_output", "stop", "temperature", "stream"}``;
* the answer is ``{"id", "model", "output", "stop_reason", "tokens_in",
  "tokens_out"}``, where ``stop_reason`` is ``done``, ``stop_sequence``,
  ``max_output`` or ``filtered``;
* with ``"stream": true`` it answers NDJSON: ``{"text": ...}`` lines, then
  ``{"done": true, "stop_reason", "tokens_in", "tokens_out"}``; a failure
  mid-stream is an ``{"error": {"kind", "message"}}`` line;
* errors are ``{"error": {"kind", "message"}}`` with the HTTP status.

Acme reads text only: no tools, images or JSON mode, and
:func:`capabilities` says so. The codec maps the protocol to llmkit's
OpenAI-shaped types; it imports nothing of llmkit but ``llmkit.provider``
and no HTTP library (llmkit's transport sends what ``encode_request``
describes). :mod:`acme_llm.emulator` speaks the same protocol on 127.0.0.1
for the contract suite.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from llmkit.provider import (
    AuthenticationError,
    Capabilities,
    ChatRequest,
    ChatResponse,
    Choice,
    ChunkChoice,
    Config,
    ContextWindowError,
    Delta,
    HttpCall,
    HttpResponse,
    InvalidRequestError,
    LLMError,
    Message,
    NotFoundError,
    PermissionDeniedError,
    ProviderKey,
    RateLimitError,
    ServiceUnavailableError,
    StreamChunk,
    StreamState,
    TextPart,
    Usage,
    auth_headers,
    capabilities,
    decode_error,
    decode_event,
    decode_response,
    encode_request,
)

__all__ = ["Acme"]


class Acme(ProviderKey):
    """The Acme provider; key from ``ACME_API_KEY``."""

    __slots__ = ()
    name = "acme"
    default_base_url = "https://api.acme.example/v1"
    api_key_env = "ACME_API_KEY"
    # The key travels bare in x-acme-key; llmkit builds the header and
    # scrubs its value from errors.
    auth_header = "x-acme-key"
    auth_prefix = ""


# --- wire structs: only the fields the codec writes or reads ----------------------------


class _Turn(msgspec.Struct):
    speaker: str
    text: str


class _Body(msgspec.Struct, omit_defaults=True):
    model: str
    turns: list[_Turn]
    stream: bool
    system: str | None = None
    max_output: int | None = None
    stop: list[str] | None = None
    temperature: float | None = None


class _Answer(msgspec.Struct):
    output: str
    stop_reason: str = "done"
    tokens_in: int = 0
    tokens_out: int = 0
    id: str = ""
    model: str = ""


class _Failure(msgspec.Struct):
    kind: str = ""
    message: str = ""


class _Envelope(msgspec.Struct):
    error: _Failure | None = None


class _Line(msgspec.Struct):
    text: str | None = None
    done: bool = False
    stop_reason: str = "done"
    tokens_in: int = 0
    tokens_out: int = 0
    error: _Failure | None = None


_ENCODE: Final = msgspec.json.Encoder()
_ANSWER: Final = msgspec.json.Decoder(_Answer)
_LINE: Final = msgspec.json.Decoder(_Line)
_ENVELOPE: Final = msgspec.json.Decoder(_Envelope)

_SPEAKERS: Final = {"user": "user", "assistant": "model"}
# Acme's stop reasons, normalized; the raw one is kept as native_finish_reason.
_FINISH: Final = {
    "done": "stop",
    "stop_sequence": "stop",
    "max_output": "length",
    "filtered": "content_filter",
}
# An error line inside a 200 stream has no status of its own; its kind tells it.
_STATUS_OF_KIND: Final = {
    "invalid_request": 400,
    "context_length": 400,
    "authentication": 401,
    "permission": 403,
    "not_found": 404,
    "too_large": 413,
    "rate_limited": 429,
    "overloaded": 529,
    "server": 500,
}
_ERRORS: Final[dict[int, tuple[type[LLMError], str]]] = {
    400: (InvalidRequestError, ""),
    401: (AuthenticationError, " Check ACME_API_KEY or pass api_key=."),
    403: (PermissionDeniedError, " Check that the key may use this model."),
    404: (NotFoundError, " Check the model name and api_base."),
    413: (InvalidRequestError, " Send fewer or shorter turns."),
    422: (InvalidRequestError, ""),
    429: (RateLimitError, " Slow down or retry later."),
}


# --- requests ------------------------------------------------------------------------------


def _refuse(request: ChatRequest, what: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"Acme {what}; use a provider that supports it, or leave it out",
        provider=Acme.name,
        model=request.model,
    )


def _text(request: ChatRequest, index: int, message: Message) -> str:
    content = message.content
    if content is None or isinstance(content, str):
        return content or ""
    texts = []
    for part in content:
        if not isinstance(part, TextPart):
            raise _refuse(
                request, f"reads text only, and messages[{index}] holds a {type(part).__name__}"
            )
        texts.append(part.text)
    return "".join(texts)


def _wire(request: ChatRequest) -> _Body:
    if request.tools or request.tool_choice is not None:
        raise _refuse(request, "has no tools")
    if request.response_format is not None and request.response_format.type != "text":
        raise _refuse(request, "has no JSON mode")
    if request.n not in (None, 1):
        raise _refuse(request, "answers one choice a call (n=1)")
    for name in ("top_p", "seed"):
        if getattr(request, name) is not None:
            raise _refuse(request, f"takes no {name!r}")
    system: list[str] = []
    turns: list[_Turn] = []
    for index, message in enumerate(request.messages):
        if message.role in ("system", "developer"):
            system.append(_text(request, index, message))
            continue
        speaker = _SPEAKERS.get(message.role)
        if speaker is None or message.tool_calls:
            raise _refuse(request, "has no tools, so no tool calls or tool messages")
        turns.append(_Turn(speaker=speaker, text=_text(request, index, message)))
    stop = request.stop
    return _Body(
        model=request.model,
        turns=turns,
        stream=request.stream,
        system="\n".join(system) if system else None,
        max_output=(
            request.max_tokens
            if request.max_completion_tokens is None
            else request.max_completion_tokens
        ),
        stop=[stop] if isinstance(stop, str) else (stop or None),
        temperature=request.temperature,
    )


@encode_request.dispatch
def _encode(key: Acme, request: ChatRequest, config: Config) -> Any:
    body = _wire(request)
    if request.extra_body:
        payload = msgspec.to_builtins(body)
        payload.update(request.extra_body)
        data = _ENCODE.encode(payload)
    else:
        data = _ENCODE.encode(body)
    return HttpCall(
        url=f"{config.api_base}/generate",
        body=data,
        headers={
            "content-type": "application/json",
            "accept": "application/x-ndjson" if request.stream else "application/json",
            **auth_headers(key, config),
            **(request.extra_headers or {}),
        },
        stream=request.stream,
        framing="ndjson",
    )


# --- answers -------------------------------------------------------------------------------


def _finish(stop_reason: str) -> tuple[str, str | None]:
    """The normalized finish reason and, where it differs, Acme's own."""
    finish = _FINISH.get(stop_reason, "stop")
    return finish, None if stop_reason == finish else stop_reason


def _usage(tokens_in: int, tokens_out: int) -> Usage:
    return Usage(
        prompt_tokens=tokens_in, completion_tokens=tokens_out, total_tokens=tokens_in + tokens_out
    )


@decode_response.dispatch
def _decode(key: Acme, response: HttpResponse, request: ChatRequest) -> Any:
    answer = _ANSWER.decode(response.body)
    finish, native = _finish(answer.stop_reason)
    choice = Choice(
        message=Message(role="assistant", content=answer.output),
        finish_reason=finish,
        native_finish_reason=native,
    )
    return ChatResponse(
        id=answer.id,
        model=answer.model or request.model,
        choices=[choice],
        usage=_usage(answer.tokens_in, answer.tokens_out),
    )


@decode_event.dispatch
def _event(key: Acme, line: bytes, state: StreamState) -> Any:
    item = _LINE.decode(line)
    if item.error is not None:
        failure = item.error
        return _error_of(_STATUS_OF_KIND.get(failure.kind, 500), failure.kind, failure.message)
    if item.text is None and not item.done:
        return None  # a line with nothing for us (a keep-alive)
    # Acme sends no role: the first chunk carries it, as llmkit's grammar wants.
    role = None if state.data else "assistant"
    state.data["started"] = True
    if item.done:
        state.done = True
        finish, native = _finish(item.stop_reason)
        choice = ChunkChoice(
            delta=Delta(role=role), finish_reason=finish, native_finish_reason=native
        )
        return StreamChunk(
            model=state.model,
            choices=[choice],
            usage=_usage(item.tokens_in, item.tokens_out),
        )
    return StreamChunk(
        model=state.model, choices=[ChunkChoice(delta=Delta(role=role, content=item.text))]
    )


# --- errors --------------------------------------------------------------------------------


def _error_of(status: int, kind: str, message: str) -> LLMError:
    # Provider, model, request id and, for retryable errors, retry_after from
    # the Retry-After header are filled in by llmkit around the codec.
    code = kind or None
    message = message or f"Acme answered HTTP {status}"
    if kind == "context_length":
        return ContextWindowError(
            f"{message} Shorten the turns or lower max_tokens.", status=status, code=code
        )
    error, hint = _ERRORS.get(status, (LLMError, ""))
    if status >= 500 or status in (408, 409):
        error, hint = ServiceUnavailableError, " Acme failed or is overloaded; retry later."
    return error(message + hint, status=status, code=code)


@decode_error.dispatch
def _error(key: Acme, response: HttpResponse, request: ChatRequest) -> Any:
    try:
        failure = _ENVELOPE.decode(response.body).error
    except msgspec.DecodeError:
        failure = None
    if failure is None:
        # Not Acme's envelope (a proxy's HTML page, say): show its start.
        shown = response.body[:300].decode("utf-8", "replace").strip()
        return _error_of(response.status, "", shown)
    return _error_of(response.status, failure.kind, failure.message)


@capabilities.dispatch
def _capabilities(key: Acme, model: str) -> Any:
    return Capabilities(streaming=True)
