"""The core façade: direct, stateless calls to any provider.

Every function takes the provider as a name (``"openai"``) or a key
(``llmkit.OpenAI()``), the model, the request (a :class:`ChatRequest` or a
dict in OpenAI's shape) and an optional config (a :class:`Config` or a
dict). Input is checked before any network call. No state is kept here
beyond the transport's pooled HTTP clients.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Mapping
from typing import Any, cast

from llmkit import _http, generics
from llmkit.config import Config, resolve_config
from llmkit.errors import InvalidRequestError, LLMError, ProviderNotFoundError
from llmkit.keys import ProviderKey, known_providers, resolve
from llmkit.streaming import AsyncStream, Stream
from llmkit.types import (
    Capabilities,
    ChatRequest,
    ChatResponse,
    Message,
    ProviderInfo,
)

__all__ = [
    "aclose_clients",
    "acompletion",
    "anthropic_completion",
    "astream",
    "chat",
    "chat_messages",
    "close_clients",
    "completion",
    "gemini_completion",
    "list_providers",
    "mistral_completion",
    "ollama_completion",
    "openai_completion",
    "provider_available",
    "provider_info",
    "stream",
    "validate_request",
]

Request = ChatRequest | Mapping[str, Any]
ConfigLike = Config | Mapping[str, Any] | None


def completion(
    provider: str | ProviderKey, model: str, request: Request, config: ConfigLike = None
) -> ChatResponse:
    """Send one chat completion and return the whole response.

    Args:
        provider: a provider name (``"openai"``) or key.
        model: the model name, e.g. ``"gpt-4o-mini"``.
        request: a ``ChatRequest`` or a dict such as
            ``{"messages": [{"role": "user", "content": "Hi"}]}``.
        config: ``api_key``, ``api_base``, ``timeout``, ``connect_timeout``,
            ``deadline``, ``headers``, ``retries``, ``http_client``.

    Raises:
        InvalidRequestError: bad request or config, before any network call.
        AuthenticationError: no API key (names the variable to set) or a rejected one.
        ProviderNotFoundError: unknown provider name.
        LLMError: any other failure, as a subclass of the hierarchy.
    """
    key, req, cfg = generics.prepare(provider, model, request, config, False)
    return cast(ChatResponse, generics.completion(key, req, cfg))


async def acompletion(
    provider: str | ProviderKey, model: str, request: Request, config: ConfigLike = None
) -> ChatResponse:
    """The async twin of :func:`completion`.

    Raises:
        LLMError: as :func:`completion` does.
    """
    key, req, cfg = generics.prepare(provider, model, request, config, False)
    return cast(ChatResponse, await cast(Awaitable[Any], generics.acompletion(key, req, cfg)))


def stream(
    provider: str | ProviderKey, model: str, request: Request, config: ConfigLike = None
) -> Stream:
    """Start a streamed completion; iterate the returned :class:`Stream` for chunks.

    The HTTP status is checked (and retried) before this returns, so a bad
    key or model raises here; failures later raise while iterating.

    Raises:
        LLMError: as :func:`completion` does.
    """
    key, req, cfg = generics.prepare(provider, model, request, config, True)
    return cast(Stream, generics.completion(key, req, cfg))


async def astream(
    provider: str | ProviderKey, model: str, request: Request, config: ConfigLike = None
) -> AsyncStream:
    """The async twin of :func:`stream`; use ``async for`` on the awaited result.

    Raises:
        LLMError: as :func:`completion` does.
    """
    key, req, cfg = generics.prepare(provider, model, request, config, True)
    return cast(AsyncStream, await cast(Awaitable[Any], generics.acompletion(key, req, cfg)))


def chat(
    provider: str | ProviderKey,
    model: str,
    text: str,
    *,
    system_prompt: str | None = None,
    **config: Any,
) -> str:
    """Ask one question and return the answer's text.

    Raises:
        LLMError: as :func:`completion` does.
    """
    request = ChatRequest(model=model, messages=chat_messages(text, system_prompt))
    return completion(provider, model, request, config or None).text


def chat_messages(text: Any, system_prompt: Any = None) -> list[Message]:
    """The messages of a one-question chat: the system prompt (if any), then ``text``.

    Raises:
        InvalidRequestError: ``text`` or ``system_prompt`` is not a string.
    """
    if type(text) is not str:
        raise InvalidRequestError(f"text must be a string, not {type(text).__name__}")
    if system_prompt is not None and type(system_prompt) is not str:
        raise InvalidRequestError(
            f"system_prompt must be a string, not {type(system_prompt).__name__}"
        )
    messages = [Message(role="user", content=text)]
    if system_prompt is not None:
        messages.insert(0, Message(role="system", content=system_prompt))
    return messages


def anthropic_completion(model: str, request: Request, **config: Any) -> ChatResponse:
    """:func:`completion` with Anthropic; ``config`` as keyword arguments.

    ``options={"thinking_budget": 2048}`` turns extended thinking on.

    Raises:
        LLMError: as :func:`completion` does.
    """
    return completion("anthropic", model, request, config or None)


def gemini_completion(model: str, request: Request, **config: Any) -> ChatResponse:
    """:func:`completion` with Google's Gemini API; ``config`` as keyword arguments.

    ``options={"thinking_budget": 1024, "include_thoughts": True}`` shows the
    model's thoughts in ``message.reasoning``.

    Raises:
        LLMError: as :func:`completion` does.
    """
    return completion("gemini", model, request, config or None)


def mistral_completion(model: str, request: Request, **config: Any) -> ChatResponse:
    """:func:`completion` with Mistral AI; ``config`` as keyword arguments.

    ``options={"reasoning_effort": "high"}`` shows the thinking of the
    models with adjustable reasoning in ``message.reasoning``; Magistral
    models always think (``options={"prompt_mode": "reasoning"}`` gives them
    their reasoning system prompt).

    Raises:
        LLMError: as :func:`completion` does.
    """
    return completion("mistral", model, request, config or None)


def ollama_completion(model: str, request: Request, **config: Any) -> ChatResponse:
    """:func:`completion` with Ollama's native API; ``config`` as keyword arguments.

    No key is needed; the server is ``OLLAMA_HOST``, else
    ``http://localhost:11434``. ``options={"think": True}`` switches a
    thinking model's reasoning on (``"low"``, ``"medium"``, ``"high"`` set its
    level), shown in ``message.reasoning``.

    Raises:
        LLMError: as :func:`completion` does.
    """
    return completion("ollama", model, request, config or None)


def openai_completion(model: str, request: Request, **config: Any) -> ChatResponse:
    """:func:`completion` with OpenAI; ``config`` as keyword arguments.

    Raises:
        LLMError: as :func:`completion` does.
    """
    return completion("openai", model, request, config or None)


def list_providers() -> list[str]:
    """Return the names of every installed provider, sorted."""
    return known_providers()


def provider_info(provider: str | ProviderKey, model: str = "") -> ProviderInfo:
    """Return a provider's capabilities (for ``model``, if given), base URL and key variable.

    Raises:
        ProviderNotFoundError: unknown provider name.
        LLMError: the provider's capabilities method is broken.
    """
    key = resolve(provider)
    if type(model) is not str:
        raise InvalidRequestError(f"model must be a string, not {type(model).__name__}")
    try:
        caps = generics.capabilities(key, model)
    except Exception as exc:
        caps = exc
    if not isinstance(caps, Capabilities):
        what = f"raised {type(caps).__name__}" if isinstance(caps, Exception) else "failed"
        raise LLMError(
            f"{key.name}'s capabilities method {what}; report it to the provider package",
            provider=key.name,
        )
    return ProviderInfo(
        name=key.name,
        capabilities=caps,
        default_base_url=key.default_base_url,
        api_key_env=key.api_key_env,
    )


def provider_available(provider: str | ProviderKey) -> bool:
    """Return whether the provider is installed and its API key variable is set.

    Raises:
        InvalidRequestError: ``provider`` is neither a string nor a key.
    """
    try:
        key = resolve(provider)
    except ProviderNotFoundError:
        return False
    names = key.key_variables()
    return not names or any(os.environ.get(name) for name in names)


def validate_request(provider: str | ProviderKey, request: Request) -> ChatRequest:
    """Check a request as a call would, without a network call or an API key.

    Runs the same conversion, checks and provider encoding as
    :func:`completion` and returns the validated ``ChatRequest``.

    Raises:
        InvalidRequestError: the same error the call would raise.
        ProviderNotFoundError: unknown provider name.
    """
    key = resolve(provider)
    model: object = ""
    if isinstance(request, ChatRequest):
        model = request.model
    elif isinstance(request, Mapping):
        try:
            model = request.get("model")
        except Exception:
            model = ""  # to_request names what cannot be read
    if not isinstance(model, str):
        model = ""
    req = generics.prepare(key, model, request, _VALIDATION_ONLY, False)[1]
    try:
        generics.build_call(key, req, resolve_config(key, _VALIDATION_ONLY))
    except LLMError as exc:
        exc.provider = key.name
        raise
    return req


_VALIDATION_ONLY = Config(api_key="validation-only")


def close_clients() -> None:
    """Close llmkit's pooled sync HTTP clients; later calls open new ones.

    Also runs at interpreter exit.
    """
    _http.close_clients()


async def aclose_clients() -> None:
    """Close the pooled async HTTP clients of the running event loop.

    ``asyncio.run`` closes them by itself when its loop shuts down; call this
    before closing a loop you manage yourself (``loop.close()`` alone leaves
    their connections open). Later calls on the loop open new clients.
    """
    await _http.aclose_clients()
