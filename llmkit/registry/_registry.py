"""The registry: named configs, and calls by name with routing, retries and fallbacks.

A :class:`Registry` maps names to checked configs (:mod:`._spec`). A call
by name routes the request (a fixed target, or the config's router),
strips the router's custom keys, and tries the target, retrying retryable
failures with backoff, then each fallback in turn. Whatever answers is
recorded in the response's ``served_by``.

Thread safety: the table of configs is replaced whole under a lock on
every change and read without one, so calls never wait on registration
and always see a complete table.
"""

from __future__ import annotations

import asyncio
import difflib
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, cast

import msgspec

from llmkit import _http, generics
from llmkit.config import Config, _checked_options
from llmkit.errors import (
    AllAttemptsFailedError,
    Attempt,
    InvalidRequestError,
    LLMError,
    ProviderNotFoundError,
    RateLimitError,
    StreamInterruptedError,
)
from llmkit.keys import ProviderKey, resolve
from llmkit.registry import _setup
from llmkit.registry._backoff import Backoff
from llmkit.registry._balance import BUSY, COOLING, Pool, estimate_tokens
from llmkit.registry._cache import Replayed, cache_key, decode, encode
from llmkit.registry._routed import AsyncRoutedStream, RoutedStream
from llmkit.registry._spec import REQUEST_FIELDS, Compiled, Deployed, Target, compile_spec
from llmkit.registry._state import MemoryState, State
from llmkit.types import ChatRequest, ChatResponse, Message, RoutedResponse, ServedBy, StreamChunk

__all__ = ["Registry"]

Request = ChatRequest | Mapping[str, Any]


class _Call:
    """One call by name: its targets in order, its failed attempts, and what to do next."""

    __slots__ = (
        "avoid",
        "backoff",
        "compiled",
        "errors_moving_on",
        "failures",
        "moves",
        "stream",
        "targets",
        "tokens",
        "tries",
    )

    def __init__(
        self, compiled: Compiled, targets: Callable[[], Iterator[tuple[Any, Any]]], stream: bool
    ):
        # What only a failure needs (backoff, the fallbacks' iterator, the
        # set of failed deployments) is made on the first failure: a call
        # that succeeds at once pays for none of it.
        self.compiled = compiled
        self.targets: Iterator[tuple[Any, Any]] | Callable[[], Iterator[tuple[Any, Any]]] = targets
        self.stream = stream
        self.backoff: Backoff | None = None
        self.errors_moving_on = compiled.fallback_errors
        self.failures: list[Attempt] = []
        self.tries = 0  # retries made on the current target
        self.moves = 0  # fallbacks moved on to
        self.avoid: set[str] = set()  # deployments that failed in this call
        self.tokens = 0  # the prompt's estimated tokens, for TPM limits

    def failed(
        self, target: Target | None, error: LLMError
    ) -> tuple[float, tuple[Any, Any] | None]:
        """Record ``error``; return the wait and the next target (``None``: the same one again).

        ``target`` is ``None`` when no deployment could be picked.

        Raises:
            LLMError: nothing is left to try: the error itself when only one
                target was tried, else ``AllAttemptsFailedError`` listing all.
        """
        provider, model = (
            (target.key.name, target.model) if target is not None else ("-", "(no deployment)")
        )
        self.failures.append(Attempt(self.compiled.name, provider, model, error))
        # A stream broken before its first chunk reached nobody: trying again
        # is as safe as after any retryable error.
        retryable = error.retryable or (self.stream and isinstance(error, StreamInterruptedError))
        # A pool's own refusal (all cooling, all at their limits) is final for
        # this target: waiting is what the pool already decided against.
        pooled = error.code in (COOLING, BUSY)
        backoff = self.backoff
        if backoff is None:
            compiled = self.compiled
            backoff = self.backoff = Backoff(
                compiled.retries, compiled.retry_delay, compiled.retry_max_delay
            )
        wait = None if pooled else backoff.wait(error, self.tries, retryable)
        if wait is not None:
            self.tries += 1
            return wait, None
        if retryable or pooled or isinstance(error, self.errors_moving_on):
            targets = self.targets
            if not isinstance(targets, Iterator):
                targets = self.targets = targets()
            following = next(targets, None)
            if following is not None:
                self.tries = 0
                self.moves += 1
                return 0.0, following
        if not self.moves:
            raise error
        failed = AllAttemptsFailedError(self.compiled.name, self.failures)
        raise failed from error

    def served(self, target: Target, deployed: Deployed | None) -> ServedBy:
        return ServedBy(
            provider=target.key.name,
            model=target.model,
            name=self.compiled.name,
            attempts=len(self.failures) + 1,
            fallback=self.moves > 0,
            deployment=None if deployed is None else deployed.id,
        )


class Registry:
    """Named configs and the calls made through them.

    Args:
        system: an ``llmkit.system.System`` to run the calls on, for its
            pools, clients and metrics; its provider names are then the
            ones configs name. ``None`` (the default) calls as
            ``llmkit.core`` does.
        state: where rate-limit counts, cooldowns and cached responses live:
            a :class:`MemoryState` of its own by default, or a
            :class:`~llmkit.registry.RedisState` to share them between processes.
        clock: the time in seconds, for windows, cooldowns, cache expiry and
            latency (``time.time``; tests pass one they control).
        sleep: how to wait between retries and for rate limits (for tests).
        asleep: the async twin of ``sleep``.
    """

    def __init__(
        self,
        system: Any = None,
        *,
        state: State | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        asleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if system is not None and not callable(getattr(system, "completion", None)):
            raise InvalidRequestError(
                f"system must be an llmkit.system.System, not {type(system).__name__}"
            )
        if state is not None and not isinstance(state, State):
            raise InvalidRequestError(
                f"state must be a MemoryState, a RedisState or another State, "
                f"not {type(state).__name__}"
            )
        self._lock = threading.Lock()
        self._configs: dict[str, Compiled] = {}
        self._system = system
        self._state: State = MemoryState() if state is None else state
        self._clock = clock
        self._sleep = sleep
        self._asleep = asleep

    def _resolve(self, provider: str) -> ProviderKey:
        # On a system, configs name the system's providers ("openai-eu").
        system = self._system
        if system is None:
            return resolve(provider)
        return resolve(system.get_provider(provider)["provider"])

    @property
    def state(self) -> State:
        """Where rate limits, cooldowns and cached responses are kept."""
        return self._state

    @property
    def system(self) -> Any:
        """The ``llmkit.system.System`` calls run on, or ``None``."""
        return self._system

    # --- the table -------------------------------------------------------------

    def register(self, name: str, config: Any) -> None:
        """Register (or replace) ``config`` under ``name``, checking it first.

        Raises:
            InvalidRequestError: a bad name or config; names the path of the
                bad value and the keys or options that would fit.
        """
        compiled = compile_spec(name, config, self._resolve)
        if compiled.deployments is not None:
            spec = compiled.spec
            cooldown = spec.cooldown
            pool = Pool(
                name,
                compiled.deployments,
                spec.strategy,
                None
                if cooldown is None
                else (cooldown.failures, cooldown.window, cooldown.seconds),
                spec.when_limited,
            )
            compiled = msgspec.structs.replace(compiled, pool=pool)
        with self._lock:
            table = dict(self._configs)
            table[name] = compiled
            self._configs = table

    def unregister(self, name: str) -> bool:
        """Remove ``name``; return whether it was registered."""
        with self._lock:
            if name not in self._configs:
                return False
            table = dict(self._configs)
            del table[name]
            self._configs = table
            return True

    def clear(self) -> None:
        """Remove every config."""
        with self._lock:
            self._configs = {}

    def list_configs(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._configs)

    def get_config(self, name: str) -> dict[str, Any]:
        """The config registered under ``name``, as checked: a dict of its set fields.

        Provider configs appear as :class:`llmkit.Config` objects, whose repr
        hides the key (``retries=0`` is the registry's own doing: it
        retries itself).

        Raises:
            ProviderNotFoundError: ``name`` is not registered (with the closest name).
        """
        compiled = self._compiled(name)
        spec = compiled.spec
        shown: dict[str, Any] = {}
        if compiled.deployments is not None:
            shown["deployments"] = [
                {
                    "id": item.id,
                    "provider": item.target.provider,
                    "model": item.target.model,
                    "config": item.target.config,
                    "weight": item.weight,
                    "rpm": item.rpm,
                    "tpm": item.tpm,
                }
                for item in compiled.deployments
            ]
            for field in ("strategy", "cooldown", "when_limited"):
                shown[field] = getattr(spec, field)
        elif compiled.target is not None:
            shown.update(
                provider=compiled.target.provider,
                model=compiled.target.model,
                config=compiled.target.config,
            )
        else:
            shown["router"] = compiled.router
            if compiled.router_configs is not None:
                shown["configs"] = dict(compiled.router_configs)
            else:
                shown["config"] = compiled.router_config
            if compiled.keys is not None:
                shown["keys"] = sorted(compiled.keys)
        shown["fallbacks"] = [
            item
            if isinstance(item, str)
            else {"provider": item.provider, "model": item.model, "config": item.config}
            for item in compiled.fallbacks
        ]
        for field in ("fallback_on", "retries", "retry_delay", "retry_max_delay"):
            shown[field] = getattr(spec, field)
        shown["cache"] = compiled.cache
        return shown

    def __contains__(self, name: object) -> bool:
        return name in self._configs

    def __repr__(self) -> str:
        names = ", ".join(self.list_configs())
        return f"<Registry [{names}]{' on a system' if self._system is not None else ''}>"

    def _compiled(self, name: Any) -> Compiled:
        compiled = self._configs.get(name) if type(name) is str else None
        if compiled is not None:
            return compiled
        if type(name) is not str:
            raise InvalidRequestError(
                f"a registry name must be a string, not {type(name).__name__}"
            )
        known = sorted(self._configs)
        message = f"no config named {name!r} is registered"
        close = difflib.get_close_matches(name, known, n=1)
        if close:
            message += f"; did you mean {close[0]!r}?"
        message += f" Registered: {', '.join(known) or 'none'}."
        message += f" Add it with register({name!r}, {{'provider': ..., 'model': ...}})."
        raise ProviderNotFoundError(message)

    # --- routing ---------------------------------------------------------------

    def _route(self, compiled: Compiled, request: Any) -> tuple[Target | Pool, Any]:
        """The target of ``compiled`` for ``request``, and the request to send there.

        Raises:
            InvalidRequestError: a custom key the router does not declare, or
                a router that returned something unusable.
            LLMError: the router raised.
        """
        if compiled.pool is not None:
            return compiled.pool, request
        if compiled.router is None:
            assert compiled.target is not None
            return compiled.target, request
        custom = None
        if isinstance(request, Mapping):
            try:
                custom = [key for key in request if key not in REQUEST_FIELDS]
            except Exception:
                custom = None  # to_request names what cannot be read
            declared = compiled.keys
            if custom and declared is not None:
                for key in custom:
                    if key not in declared:
                        raise InvalidRequestError(
                            f"unknown request key {key!a} - at `$.{key}`; the router of "
                            f"{compiled.name!r} takes {', '.join(sorted(declared)) or 'none'} "
                            "besides the chat-request fields",
                        )
        try:
            choice = compiled.router(request)
        except LLMError:
            raise
        except Exception as exc:
            raise LLMError(
                f"the router of {compiled.name!r} raised {type(exc).__name__}: {exc}; fix the "
                "router function"
            ) from exc
        target = self._chosen(compiled, choice)
        if custom:
            request = {key: value for key, value in request.items() if key in REQUEST_FIELDS}
        return target, request

    def _chosen(self, compiled: Compiled, choice: Any) -> Target:
        where = f"the router of {compiled.name!r}"
        if not isinstance(choice, Mapping):
            raise InvalidRequestError(
                f"{where} returned {type(choice).__name__}; it must return "
                '{"provider": ..., "model": ...}'
            )
        extra = set(choice) - {"provider", "model"}
        provider, model = choice.get("provider"), choice.get("model")
        if extra or type(provider) is not str or type(model) is not str or not model:
            raise InvalidRequestError(
                f"{where} returned {dict(choice)!r}; it must return "
                '{"provider": <name>, "model": <model>} and nothing else'
            )
        configs = compiled.router_configs
        if configs is not None:
            config = configs.get(provider)
            if config is None:
                close = difflib.get_close_matches(provider, list(configs), n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise InvalidRequestError(
                    f"{where} returned provider {provider!r}, which its configs do not hold "
                    f"(they hold {', '.join(sorted(configs))}).{hint} Add it to configs or fix "
                    "the router"
                )
        else:
            config = compiled.router_config or Config(retries=0)
        try:
            key = self._resolve(provider)
        except ProviderNotFoundError as exc:
            raise ProviderNotFoundError(
                f"{where} returned an unknown provider: {exc.message}"
            ) from None
        if config.options is not None and type(config.options) is not key.options_type:
            config = msgspec.structs.replace(config, options=_checked_options(key, config.options))
        return Target(key, model, config, provider)

    def _targets(self, compiled: Compiled, request: Any) -> Iterator[tuple[Target | Pool, Any]]:
        """The fallbacks of ``compiled`` in order, each routed when it is reached."""
        for fallback in compiled.fallbacks:
            if isinstance(fallback, Target):
                yield fallback, request
                continue
            other = self._configs.get(fallback)
            if other is None:
                raise self._missing_fallback(compiled, fallback)
            yield self._route(other, request)

    def _missing_fallback(self, compiled: Compiled, name: str) -> ProviderNotFoundError:
        known = sorted(self._configs)
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return ProviderNotFoundError(
            f"fallback {name!r} of {compiled.name!r} is not registered{hint} "
            f"Registered: {', '.join(known)}. Register it or remove it from fallbacks"
        )

    def _start(self, compiled: Compiled, request: Request, stream: bool) -> tuple[_Call, Any, Any]:
        current, routed = self._route(compiled, request)
        return _Call(compiled, lambda: self._targets(compiled, request), stream), current, routed

    # --- one attempt ------------------------------------------------------------

    def _send(self, target: Target, request: Any, stream: bool) -> Any:
        system = self._system
        if system is not None:
            return system.completion(
                target.provider, target.model, request, target.config, stream=stream
            )
        key, checked, config = generics.prepare(
            target.key, target.model, request, target.config, stream
        )
        return generics.completion(key, checked, config)

    async def _asend(self, target: Target, request: Any, stream: bool) -> Any:
        system = self._system
        if system is not None:
            return await system.acompletion(
                target.provider, target.model, request, target.config, stream=stream
            )
        key, checked, config = generics.prepare(
            target.key, target.model, request, target.config, stream
        )
        return await cast(Awaitable[Any], generics.acompletion(key, checked, config))

    def _pick(self, call: _Call, pool: Pool, request: Any) -> tuple[Deployed | None, float]:
        if pool.limited and not call.tokens:
            call.tokens = estimate_tokens(_encode, _messages(request))
        return pool.pick(self._state, call.tokens, self._clock(), self._system, call.avoid)

    def _waited_too_long(self, pool: Pool, wait: float) -> None:
        deadline = _http.scope_deadline()
        if deadline is not None and time.monotonic() + wait >= deadline:
            raise RateLimitError(
                f"every deployment of {pool.name!r} is at its limit and the next room, in "
                f"{wait:.1f} s, comes after the call's deadline",
                retry_after=wait,
                code=BUSY,
            )

    def _deployment(self, call: _Call, current: Any, request: Any) -> tuple[Target, Any]:
        """The target of this attempt: ``current``, or a deployment picked from its pool."""
        if not isinstance(current, Pool):
            return current, None
        while True:
            deployed, wait = self._pick(call, current, request)
            if deployed is not None:
                current.started(deployed)
                return deployed.target, deployed
            self._waited_too_long(current, wait)
            self._sleep(wait)

    async def _adeployment(self, call: _Call, current: Any, request: Any) -> tuple[Target, Any]:
        if not isinstance(current, Pool):
            return current, None
        while True:
            deployed, wait = self._pick(call, current, request)
            if deployed is not None:
                current.started(deployed)
                return deployed.target, deployed
            self._waited_too_long(current, wait)
            await self._asleep(wait)

    def _ended(
        self,
        call: _Call,
        current: Any,
        deployed: Deployed | None,
        began: float,
        error: LLMError | None,
        usage: Any = None,
    ) -> None:
        if deployed is None:
            return
        now = self._clock()
        current.ended(deployed, self._state, now, now - began, error)
        if error is not None:
            call.avoid.add(deployed.id)
        elif deployed.tpm is not None and usage is not None and usage.total_tokens:
            # The limit was taken with an estimate; settle it with what was used.
            self._state.add_tokens(deployed.id, usage.total_tokens - call.tokens, now)

    def _failure(
        self,
        call: _Call,
        current: Any,
        routed: Any,
        target: Target | None,
        deployed: Deployed | None,
        began: float,
        error: LLMError,
    ) -> tuple[Any, Any, float]:
        """After a failed attempt: the next target and request, and how long to wait first.

        Raises:
            LLMError: nothing is left to try.
        """
        self._ended(call, current, deployed, began, error)
        wait, following = call.failed(target, error)
        if following is not None:
            current, routed = following
        elif deployed is not None and len(call.avoid) < len(current.deployments):
            # Another deployment is left to try: it owes nothing to this one's backoff.
            wait = 0.0
        return current, routed, wait

    # --- the cache ------------------------------------------------------------------

    def _cached(self, compiled: Compiled, request: Any) -> tuple[str | None, RoutedResponse | None]:
        settings = compiled.cache
        if settings is None:
            return None, None
        key = cache_key(compiled.name, request, settings)
        if key is None:
            return None, None
        found = self._state.get(key, self._clock())
        return key, None if found is None else decode(found)

    def _store(self, compiled: Compiled, key: str | None, response: RoutedResponse) -> None:
        if key is not None and compiled.cache is not None:
            self._state.put(key, encode(response), compiled.cache.ttl, self._clock())

    # --- calls by name ----------------------------------------------------------

    def completion(self, name: str, request: Request) -> RoutedResponse:
        """Send ``request`` through the config ``name``; return the response with ``served_by``.

        Raises:
            ProviderNotFoundError: ``name`` is not registered (with the closest name).
            InvalidRequestError: a bad request, before any network call.
            AllAttemptsFailedError: the target and every fallback failed.
            LLMError: the one target tried failed (after its retries).
        """
        compiled = self._compiled(name)
        key, hit = self._cached(compiled, request)
        if hit is not None:
            return hit
        call, current, routed = self._start(compiled, request, False)
        while True:
            target = deployed = None
            began = 0.0
            try:
                target, deployed = self._deployment(call, current, routed)
                if deployed is not None:
                    began = self._clock()
                response: ChatResponse = self._send(target, routed, False)
            except LLMError as error:
                current, routed, wait = self._failure(
                    call, current, routed, target, deployed, began, error
                )
                if wait:
                    self._sleep(wait)
                continue
            self._ended(call, current, deployed, began, None, response.usage)
            result = RoutedResponse.of(response, call.served(target, deployed))
            self._store(compiled, key, result)
            return result

    async def acompletion(self, name: str, request: Request) -> RoutedResponse:
        """The async twin of :meth:`completion`.

        Raises:
            LLMError: as :meth:`completion` does.
        """
        compiled = self._compiled(name)
        key, hit = self._cached(compiled, request)
        if hit is not None:
            return hit
        call, current, routed = self._start(compiled, request, False)
        while True:
            target = deployed = None
            began = 0.0
            try:
                target, deployed = await self._adeployment(call, current, routed)
                if deployed is not None:
                    began = self._clock()
                response: ChatResponse = await self._asend(target, routed, False)
            except LLMError as error:
                current, routed, wait = self._failure(
                    call, current, routed, target, deployed, began, error
                )
                if wait:
                    await self._asleep(wait)
                continue
            self._ended(call, current, deployed, began, None, response.usage)
            result = RoutedResponse.of(response, call.served(target, deployed))
            self._store(compiled, key, result)
            return result

    def stream(self, name: str, request: Request) -> RoutedStream:
        """Start a streamed call through ``name``; iterate the returned stream for chunks.

        The first chunk is read before this returns: a stream that fails
        before it is retried, then moves on to the fallbacks, as a call
        does. Once a chunk is read, a failure raises while iterating.

        Raises:
            LLMError: as :meth:`completion` does.
        """
        compiled = self._compiled(name)
        key, hit = self._cached(compiled, request)
        if hit is not None:
            return RoutedStream(Replayed(hit), None, hit.served_by)
        call, current, routed = self._start(compiled, request, True)
        while True:
            target = deployed = inner = None
            began = 0.0
            try:
                target, deployed = self._deployment(call, current, routed)
                if deployed is not None:
                    began = self._clock()
                inner = self._send(target, routed, True)
                first: StreamChunk | None = next(inner, None)
            except LLMError as error:
                if inner is not None:
                    inner.close()
                current, routed, wait = self._failure(
                    call, current, routed, target, deployed, began, error
                )
                if wait:
                    self._sleep(wait)
                continue
            self._ended(call, current, deployed, began, None)
            return RoutedStream(
                inner, first, call.served(target, deployed), self._keeper(compiled, key)
            )

    async def astream(self, name: str, request: Request) -> AsyncRoutedStream:
        """The async twin of :meth:`stream`; use ``async for`` on the awaited result.

        Raises:
            LLMError: as :meth:`completion` does.
        """
        compiled = self._compiled(name)
        key, hit = self._cached(compiled, request)
        if hit is not None:
            return AsyncRoutedStream(Replayed(hit), None, hit.served_by)
        call, current, routed = self._start(compiled, request, True)
        while True:
            target = deployed = inner = None
            began = 0.0
            try:
                target, deployed = await self._adeployment(call, current, routed)
                if deployed is not None:
                    began = self._clock()
                inner = await self._asend(target, routed, True)
                first: StreamChunk | None = await _first_chunk(inner)
            except LLMError as error:
                if inner is not None:
                    await inner.aclose()
                current, routed, wait = self._failure(
                    call, current, routed, target, deployed, began, error
                )
                if wait:
                    await self._asleep(wait)
                continue
            self._ended(call, current, deployed, began, None)
            served = call.served(target, deployed)
            return AsyncRoutedStream(inner, first, served, self._keeper(compiled, key))

    def _keeper(
        self, compiled: Compiled, key: str | None
    ) -> Callable[[RoutedResponse], None] | None:
        # A stream read to its end is cached as its assembled response.
        if key is None:
            return None
        return lambda response: self._store(compiled, key, response)

    def chat(
        self,
        name: str,
        text: str,
        *,
        system_prompt: str | None = None,
        **request_options: Any,
    ) -> str:
        """Ask one question through ``name`` and return the answer's text.

        ``request_options`` are chat-request fields (``temperature=0.2``,
        ``max_tokens=100``) and, for a router config, its custom keys
        (``priority="high"``); they go with the request.

        Raises:
            LLMError: as :meth:`completion` does.
        """
        return self.completion(name, _chat_request(text, system_prompt, request_options)).text

    def setup(
        self, provider: str, *, name: str | None = None, model: str | None = None, **config: Any
    ) -> str:
        """Register ``provider`` with its default model (or ``model``); return the name.

        Raises:
            InvalidRequestError: a bad config, or no model for a provider without a default.
            ProviderNotFoundError: the provider is not installed.
        """
        return _setup.setup(self, provider, name=name, model=model, **config)

    def quick_setup(self) -> list[str]:
        """Register every provider this environment has a key for; return the names.

        See :func:`llmkit.registry.quick_setup`.
        """
        return _setup.quick_setup(self)

    async def achat(
        self,
        name: str,
        text: str,
        *,
        system_prompt: str | None = None,
        **request_options: Any,
    ) -> str:
        """The async twin of :meth:`chat`.

        Raises:
            LLMError: as :meth:`completion` does.
        """
        request = _chat_request(text, system_prompt, request_options)
        return (await self.acompletion(name, request)).text


_encode = msgspec.json.encode


def _messages(request: Any) -> Any:
    if isinstance(request, Mapping):
        return request.get("messages")
    return getattr(request, "messages", None)


async def _first_chunk(stream: Any) -> StreamChunk | None:
    try:
        return cast(StreamChunk, await stream.__anext__())
    except StopAsyncIteration:
        return None


def _chat_request(text: Any, system_prompt: Any, options: dict[str, Any]) -> dict[str, Any]:
    if type(text) is not str:
        raise InvalidRequestError(f"text must be a string, not {type(text).__name__}")
    if system_prompt is not None and type(system_prompt) is not str:
        raise InvalidRequestError(
            f"system_prompt must be a string, not {type(system_prompt).__name__}"
        )
    if "messages" in options:
        raise InvalidRequestError(
            "chat() builds the messages from text and system_prompt; call completion() to "
            "send messages of your own"
        )
    messages = [Message(role="user", content=text)]
    if system_prompt is not None:
        messages.insert(0, Message(role="system", content=system_prompt))
    return {**options, "messages": messages}
