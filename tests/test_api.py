"""The public surface: one curated __all__, lazy and cheap to import."""

from __future__ import annotations

import importlib
import subprocess
import sys
from types import ModuleType

import pytest

import llmkit

# The curated surfaces, kept here by hand: a change to either is a decision.
LLMKIT_API = [
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
PROVIDER_SDK = [
    "ENTRY_POINT_GROUP",
    "APIConnectionError",
    "Accumulator",
    "AsyncStream",
    "AttemptEvent",
    "AudioPart",
    "AuthenticationError",
    "Capabilities",
    "ChatRequest",
    "ChatResponse",
    "Choice",
    "ChunkChoice",
    "CompletionTokensDetails",
    "Config",
    "ContentFilterError",
    "ContentPart",
    "ContextWindowError",
    "Delta",
    "EventPipeline",
    "FileData",
    "FilePart",
    "Framer",
    "Framing",
    "Function",
    "FunctionCall",
    "FunctionCallDelta",
    "HttpCall",
    "HttpResponse",
    "ImagePart",
    "ImageURL",
    "InputAudio",
    "InvalidRequestError",
    "JSONSchema",
    "LLMError",
    "Message",
    "NDJSONDecoder",
    "NotFoundError",
    "PermissionDeniedError",
    "ProbeResult",
    "PromptTokensDetails",
    "ProviderKey",
    "ProviderNotFoundError",
    "RateLimitError",
    "ResponseFormat",
    "Role",
    "SSEDecoder",
    "SSEEvent",
    "ServiceUnavailableError",
    "Stream",
    "StreamChunk",
    "StreamInterruptedError",
    "StreamOptions",
    "StreamState",
    "TextPart",
    "TimeoutError",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "ToolChoice",
    "ToolChoiceFunction",
    "Transport",
    "Usage",
    "accumulate",
    "acompletion",
    "auth_headers",
    "body_text",
    "build_call",
    "cached_dispatch",
    "capabilities",
    "completion",
    "decode_error",
    "decode_event",
    "decode_response",
    "encode_request",
    "prepare",
    "probe",
    "register_framing",
    "register_openai_compatible",
    "scoped_providers",
    "secret_header_names",
    "unregister_framing",
]
# Public submodules a package may hold as attributes once they are imported.
PUBLIC_MODULES = {
    "cli",
    "config",
    "core",
    "errors",
    "generics",
    "keys",
    "provider",
    "registry",
    "streaming",
    "system",
    "types",
}


def _public_names(module: ModuleType) -> set[str]:
    # The real namespace, not dir(): __dir__ returns __all__ and would hide leaks.
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    }


@pytest.mark.parametrize(
    ("module_name", "expected"),
    [("llmkit", LLMKIT_API), ("llmkit.provider", PROVIDER_SDK)],
    ids=["llmkit", "provider"],
)
def test_api_all_matches_the_kept_list(module_name: str, expected: list[str]) -> None:
    module = importlib.import_module(module_name)
    assert sorted(module.__all__) == sorted(expected)
    for name in module.__all__:
        assert getattr(module, name) is not None, name
    # Every name resolved (lazy ones included): nothing else may be public.
    assert _public_names(module) | {"__version__"} >= set(expected) - {"__version__"}
    assert _public_names(module) <= set(expected), _public_names(module) - set(expected)


def test_api_modules_in_the_package_namespace_are_public_ones() -> None:
    import llmkit.provider

    modules = {n for n, v in vars(llmkit).items() if isinstance(v, ModuleType)}
    # Installed from a wheel, llmkit's distribution holds a pytest11 plugin, so
    # pytest rewrites its modules and adds "@py_builtins" and "@pytest_ar":
    # names no import statement can reach.
    assert {n for n in modules if not n.startswith(("_", "@"))} <= PUBLIC_MODULES


def test_api_unknown_attribute_raises() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        llmkit.no_such_name  # noqa: B018


def test_api_import_is_light() -> None:
    code = (
        "import sys, llmkit; "
        "print(sorted(m for m in ('plum', 'httpx', 'llmkit_providers.openai', 'llmkit.core') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_api_builtin_key_is_lazy_reexport() -> None:
    from llmkit_providers.openai import OpenAI

    assert llmkit.OpenAI is OpenAI
