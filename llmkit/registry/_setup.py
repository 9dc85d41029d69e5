"""Named configs from the environment: one ``setup_*`` per built-in provider, and ``quick_setup``.

Each built-in provider has a default model, chosen among the models its
API serves today; ``setup_<provider>()`` registers it under the
provider's name (``"openai"``) with that model, or with the name, model
and config given. :func:`quick_setup` registers every hosted provider
whose key variable is set, and Ollama when ``OLLAMA_HOST`` is set or a
local server answers at once.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final
from urllib.error import URLError
from urllib.request import urlopen

from llmkit.core import provider_available
from llmkit.errors import InvalidRequestError, ProviderNotFoundError
from llmkit.keys import resolve

if TYPE_CHECKING:
    from llmkit.registry._registry import Registry

__all__ = ["DEFAULT_MODELS", "LOCAL_PROVIDERS", "OLLAMA_PROBE_SECONDS", "quick_setup", "setup"]

#: The model each ``setup_<provider>()`` registers when given none.
DEFAULT_MODELS: Final[dict[str, str]] = {
    "openai": "gpt-4o-mini",
    "anthropic": "claude-sonnet-4-5",
    "gemini": "gemini-2.5-flash",
    "azure": "gpt-4o-mini",  # the deployment's name: name deployments after their model
    "mistral": "mistral-small-latest",
    "ollama": "llama3.2",
    "openrouter": "openai/gpt-4o-mini",
    "deepseek": "deepseek-chat",
    "moonshot": "kimi-k2-0905-preview",
    "kimi": "kimi-k2-0905-preview",
    "zai": "glm-4.6",
    "groq": "llama-3.3-70b-versatile",
    "together": "meta-llama/Llama-3.3-70B-Instruct-Turbo",
    "fireworks": "accounts/fireworks/models/llama-v3p3-70b-instruct",
    "xai": "grok-4",
    "cerebras": "gpt-oss-120b",
    "perplexity": "sonar",
    "vllm": "Qwen/Qwen3-8B",
    "lmstudio": "qwen/qwen3-8b",
    "llamacpp": "default",  # llama-server answers with the model it was started with
    "ollama_openai": "llama3.2",
}

#: Servers on this machine: ``quick_setup`` has no key variable to go by, so
#: it registers only Ollama, and only when it answers (or OLLAMA_HOST is set).
LOCAL_PROVIDERS: Final = frozenset({"ollama", "ollama_openai", "vllm", "lmstudio", "llamacpp"})

# Aliases share their provider's key variable; registering both would be one provider twice.
_ALIASES: Final = frozenset({"kimi"})

#: How long quick_setup waits for a local Ollama server to answer.
OLLAMA_PROBE_SECONDS: Final = 0.25
_OLLAMA_DEFAULT: Final = "http://127.0.0.1:11434"


def setup(
    registry: Registry,
    provider: str,
    *,
    name: str | None = None,
    model: str | None = None,
    **config: Any,
) -> str:
    """Register ``provider`` under ``name`` (its own by default) with ``model``; return the name.

    ``config`` holds the provider's :class:`llmkit.Config` fields
    (``api_key=``, ``options=``...); left out, the key comes from the
    provider's environment variable at call time.

    Raises:
        InvalidRequestError: a bad config (named with its path), or no model
            for a provider without a default.
        ProviderNotFoundError: the provider is not installed.
    """
    chosen = model if model is not None else DEFAULT_MODELS.get(provider)
    if chosen is None:
        raise InvalidRequestError(f"{provider} has no default model; pass model=")
    label = provider if name is None else name
    registry.register(label, {"provider": provider, "model": chosen, "config": config})
    return label


def _has_key(provider: str) -> bool:
    # Keyless providers are "available" to core but give quick_setup nothing to go by.
    try:
        key = resolve(provider)
    except ProviderNotFoundError:
        return False
    if not key.key_variables() or not provider_available(key):
        return False
    # Azure has no public endpoint: its resource's URL must be set as well.
    return provider != "azure" or bool(os.environ.get(key.base_url_env or ""))


def _ollama_answers(timeout: float) -> bool:
    try:
        with urlopen(_OLLAMA_DEFAULT + "/api/version", timeout=timeout) as reply:
            return bool(reply.status == 200)
    except (URLError, OSError, ValueError):
        return False


def quick_setup(
    registry: Registry,
    *,
    probe: Callable[[float], bool] | None = None,
) -> list[str]:
    """Register every provider this environment has a key for; return the names, sorted.

    Hosted providers are registered when their key variable is set
    (``OPENAI_API_KEY``; ``GEMINI_API_KEY`` or ``GOOGLE_API_KEY``; for
    Azure, ``AZURE_OPENAI_API_KEY`` and ``AZURE_OPENAI_ENDPOINT``...), each
    under its own name with its default model. Ollama is registered when
    ``OLLAMA_HOST`` is set, or when a server on ``127.0.0.1:11434`` answers
    within :data:`OLLAMA_PROBE_SECONDS` (``probe`` replaces that check).
    Names already registered are kept as they are.
    """
    if probe is None:
        probe = _ollama_answers
    chosen = [
        provider
        for provider in DEFAULT_MODELS
        if provider not in LOCAL_PROVIDERS and provider not in _ALIASES and _has_key(provider)
    ]
    if os.environ.get("OLLAMA_HOST") or probe(OLLAMA_PROBE_SECONDS):
        try:
            resolve("ollama")
            chosen.append("ollama")
        except ProviderNotFoundError:
            pass
    done = []
    for provider in chosen:
        if provider not in registry:
            setup(registry, provider)
            done.append(provider)
    return sorted(done)
