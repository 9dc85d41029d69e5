"""A sample third-party provider for llmkit.

Acme speaks a made-up protocol: the prompt goes out as ``{"prompt", "model"}``
and the answer comes back as ``{"output", "tokens_in", "tokens_out"}``;
streams are NDJSON lines ``{"text": ...}`` ending with ``{"done": true}``.
The codec maps both to llmkit's OpenAI-shaped types. It imports no HTTP
library: llmkit's transport sends what ``encode_request`` describes.
"""

from __future__ import annotations

from typing import Any

import msgspec

from llmkit.provider import (
    AuthenticationError,
    Capabilities,
    ChatRequest,
    ChatResponse,
    Choice,
    ChunkChoice,
    Config,
    Delta,
    HttpCall,
    HttpResponse,
    Message,
    ProviderKey,
    ServiceUnavailableError,
    StreamChunk,
    StreamState,
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


class _Answer(msgspec.Struct):
    output: str
    tokens_in: int = 0
    tokens_out: int = 0


class _Line(msgspec.Struct):
    text: str = ""
    done: bool = False


_ANSWER = msgspec.json.Decoder(_Answer)
_LINE = msgspec.json.Decoder(_Line)


def _prompt(request: ChatRequest) -> str:
    return "\n".join(m.content for m in request.messages if isinstance(m.content, str))


@encode_request.dispatch
def _encode(key: Acme, request: ChatRequest, config: Config) -> Any:
    body = msgspec.json.encode(
        {"model": request.model, "prompt": _prompt(request), "stream": request.stream}
    )
    return HttpCall(
        url=f"{config.api_base}/generate",
        body=body,
        headers={
            **auth_headers(key, config),
            **(request.extra_headers or {}),
            "content-type": "application/json",
        },
        stream=request.stream,
        framing="ndjson",
    )


@decode_response.dispatch
def _decode(key: Acme, response: HttpResponse, request: ChatRequest) -> Any:
    answer = _ANSWER.decode(response.body)
    return ChatResponse(
        model=request.model,
        choices=[
            Choice(message=Message(role="assistant", content=answer.output), finish_reason="stop")
        ],
        usage=Usage(
            prompt_tokens=answer.tokens_in,
            completion_tokens=answer.tokens_out,
            total_tokens=answer.tokens_in + answer.tokens_out,
        ),
    )


@decode_event.dispatch
def _event(key: Acme, line: bytes, state: StreamState) -> Any:
    item = _LINE.decode(line)
    if item.done:
        state.done = True
        return StreamChunk(
            model=state.model, choices=[ChunkChoice(delta=Delta(), finish_reason="stop")]
        )
    return StreamChunk(model=state.model, choices=[ChunkChoice(delta=Delta(content=item.text))])


@decode_error.dispatch
def _error(key: Acme, response: HttpResponse, request: ChatRequest) -> Any:
    if response.status == 401:
        return AuthenticationError("Acme refused the key; check ACME_API_KEY")
    return ServiceUnavailableError(f"Acme failed: {response.body[:200]!r}")


@capabilities.dispatch
def _capabilities(key: Acme, model: str) -> Any:
    return Capabilities(streaming=True)
