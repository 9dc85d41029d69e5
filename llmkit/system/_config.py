"""A system's configuration: typed structs, and their validation with paths.

Users pass a dict (``{"providers": {...}, "thread_pools": {...}, ...}``) or
the structs below; either way :func:`to_system_config` checks it once, at
:func:`~llmkit.system.create_system`, and every error names the path of the
bad value (``$.thread_pools.api_calls.queue_size``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import msgspec

from llmkit.config import MAX_RETRIES, MAX_SECONDS, SECRET_HEADERS, Config
from llmkit.errors import InvalidRequestError, LLMError
from llmkit.keys import ProviderKey, resolve

__all__ = [
    "Defaults",
    "HealthChecks",
    "PoolConfig",
    "ProviderConfig",
    "SystemConfig",
    "ThreadPools",
    "provider_config",
    "to_config_of",
    "to_system_config",
]

# Upper bounds, so that a typo fails here rather than as a million threads.
MAX_POOL_SIZE = 1024
MAX_QUEUE_SIZE = 10_000_000
MAX_STREAM_BUFFER = 1_000_000
WHEN_FULL = ("block", "raise")


class PoolConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One thread pool.

    Attributes:
        pool_size: how many calls run at once (threads, at most).
        queue_size: how many more calls may wait for a free slot.
        when_full: ``"block"`` makes a caller wait for room in a full queue;
            ``"raise"`` fails the call at once with a retryable
            ``ServiceUnavailableError`` naming the pool and its ``queue_size``.
    """

    pool_size: int = 50
    queue_size: int = 1000
    when_full: str = "block"


def _health_pool() -> PoolConfig:
    return PoolConfig(pool_size=2, queue_size=100)


class ThreadPools(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The system's pools: ``api_calls`` for completions, ``health_checks`` for probes."""

    api_calls: PoolConfig = msgspec.field(default_factory=PoolConfig)
    health_checks: PoolConfig = msgspec.field(default_factory=_health_pool)


class ProviderConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One provider of a system, under the name the system's calls use.

    Attributes:
        provider: the provider's registered name (``"openai"``); by default
            the name this config is listed under, so that
            ``{"openai": {...}}`` needs none, and ``{"openai-eu": {"provider":
            "openai", ...}}`` adds a second OpenAI endpoint.
        probe_model: when set, health checks send a one-token completion to
            this model instead of the provider's ``probe`` (``GET /models``).

    The other fields are those of :class:`llmkit.Config` (the system sends
    through its own transport, so ``transport`` and ``async_http_client``
    are not among them).
    """

    provider: str | None = None
    api_key: str | None = None
    api_base: str | None = None
    timeout: float | None = None
    connect_timeout: float | None = None
    deadline: float | None = None
    headers: dict[str, str] | None = None
    retries: int | None = None
    http_client: Any = None
    token_provider: Any = None
    options: Any = None
    http_backend: str | None = None
    probe_model: str | None = None

    def __repr__(self) -> str:
        return f"ProviderConfig({', '.join(f'{name}={text}' for name, text in self._shown())})"

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        # msgspec's own rich repr would print the key; rich tracebacks call this.
        return [(name, _Masked(text)) for name, text in self._shown()]

    def _shown(self) -> list[tuple[str, str]]:
        # The key must never reach a log line: only that it is set is shown.
        shown = []
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if value is None:
                continue
            if name == "api_key":
                text = "'***'"
            elif name == "headers":
                text = repr(
                    {k: "***" if k.lower() in SECRET_HEADERS else v for k, v in value.items()}
                )
            elif name in ("http_client", "token_provider", "options"):
                text = f"<{type(value).__name__}>"
            else:
                text = repr(value)
            shown.append((name, text))
        return shown


class _Masked(str):
    __slots__ = ()

    def __repr__(self) -> str:
        return str(self)


class Defaults(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a call or a provider leaves out.

    Attributes:
        provider: the provider (a name in ``providers``) for calls naming none.
        model: the model for calls naming none.
        timeout, connect_timeout, deadline, retries, headers, http_backend:
            as in :class:`llmkit.Config`, for every provider that does not
            set them (headers are merged, the provider's winning).
        stream_buffer: how many chunks a stream's pool thread may read ahead
            of its reader before it waits (the backpressure bound).
    """

    provider: str | None = None
    model: str | None = None
    timeout: float | None = None
    connect_timeout: float | None = None
    deadline: float | None = None
    retries: int | None = None
    headers: dict[str, str] | None = None
    http_backend: str | None = None
    stream_buffer: int = 64


class HealthChecks(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Health probes.

    Attributes:
        interval: seconds between periodic checks of every provider, or
            ``None`` (the default) for checks only when asked.
        timeout: seconds one probe may take, retries excluded (a probe is
            never retried: it reports what it saw).
    """

    interval: float | None = None
    timeout: float = 10.0


class SystemConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything a system is made of; see the module functions for its use."""

    providers: dict[str, ProviderConfig] = msgspec.field(default_factory=dict)
    thread_pools: ThreadPools = msgspec.field(default_factory=ThreadPools)
    defaults: Defaults = msgspec.field(default_factory=Defaults)
    health_checks: HealthChecks = msgspec.field(default_factory=HealthChecks)


class _Top(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # The dict form is converted in two steps: this, then each provider on
    # its own, because msgspec shows a dict key in a path as ``[...]``.
    providers: dict[str, Any] = msgspec.field(default_factory=dict)
    thread_pools: ThreadPools = msgspec.field(default_factory=ThreadPools)
    defaults: Defaults = msgspec.field(default_factory=Defaults)
    health_checks: HealthChecks = msgspec.field(default_factory=HealthChecks)


def _bad(message: str, path: str) -> InvalidRequestError:
    return InvalidRequestError(f"invalid system config: {message} - at `{path}`")


def _key_path(parent: str, name: str) -> str:
    return f"{parent}.{name}" if name.isidentifier() else f"{parent}[{name!r}]"


def _plain(value: Any) -> Any:
    """A typed config as dicts, keeping objects (clients, callables) as they are."""
    if isinstance(value, Config):
        if value.transport is not None:
            raise _bad("a system sends through its own transport; remove transport=", "$.providers")
        return {
            name: getattr(value, name)
            for name in value.__struct_fields__
            if getattr(value, name) is not None and name != "transport"
        }
    if isinstance(value, msgspec.Struct):
        return {name: _plain(getattr(value, name)) for name in value.__struct_fields__}
    if isinstance(value, Mapping):
        return {name: _plain(item) for name, item in value.items()}
    return value


def _converted(value: Any, kind: type[Any], path: str) -> Any:
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        text = str(exc)
        # msgspec ends its message with "- at `$...`": put the real path there.
        if "- at `$" in text:
            text = text.replace("- at `$", "- at `" + path, 1)
            raise InvalidRequestError(f"invalid system config: {text}") from None
        raise _bad(text, path) from None
    except (TypeError, UnicodeError) as exc:
        raise _bad(f"a value cannot be read ({type(exc).__name__})", path) from None


def _check_int(value: int, low: int, high: int, path: str) -> None:
    if not low <= value <= high:
        raise _bad(f"expected a whole number from {low} to {high:,}, got {value}", path)


def _check_seconds(value: float | None, path: str) -> None:
    if value is not None and not (math.isfinite(value) and 0 < value <= MAX_SECONDS):
        raise _bad(f"expected seconds above 0 and at most {MAX_SECONDS:,.0f}, got {value}", path)


def _check_pool(pool: PoolConfig, path: str) -> None:
    _check_int(pool.pool_size, 1, MAX_POOL_SIZE, path + ".pool_size")
    _check_int(pool.queue_size, 0, MAX_QUEUE_SIZE, path + ".queue_size")
    if pool.when_full not in WHEN_FULL:
        raise _bad(f"expected 'block' or 'raise', got {pool.when_full!r}", path + ".when_full")


def provider_config(name: Any, value: Any, parent: str = "$.providers") -> ProviderConfig:
    """Check one provider's config (a dict, a ``ProviderConfig`` or an ``llmkit.Config``).

    Raises:
        InvalidRequestError: a bad name or value; the message names its path.
        ProviderNotFoundError: the provider is not installed.
    """
    if type(name) is not str or not name:
        raise _bad(f"a provider's name must be a non-empty string, not {name!r}", parent)
    path = _key_path(parent, name)
    if value is None:
        value = {}
    if not isinstance(value, Mapping | msgspec.Struct):
        raise _bad(
            f"a provider's config must be a dict or a ProviderConfig, not {type(value).__name__}",
            path,
        )
    plain = _plain(value)
    if isinstance(plain, dict) and plain.get("transport") is not None:
        raise _bad("a system sends through its own transport; remove transport", path)
    config: ProviderConfig = _converted(plain, ProviderConfig, path)
    _check_provider(config, name, path)
    return config


def _check_provider(config: ProviderConfig, name: str, path: str) -> None:
    try:
        resolve(config.provider or name)
    except LLMError as exc:
        where = path + ".provider" if config.provider else path
        exc.message = f"{exc.message} - at `{where}`"
        exc.args = (exc.message,)
        raise
    if config.probe_model is not None and not config.probe_model:
        raise _bad("probe_model must name a model, or be left out", path + ".probe_model")
    try:
        to_config_of(config, None)
    except LLMError as exc:
        raise _bad(exc.message, path) from None


def to_config_of(
    config: ProviderConfig, defaults: Defaults | None, transport: Any = None
) -> Config:
    """The :class:`llmkit.Config` a provider's calls are sent with, defaults filled in.

    Raises:
        InvalidRequestError: a value ``Config`` refuses (its message names the field).
    """
    headers = config.headers
    if defaults is not None and defaults.headers:
        headers = {**defaults.headers, **(config.headers or {})}

    def pick(name: str) -> Any:
        own = getattr(config, name)
        if own is None and defaults is not None:
            return getattr(defaults, name)
        return own

    return Config(
        api_key=config.api_key,
        api_base=config.api_base,
        timeout=pick("timeout"),
        connect_timeout=pick("connect_timeout"),
        deadline=pick("deadline"),
        headers=headers,
        retries=pick("retries"),
        http_client=config.http_client,
        token_provider=config.token_provider,
        options=config.options,
        transport=transport,
        http_backend=pick("http_backend"),
    )


def _check_defaults(defaults: Defaults, providers: Mapping[str, ProviderConfig]) -> None:
    for name in ("timeout", "connect_timeout", "deadline"):
        _check_seconds(getattr(defaults, name), f"$.defaults.{name}")
    if defaults.retries is not None:
        _check_int(defaults.retries, 0, MAX_RETRIES, "$.defaults.retries")
    _check_int(defaults.stream_buffer, 1, MAX_STREAM_BUFFER, "$.defaults.stream_buffer")
    if defaults.headers:
        try:
            Config(headers=defaults.headers)
        except LLMError as exc:
            raise _bad(exc.message, "$.defaults.headers") from None
    if defaults.http_backend is not None:
        try:
            Config(http_backend=defaults.http_backend)
        except LLMError as exc:
            raise _bad(exc.message, "$.defaults.http_backend") from None
    if defaults.provider is not None and defaults.provider not in providers:
        known = ", ".join(sorted(providers)) or "none"
        raise _bad(
            f"defaults.provider {defaults.provider!r} is not one of the providers ({known})",
            "$.defaults.provider",
        )
    if defaults.model is not None and not defaults.model:
        raise _bad("defaults.model must name a model, or be left out", "$.defaults.model")


def to_system_config(config: Any) -> SystemConfig:
    """Check a system config (a dict or a :class:`SystemConfig`) and return it typed.

    Raises:
        InvalidRequestError: an unknown field or a bad value; the message
            names its path, e.g. ``$.thread_pools.api_calls.queue_size``.
        ProviderNotFoundError: a provider that is not installed (with its path).
    """
    if config is None:
        config = {}
    if not isinstance(config, Mapping | SystemConfig):
        raise InvalidRequestError(
            f"a system config must be a dict or a SystemConfig, not {type(config).__name__}; "
            'pass e.g. {"providers": {"openai": {"api_key": "..."}}}'
        )
    plain = _plain(config)
    top: _Top = _converted(plain, _Top, "$")
    providers = {name: provider_config(name, value) for name, value in top.providers.items()}
    _check_pool(top.thread_pools.api_calls, "$.thread_pools.api_calls")
    _check_pool(top.thread_pools.health_checks, "$.thread_pools.health_checks")
    _check_defaults(top.defaults, providers)
    _check_seconds(top.health_checks.interval, "$.health_checks.interval")
    _check_seconds(top.health_checks.timeout, "$.health_checks.timeout")
    for name, provider in providers.items():
        try:
            to_config_of(provider, top.defaults)
        except LLMError as exc:
            raise _bad(exc.message, _key_path("$.providers", name)) from None
    return SystemConfig(
        providers=providers,
        thread_pools=top.thread_pools,
        defaults=top.defaults,
        health_checks=top.health_checks,
    )


def key_of(config: ProviderConfig, name: str) -> ProviderKey:
    """The provider key a checked provider config names.

    Raises:
        ProviderNotFoundError: the provider is no longer registered.
    """
    return resolve(config.provider or name)
