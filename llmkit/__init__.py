"""llmkit: one typed, fast, dependable interface to many LLM providers.

Quick start::

    import llmkit

    reply = llmkit.completion(
        "openai", "gpt-4o-mini", {"messages": [{"role": "user", "content": "Hi"}]}
    )
    print(reply.text)

The names below are loaded on first use (PEP 562), so ``import llmkit``
stays cheap: plum, httpx and the provider codecs load with the first call.
"""

# No "from __future__ import annotations" here: it would bind a public-looking
# name, "annotations", in the package namespace. Helpers are underscored.
import importlib as _importlib
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from llmkit.errors import (
    AllAttemptsFailedError,
    APIConnectionError,
    AuthenticationError,
    ContentFilterError,
    ContextWindowError,
    InvalidRequestError,
    LLMError,
    NotFoundError,
    PermissionDeniedError,
    ProviderNotFoundError,
    RateLimitError,
    ServiceUnavailableError,
    StreamInterruptedError,
    TimeoutError,
)

if _TYPE_CHECKING:
    from llmkit._http import AttemptEvent, Transport
    from llmkit.config import Config
    from llmkit.core import (
        acompletion,
        astream,
        chat,
        completion,
        list_providers,
        mistral_completion,
        ollama_completion,
        openai_completion,
        provider_available,
        provider_info,
        stream,
        validate_request,
    )
    from llmkit.keys import ProviderKey
    from llmkit.streaming import AsyncStream, Stream, accumulate
    from llmkit.types import (
        Capabilities,
        ChatRequest,
        ChatResponse,
        Message,
        ProviderInfo,
        StreamChunk,
        Tool,
        ToolCall,
        Usage,
    )
    from llmkit_providers.anthropic import Anthropic
    from llmkit_providers.gemini import Gemini
    from llmkit_providers.mistral import Mistral
    from llmkit_providers.ollama import Ollama
    from llmkit_providers.openai import OpenAI, OpenAICompatible

__version__ = "0.1.0"

__all__ = [
    "APIConnectionError",
    "AllAttemptsFailedError",
    "Anthropic",
    "AsyncStream",
    "AttemptEvent",
    "AuthenticationError",
    "Capabilities",
    "ChatRequest",
    "ChatResponse",
    "Config",
    "ContentFilterError",
    "ContextWindowError",
    "Gemini",
    "InvalidRequestError",
    "LLMError",
    "Message",
    "Mistral",
    "NotFoundError",
    "Ollama",
    "OpenAI",
    "OpenAICompatible",
    "PermissionDeniedError",
    "ProviderInfo",
    "ProviderKey",
    "ProviderNotFoundError",
    "RateLimitError",
    "ServiceUnavailableError",
    "Stream",
    "StreamChunk",
    "StreamInterruptedError",
    "TimeoutError",
    "Tool",
    "ToolCall",
    "Transport",
    "Usage",
    "__version__",
    "accumulate",
    "acompletion",
    "anthropic_completion",
    "astream",
    "chat",
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

_LAZY = {
    "AttemptEvent": "llmkit._http",
    "Transport": "llmkit._http",
    "Config": "llmkit.config",
    "ProviderKey": "llmkit.keys",
    "AsyncStream": "llmkit.streaming",
    "Stream": "llmkit.streaming",
    "accumulate": "llmkit.streaming",
    "Anthropic": "llmkit_providers.anthropic",
    "Gemini": "llmkit_providers.gemini",
    "Mistral": "llmkit_providers.mistral",
    "Ollama": "llmkit_providers.ollama",
    "OpenAI": "llmkit_providers.openai",
    "OpenAICompatible": "llmkit_providers.openai",
    **dict.fromkeys(
        [
            "Capabilities",
            "ChatRequest",
            "ChatResponse",
            "Message",
            "ProviderInfo",
            "StreamChunk",
            "Tool",
            "ToolCall",
            "Usage",
        ],
        "llmkit.types",
    ),
    **dict.fromkeys(
        [
            "acompletion",
            "anthropic_completion",
            "astream",
            "chat",
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
        ],
        "llmkit.core",
    ),
}


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'llmkit' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
