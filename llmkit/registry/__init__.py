"""The registry façade: named configs, routers, fallbacks, retries, and setup from the environment.

Register a config under a name once, then call by name::

    from llmkit import registry

    registry.register("fast", {"provider": "openai", "model": "gpt-4o-mini",
                               "fallbacks": [{"provider": "anthropic",
                                              "model": "claude-haiku-4-5"}]})
    reply = registry.completion("fast", {"messages": [{"role": "user", "content": "Hi"}]})
    reply.served_by  # ServedBy(provider='openai', model='gpt-4o-mini', name='fast', ...)

The functions here use the module's default :class:`Registry`; make your
own (``Registry(system=...)`` runs its calls on an ``llmkit.system``) to
keep separate tables. Every function is also a method of ``Registry``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from llmkit.errors import AllAttemptsFailedError, Attempt, InvalidRequestError
from llmkit.registry import _setup
from llmkit.registry._redis import RedisState
from llmkit.registry._registry import Registry, Request
from llmkit.registry._routed import AsyncRoutedStream, RoutedStream
from llmkit.registry._setup import DEFAULT_MODELS, OLLAMA_PROBE_SECONDS
from llmkit.registry._spec import NamedConfig
from llmkit.registry._state import MemoryState, State
from llmkit.registry._wrappers import compose, with_fallback, with_retry, with_timeout
from llmkit.types import RoutedResponse, ServedBy

__all__ = [
    "DEFAULT_MODELS",
    "OLLAMA_PROBE_SECONDS",
    "AllAttemptsFailedError",
    "AsyncRoutedStream",
    "Attempt",
    "MemoryState",
    "NamedConfig",
    "RedisState",
    "Registry",
    "RoutedResponse",
    "RoutedStream",
    "ServedBy",
    "State",
    "achat",
    "acompletion",
    "astream",
    "chat",
    "clear",
    "completion",
    "compose",
    "create_router",
    "default_registry",
    "get_config",
    "list_configs",
    "quick_setup",
    "register",
    "setup",
    "setup_anthropic",
    "setup_azure",
    "setup_cerebras",
    "setup_deepseek",
    "setup_fireworks",
    "setup_gemini",
    "setup_groq",
    "setup_kimi",
    "setup_llamacpp",
    "setup_lmstudio",
    "setup_mistral",
    "setup_moonshot",
    "setup_ollama",
    "setup_ollama_openai",
    "setup_openai",
    "setup_openrouter",
    "setup_perplexity",
    "setup_together",
    "setup_vllm",
    "setup_xai",
    "setup_zai",
    "stream",
    "unregister",
    "with_fallback",
    "with_retry",
    "with_timeout",
]

#: The registry the module's functions use. The only module-level state.
default_registry = Registry()


def register(name: str, config: Any) -> None:
    """Register (or replace) ``config`` under ``name`` in the default registry.

    ``config`` is one of ``{"provider", "model", "config"}``, ``{"router",
    "configs"}`` or ``{"router", "config"}``, with optional ``fallbacks``,
    ``fallback_on``, ``retries``, ``retry_delay`` and ``retry_max_delay``
    (see :class:`NamedConfig`).

    Raises:
        InvalidRequestError: a bad name or config, naming the path of the bad value.
    """
    default_registry.register(name, config)


def unregister(name: str) -> bool:
    """Remove ``name`` from the default registry; return whether it was there."""
    return default_registry.unregister(name)


def clear() -> None:
    """Remove every config from the default registry."""
    default_registry.clear()


def list_configs() -> list[str]:
    """The default registry's names, sorted."""
    return default_registry.list_configs()


def get_config(name: str) -> dict[str, Any]:
    """The config registered under ``name``, as a dict.

    Raises:
        ProviderNotFoundError: ``name`` is not registered.
    """
    return default_registry.get_config(name)


def create_router(
    fn: Callable[[Any], Mapping[str, str]],
    configs: Mapping[str, Any],
    *,
    keys: Iterable[str] | None = None,
    fallbacks: Iterable[Any] = (),
) -> dict[str, Any]:
    """A router config, ready for :func:`register`.

    ``fn(request)`` returns ``{"provider": ..., "model": ...}`` for each
    call, choosing among the providers of ``configs`` (their configs by
    name). ``keys`` declares the custom request keys ``fn`` reads
    (``["priority"]``); then any other unknown key is refused. They are
    stripped before the request is sent.

    Raises:
        InvalidRequestError: ``configs`` is not a dict, or ``keys`` or
            ``fallbacks`` is a string rather than a list.
    """
    if not isinstance(configs, Mapping):
        raise InvalidRequestError(
            f"create_router's configs must be a dict of provider name to config, not "
            f"{type(configs).__name__}"
        )
    for label, value in (("keys", keys), ("fallbacks", fallbacks)):
        if isinstance(value, str | bytes):
            raise InvalidRequestError(f"create_router's {label} must be a list, not a string")
    config: dict[str, Any] = {"router": fn, "configs": dict(configs)}
    if keys is not None:
        config["keys"] = list(keys)
    if fallbacks:
        config["fallbacks"] = list(fallbacks)
    return config


def completion(name: str, request: Request) -> RoutedResponse:
    """Send ``request`` through the config ``name``; see :meth:`Registry.completion`.

    Raises:
        LLMError: as :meth:`Registry.completion` does.
    """
    return default_registry.completion(name, request)


async def acompletion(name: str, request: Request) -> RoutedResponse:
    """The async twin of :func:`completion`.

    Raises:
        LLMError: as :meth:`Registry.completion` does.
    """
    return await default_registry.acompletion(name, request)


def stream(name: str, request: Request) -> RoutedStream:
    """Start a stream through ``name``; see :meth:`Registry.stream`.

    Raises:
        LLMError: as :meth:`Registry.completion` does.
    """
    return default_registry.stream(name, request)


async def astream(name: str, request: Request) -> AsyncRoutedStream:
    """The async twin of :func:`stream`.

    Raises:
        LLMError: as :meth:`Registry.completion` does.
    """
    return await default_registry.astream(name, request)


def chat(name: str, text: str, *, system_prompt: str | None = None, **request_options: Any) -> str:
    """Ask one question through ``name``; ``request_options`` go with the request.

    Raises:
        LLMError: as :meth:`Registry.completion` does.
    """
    return default_registry.chat(name, text, system_prompt=system_prompt, **request_options)


async def achat(
    name: str, text: str, *, system_prompt: str | None = None, **request_options: Any
) -> str:
    """The async twin of :func:`chat`.

    Raises:
        LLMError: as :meth:`Registry.completion` does.
    """
    return await default_registry.achat(name, text, system_prompt=system_prompt, **request_options)


def setup(
    provider: str, *, name: str | None = None, model: str | None = None, **config: Any
) -> str:
    """Register ``provider`` under ``name`` (its own by default); return the name.

    ``model`` defaults to :data:`DEFAULT_MODELS`; ``config`` holds
    :class:`llmkit.Config` fields.

    Raises:
        InvalidRequestError: a bad config, or no model for a provider without a default.
        ProviderNotFoundError: the provider is not installed.
    """
    return _setup.setup(default_registry, provider, name=name, model=model, **config)


def quick_setup() -> list[str]:
    """Register every provider this environment has a key for; return the names.

    See :func:`llmkit.registry._setup.quick_setup` for the variables read.
    """
    return _setup.quick_setup(default_registry)


def _setup_of(provider: str) -> Callable[..., str]:
    def setup_provider(*, name: str | None = None, model: str | None = None, **config: Any) -> str:
        return _setup.setup(default_registry, provider, name=name, model=model, **config)

    setup_provider.__name__ = setup_provider.__qualname__ = f"setup_{provider}"
    setup_provider.__doc__ = (
        f"Register {provider} under ``name`` (default {provider!r}) with ``model`` "
        f"(default {DEFAULT_MODELS[provider]!r}); return the name.\n\n"
        "``config`` holds llmkit.Config fields (``api_key=``, ``options=``...).\n\n"
        "Raises:\n    InvalidRequestError: a bad config, naming its path.\n"
    )
    return setup_provider


setup_openai = _setup_of("openai")
setup_anthropic = _setup_of("anthropic")
setup_gemini = _setup_of("gemini")
setup_azure = _setup_of("azure")
setup_mistral = _setup_of("mistral")
setup_ollama = _setup_of("ollama")
setup_openrouter = _setup_of("openrouter")
setup_deepseek = _setup_of("deepseek")
setup_moonshot = _setup_of("moonshot")
setup_kimi = _setup_of("kimi")
setup_zai = _setup_of("zai")
setup_groq = _setup_of("groq")
setup_together = _setup_of("together")
setup_fireworks = _setup_of("fireworks")
setup_xai = _setup_of("xai")
setup_cerebras = _setup_of("cerebras")
setup_perplexity = _setup_of("perplexity")
setup_vllm = _setup_of("vllm")
setup_lmstudio = _setup_of("lmstudio")
setup_llamacpp = _setup_of("llamacpp")
setup_ollama_openai = _setup_of("ollama_openai")
