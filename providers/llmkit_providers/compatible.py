"""The OpenAI-compatible family, and endpoints registered at run time.

Every provider here speaks OpenAI's chat-completions protocol, so each is
a key derived from :class:`~llmkit_providers.openai.OpenAICompatible`
that only states what differs, as class data: base URL, key variables,
where reasoning text arrives and whether it goes back, what is kept in
``provider_data``, headers, provider options. No key registers a method
of its own: they share the OpenAI codec, and with it its speed.

* ``openrouter``: ``https://openrouter.ai/api/v1``, ``OPENROUTER_API_KEY``;
* ``deepseek``: ``https://api.deepseek.com``, ``DEEPSEEK_API_KEY``;
* ``moonshot`` (and ``kimi``): ``https://api.moonshot.ai/v1`` (``.cn`` with
  ``options={"region": "cn"}``), ``MOONSHOT_API_KEY``, else ``KIMI_API_KEY``;
* ``zai``: ``https://api.z.ai/api/paas/v4`` (``open.bigmodel.cn`` with
  ``options={"region": "cn"}``), ``ZAI_API_KEY``;
* ``groq``: ``https://api.groq.com/openai/v1``, ``GROQ_API_KEY``;
* ``together``: ``https://api.together.xyz/v1``, ``TOGETHER_API_KEY``;
* ``fireworks``: ``https://api.fireworks.ai/inference/v1``, ``FIREWORKS_API_KEY``;
* ``xai``: ``https://api.x.ai/v1``, ``XAI_API_KEY``;
* ``cerebras``: ``https://api.cerebras.ai/v1``, ``CEREBRAS_API_KEY``;
* ``perplexity``: ``https://api.perplexity.ai``, ``PERPLEXITY_API_KEY``;
* ``vllm``: ``http://localhost:8000/v1``, no key (``VLLM_API_KEY`` if set);
* ``lmstudio``: ``http://localhost:1234/v1``, no key;
* ``llamacpp``: ``http://localhost:8080/v1``, no key;
* ``ollama_openai``: ``http://localhost:11434/v1`` (``OLLAMA_HOST``, read as
  ``ollama`` reads it, + ``/v1``), no key.

``kimi`` is an alias of ``moonshot``: a key class that only renames it, so
it shares every method and quirk (see :class:`Kimi`).

:func:`register_openai_compatible` adds a provider at run time, by name,
without writing a class.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final, cast

import msgspec

from llmkit.provider import (
    Capabilities,
    Config,
    InvalidRequestError,
    ProviderKey,
    ProviderNotFoundError,
    prepare,
)
from llmkit_providers._ollama_host import CONNECT_HINT, DEFAULT_PORT, ollama_base_url
from llmkit_providers.openai import OpenAICompatible

__all__ = [
    "VLLM",
    "XAI",
    "Cerebras",
    "DeepSeek",
    "Fireworks",
    "Groq",
    "Kimi",
    "LMStudio",
    "LlamaCpp",
    "Moonshot",
    "MoonshotOptions",
    "OllamaOpenAI",
    "OpenRouter",
    "OpenRouterOptions",
    "Perplexity",
    "Together",
    "Zai",
    "ZaiOptions",
    "register_openai_compatible",
]

# What the hosted chat APIs of the family have in common; each key takes
# off what its API lacks. Reasoning is per model (``model_flags``).
_HOSTED = Capabilities(
    streaming=True,
    tools=True,
    parallel_tool_calls=True,
    vision=True,
    json_mode=True,
    json_schema=True,
)
# A local server runs whatever model it was given: what it supports is the
# model's business, so every flag the protocol can carry is on. File parts
# are OpenAI's own and no local server takes them.
_LOCAL = msgspec.structs.replace(_HOSTED, reasoning=True)


def _header_safe(field: str, value: str | None) -> None:
    """Refuse an option that goes into a header but no header can carry.

    Raises:
        InvalidRequestError: ``value`` holds line breaks, controls or non-ASCII.
    """
    if value is not None and not (value.isascii() and value.isprintable()):
        raise InvalidRequestError(
            f"option {field} is sent as an HTTP header, so it must be printable ASCII"
        )


class OpenRouterOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """OpenRouter's provider options.

    Attributes:
        http_referer: your site's URL, sent as ``HTTP-Referer`` (app attribution).
        x_title: your app's name, sent as ``X-Title``.
        provider: provider routing preferences (``order``, ``allow_fallbacks``,
            ``only``, ``ignore``, ``sort``, ``max_price``...), sent as ``provider``.
        models: fallback models tried in order, sent as ``models``.
        route: ``"fallback"``, sent as ``route``.
        transforms: prompt transforms (``["middle-out"]``), sent as ``transforms``.
        reasoning: reasoning settings (``{"effort": "high"}``, ``{"max_tokens": 2000}``,
            ``{"exclude": true}``), sent as ``reasoning``.
        usage: usage accounting (``{"include": true}``), sent as ``usage``.
    """

    http_referer: str | None = None
    x_title: str | None = None
    provider: dict[str, Any] | None = None
    models: list[str] | None = None
    route: str | None = None
    transforms: list[str] | None = None
    reasoning: dict[str, Any] | None = None
    usage: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        _header_safe("http_referer", self.http_referer)
        _header_safe("x_title", self.x_title)


class OpenRouter(OpenAICompatible):
    """OpenRouter, one API in front of many providers' models.

    Reasoning arrives as ``reasoning`` and, for models that need it back
    (Anthropic's signatures, Gemini's), as typed ``reasoning_details``:
    those are kept in ``provider_data["openrouter"]`` and sent back on the
    assistant message. Stream errors ride on a chunk that still has
    choices; they raise. Routing, attribution headers and reasoning
    settings are :class:`OpenRouterOptions`.
    """

    __slots__ = ()
    name = "openrouter"
    default_base_url = "https://openrouter.ai/api/v1"
    api_key_env = "OPENROUTER_API_KEY"
    options_type = OpenRouterOptions
    option_headers = MappingProxyType({"http_referer": "HTTP-Referer", "x_title": "X-Title"})
    option_fields = ("provider", "models", "route", "transforms", "reasoning", "usage")
    message_data_fields = ("reasoning_details",)
    chunk_errors = True
    # Any model behind it may reason; OpenRouter reports reasoning for all alike.
    base_capabilities = msgspec.structs.replace(_HOSTED, file_input=True, reasoning=True)
    max_completion_tokens_models = ("o1", "o3", "o4", "gpt-5")


class DeepSeek(OpenAICompatible):
    """DeepSeek: reasoning as ``reasoning_content``, which goes back in tool-call turns."""

    __slots__ = ()
    name = "deepseek"
    default_base_url = "https://api.deepseek.com"
    api_key_env = "DEEPSEEK_API_KEY"
    reasoning_fields = ("reasoning_content",)
    reasoning_echo = "reasoning_content"
    base_capabilities = msgspec.structs.replace(_HOSTED, vision=False, json_schema=False)
    model_flags = MappingProxyType({"reasoning": ("deepseek-reasoner",)})


_MOONSHOT_GLOBAL: Final = "https://api.moonshot.ai/v1"
_ZAI_GLOBAL: Final = "https://api.z.ai/api/paas/v4"


class MoonshotOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Moonshot's (Kimi's) provider options.

    Attributes:
        region: ``"global"`` (``api.moonshot.ai``, the default) or ``"cn"``
            (``api.moonshot.cn``); used while ``api_base`` is left out.
        thinking: thinking settings (``{"type": "disabled"}``), sent as ``thinking``.
    """

    region: str | None = None
    thinking: dict[str, Any] | None = None


class Moonshot(OpenAICompatible):
    """Moonshot AI's Kimi API; the key from ``MOONSHOT_API_KEY``, else ``KIMI_API_KEY``."""

    __slots__ = ()
    name = "moonshot"
    default_base_url = _MOONSHOT_GLOBAL
    api_key_env = "MOONSHOT_API_KEY"
    api_key_env_fallbacks = ("KIMI_API_KEY",)
    options_type = MoonshotOptions
    regional_base_urls = MappingProxyType(
        {"global": _MOONSHOT_GLOBAL, "cn": "https://api.moonshot.cn/v1"}
    )
    option_fields = ("thinking",)
    reasoning_fields = ("reasoning_content",)
    # Thinking models lose the thread of a tool-call loop without it.
    reasoning_echo = "reasoning_content"
    base_capabilities = msgspec.structs.replace(_HOSTED, vision=False, json_schema=False)
    model_flags = MappingProxyType(
        {
            "reasoning": ("kimi-k2-thinking", "kimi-k2.5", "kimi-k2.6"),
            "vision": (
                "kimi-k2.5",
                "kimi-k2.6",
                "moonshot-v1-8k-vision",
                "moonshot-v1-32k-vision",
                "moonshot-v1-128k-vision",
            ),
        }
    )


class Kimi(Moonshot):
    """``kimi``: another name for :class:`Moonshot`.

    A name-only subclass is how an alias works here: it shares every
    method and every piece of class data, and errors name the provider
    the way the user spelt it.
    """

    __slots__ = ()
    name = "kimi"


class ZaiOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Z.ai's provider options.

    Attributes:
        region: ``"global"`` (``api.z.ai``, the default) or ``"cn"``
            (``open.bigmodel.cn``); used while ``api_base`` is left out.
        thinking: thinking settings (``{"type": "enabled"}`` or
            ``{"type": "disabled"}``), sent as ``thinking``.
    """

    region: str | None = None
    thinking: dict[str, Any] | None = None


class Zai(OpenAICompatible):
    """Z.ai (Zhipu) GLM models; reasoning as ``reasoning_content``."""

    __slots__ = ()
    name = "zai"
    default_base_url = _ZAI_GLOBAL
    api_key_env = "ZAI_API_KEY"
    options_type = ZaiOptions
    regional_base_urls = MappingProxyType(
        {"global": _ZAI_GLOBAL, "cn": "https://open.bigmodel.cn/api/paas/v4"}
    )
    option_fields = ("thinking",)
    reasoning_fields = ("reasoning_content",)
    reasoning_echo = "reasoning_content"
    base_capabilities = msgspec.structs.replace(_HOSTED, vision=False, json_schema=False)
    model_flags = MappingProxyType(
        {
            "reasoning": ("glm-4.5", "glm-4.6", "glm-4.7", "glm-5"),
            "vision": ("glm-4.5v", "glm-4.6v", "glm-4v"),
        }
    )


class Groq(OpenAICompatible):
    """Groq: stream errors carry ``status_code``; older streams put usage in ``x_groq``."""

    __slots__ = ()
    name = "groq"
    default_base_url = "https://api.groq.com/openai/v1"
    api_key_env = "GROQ_API_KEY"
    usage_fields = ("x_groq",)
    base_capabilities = msgspec.structs.replace(_HOSTED, vision=False)
    model_flags = MappingProxyType(
        {
            "reasoning": ("gpt-oss", "qwen3", "qwen-qwq", "deepseek-r1", "compound"),
            "vision": ("llama-4",),
        }
    )


class Together(OpenAICompatible):
    """Together AI."""

    __slots__ = ()
    name = "together"
    default_base_url = "https://api.together.xyz/v1"
    api_key_env = "TOGETHER_API_KEY"
    reasoning_fields = ("reasoning_content",)
    # Many vision models among many others: image parts go to those that take them.
    base_capabilities = _HOSTED
    model_flags = MappingProxyType(
        {"reasoning": ("deepseek-r1", "qwen3", "gpt-oss", "kimi-k2-thinking")}
    )


class Fireworks(OpenAICompatible):
    """Fireworks AI; reasoning as ``reasoning_content``."""

    __slots__ = ()
    name = "fireworks"
    default_base_url = "https://api.fireworks.ai/inference/v1"
    api_key_env = "FIREWORKS_API_KEY"
    reasoning_fields = ("reasoning_content",)
    base_capabilities = _HOSTED
    model_flags = MappingProxyType(
        {"reasoning": ("deepseek-r1", "qwen3", "gpt-oss", "kimi-k2-thinking")}
    )


class XAI(OpenAICompatible):
    """xAI's Grok models; reasoning as ``reasoning_content``."""

    __slots__ = ()
    name = "xai"
    default_base_url = "https://api.x.ai/v1"
    api_key_env = "XAI_API_KEY"
    reasoning_fields = ("reasoning_content",)
    base_capabilities = msgspec.structs.replace(_HOSTED, vision=False)
    model_flags = MappingProxyType(
        {
            "reasoning": ("grok-3-mini", "grok-4", "grok-code"),
            "vision": ("grok-4", "grok-2-vision", "grok-vision"),
        }
    )


class Cerebras(OpenAICompatible):
    """Cerebras; reasoning arrives as ``reasoning`` and goes back the same way."""

    __slots__ = ()
    name = "cerebras"
    default_base_url = "https://api.cerebras.ai/v1"
    api_key_env = "CEREBRAS_API_KEY"
    reasoning_echo = "reasoning"
    base_capabilities = msgspec.structs.replace(_HOSTED, vision=False)
    model_flags = MappingProxyType(
        {"reasoning": ("gpt-oss", "qwen-3-235b-a22b-thinking", "zai-glm")}
    )


class Perplexity(OpenAICompatible):
    """Perplexity's Sonar models: web-grounded answers, no function tools.

    The ``citations`` and ``search_results`` that come beside the answer
    are kept in ``provider_data["perplexity"]``.
    """

    __slots__ = ()
    name = "perplexity"
    default_base_url = "https://api.perplexity.ai"
    api_key_env = "PERPLEXITY_API_KEY"
    response_data_fields = ("citations", "search_results")
    base_capabilities = Capabilities(streaming=True, vision=True, json_schema=True)


class VLLM(OpenAICompatible):
    """A vLLM server; no key, unless ``VLLM_API_KEY`` is set (``vllm serve --api-key``)."""

    __slots__ = ()
    name = "vllm"
    default_base_url = "http://localhost:8000/v1"
    optional_api_key_env = "VLLM_API_KEY"
    reasoning_fields = ("reasoning_content",)
    base_capabilities = _LOCAL


class LMStudio(OpenAICompatible):
    """LM Studio's local server; no key."""

    __slots__ = ()
    name = "lmstudio"
    default_base_url = "http://localhost:1234/v1"
    reasoning_fields = ("reasoning_content",)
    base_capabilities = _LOCAL


class LlamaCpp(OpenAICompatible):
    """llama.cpp's ``llama-server``; no key."""

    __slots__ = ()
    name = "llamacpp"
    default_base_url = "http://localhost:8080/v1"
    reasoning_fields = ("reasoning_content",)
    base_capabilities = _LOCAL


class OllamaOpenAI(OpenAICompatible):
    """Ollama's OpenAI-compatible ``/v1`` endpoint; no key; ``OLLAMA_HOST`` moves it.

    ``OLLAMA_HOST`` is read as the native ``ollama`` key reads it
    (``gpu-box`` is ``http://gpu-box:11434/v1``). Reasoning arrives as
    ``reasoning`` and goes back the same way.
    """

    __slots__ = ()
    name = "ollama_openai"
    default_base_url = f"http://localhost:{DEFAULT_PORT}/v1"
    base_url_env = "OLLAMA_HOST"
    base_url_env_path = "/v1"
    connect_hint = CONNECT_HINT
    reasoning_echo = "reasoning"
    base_capabilities = _LOCAL

    @classmethod
    def base_url_from_env(cls, value: str) -> str:
        """``OLLAMA_HOST`` read as Ollama reads it; ``/v1`` is appended to it.

        Raises:
            InvalidRequestError: the value holds credentials, a query, or an
                unclosed IPv6 bracket.
        """
        return ollama_base_url(value, provider=cls.name)


# --- endpoints registered at run time ---------------------------------------------

_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_registering = threading.Lock()
_PROBE: Final[Mapping[str, Any]] = {"messages": [{"role": "user", "content": "x"}]}


def register_openai_compatible(
    name: str,
    *,
    api_base: str,
    api_key_env: str | None = None,
    api_key_env_fallbacks: Sequence[str] = (),
    headers: Mapping[str, str] | None = None,
    replace: bool = False,
    capabilities: Capabilities | None = None,
    max_completion_tokens_models: Sequence[str] = (),
    reasoning_fields: Sequence[str] = (),
    reasoning_echo: str | None = None,
) -> OpenAICompatible:
    """Register an OpenAI-compatible endpoint under ``name``, without writing a class.

    After it, ``llmkit.core.completion(name, ...)`` and every other call
    that takes a provider name reach ``api_base`` with the shared OpenAI
    codec. The key is defined as an :class:`OpenAICompatible` subclass and
    registers no method of its own, so dispatch stays cached.

    Args:
        name: the provider name: lowercase ASCII letters, digits, ``_``,
            ``-`` and ``.``, starting with a letter or digit.
        api_base: the base URL; ``/chat/completions`` is appended to it.
        api_key_env: the variable holding the key, or ``None`` for an
            endpoint that needs none.
        api_key_env_fallbacks: more variables read, in order, when ``api_key_env`` is unset.
        headers: headers every call sends (an ``api_key`` or the call's
            own headers win over them).
        replace: replace a provider already known by ``name``.
        capabilities: what the endpoint supports; by default what OpenAI's API does.
        max_completion_tokens_models: model-name prefixes that want
            ``max_completion_tokens`` instead of ``max_tokens``.
        reasoning_fields: fields besides ``reasoning`` that carry reasoning text.
        reasoning_echo: the assistant-message field the history's reasoning
            goes back in; ``None`` leaves it out.

    Returns:
        The new key (also reachable by ``name``).

    Raises:
        InvalidRequestError: ``name`` is not lowercase ASCII or is taken
            (without ``replace=True``), ``api_base`` is not a plain http(s)
            URL or holds a user name or password, or a header or variable
            name is unusable.
    """
    if type(name) is not str or not name.isascii() or not _NAME.fullmatch(name):
        raise InvalidRequestError(
            f"provider name {name!r} must be lowercase ASCII letters, digits, '_', '-' or '.' "
            "(starting with a letter or digit), e.g. 'corp-llm'"
        )
    # Config checks a base URL and headers exactly as every call does.
    checked = Config(api_base=api_base, headers=cast(Any, headers))
    for variable in (api_key_env, *api_key_env_fallbacks):
        if variable is not None and not _is_name(variable):
            raise InvalidRequestError(
                f"api_key_env {variable!r} is not an environment variable name"
            )
    for field in (*reasoning_fields, reasoning_echo):
        if field is not None and not _is_name(field):
            raise InvalidRequestError(f"reasoning field {field!r} is not a JSON field name")
    if not all(type(prefix) is str for prefix in max_completion_tokens_models):
        raise InvalidRequestError("max_completion_tokens_models must be model-name prefixes (str)")
    if capabilities is not None and not isinstance(capabilities, Capabilities):
        raise InvalidRequestError(
            f"capabilities must be a Capabilities, not {type(capabilities).__name__}"
        )
    data: dict[str, Any] = {
        "__slots__": (),
        "__module__": __name__,
        "__doc__": f"The OpenAI-compatible endpoint registered at run time as {name!r}.",
        "name": name,
        "default_base_url": api_base.rstrip("/"),
        "api_key_env": api_key_env,
        "api_key_env_fallbacks": tuple(api_key_env_fallbacks),
        "default_headers": MappingProxyType(dict(checked.headers or {})),
        "max_completion_tokens_models": tuple(max_completion_tokens_models),
        "reasoning_fields": tuple(reasoning_fields),
        "reasoning_echo": reasoning_echo,
    }
    if capabilities is not None:
        data["base_capabilities"] = capabilities
    with _registering:
        if not replace and _registered(name) is not None:
            raise InvalidRequestError(
                f"a provider named {name!r} exists already; pick another name or pass replace=True"
            )
        key_type = type(_class_name(name), (OpenAICompatible,), data)
    # Defining the class registered its one instance under the name.
    return cast(OpenAICompatible, _registered(name) or key_type())


def _is_name(value: object) -> bool:
    return type(value) is str and value.isascii() and value.isidentifier()


def _class_name(name: str) -> str:
    return "Registered_" + re.sub(r"[^a-z0-9_]", "_", name)


def _registered(name: str) -> ProviderKey | None:
    """The key registered as ``name``, or ``None``.

    llmkit.provider has no lookup by name; preparing a call is one, and it
    loads the installed providers first, so an entry point's name counts.
    """
    settings = {"api_key": "unused", "api_base": "http://localhost"}
    try:
        key, _, _ = prepare(name, "probe", _PROBE, settings, False)
    except ProviderNotFoundError:
        return None
    return key
