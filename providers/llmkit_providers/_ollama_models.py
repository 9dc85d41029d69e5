"""What the models Ollama runs can do, by family, as Ollama's library tags them.

Ollama's library marks each model family with the capabilities its
template and weights carry: ``tools``, ``vision`` and ``thinking`` (the
server parses the reasoning into ``message.thinking``). A model name is
read as ``[namespace/]family[:tag]`` and matched by the longest family
prefix, so ``qwen3:8b``, ``library/qwen3`` and ``hf.co/unsloth/Qwen3-8B-GGUF``
are all ``qwen3``, while ``llama3.2-vision`` is not ``llama3.2``.

Choices:

* reasoning is Ollama's ``thinking``: a family whose reasoning comes back
  as text inside the answer (``phi4-reasoning``, ``cogito``, whose library
  entries carry no ``thinking`` tag) is not a reasoning model here, as
  ``message.reasoning`` stays empty;
* the server's own features (streaming, ``format`` as JSON or a schema,
  which its grammar enforces on any model) are on for every model;
* a model of no known family (a Modelfile of your own, a GGUF whose name
  says nothing) is reported with the server's features only: llmkit does
  not know what it can do. Nothing is refused for that: the request goes
  out as asked, and the server refuses tools or ``think`` the model cannot
  take (400 ``... does not support tools``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from llmkit.provider import Capabilities

__all__ = ["FAMILIES", "model_capabilities"]

_T = frozenset({"tools"})
_V = frozenset({"vision"})
_R = frozenset({"thinking"})
_NONE: frozenset[str] = frozenset()

#: Family name -> what Ollama's library tags it with (``tools``, ``vision``,
#: ``thinking``). Families listed with nothing are known to have none, so a
#: shorter prefix (``llama3`` for ``llama3.2``) never lends them its tags.
FAMILIES: Final[Mapping[str, frozenset[str]]] = MappingProxyType(
    {
        # Meta
        "llama2": _NONE,
        "llama3": _NONE,
        "llama3-groq-tool-use": _T,
        "llama3.1": _T,
        "llama3.2": _T,
        "llama3.2-vision": _V,
        "llama3.3": _T,
        "llama4": _T | _V,
        "codellama": _NONE,
        # vision models of their own
        "llava": _V,
        "bakllava": _V,
        "moondream": _V,
        "minicpm-v": _V,
        # Google
        "gemma": _NONE,
        "gemma2": _NONE,
        "gemma3": _V,
        "gemma3n": _NONE,
        "medgemma": _V,
        # Alibaba
        "qwen": _NONE,
        "qwen2": _T,
        "qwen2.5": _T,
        "qwen2.5-coder": _T,
        "qwen2.5vl": _V,
        "qwen2.5-vl": _V,
        "qwen3": _T | _R,
        "qwen3-coder": _T,
        "qwen3-vl": _T | _V | _R,
        "qwq": _T,
        # DeepSeek
        "deepseek-r1": _T | _R,
        "deepseek-v3": _NONE,
        "deepseek-v3.1": _T | _R,
        "deepseek-coder": _NONE,
        # OpenAI
        "gpt-oss": _T | _R,
        # Mistral AI
        "mistral": _T,
        "mistral-openorca": _NONE,
        "mistral-nemo": _T,
        "mistral-small": _T,
        "mistral-small3.1": _T | _V,
        "mistral-small3.2": _T | _V,
        "mistral-large": _T,
        "mixtral": _T,
        "magistral": _T | _R,
        "devstral": _T,
        "codestral": _NONE,
        # Microsoft
        "phi3": _NONE,
        "phi3.5": _NONE,
        "phi4": _NONE,
        "phi4-mini": _T,
        "phi4-reasoning": _NONE,
        "phi4-mini-reasoning": _NONE,
        # IBM
        "granite3": _T,
        "granite3.2-vision": _T | _V,
        "granite4": _T,
        # others
        "command-r": _T,
        "command-r7b": _T,
        "command-a": _T,
        "cogito": _T,
        "hermes3": _T,
        "nemotron": _T,
        "smollm2": _T,
        "firefunction-v2": _T,
        "athene-v2": _T,
    }
)
# Longest first: the first prefix that matches is the most specific family.
_BY_LENGTH: Final = sorted(FAMILIES, key=len, reverse=True)
# Tags of a family that lack one of its capabilities: gemma3's smallest
# sizes are text only; qwen3's "instruct" releases (2507) do not think.
_TAG_LIMITS: Final = (
    ("gemma3", ("270m", "1b"), "vision"),
    ("qwen3", ("instruct",), "thinking"),
    ("qwen3-vl", ("instruct",), "thinking"),
)
# What the server does for any model.
_SERVER: Final = Capabilities(streaming=True, json_mode=True, json_schema=True)


def _family(model: str) -> tuple[str | None, str]:
    """The known family of ``model`` (or ``None``) and its tag (``""`` without one)."""
    name, _, tag = model.rpartition("/")[2].lower().partition(":")
    for family in _BY_LENGTH:
        if name.startswith(family):
            return family, tag
    return None, tag


def model_capabilities(model: str) -> Capabilities:
    """What ``model`` can do on an Ollama server, by its family (see the module docstring)."""
    family, tag = _family(model)
    if family is None:
        return _SERVER
    abilities = set(FAMILIES[family])
    words = tag.split("-")  # "1b-it-qat", "30b-a3b-instruct-2507-q4_K_M"
    for limited, marks, ability in _TAG_LIMITS:
        if family == limited and any(mark in words for mark in marks):
            abilities.discard(ability)
    if not abilities:
        return _SERVER
    tools = "tools" in abilities
    return Capabilities(
        streaming=True,
        tools=tools,
        parallel_tool_calls=tools,
        vision="vision" in abilities,
        json_mode=True,
        json_schema=True,
        reasoning="thinking" in abilities,
    )
