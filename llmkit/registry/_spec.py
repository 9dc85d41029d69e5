"""A named config: its accepted shapes, and their validation at ``register`` time.

Users register a dict (or a :class:`NamedConfig`) in one of three shapes::

    {"provider": "openai", "model": "gpt-4o-mini", "config": {...}}
    {"router": fn, "configs": {"openai": {...}, "anthropic": {...}}}
    {"router": fn, "config": {...}}

plus, in any shape, ``fallbacks``, ``fallback_on`` and the retry settings.
:func:`compile_spec` checks all of it once and returns a :class:`Compiled`,
whose parts the calls use without checking again. Every error names the
path of the bad value (``$.config.api_kye``) and what would have fitted.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal

import msgspec

from llmkit.config import MAX_RETRIES, MAX_SECONDS, Config, _checked_options, to_config
from llmkit.errors import (
    ContentFilterError,
    ContextWindowError,
    InvalidRequestError,
    LLMError,
    ProviderNotFoundError,
)
from llmkit.keys import ProviderKey, resolve
from llmkit.types import ChatRequest

__all__ = [
    "REQUEST_FIELDS",
    "CacheSettings",
    "Compiled",
    "Cooldown",
    "Deployed",
    "DeploymentSpec",
    "NamedConfig",
    "Target",
    "compile_spec",
    "compile_target",
    "invalid",
    "key_path",
]

FallbackOn = Literal["context_window", "content_filter"]

#: The error class each ``fallback_on`` value adds to the retryable ones.
FALLBACK_ERRORS: Final[dict[str, type[LLMError]]] = {
    "context_window": ContextWindowError,
    "content_filter": ContentFilterError,
}

#: The top-level keys of a chat request; a router config hands any other to its router.
REQUEST_FIELDS: Final = frozenset(ChatRequest.__struct_fields__)


class Deployment(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A fallback given inline: a provider, a model and its config."""

    provider: str
    model: str
    config: Any = None


class DeploymentSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One deployment of a load-balanced name.

    Attributes:
        provider, model, config: where calls go, as for a fixed target.
        weight: its share under the ``weighted`` strategy.
        rpm: requests per minute it may take; none by default.
        tpm: tokens per minute (prompt estimate, then the reported usage).
        id: its key in the shared state; by default ``"<name>:<index>:<provider>/<model>"``,
            the same in every process that registers the same config.
    """

    provider: str
    model: str
    config: Any = None
    weight: float = 1.0
    rpm: int | None = None
    tpm: int | None = None
    id: str | None = None


class Cooldown(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """When a deployment rests: ``failures`` within ``window`` seconds cool it for ``seconds``."""

    failures: int = 3
    window: float = 60.0
    seconds: float = 30.0


class CacheSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The response cache of a name.

    Attributes:
        ttl: seconds a cached response is served.
        always: also cache requests with ``n > 1`` or a nonzero temperature,
            which are otherwise never cached (their answers are meant to differ).
    """

    ttl: float = 300.0
    always: bool = False


Strategy = Literal["weighted", "round_robin", "least_busy", "lowest_latency"]


class NamedConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What ``register(name, config)`` takes, typed; a dict of the same keys works too.

    Attributes:
        provider: the provider's name; with ``model``, the fixed target.
        model: the model of the fixed target.
        config: the provider's :class:`llmkit.Config` fields (``api_key``,
            ``timeout``, ``options``...); with a router, used for any provider.
        router: ``fn(request) -> {"provider": ..., "model": ...}``, called per call.
        configs: with a router, each provider's config, by provider name;
            the router may only pick these providers.
        keys: with a router, the custom request keys it reads (``priority``);
            then any other unknown key is refused. Without it, every key
            outside the chat-request schema goes to the router. Either way
            they are stripped before the request is sent.
        fallbacks: tried in order when the target fails: registered names,
            or ``{"provider", "model", "config"}`` dicts.
        fallback_on: error kinds that move on to the next fallback besides
            the retryable ones: ``"context_window"``, ``"content_filter"``.
        retries: tries after the first, per target, on a retryable error.
        retry_delay: the first backoff in seconds; it doubles per retry,
            with jitter, up to ``retry_max_delay``.
        retry_max_delay: the longest wait; a ``Retry-After`` longer than
            this moves on to the next fallback instead of waiting.
        deployments: several places for one name, balanced by ``strategy``
            (see :class:`DeploymentSpec`).
        strategy: ``"weighted"`` (random by weight), ``"round_robin"``,
            ``"least_busy"`` or ``"lowest_latency"``.
        cooldown: when a failing deployment is rested (``None``: never).
        when_limited: when every deployment is at its RPM/TPM limit,
            ``"wait"`` for room or ``"move"`` on to the fallbacks.
        cache: cache responses (``True`` or ``{"ttl": ..., "always": ...}``).
    """

    provider: str | None = None
    model: str | None = None
    config: Any = None
    router: Any = None
    configs: dict[str, Any] | None = None
    keys: list[str] | None = None
    fallbacks: list[Any] = msgspec.field(default_factory=list)
    fallback_on: list[FallbackOn] = msgspec.field(default_factory=list)
    retries: int = 2
    retry_delay: float = 0.5
    retry_max_delay: float = 30.0
    deployments: list[Any] | None = None
    strategy: Strategy = "weighted"
    cooldown: Cooldown | None = msgspec.field(default_factory=Cooldown)
    when_limited: Literal["wait", "move"] = "wait"
    cache: CacheSettings | bool | None = None


class Target(msgspec.Struct, frozen=True):
    """One place a call can go: a provider key, a model, and the config to send with.

    ``provider`` is the name as given: on a registry with a system attached,
    it is the system's name for the provider (``"openai-eu"``).
    """

    key: ProviderKey
    model: str
    config: Config
    provider: str


class Deployed(msgspec.Struct, frozen=True):
    """A checked deployment: its target, its id in the shared state, weight and limits."""

    id: str
    target: Target
    weight: float
    rpm: int | None
    tpm: int | None


class Compiled(msgspec.Struct, frozen=True, kw_only=True):
    """A checked named config, ready for calls."""

    name: str
    spec: NamedConfig
    target: Target | None
    router: Callable[[Any], Any] | None
    router_configs: dict[str, Config] | None
    #: The keys of ``router_configs``' providers, resolved once at register time.
    router_keys: dict[str, ProviderKey]
    router_config: Config | None
    keys: frozenset[str] | None
    fallbacks: tuple[str | Target, ...]
    fallback_errors: tuple[type[LLMError], ...]
    retries: int
    retry_delay: float
    retry_max_delay: float
    deployments: tuple[Deployed, ...] | None = None
    cache: CacheSettings | None = None
    #: Where this config sends, as text: what the response cache keys on
    #: besides the request (re-registering a name elsewhere starts afresh).
    fingerprint: str = ""
    #: The balancing state of ``deployments`` (a ``_balance.Pool``), set by the registry.
    pool: Any = None


def invalid(name: str, message: str, path: str) -> InvalidRequestError:
    """An error about registry config ``name``, naming the path of the bad value."""
    return InvalidRequestError(f"invalid registry config {name!r}: {message} - at `{path}`")


def _suggest(word: str, known: list[str]) -> str:
    close = difflib.get_close_matches(word, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{hint} Known: {', '.join(known)}"


def _as_dict(name: str, value: Any, path: str) -> dict[str, Any]:
    if isinstance(value, msgspec.Struct):
        return {field: getattr(value, field) for field in value.__struct_fields__}
    if not isinstance(value, Mapping):
        raise invalid(name, f"expected a dict, not {type(value).__name__}", path)
    try:
        return dict(value)
    except Exception as exc:
        raise invalid(name, f"the dict cannot be read ({type(exc).__name__})", path) from None


def key_path(parent: str, key: Any) -> str:
    """The path of ``parent``'s ``key``, printable anywhere: an odd key is quoted and escaped."""
    text = key if isinstance(key, str) else repr(key)
    return f"{parent}.{text}" if text.isidentifier() and text.isascii() else f"{parent}[{text!a}]"


def _unknown_keys(name: str, data: dict[str, Any], known: tuple[str, ...], path: str) -> None:
    for field in data:
        if field not in known:
            text = field if isinstance(field, str) else repr(field)
            raise invalid(
                name, f"unknown key {text!a}{_suggest(text, list(known))}", key_path(path, field)
            )


def _converted(name: str, data: Any, kind: type[Any], path: str) -> Any:
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as exc:
        text = str(exc)
        if " - at `$" in text:
            message, _, where = text.rpartition(" - at `$")
            raise invalid(name, message, path + where.rstrip("`")) from None
        raise invalid(name, text, path) from None
    except (TypeError, UnicodeError) as exc:
        raise invalid(name, f"a value cannot be read ({type(exc).__name__})", path) from None


Resolver = Callable[[str], ProviderKey]


def _provider(name: str, provider: Any, path: str, resolver: Resolver = resolve) -> ProviderKey:
    if type(provider) is not str or not provider:
        raise invalid(name, f"expected a provider name such as 'openai', not {provider!r}", path)
    try:
        return resolver(provider)
    except ProviderNotFoundError as exc:
        raise ProviderNotFoundError(
            f"invalid registry config {name!r}: {exc.message} - at `{path}`", provider=provider
        ) from None


def _config(name: str, key: ProviderKey, value: Any, path: str) -> Config:
    """A provider's config, checked; ``retries=0`` unless it sets its own.

    The registry retries (and counts) attempts itself, so the transport
    must not retry under it unless the user asked for that.
    """
    if value is None:
        value = {}
    if isinstance(value, Config):
        config = value
    else:
        data = _as_dict(name, value, path)
        _unknown_keys(name, data, Config.__struct_fields__, path)
        try:
            config = to_config(data)
        except LLMError as exc:
            raise invalid(name, exc.message, path) from None
    if config.options is not None:
        try:
            config = msgspec.structs.replace(config, options=_checked_options(key, config.options))
        except LLMError as exc:
            raise invalid(name, exc.message, path + ".options") from None
    if config.retries is None:
        config = msgspec.structs.replace(config, retries=0)
    return config


def _model(name: str, model: Any, path: str) -> str:
    if type(model) is not str or not model.strip() or not model.isprintable():
        raise invalid(name, f"expected a model name such as 'gpt-4o-mini', not {model!a}", path)
    return model


def compile_target(name: str, value: Any, path: str, resolver: Resolver = resolve) -> Target:
    """Check a ``{"provider", "model", "config"}`` dict (a fixed target or a fallback).

    Raises:
        InvalidRequestError: a bad or unknown key or value; names its path.
    """
    data = _as_dict(name, value, path)
    _unknown_keys(name, data, Deployment.__struct_fields__, path)
    for field in ("provider", "model"):
        if field not in data:
            raise invalid(name, f"{field} is required", f"{path}.{field}")
    key = _provider(name, data["provider"], f"{path}.provider", resolver)
    model = _model(name, data["model"], f"{path}.model")
    config = _config(name, key, data.get("config"), f"{path}.config")
    return Target(key, model, config, data["provider"])


def _seconds(name: str, value: float, path: str, low: float = 0.0) -> None:
    if not (math.isfinite(value) and low <= value <= MAX_SECONDS):
        raise invalid(
            name, f"expected seconds from {low:g} to {MAX_SECONDS:,.0f}, not {value}", path
        )


def compile_spec(name: Any, value: Any, resolver: Resolver = resolve) -> Compiled:
    """Check a named config in any of its three shapes.

    ``resolver`` turns provider names into keys: a system's own names when
    the registry runs on one.

    Raises:
        InvalidRequestError: a bad name, an unknown key (with the closest
            known one), a missing or conflicting part, or a value of the
            wrong type; the message names the path.
        ProviderNotFoundError: a provider that is not installed (with the
            closest name and the path).
    """
    if type(name) is not str or not name.strip() or not name.isprintable():
        raise InvalidRequestError(
            f"a registry config's name must be a non-empty printable string, not {name!r}"
        )
    data = _as_dict(name, value, "$")
    _unknown_keys(name, data, NamedConfig.__struct_fields__, "$")
    router = data.get("router")
    plain = {field: item for field, item in data.items() if field != "router"}
    spec: NamedConfig = _converted(name, plain, NamedConfig, "$")
    spec = msgspec.structs.replace(spec, router=router)
    _seconds(name, spec.retry_delay, "$.retry_delay")
    _seconds(name, spec.retry_max_delay, "$.retry_max_delay")
    if not 0 <= spec.retries <= MAX_RETRIES:
        raise invalid(name, f"expected 0 to {MAX_RETRIES} retries, not {spec.retries}", "$.retries")

    target = None
    router_configs = router_config = None
    router_keys: dict[str, ProviderKey] = {}
    keys = None
    deployments = None
    if spec.deployments is not None:
        for field in ("provider", "model", "config", "configs", "keys", "router"):
            if field in data:
                raise invalid(
                    name, f"deployments name their own targets; remove {field}", f"$.{field}"
                )
        deployments = _deployments(name, spec.deployments, resolver)
    else:
        for field in ("strategy", "cooldown", "when_limited"):
            if field in data:
                raise invalid(name, f"{field} goes with deployments", f"$.{field}")
    if deployments is not None:
        pass
    elif router is None:
        for field in ("configs", "keys"):
            if getattr(spec, field) is not None:
                raise invalid(
                    name, f"{field} goes with a router; add router= or remove it", f"$.{field}"
                )
        if spec.provider is None or spec.model is None:
            raise invalid(
                name,
                'give provider and model ({"provider": "openai", "model": "gpt-4o-mini"}), '
                "or a router",
                "$",
            )
        target = compile_target(
            name,
            {"provider": spec.provider, "model": spec.model, "config": spec.config},
            "$",
            resolver,
        )
    else:
        if not callable(router):
            raise invalid(
                name, f"router must be a function, not {type(router).__name__}", "$.router"
            )
        for field in ("provider", "model"):
            if getattr(spec, field) is not None:
                raise invalid(name, f"the router picks the {field}; remove {field}", f"$.{field}")
        if spec.configs is not None and spec.config is not None:
            raise invalid(
                name, "give configs (one per provider) or config (for any), not both", "$.configs"
            )
        if spec.configs is not None:
            if not spec.configs:
                raise invalid(name, "configs is empty; name at least one provider", "$.configs")
            router_configs, router_keys = {}, {}
            for provider, config in spec.configs.items():
                path = f"$.configs.{provider}"
                key = router_keys[provider] = _provider(name, provider, path, resolver)
                router_configs[provider] = _config(name, key, config, path)
        else:
            # Checked against no provider's options: which one is known per call.
            router_config = _config_any(name, spec.config)
        if spec.keys is not None:
            clash = sorted(set(spec.keys) & REQUEST_FIELDS)
            if clash:
                raise invalid(
                    name, f"{clash[0]!r} is a chat-request field, not a custom key", "$.keys"
                )
            keys = frozenset(spec.keys)

    fallbacks: list[str | Target] = []
    for i, item in enumerate(spec.fallbacks):
        path = f"$.fallbacks[{i}]"
        if isinstance(item, str):
            if item == name:
                raise invalid(name, "a config cannot be its own fallback", path)
            fallbacks.append(item)
        else:
            fallbacks.append(compile_target(name, item, path, resolver))
    if spec.cooldown is not None:
        cooldown = spec.cooldown
        if not 1 <= cooldown.failures <= 1_000_000:
            raise invalid(name, "expected 1 to 1,000,000 failures", "$.cooldown.failures")
        _seconds(name, cooldown.window, "$.cooldown.window", low=0.001)
        _seconds(name, cooldown.seconds, "$.cooldown.seconds", low=0.001)
    cache = CacheSettings() if spec.cache is True else spec.cache or None
    if cache is not None:
        _seconds(name, cache.ttl, "$.cache.ttl", low=0.001)
    places: list[Any] = [name]
    if target is not None:
        places.append(_place(target))
    for deployed in deployments or ():
        places.append([deployed.id, _place(deployed.target)])
    if router is not None:
        places.append(f"{getattr(router, '__module__', '')}.{getattr(router, '__qualname__', '')}")
        for provider, config in sorted((router_configs or {}).items()):
            places.append([provider, config.api_base])
        if router_config is not None:
            places.append(router_config.api_base)
    places.extend(item if isinstance(item, str) else _place(item) for item in fallbacks)
    return Compiled(
        fingerprint=repr(places),
        deployments=deployments,
        cache=cache,
        name=name,
        spec=spec,
        target=target,
        router=router,
        router_configs=router_configs,
        router_keys=router_keys,
        router_config=router_config,
        keys=keys,
        fallbacks=tuple(fallbacks),
        fallback_errors=tuple(FALLBACK_ERRORS[kind] for kind in spec.fallback_on),
        retries=spec.retries,
        retry_delay=spec.retry_delay,
        retry_max_delay=spec.retry_max_delay,
    )


def _deployments(name: str, items: list[Any], resolver: Resolver) -> tuple[Deployed, ...]:
    if not items:
        raise invalid(name, "deployments is empty; list at least one", "$.deployments")
    found: list[Deployed] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        path = f"$.deployments[{i}]"
        data = _as_dict(name, item, path)
        _unknown_keys(name, data, DeploymentSpec.__struct_fields__, path)
        deployment: DeploymentSpec = _converted(name, data, DeploymentSpec, path)
        target = compile_target(
            name,
            {
                "provider": deployment.provider,
                "model": deployment.model,
                "config": deployment.config,
            },
            path,
            resolver,
        )
        if not (math.isfinite(deployment.weight) and deployment.weight > 0):
            raise invalid(
                name, f"expected a weight above 0, not {deployment.weight}", path + ".weight"
            )
        for field in ("rpm", "tpm"):
            limit = getattr(deployment, field)
            if limit is not None and limit < 1:
                raise invalid(
                    name, f"expected {field} of 1 or more, not {limit}", f"{path}.{field}"
                )
        ident = deployment.id or f"{name}:{i}:{target.provider}/{target.model}"
        if not ident.isprintable() or not ident.strip():
            raise invalid(name, f"an id must be printable text, not {ident!a}", path + ".id")
        if ident in seen:
            raise invalid(name, f"two deployments have the id {ident!r}", path + ".id")
        seen.add(ident)
        found.append(Deployed(ident, target, deployment.weight, deployment.rpm, deployment.tpm))
    return tuple(found)


def _place(target: Target) -> list[Any]:
    return [target.provider, target.key.name, target.model, target.config.api_base]


def _config_any(name: str, value: Any) -> Config:
    if value is None:
        return Config(retries=0)
    data = _as_dict(name, value, "$.config")
    _unknown_keys(name, data, Config.__struct_fields__, "$.config")
    try:
        config = to_config(data)
    except LLMError as exc:
        raise invalid(name, exc.message, "$.config") from None
    return config if config.retries is not None else msgspec.structs.replace(config, retries=0)
