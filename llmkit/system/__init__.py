"""The system façade: a long-lived llmkit with its own pools, clients, health checks and metrics.

Where :mod:`llmkit.core` makes stateless calls, a :class:`System` holds
providers by name, bounded thread pools, its own HTTP clients, stream
handles, futures, health checks and metrics, until it is shut down::

    from llmkit import system

    config = {
        "providers": {"openai": {"api_key": "sk-..."}},
        "thread_pools": {"api_calls": {"pool_size": 50, "queue_size": 1000}},
        "defaults": {"model": "gpt-4o-mini"},
    }
    with system.create_system(config) as sys_:
        reply = system.completion(sys_, "openai", "gpt-4o-mini", {"messages": [...]})
        for chunk in sys_.completion(provider="openai", messages=[...], stream=True):
            print(chunk.text, end="")

Every function here takes the system first and is also a method of
:class:`System` (``system.metrics(sys_)`` is ``sys_.metrics()``). The
global system (:func:`init`, :func:`with_config`, :func:`get_global_system`)
serves code that does not pass one around.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import Future
from typing import Any, Literal, overload

from llmkit.config import Config
from llmkit.errors import InvalidRequestError
from llmkit.keys import ProviderKey
from llmkit.system._config import (
    Defaults,
    HealthChecks,
    PoolConfig,
    ProviderConfig,
    SystemConfig,
    ThreadPools,
)
from llmkit.system._health import ProviderHealth
from llmkit.system._stream import SystemStream
from llmkit.system._system import System
from llmkit.types import ChatRequest, ChatResponse

__all__ = [
    "Defaults",
    "HealthChecks",
    "PoolConfig",
    "ProviderConfig",
    "ProviderHealth",
    "System",
    "SystemConfig",
    "SystemStream",
    "ThreadPools",
    "acompletion",
    "add_provider",
    "completion",
    "create_system",
    "get_global_system",
    "get_provider",
    "health",
    "health_check",
    "init",
    "list_providers",
    "make_request",
    "metrics",
    "remove_provider",
    "set_global_system",
    "shutdown",
    "shutdown_system",
    "submit",
    "system_info",
    "with_config",
    "with_system",
]

Request = ChatRequest | Mapping[str, Any]
ConfigLike = Config | Mapping[str, Any] | None
SystemConfigLike = SystemConfig | Mapping[str, Any] | None


def _checked(system: Any) -> System:
    if isinstance(system, System):
        return system
    raise InvalidRequestError(
        f"the first argument must be a System from llmkit.system.create_system(), not "
        f"{type(system).__name__}; for a call without a system use llmkit.completion(...)"
    )


def create_system(config: SystemConfigLike = None) -> System:
    """Build and start a system.

    ``config`` is a dict or a :class:`SystemConfig`: ``providers`` (name to
    settings: ``api_key``, ``api_base``, ``timeout``, ... and optionally
    ``provider`` and ``probe_model``), ``thread_pools`` (``api_calls`` and
    ``health_checks``, each ``pool_size``, ``queue_size``, ``when_full``),
    ``defaults`` (``provider``, ``model``, timeouts, retries, headers,
    ``stream_buffer``) and ``health_checks`` (``interval``, ``timeout``).

    Raises:
        InvalidRequestError: a bad config; the message names the path of the
            bad value, e.g. ``$.thread_pools.api_calls.queue_size``.
        ProviderNotFoundError: a provider that is not installed (with its path).
    """
    return System(config)


@overload
def completion(
    system: System,
    provider: str | ProviderKey,
    model: str,
    request: Request,
    /,
    config: ConfigLike = None,
    *,
    stream: Literal[True],
) -> SystemStream: ...
@overload
def completion(
    system: System,
    provider: str | ProviderKey,
    model: str,
    request: Request,
    /,
    config: ConfigLike = None,
    *,
    stream: Literal[False] = False,
) -> ChatResponse: ...
@overload
def completion(system: System, request: Request, /, *, stream: Literal[True]) -> SystemStream: ...
@overload
def completion(system: System, request: Request, /, *, stream: Literal[False]) -> ChatResponse: ...
@overload
def completion(
    system: System, request: Request, /, *, stream: bool | None = None
) -> ChatResponse | SystemStream: ...
@overload
def completion(system: System, /, *, stream: Literal[True], **fields: Any) -> SystemStream: ...
@overload
def completion(
    system: System, /, *, stream: Literal[False] = False, **fields: Any
) -> ChatResponse: ...
def completion(system: System, /, *args: Any, **fields: Any) -> ChatResponse | SystemStream:
    """Run a chat completion on ``system``; see :meth:`System.completion`.

    Raises:
        InvalidRequestError: ``system`` is not a System, or bad input.
        LLMError: as :meth:`System.completion` does.
    """
    return _checked(system).completion(*args, **fields)  # type: ignore[no-any-return]


def make_request(system: System, request: Request, /) -> ChatResponse | SystemStream:
    """:func:`completion` with one request dict that names ``provider`` and ``model``.

    Raises:
        LLMError: as :meth:`System.completion` does.
    """
    return _checked(system).make_request(request)


def submit(system: System, /, *args: Any, **fields: Any) -> Future[ChatResponse]:
    """Queue a call on ``system``'s pool; see :meth:`System.submit`.

    Raises:
        LLMError: as :meth:`System.submit` does.
    """
    return _checked(system).submit(*args, **fields)


@overload
async def acompletion(
    system: System,
    provider: str | ProviderKey,
    model: str,
    request: Request,
    /,
    config: ConfigLike = None,
    *,
    stream: Literal[True],
) -> SystemStream: ...
@overload
async def acompletion(
    system: System,
    provider: str | ProviderKey,
    model: str,
    request: Request,
    /,
    config: ConfigLike = None,
    *,
    stream: Literal[False] = False,
) -> ChatResponse: ...
@overload
async def acompletion(
    system: System, request: Request, /, *, stream: Literal[True]
) -> SystemStream: ...
@overload
async def acompletion(
    system: System, request: Request, /, *, stream: Literal[False]
) -> ChatResponse: ...
@overload
async def acompletion(
    system: System, request: Request, /, *, stream: bool | None = None
) -> ChatResponse | SystemStream: ...
@overload
async def acompletion(
    system: System, /, *, stream: Literal[True], **fields: Any
) -> SystemStream: ...
@overload
async def acompletion(
    system: System, /, *, stream: Literal[False] = False, **fields: Any
) -> ChatResponse: ...
async def acompletion(system: System, /, *args: Any, **fields: Any) -> ChatResponse | SystemStream:
    """The asyncio form of :func:`completion`; see :meth:`System.acompletion`.

    Raises:
        LLMError: as :meth:`System.acompletion` does.
    """
    return await _checked(system).acompletion(*args, **fields)  # type: ignore[no-any-return]


def health_check(system: System, providers: list[str] | None = None) -> dict[str, ProviderHealth]:
    """Probe ``system``'s providers now; see :meth:`System.health_check`.

    Raises:
        LLMError: as :meth:`System.health_check` does.
    """
    return _checked(system).health_check(providers)


def health(system: System) -> dict[str, ProviderHealth]:
    """The latest known health of ``system``'s providers, without probing.

    Raises:
        InvalidRequestError: ``system`` is not a System.
    """
    return _checked(system).health()


def metrics(system: System) -> dict[str, Any]:
    """``system``'s metrics as a plain dict; see :meth:`System.metrics`.

    Raises:
        InvalidRequestError: ``system`` is not a System.
    """
    return _checked(system).metrics()


def list_providers(system: System) -> list[str]:
    """The names of ``system``'s providers, sorted.

    Raises:
        InvalidRequestError: ``system`` is not a System.
    """
    return _checked(system).list_providers()


def get_provider(system: System, name: str) -> dict[str, Any]:
    """What ``system`` knows of one provider; see :meth:`System.get_provider`.

    Raises:
        ProviderNotFoundError: a name the system does not have.
    """
    return _checked(system).get_provider(name)


def system_info(system: System) -> dict[str, Any]:
    """``system``'s state, providers, pools and settings, as a plain dict.

    Raises:
        InvalidRequestError: ``system`` is not a System.
    """
    return _checked(system).system_info()


def add_provider(system: System, name: str, config: Any = None) -> None:
    """Add a provider to ``system`` at run time; see :meth:`System.add_provider`.

    Raises:
        LLMError: as :meth:`System.add_provider` does.
    """
    _checked(system).add_provider(name, config)


def remove_provider(system: System, name: str, timeout: float | None = None) -> None:
    """Remove a provider from ``system``; see :meth:`System.remove_provider`.

    Raises:
        LLMError: as :meth:`System.remove_provider` does.
    """
    _checked(system).remove_provider(name, timeout)


def shutdown_system(system: System, timeout: float | None = 30.0, *, cancel: bool = False) -> None:
    """Shut ``system`` down; see :meth:`System.shutdown`.

    Raises:
        LLMError: as :meth:`System.shutdown` does.
    """
    _checked(system).shutdown(timeout, cancel=cancel)


# --- the global system and scoped ones ----------------------------------------------------

_global: System | None = None
_global_lock = threading.Lock()
_scoped: contextvars.ContextVar[System | None] = contextvars.ContextVar(
    "llmkit_scoped_system", default=None
)


def set_global_system(system: System | None) -> None:
    """Make ``system`` the global one (``None`` clears it); the old one is not shut down.

    Raises:
        InvalidRequestError: ``system`` is neither a System nor ``None``.
    """
    global _global
    if system is not None:
        _checked(system)
    with _global_lock:
        _global = system


def get_global_system() -> System | None:
    """The system of the innermost :func:`with_system` block here, else the global one.

    ``None`` when there is neither.
    """
    scoped = _scoped.get()
    return scoped if scoped is not None else _global


@contextlib.contextmanager
def with_system(system: System) -> Iterator[System]:
    """Make ``system`` what :func:`get_global_system` returns in this block (thread and task local).

    Raises:
        InvalidRequestError: ``system`` is not a System.
    """
    token = _scoped.set(_checked(system))
    try:
        yield system
    finally:
        _scoped.reset(token)


@contextlib.contextmanager
def with_config(config: SystemConfigLike) -> Iterator[System]:
    """Create a system, install it as the global one for the block, then shut it down.

    The global system from before the block is restored afterwards.

    Raises:
        InvalidRequestError: a bad config (see :func:`create_system`).
    """
    global _global
    system = create_system(config)
    with _global_lock:
        previous, _global = _global, system
    try:
        yield system
    finally:
        with _global_lock:
            if _global is system:
                _global = previous
        system.shutdown()


def init(config: SystemConfigLike) -> System:
    """Create a system and make it the global one.

    Raises:
        InvalidRequestError: a bad config, or a global system that is still
            running (call :func:`shutdown` first).
    """
    global _global
    with _global_lock:
        if _global is not None and not _global.closed:
            raise InvalidRequestError(
                "a global system is already running; call llmkit.system.shutdown() first, or "
                "use with_config(config) for a scoped one"
            )
    system = create_system(config)
    with _global_lock:
        _global = system
    return system


def shutdown(timeout: float | None = 30.0, *, cancel: bool = False) -> None:
    """Shut the global system down and clear it; without one, do nothing.

    Raises:
        LLMError: as :meth:`System.shutdown` does.
    """
    global _global
    with _global_lock:
        system, _global = _global, None
    if system is not None:
        system.shutdown(timeout, cancel=cancel)
