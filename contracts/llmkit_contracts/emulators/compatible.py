"""The OpenAI-compatible family, as the emulator speaks it: one flavour per API.

Each flavour is :class:`~llmkit_contracts.emulators.openai.OpenAIProtocol`
with what that API does otherwise: its path, the request fields it takes
besides OpenAI's, the message fields it takes back in the history, where
it writes reasoning text, and how it reports an error in the middle of a
stream. The facts come from recorded traffic where there is some
(OpenRouter, Groq, DeepSeek, Cerebras, Ollama) and from the providers'
API references otherwise:

* OpenRouter (``/api/v1``) writes reasoning as ``reasoning`` plus typed
  ``reasoning_details`` and takes the details back; it runs tools of its
  own (``{"type": "openrouter:web_search"}``); an error in a stream
  rides on a chunk that still has choices, its ``code`` an HTTP status;
  its error envelope has a numeric ``code`` and no ``type``;
* DeepSeek (no version in the path) writes ``reasoning_content`` and takes
  it back on assistant messages;
* Groq (``/openai/v1``) sends a stream error as ``event: error`` with a
  ``status_code`` and no ``[DONE]``, and puts usage in ``x_groq`` when the
  request did not ask for a usage chunk;
* Cerebras and Ollama take ``reasoning`` back on assistant messages;
* Moonshot, Z.ai, xAI, Fireworks, vLLM and llama.cpp write ``reasoning_content``;
* Perplexity (no version in the path) answers with ``citations`` and
  ``search_results`` beside the choices;
* local servers (vLLM, LM Studio, llama.cpp, Ollama) need no key.

:data:`FLAVOURS` maps each provider name of the family to its flavour.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar, Final

from llmkit_contracts.emulator import Reply, json_encode
from llmkit_contracts.emulators.openai import OpenAIProtocol

__all__ = [
    "FLAVOURS",
    "CerebrasProtocol",
    "CompatibleProtocol",
    "DeepSeekProtocol",
    "FireworksProtocol",
    "GroqProtocol",
    "LMStudioProtocol",
    "LlamaCppProtocol",
    "MoonshotProtocol",
    "OllamaOpenAIProtocol",
    "OpenRouterProtocol",
    "PerplexityProtocol",
    "TogetherProtocol",
    "VLLMProtocol",
    "XAIProtocol",
    "ZaiProtocol",
]


class CompatibleProtocol(OpenAIProtocol):
    """An OpenAI-compatible API: OpenAI's checks, with the flavour's differences.

    Class attributes:
        extra_arguments: request fields taken besides OpenAI's.
        history_fields: message fields taken besides OpenAI's.
        needs_key: whether a request without a Bearer token is refused.

    No flavour refuses ``max_tokens`` for any model (OpenAI's rule for its
    reasoning models is OpenAI's own).
    """

    name: ClassVar[str] = "openai-compatible"
    max_tokens_refused = None
    extra_arguments: ClassVar[frozenset[str]] = frozenset()
    history_fields: ClassVar[frozenset[str]] = frozenset()
    needs_key: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.chat_path = cls.base_path + "/chat/completions"
        cls.arguments = OpenAIProtocol.arguments | cls.extra_arguments
        cls.message_fields = OpenAIProtocol.message_fields | cls.history_fields

    def auth_refusal(self, path: str, headers: Mapping[str, str]) -> Reply | None:
        """A local server takes requests without a key; hosted APIs want a Bearer token."""
        if not self.needs_key:
            return None
        return super().auth_refusal(path, headers)


class OpenRouterProtocol(CompatibleProtocol):
    """OpenRouter: routing fields, ``reasoning_details``, errors on chunks with choices."""

    name = "openrouter"
    base_path = "/api/v1"
    extra_arguments = frozenset(
        {
            "include_reasoning",
            "min_p",
            "models",
            "plugins",
            "preset",
            "provider",
            "reasoning",
            "repetition_penalty",
            "route",
            "top_a",
            "top_k",
            "transforms",
            "usage",
        }
    )
    history_fields = frozenset({"reasoning", "reasoning_details"})
    server_tools = ("openrouter:",)

    def reasoning_delta(self, text: str) -> dict[str, Any]:
        """``reasoning`` and the same text as one typed ``reasoning_details`` piece."""
        piece = {"type": "reasoning.text", "text": text, "format": "unknown", "index": 0}
        return {"reasoning": text, "reasoning_details": [piece]}

    def error_body(self, reply: Reply) -> bytes:
        """OpenRouter's envelope: the HTTP status as a numeric ``code``, no ``type``."""
        error: dict[str, Any] = {"code": reply.status, "message": reply.message}
        if reply.code is not None:
            error["metadata"] = {"provider_name": "Emulated", "raw": reply.code}
        return json_encode({"error": error})

    def error_event(self, reply: Reply) -> bytes:
        """An error on a chunk that still has a choice, as OpenRouter sends it."""
        code = int(reply.code) if reply.code is not None and reply.code.isdigit() else 502
        chunk = {
            "id": "gen-emu",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": "emulator",
            "provider": "Emulated",
            "error": {"code": code, "message": reply.message},
            "choices": [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": ""},
                    "finish_reason": "error",
                    "native_finish_reason": "error",
                }
            ],
        }
        return b"data: " + json_encode(chunk) + b"\n\n"


class DeepSeekProtocol(CompatibleProtocol):
    """DeepSeek: ``reasoning_content`` out, and back on assistant messages."""

    name = "deepseek"
    base_path = ""
    reasoning_field = "reasoning_content"
    extra_arguments = frozenset({"thinking", "reasoning_effort"})
    history_fields = frozenset({"reasoning_content", "prefix"})


class GroqProtocol(CompatibleProtocol):
    """Groq: ``event: error`` with ``status_code``; usage in ``x_groq`` unless asked."""

    name = "groq"
    base_path = "/openai/v1"
    extra_arguments = frozenset(
        {
            "citation_options",
            "compound_custom",
            "disable_tool_validation",
            "documents",
            "include_reasoning",
            "reasoning_effort",
            "reasoning_format",
            "search_settings",
        }
    )

    def finish_extras(self, reply: Reply, usage_asked: bool) -> dict[str, Any]:
        """Usage under ``x_groq`` on the finish chunk, when no usage chunk was asked for."""
        if usage_asked:
            return {}
        usage = {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        }
        return {"x_groq": {"id": "req_emu", "usage": usage}}

    def error_event(self, reply: Reply) -> bytes:
        """``event: error`` with the would-be HTTP status in ``status_code``."""
        kind = reply.error_type or "server_error"
        error = {
            "message": reply.message,
            "type": kind,
            "code": reply.code,
            "status_code": 400 if kind == "invalid_request_error" else 500,
        }
        return b"event: error\ndata: " + json_encode({"error": error}) + b"\n\n"


class CerebrasProtocol(CompatibleProtocol):
    """Cerebras: takes ``reasoning`` back; reasoning switches of its own."""

    name = "cerebras"
    base_path = "/v1"
    extra_arguments = frozenset({"clear_thinking", "disable_reasoning", "reasoning_effort"})
    history_fields = frozenset({"reasoning"})


class OllamaOpenAIProtocol(CompatibleProtocol):
    """Ollama's ``/v1``: no key; takes ``reasoning`` back."""

    name = "ollama_openai"
    base_path = "/v1"
    needs_key = False
    extra_arguments = frozenset({"reasoning_effort", "think", "keep_alive", "options"})
    history_fields = frozenset({"reasoning"})


class MoonshotProtocol(CompatibleProtocol):
    """Moonshot (Kimi): ``reasoning_content`` out and back; ``thinking`` settings."""

    name = "moonshot"
    base_path = "/v1"
    reasoning_field = "reasoning_content"
    extra_arguments = frozenset({"thinking"})
    history_fields = frozenset({"reasoning_content", "partial"})


class ZaiProtocol(CompatibleProtocol):
    """Z.ai: ``/api/paas/v4``; ``reasoning_content`` out and back; ``thinking`` settings."""

    name = "zai"
    base_path = "/api/paas/v4"
    reasoning_field = "reasoning_content"
    extra_arguments = frozenset({"thinking", "do_sample", "request_id", "tool_stream"})
    history_fields = frozenset({"reasoning_content"})


class TogetherProtocol(CompatibleProtocol):
    """Together AI."""

    name = "together"
    base_path = "/v1"
    extra_arguments = frozenset({"reasoning_effort", "top_k", "repetition_penalty", "min_p"})


class FireworksProtocol(CompatibleProtocol):
    """Fireworks AI: ``/inference/v1``; ``reasoning_content``."""

    name = "fireworks"
    base_path = "/inference/v1"
    reasoning_field = "reasoning_content"
    extra_arguments = frozenset({"reasoning_effort", "top_k", "min_p", "repetition_penalty"})


class XAIProtocol(CompatibleProtocol):
    """xAI: ``reasoning_content``; live search settings."""

    name = "xai"
    base_path = "/v1"
    reasoning_field = "reasoning_content"
    extra_arguments = frozenset({"reasoning_effort", "search_parameters"})


_CITATIONS: Final = ["https://example.com/emulated-source"]
_SEARCH_RESULTS: Final = [
    {"title": "Emulated source", "url": "https://example.com/emulated-source"}
]


class PerplexityProtocol(CompatibleProtocol):
    """Perplexity: no version in the path; ``citations`` and ``search_results`` beside choices."""

    name = "perplexity"
    base_path = ""
    extra_arguments = frozenset(
        {
            "disable_search",
            "return_images",
            "return_related_questions",
            "search_after_date_filter",
            "search_before_date_filter",
            "search_domain_filter",
            "search_mode",
            "search_recency_filter",
            "reasoning_effort",
        }
    )

    def body_extras(self, reply: Reply) -> dict[str, Any]:
        """The sources the answer rests on."""
        return {"citations": list(_CITATIONS), "search_results": list(_SEARCH_RESULTS)}

    def finish_extras(self, reply: Reply, usage_asked: bool) -> dict[str, Any]:
        """The sources, on the finish chunk of a stream."""
        return self.body_extras(reply)


class VLLMProtocol(CompatibleProtocol):
    """A vLLM server: no key unless started with one; ``reasoning_content``."""

    name = "vllm"
    base_path = "/v1"
    needs_key = False
    reasoning_field = "reasoning_content"
    extra_arguments = frozenset(
        {"top_k", "min_p", "repetition_penalty", "guided_json", "chat_template_kwargs"}
    )


class LMStudioProtocol(CompatibleProtocol):
    """LM Studio's server: no key."""

    name = "lmstudio"
    base_path = "/v1"
    needs_key = False
    extra_arguments = frozenset({"top_k", "ttl", "draft_model"})


class LlamaCppProtocol(CompatibleProtocol):
    """llama.cpp's ``llama-server``: no key; ``reasoning_content``."""

    name = "llamacpp"
    base_path = "/v1"
    needs_key = False
    reasoning_field = "reasoning_content"
    extra_arguments = frozenset({"top_k", "min_p", "repeat_penalty", "cache_prompt", "grammar"})


FLAVOURS: Final[Mapping[str, type[CompatibleProtocol]]] = {
    "openrouter": OpenRouterProtocol,
    "deepseek": DeepSeekProtocol,
    "moonshot": MoonshotProtocol,
    "kimi": MoonshotProtocol,
    "zai": ZaiProtocol,
    "groq": GroqProtocol,
    "together": TogetherProtocol,
    "fireworks": FireworksProtocol,
    "xai": XAIProtocol,
    "cerebras": CerebrasProtocol,
    "perplexity": PerplexityProtocol,
    "vllm": VLLMProtocol,
    "lmstudio": LMStudioProtocol,
    "llamacpp": LlamaCppProtocol,
    "ollama_openai": OllamaOpenAIProtocol,
}
"""The emulator flavour of each provider name of the family."""
