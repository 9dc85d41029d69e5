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
from llmkit.core import chat_messages
from llmkit.errors import (
    InvalidRequestError,
    LLMError,
    ProviderNotFoundError,
    RateLimitError,
)
from llmkit.keys import ProviderKey, resolve
from llmkit.registry import _setup
from llmkit.registry._balance import BUSY, Pool, estimate_tokens
from llmkit.registry._cache import Replayed, cache_key, decode, encode
from llmkit.registry._call import Call, Following, Try
from llmkit.registry._routed import AsyncRoutedStream, RoutedStream
from llmkit.registry._spec import (
    REQUEST_FIELDS,
    Compiled,
    Deployed,
    Target,
    compile_spec,
    key_path,
)
from llmkit.registry._state import MemoryState, State
from llmkit.types import ChatRequest, ChatResponse, RoutedResponse, StreamChunk

__all__ = ["Registry"]

Request = ChatRequest | Mapping[str, Any]


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

    def _route(
        self, compiled: Compiled, request: Any, strict: bool = True
    ) -> tuple[Target | Pool, Any]:
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
            if custom and declared is not None and strict:
                for key in custom:
                    if key not in declared:
                        raise InvalidRequestError(
                            f"unknown request key {key!a} - at `{key_path('$', key)}`; "
                            f"the router of {compiled.name!r} takes "
                            f"{', '.join(sorted(declared)) or 'none'} besides the chat-request "
                            "fields",
                        )
        try:
            choice = compiled.router(request)
        except LLMError:
            raise
        except Exception as exc:
            # Only the type: the exception's text may hold anything the router saw.
            raise LLMError(
                f"the router of {compiled.name!r} raised {type(exc).__name__} (its traceback is "
                "this error's __cause__); fix the router function"
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
            # Keys and types only: a router may have put a secret among the values.
            shown = ", ".join(f"{key!a}: {type(choice[key]).__name__}" for key in choice)
            raise InvalidRequestError(
                f"{where} returned {{{shown}}}; it must return "
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
            key = compiled.router_keys.get(provider) or self._resolve(provider)
        except ProviderNotFoundError as exc:
            raise ProviderNotFoundError(
                f"{where} returned an unknown provider: {exc.message}"
            ) from None
        if config.options is not None and type(config.options) is not key.options_type:
            config = msgspec.structs.replace(config, options=_checked_options(key, config.options))
        return Target(key, model, config, provider)

    def _following(self, compiled: Compiled, request: Any) -> Iterator[Following]:
        """The fallbacks of ``compiled`` in order, each routed when it is reached.

        A router's custom keys are for routers only: a fallback without one
        gets the request without them, and a fallback's router is not held
        to the keys it declares (the call was checked against the first).
        """
        plain = _without_custom_keys(request)
        for fallback in compiled.fallbacks:
            if isinstance(fallback, Target):
                yield fallback, plain, compiled.name
                continue
            other = self._configs.get(fallback)
            if other is None:
                raise self._missing_fallback(compiled, fallback)
            if other.router is not None:
                yield (*self._route(other, request, strict=False), other.name)
            else:
                yield (*self._route(other, plain), other.name)

    def _missing_fallback(self, compiled: Compiled, name: str) -> ProviderNotFoundError:
        known = sorted(self._configs)
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return ProviderNotFoundError(
            f"fallback {name!r} of {compiled.name!r} is not registered{hint} "
            f"Registered: {', '.join(known)}. Register it or remove it from fallbacks"
        )

    def _start(self, compiled: Compiled, request: Request, stream: bool) -> Call:
        current, routed = self._route(compiled, request)
        return Call(compiled, current, routed, lambda: self._following(compiled, request), stream)

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

    def _pick(self, call: Call, pool: Pool) -> tuple[Deployed | None, float]:
        if pool.limited and not call.tokens:
            call.tokens = estimate_tokens(_encode, _messages(call.routed))
        return pool.pick(self._state, call.tokens, self._clock(), self._system, call.avoid)

    def _check_wait(self, pool: Pool, wait: float) -> None:
        deadline = _http.scope_deadline()
        if deadline is not None and time.monotonic() + wait >= deadline:
            raise RateLimitError(
                f"every deployment of {pool.name!r} is at its limit and the next room, in "
                f"{wait:.1f} s, comes after the call's deadline",
                retry_after=wait,
                code=BUSY,
            )

    def _picked(self, pool: Pool, deployed: Deployed) -> Try:
        pool.started(deployed)
        return Try(deployed.target, deployed, self._clock())

    def _begin(self, call: Call) -> Try:
        """The attempt's target: ``call.current``, or a deployment picked from its pool."""
        current = call.current
        if not isinstance(current, Pool):
            return Try(current, None, 0.0)
        while True:
            deployed, wait = self._pick(call, current)
            if deployed is not None:
                return self._picked(current, deployed)
            self._check_wait(current, wait)
            self._sleep(wait)

    async def _abegin(self, call: Call) -> Try:
        current = call.current
        if not isinstance(current, Pool):
            return Try(current, None, 0.0)
        while True:
            deployed, wait = self._pick(call, current)
            if deployed is not None:
                return self._picked(current, deployed)
            self._check_wait(current, wait)
            await self._asleep(wait)

    def _ended(self, call: Call, attempt: Try, error: LLMError | None) -> None:
        deployed = attempt.deployed
        if deployed is not None:
            now = self._clock()
            counts = error is not None and call.retryable(error)
            call.current.ended(deployed, self._state, now, now - attempt.began, error, counts)

    def _settle(self, call: Call, attempt: Try, usage: Any) -> None:
        # The TPM limit was taken with an estimate; settle it with what was used.
        deployed = attempt.deployed
        used = 0 if usage is None else usage.total_tokens
        if deployed is not None and deployed.tpm is not None and used:
            self._state.add_tokens(deployed.id, used - call.tokens, self._clock())

    def _abandon(self, call: Call, attempt: Try | None) -> None:
        # Cancelled or interrupted (not an llmkit error): the slot is given
        # back; it is no failure of the deployment's.
        if attempt is not None and attempt.deployed is not None:
            call.current.release(attempt.deployed)

    def _failure(self, call: Call, attempt: Try | None, error: LLMError) -> float:
        """After a failed attempt: how long to wait before the next (``call`` says where).

        Raises:
            LLMError: nothing is left to try.
        """
        if attempt is None:
            return call.failed(None, error)
        self._ended(call, attempt, error)
        deployed = attempt.deployed
        if deployed is not None and call.switch(attempt.target, deployed, error):
            return 0.0  # another deployment is free: it owes nothing to this one's backoff
        return call.failed(attempt.target, error)

    def _success(
        self, call: Call, attempt: Try, response: ChatResponse, key: str | None
    ) -> RoutedResponse:
        self._ended(call, attempt, None)
        self._settle(call, attempt, response.usage)
        result = RoutedResponse.of(response, call.served(attempt))
        self._store(call.compiled, key, result)
        return result

    def _finisher(
        self, call: Call, attempt: Try, key: str | None
    ) -> Callable[[RoutedResponse], None]:
        # Run once a stream has been read to its end: cache it, settle its tokens.
        def finish(response: RoutedResponse) -> None:
            self._settle(call, attempt, response.usage)
            self._store(call.compiled, key, response)

        return finish

    # --- the cache ------------------------------------------------------------------

    def _cached(self, compiled: Compiled, request: Any) -> tuple[str | None, RoutedResponse | None]:
        settings = compiled.cache
        if settings is None:
            return None, None
        key = cache_key(compiled, request, settings)
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
            AllAttemptsFailedError: more than one place was tried, and all failed.
            LLMError: the one place tried failed (after its retries).
        """
        compiled = self._compiled(name)
        key, hit = self._cached(compiled, request)
        if hit is not None:
            return hit
        call = self._start(compiled, request, False)
        while True:
            attempt = None
            try:
                attempt = self._begin(call)
                response: ChatResponse = self._send(attempt.target, call.routed, False)
            except LLMError as error:
                wait = self._failure(call, attempt, error)
                if wait:
                    self._sleep(wait)
                continue
            except BaseException:
                self._abandon(call, attempt)
                raise
            return self._success(call, attempt, response, key)

    async def acompletion(self, name: str, request: Request) -> RoutedResponse:
        """The async twin of :meth:`completion`.

        Raises:
            LLMError: as :meth:`completion` does.
        """
        compiled = self._compiled(name)
        key, hit = self._cached(compiled, request)
        if hit is not None:
            return hit
        call = self._start(compiled, request, False)
        while True:
            attempt = None
            try:
                attempt = await self._abegin(call)
                response: ChatResponse = await self._asend(attempt.target, call.routed, False)
            except LLMError as error:
                wait = self._failure(call, attempt, error)
                if wait:
                    await self._asleep(wait)
                continue
            except BaseException:
                self._abandon(call, attempt)
                raise
            return self._success(call, attempt, response, key)

    def stream(self, name: str, request: Request) -> RoutedStream:
        """Start a streamed call through ``name``; iterate the returned stream for chunks.

        The stream is read up to its first chunk with content (text, tool
        calls, reasoning, a finish or usage) before this returns: a stream
        that fails before it is retried, then moves on to the fallbacks, as
        a call does. After that, a failure raises while iterating.

        Raises:
            LLMError: as :meth:`completion` does.
        """
        compiled = self._compiled(name)
        key, hit = self._cached(compiled, request)
        if hit is not None:
            return RoutedStream(Replayed(hit), [], hit.served_by)
        call = self._start(compiled, request, True)
        while True:
            attempt = inner = None
            try:
                attempt = self._begin(call)
                inner = self._send(attempt.target, call.routed, True)
                opening = _opening(inner)
            except LLMError as error:
                if inner is not None:
                    inner.close()
                wait = self._failure(call, attempt, error)
                if wait:
                    self._sleep(wait)
                continue
            except BaseException:
                if inner is not None:
                    inner.close()
                self._abandon(call, attempt)
                raise
            self._ended(call, attempt, None)
            finish = self._finisher(call, attempt, key)
            return RoutedStream(inner, opening, call.served(attempt), finish)

    async def astream(self, name: str, request: Request) -> AsyncRoutedStream:
        """The async twin of :meth:`stream`; use ``async for`` on the awaited result.

        Raises:
            LLMError: as :meth:`completion` does.
        """
        compiled = self._compiled(name)
        key, hit = self._cached(compiled, request)
        if hit is not None:
            return AsyncRoutedStream(Replayed(hit), [], hit.served_by)
        call = self._start(compiled, request, True)
        while True:
            attempt = inner = None
            try:
                attempt = await self._abegin(call)
                inner = await self._asend(attempt.target, call.routed, True)
                opening = await _aopening(inner)
            except LLMError as error:
                if inner is not None:
                    await inner.aclose()
                wait = self._failure(call, attempt, error)
                if wait:
                    await self._asleep(wait)
                continue
            except BaseException:
                if inner is not None:
                    await inner.aclose()
                self._abandon(call, attempt)
                raise
            self._ended(call, attempt, None)
            finish = self._finisher(call, attempt, key)
            return AsyncRoutedStream(inner, opening, call.served(attempt), finish)

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


def _without_custom_keys(request: Any) -> Any:
    if not isinstance(request, Mapping):
        return request
    try:
        if all(key in REQUEST_FIELDS for key in request):
            return request
        return {key: value for key, value in request.items() if key in REQUEST_FIELDS}
    except Exception:
        return request  # to_request names what cannot be read


def _says_something(chunk: StreamChunk) -> bool:
    # A chunk that only opens the message (OpenAI's role delta, Anthropic's
    # message_start) tells the caller nothing: a stream that breaks after it
    # can still move on without anyone having seen an answer begin.
    if chunk.usage is not None:
        return True
    for choice in chunk.choices:
        delta = choice.delta
        if choice.finish_reason or delta.content or delta.tool_calls or delta.reasoning:
            return True
        if delta.refusal:
            return True
    return False


def _opening(stream: Any) -> list[StreamChunk]:
    """The chunks up to and including the first that says something (all, if none does)."""
    opening = []
    for chunk in stream:
        opening.append(chunk)
        if _says_something(chunk):
            break
    return opening


async def _aopening(stream: Any) -> list[StreamChunk]:
    opening = []
    async for chunk in stream:
        opening.append(chunk)
        if _says_something(chunk):
            break
    return opening


def _chat_request(text: Any, system_prompt: Any, options: dict[str, Any]) -> dict[str, Any]:
    if "messages" in options:
        raise InvalidRequestError(
            "chat() builds the messages from text and system_prompt; call completion() to "
            "send messages of your own"
        )
    if "model" in options:
        raise InvalidRequestError(
            "the named config decides the model; register another name to use another model"
        )
    return {**options, "messages": chat_messages(text, system_prompt)}
