"""The :class:`System`: providers, pools, streams, futures, health checks, metrics."""

from __future__ import annotations

import atexit
import contextlib
import threading
import time
import weakref
from collections.abc import Mapping
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Literal, overload

import msgspec

from llmkit import generics
from llmkit.config import SECRET_HEADERS, Config
from llmkit.errors import InvalidRequestError, LLMError, ProviderNotFoundError, TimeoutError
from llmkit.keys import ProviderKey
from llmkit.system import _calls
from llmkit.system._abort import SystemTransport
from llmkit.system._config import (
    Defaults,
    ProviderConfig,
    SystemConfig,
    provider_config,
    to_config_of,
    to_system_config,
)
from llmkit.system._entry import Entry
from llmkit.system._health import ProviderHealth
from llmkit.system._metrics import Metrics, Stats
from llmkit.system._pool import Pool, Task
from llmkit.system._stream import SystemStream
from llmkit.types import ChatRequest, ChatResponse

__all__ = ["System"]

Request = ChatRequest | Mapping[str, Any]
ConfigLike = Config | Mapping[str, Any] | None

# After the drain timeout, cancelled calls get this long to notice before
# shutdown reports them (an aborted read returns at once; a connect may not).
_CANCEL_GRACE = 5.0


def _shut_down_error() -> LLMError:
    return LLMError(
        "this system is shut down; create a new one with llmkit.system.create_system(config)",
        retryable=False,
    )


def _cancelled_message(what: str) -> str:
    return f"the system was shut down while this {what} was running; it was cancelled"


def _wants_stream(request: Any) -> bool:
    if isinstance(request, ChatRequest):
        return request.stream
    if isinstance(request, Mapping):
        try:
            return request.get("stream") is True
        except Exception:
            return False  # to_request names what cannot be read
    return False


_live: weakref.WeakSet[System] = weakref.WeakSet()


@atexit.register
def _shut_down_live_systems() -> None:
    # Connections are closed on exit rather than left to the OS; calls still
    # running are cancelled.
    for system in list(_live):
        with contextlib.suppress(Exception):
            system.shutdown(timeout=1.0, cancel=True)


def _abandon(pools: tuple[Pool, ...], transports: list[SystemTransport]) -> None:
    # A system dropped without shutdown: its idle threads end, its clients close.
    for pool in pools:
        pool.close()
    for transport in transports:
        transport.close()


class System:
    """A long-lived llmkit: providers by name, bounded pools, streams, health, metrics.

    Make one with :func:`llmkit.system.create_system`; every module function
    of :mod:`llmkit.system` is also a method here (``system.completion(...)``
    is ``llmkit.system.completion(system, ...)``). A system is thread-safe
    and a context manager that shuts it down.
    """

    def __init__(self, config: SystemConfig | Mapping[str, Any] | None = None) -> None:
        """Build a system from a checked config; prefer :func:`~llmkit.system.create_system`.

        Raises:
            InvalidRequestError: a bad config, naming the path of the bad value.
            ProviderNotFoundError: a provider that is not installed.
        """
        checked = to_system_config(config)
        self.config = checked
        self._lock = threading.Lock()
        self._state = "running"
        self._metrics = Metrics()
        pools = checked.thread_pools
        self._api = Pool(
            "api_calls",
            pools.api_calls.pool_size,
            pools.api_calls.queue_size,
            pools.api_calls.when_full == "block",
            _shut_down_error,
        )
        self._health = Pool(
            "health_checks",
            pools.health_checks.pool_size,
            pools.health_checks.queue_size,
            pools.health_checks.when_full == "block",
            _shut_down_error,
        )
        self._defaults = checked.defaults
        self._buffer = checked.defaults.stream_buffer
        self._transports: list[SystemTransport] = []
        self._retired: list[Entry] = []
        self._providers: dict[str, Entry] = {
            name: self._entry(name, settings) for name, settings in checked.providers.items()
        }
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        interval = checked.health_checks.interval
        if interval is not None:
            self._ticker = threading.Thread(
                target=_tick,
                args=(weakref.ref(self), self._stop, interval),
                name="llmkit-system-health-timer",
                daemon=True,
            )
            self._ticker.start()
        weakref.finalize(self, _abandon, (self._api, self._health), self._transports).atexit = False
        _live.add(self)

    def _entry(self, name: str, settings: ProviderConfig) -> Entry:
        transport = SystemTransport(on_attempt=self._metrics.listener(name))
        self._transports.append(transport)
        return Entry(name, settings, to_config_of(settings, self._defaults, transport), transport)

    # --- calls --------------------------------------------------------------------------

    def _lookup(self, provider: Any) -> Entry:
        name = provider
        if type(name) is not str:
            if provider is None:
                name = self._defaults.provider
                if name is None:
                    raise InvalidRequestError(
                        "no provider: pass provider= (a name in this system's providers) or "
                        "set defaults.provider in the system config"
                    )
            elif isinstance(provider, ProviderKey):
                name = provider.name
            else:
                raise InvalidRequestError(
                    f"provider must be a provider's name in this system, not "
                    f"{type(provider).__name__}; pass e.g. 'openai'"
                )
        entry = self._providers.get(name)
        if entry is None:
            known = ", ".join(sorted(self._providers)) or "none"
            raise ProviderNotFoundError(
                f"Unknown provider {name!r} in this system. Its providers: {known}. "
                "Add it with add_provider(system, name, config).",
                provider=name,
            )
        return entry

    def _shape(
        self, args: tuple[Any, ...], fields: dict[str, Any]
    ) -> tuple[Any, Any, Any, ConfigLike]:
        """Sort a call's arguments into provider, model, request and config.

        Raises:
            InvalidRequestError: arguments that fit none of the three shapes.
        """
        config = fields.pop("config", None)
        count = len(args)
        if count in (3, 4) and not fields:
            if count == 4:
                if config is not None:
                    raise InvalidRequestError("config given twice: positionally and as config=")
                config = args[3]
            return args[0], args[1], args[2], config
        if count == 1 and not fields:
            request = args[0]
            if isinstance(request, ChatRequest):
                return None, request.model or self._defaults.model, request, config
            if not isinstance(request, Mapping):
                raise InvalidRequestError(
                    f"request must be a dict or a ChatRequest, not {type(request).__name__}; "
                    'pass e.g. {"provider": "openai", "model": "gpt-4o-mini", "messages": [...]}'
                )
            data = dict(request)
            provider = data.pop("provider", None)
            return provider, data.get("model") or self._defaults.model, data, config
        if count == 0:
            provider = fields.pop("provider", None)
            model = fields.pop("model", None) or self._defaults.model
            return provider, model, fields, config
        raise InvalidRequestError(
            "call completion as (provider, model, request[, config]), as (request) with "
            "'provider' and 'model' in the request dict, or with keyword arguments "
            f"(provider=, model=, messages=, ...); got {count} positional arguments"
            + (f" and keywords {', '.join(sorted(fields))}" if fields else "")
        )

    def _prepare(
        self, provider: Any, model: Any, request: Any, config: ConfigLike, stream: bool | None
    ) -> tuple[Entry, ChatRequest, Config]:
        if self._state != "running":
            raise _shut_down_error()
        entry = self._lookup(provider)
        if model is None:
            raise InvalidRequestError(
                "no model: pass model= (or 'model' in the request) or set defaults.model in "
                "the system config",
                provider=entry.name,
            )
        if stream is None:
            stream = _wants_stream(request)
        settings = entry.config if config is None else entry.overridden(config)
        _, checked, settings = generics.prepare(entry.key, model, request, settings, stream)
        return entry, checked, settings

    @overload
    def completion(
        self,
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
        self,
        provider: str | ProviderKey,
        model: str,
        request: Request,
        /,
        config: ConfigLike = None,
        *,
        stream: Literal[False] = False,
    ) -> ChatResponse: ...
    @overload
    def completion(self, request: Request, /, *, stream: Literal[True]) -> SystemStream: ...
    @overload
    def completion(self, request: Request, /, *, stream: Literal[False]) -> ChatResponse: ...
    @overload
    def completion(
        self, request: Request, /, *, stream: bool | None = None
    ) -> ChatResponse | SystemStream: ...
    @overload
    def completion(self, /, *, stream: Literal[True], **fields: Any) -> SystemStream: ...
    @overload
    def completion(self, /, *, stream: Literal[False] = False, **fields: Any) -> ChatResponse: ...
    def completion(
        self, /, *args: Any, stream: bool | None = None, **fields: Any
    ) -> ChatResponse | SystemStream:
        """Run a chat completion on this system; with ``stream=True``, return a stream handle.

        Three shapes: ``completion("openai", "gpt-4o-mini", request[, config])``;
        ``completion({"provider": "openai", "model": ..., "messages": [...]})``
        (also :meth:`make_request`); and keywords, ``completion(provider=...,
        model=..., messages=[...], temperature=...)``. ``config=`` (or the
        fourth argument) overrides the provider's settings for this call.
        Provider and model default to the config's ``defaults``.

        ``stream=True`` returns a :class:`SystemStream`. In the positional
        and keyword shapes only this argument decides, as in
        ``llmkit.core`` (a ``"stream"`` inside the request dict is
        overridden); the one-dict shape follows the dict's ``"stream"``
        unless ``stream=`` is given, and is typed to return either.

        The call runs on the caller's thread once it holds a slot of the
        ``api_calls`` pool (waiting in its queue if none is free); a stream is
        read by a pool thread into a bounded buffer that the returned
        :class:`SystemStream` drains.

        Raises:
            InvalidRequestError: bad arguments, request or config, before any network call.
            ProviderNotFoundError: a provider name this system does not have.
            ServiceUnavailableError: the pool's queue is full (when it raises).
            LLMError: the system is shut down, or any failure of the call.
        """
        provider, model, request, config = self._shape(args, fields)
        if stream is None and len(args) != 1:
            stream = False  # only the one-dict shape lets the request decide
        entry, checked, settings = self._prepare(provider, model, request, config, stream)
        stats = self._metrics.stats(entry.name, checked.model)
        if not checked.stream:
            return _calls.run_here(self._api, entry, stats, checked, settings)
        handle, task = _calls.stream_task(entry, checked, settings, stats, self._buffer)
        self._queue(entry, stats, checked, task)
        return handle

    def make_request(self, request: Request) -> ChatResponse | SystemStream:
        """:meth:`completion` with one request dict naming ``provider`` and ``model``.

        Raises:
            LLMError: as :meth:`completion` does.
        """
        return self.completion(request)

    def submit(self, *args: Any, **fields: Any) -> Future[ChatResponse]:
        """Queue a whole call on the ``api_calls`` pool; return its ``concurrent.futures.Future``.

        Takes the arguments of :meth:`completion`, without ``stream=True``
        (a stream handle is already asynchronous: use :meth:`completion`).
        Cancelling the future before it runs drops the call.

        Raises:
            InvalidRequestError: bad input (or ``stream=True``), before any network call.
            ProviderNotFoundError: a provider name this system does not have.
            ServiceUnavailableError: the pool's queue is full (when it raises).
            LLMError: the system is shut down.
        """
        stream = fields.pop("stream", None)
        provider, model, request, config = self._shape(args, fields)
        if stream is None and len(args) == 1:
            stream = _wants_stream(request)
        if stream:
            raise InvalidRequestError(
                "submit() runs whole calls; for a stream call completion(..., stream=True), "
                "which returns a handle a pool thread feeds"
            )
        entry, checked, settings = self._prepare(provider, model, request, config, False)
        stats = self._metrics.stats(entry.name, checked.model)
        future: Future[ChatResponse] = Future()
        self._queue(
            entry,
            stats,
            checked,
            _calls.call_task(entry, checked, settings, stats, future, self._closing),
        )
        return future

    def _queue(self, entry: Entry, stats: Stats, request: ChatRequest, task: Task) -> None:
        _calls.accept(entry, stats)
        try:
            self._api.submit(task)
        except LLMError as exc:
            _calls.refuse(entry, stats, request, exc)
            raise
        stats.counted()

    def _closing(self) -> bool:
        return self._state != "running"

    @overload
    async def acompletion(
        self,
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
        self,
        provider: str | ProviderKey,
        model: str,
        request: Request,
        /,
        config: ConfigLike = None,
        *,
        stream: Literal[False] = False,
    ) -> ChatResponse: ...
    @overload
    async def acompletion(self, request: Request, /, *, stream: Literal[True]) -> SystemStream: ...
    @overload
    async def acompletion(self, request: Request, /, *, stream: Literal[False]) -> ChatResponse: ...
    @overload
    async def acompletion(
        self, request: Request, /, *, stream: bool | None = None
    ) -> ChatResponse | SystemStream: ...
    @overload
    async def acompletion(self, /, *, stream: Literal[True], **fields: Any) -> SystemStream: ...
    @overload
    async def acompletion(
        self, /, *, stream: Literal[False] = False, **fields: Any
    ) -> ChatResponse: ...
    async def acompletion(
        self, /, *args: Any, stream: bool | None = None, **fields: Any
    ) -> ChatResponse | SystemStream:
        """The asyncio form of :meth:`completion`; the event loop never blocks.

        The call runs on a thread of the ``api_calls`` pool over the
        system's sync clients (httpx's async pool slows down as
        concurrency grows; the thread pool does not). A full queue that
        blocks makes this coroutine wait, not the loop. Cancelling the
        awaiting task drops a queued call and aborts a running one. With
        ``stream=True`` it returns the :class:`SystemStream` (use ``async
        for``) once the stream is queued.

        Raises:
            LLMError: as :meth:`completion` does.
        """
        import asyncio

        provider, model, request, config = self._shape(args, fields)
        if stream is None and len(args) != 1:
            stream = False
        entry, checked, settings = self._prepare(provider, model, request, config, stream)
        stats = self._metrics.stats(entry.name, checked.model)
        future: Future[ChatResponse] = Future()
        if checked.stream:
            handle, task = _calls.stream_task(entry, checked, settings, stats, self._buffer)
        else:
            task = _calls.call_task(entry, checked, settings, stats, future, self._closing)
        _calls.accept(entry, stats)
        try:
            await self._api.asubmit(task)
        except LLMError as exc:
            _calls.refuse(entry, stats, checked, exc)
            raise
        except BaseException:
            # Cancelled while waiting for room: the task was never queued.
            _calls.refuse(entry, stats, checked, None)
            raise
        stats.counted()
        if checked.stream:
            return handle
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            if not future.cancel():
                task.cell.abort(LLMError, "the asyncio task awaiting this call was cancelled")
            raise

    # --- health -------------------------------------------------------------------------

    def health_check(self, providers: list[str] | None = None) -> dict[str, ProviderHealth]:
        """Probe providers now, on the ``health_checks`` pool; return each one's health.

        ``providers`` limits the check to these names (all by default). A
        probe is the provider's ``probe`` method (``GET {api_base}/models`` by
        default) or, with ``probe_model`` in its config, a one-token
        completion; it is never retried and is not counted in the metrics.

        Raises:
            ProviderNotFoundError: a name this system does not have.
            ServiceUnavailableError: the health pool's queue is full (when it raises).
            LLMError: the system is shut down.
        """
        if self._state != "running":
            raise _shut_down_error()
        if providers is None:
            entries = list(self._providers.values())
        else:
            if isinstance(providers, str) or not isinstance(providers, list | tuple):
                raise InvalidRequestError(
                    "providers must be a list of provider names, e.g. ['openai']"
                )
            entries = [self._lookup(name) for name in providers]
        timeout = self.config.health_checks.timeout
        futures: dict[str, Future[ProviderHealth]] = {}
        for entry in entries:
            future: Future[ProviderHealth] = Future()
            entry.enter()
            try:
                self._health.submit(_calls.probe_task(entry, timeout, future))
            except LLMError:
                entry.exit()
                raise
            futures[entry.name] = future
        return {name: future.result() for name, future in futures.items()}

    def health(self) -> dict[str, ProviderHealth]:
        """The latest known health of every provider, without probing."""
        return {name: entry.health.latest for name, entry in sorted(self._providers.items())}

    # --- metrics and information --------------------------------------------------------

    def metrics(self) -> dict[str, Any]:
        """Every counter as a plain dict: ``{"providers": {name: {model: {...}}}, "pools": {...}}``.

        Per provider and model: ``requests``, ``successes``, ``errors`` (by
        type), ``cancelled``, ``attempts``, ``retries``, ``attempt_errors``,
        ``in_flight``, ``queue_depth``, ``latency``, ``time_to_first_token``
        and ``time_to_first_byte`` (``count``, ``p50``, ``p90``, ``p99`` in
        seconds), ``tokens_in`` and ``tokens_out``.
        """
        return {
            "providers": self._metrics.snapshot(),
            "pools": {"api_calls": self._api.summary(), "health_checks": self._health.summary()},
        }

    def list_providers(self) -> list[str]:
        """The names of this system's providers, sorted."""
        return sorted(self._providers)

    def get_provider(self, name: str) -> dict[str, Any]:
        """What this system knows of one provider: its key, settings (no secrets), health.

        Raises:
            ProviderNotFoundError: a name this system does not have.
        """
        return self._lookup(name).describe()

    def system_info(self) -> dict[str, Any]:
        """The system's state, providers, pools and settings, as a plain dict."""
        return {
            "state": {"running": "running", "closing": "shutting down"}.get(
                self._state, "shut down"
            ),
            "providers": {
                name: entry.describe() for name, entry in sorted(self._providers.items())
            },
            "thread_pools": {
                "api_calls": self._api.summary(),
                "health_checks": self._health.summary(),
            },
            "defaults": _shown_defaults(self._defaults),
            "health_checks": msgspec.structs.asdict(self.config.health_checks),
        }

    # --- providers at run time ----------------------------------------------------------

    def add_provider(self, name: str, config: Any = None) -> None:
        """Add a provider under ``name``; calls may use it as soon as this returns.

        ``config`` is what ``providers[name]`` holds in the system config (a
        dict, a ``ProviderConfig`` or an ``llmkit.Config``).

        Raises:
            InvalidRequestError: a bad config (naming the path), or a name already in use.
            ProviderNotFoundError: the provider is not installed.
            LLMError: the system is shut down.
        """
        settings = provider_config(name, config)
        with self._lock:
            if self._state != "running":
                raise _shut_down_error()
            if name in self._providers:
                raise InvalidRequestError(
                    f"provider {name!r} is already in this system; remove_provider() it first, "
                    "or add it under another name",
                    provider=name,
                )
            entry = self._entry(name, settings)
            # Copied, not changed: calls read the table without a lock.
            self._providers = {**self._providers, name: entry}

    def remove_provider(self, name: str, timeout: float | None = None) -> None:
        """Remove a provider: new calls fail, calls in flight finish, then its clients close.

        Waits for the calls in flight (streams included) up to ``timeout``
        seconds (``None``: as long as they take).

        Raises:
            ProviderNotFoundError: a name this system does not have.
            TimeoutError: calls were still in flight after ``timeout``; the
                provider is removed, and its clients close when the last ends.
            LLMError: the system is shut down.
        """
        if type(name) is not str:
            raise InvalidRequestError(
                f"name must be a provider's name (str), not {type(name).__name__}"
            )
        with self._lock:
            if self._state != "running":
                raise _shut_down_error()
            entry = self._lookup(name)
            self._providers = {k: v for k, v in self._providers.items() if k != name}
            # Removed providers whose clients are closed are forgotten; the
            # others stay known until then, so that shutdown closes them.
            gone = [old for old in self._retired if old.closed]
            for old in gone:
                self._retired.remove(old)
                self._transports.remove(old.transport)
            self._retired.append(entry)
        deadline = None if timeout is None else time.monotonic() + timeout
        if not entry.retire(deadline):
            raise TimeoutError(
                f"remove_provider({name!r}): {entry.in_flight} calls still in flight after "
                f"{timeout} s; it is removed, and its clients close when the last one ends",
                provider=name,
                retryable=False,
            )

    # --- shutdown -----------------------------------------------------------------------

    def shutdown(self, timeout: float | None = 30.0, *, cancel: bool = False) -> None:
        """Stop the system: no new calls, in-flight work drained (or cancelled), all closed.

        Without ``cancel``, queued and running calls (open streams too) get
        up to ``timeout`` seconds to finish; what is left is then cancelled.
        With ``cancel=True`` queued calls fail and running ones are aborted
        at once (their callers get an ``LLMError``). Then the HTTP clients
        the system owns are closed (never a client passed in as
        ``http_client``) and every thread it started is joined. Calling it
        again does nothing.

        Raises:
            InvalidRequestError: called from one of the system's own pool threads.
            TimeoutError: some calls could not be stopped (a thread stuck in
                a connect); the system is shut down regardless.
        """
        current = threading.current_thread()
        if current.name.startswith("llmkit-system-") and self._owns(current):
            raise InvalidRequestError(
                "shutdown_system() was called on one of the system's own pool threads, which "
                "would wait for itself; call it from another thread"
            )
        with self._lock:
            if self._state != "running":
                return
            self._state = "closing"
        deadline = None if timeout is None else time.monotonic() + timeout
        self._stop.set()
        # Probes are not the users' work: they are cancelled, never drained,
        # which also frees a periodic check waiting for its results.
        self._health.cancel(LLMError, _cancelled_message("health probe"))
        if cancel:
            self._api.cancel(LLMError, _cancelled_message("call"))
        else:
            self._api.close()
        if self._ticker is not None:
            self._ticker.join(None if deadline is None else max(deadline - time.monotonic(), 0))
        pools = (self._api, self._health)
        drained = all([pool.wait(deadline) for pool in pools])
        if not drained:
            for pool in pools:
                pool.cancel(LLMError, _cancelled_message("call"))
            grace = time.monotonic() + _CANCEL_GRACE
            drained = all([pool.wait(grace) for pool in pools])
        grace = time.monotonic() + _CANCEL_GRACE
        alive = [thread for pool in pools for thread in pool.join(grace)]
        for transport in self._transports:
            transport.close()
        with self._lock:
            self._state = "closed"
        _live.discard(self)
        if alive or not drained:
            raise TimeoutError(
                f"shutdown_system(): {len(alive)} pool threads and some calls could not be "
                f"stopped within {timeout} s (plus {_CANCEL_GRACE:.0f} s after cancelling); the "
                "system is shut down and its clients closed",
                retryable=False,
            )

    def _owns(self, thread: threading.Thread) -> bool:
        return any(thread in pool._threads for pool in (self._api, self._health)) or (
            thread is self._ticker
        )

    @property
    def closed(self) -> bool:
        """Whether :meth:`shutdown` has begun."""
        return self._state != "running"

    def __enter__(self) -> System:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        state = "running" if self._state == "running" else "shut down"
        return f"<System {state}, providers: {', '.join(self.list_providers()) or 'none'}>"


def _shown_defaults(defaults: Defaults) -> dict[str, Any]:
    shown = msgspec.structs.asdict(defaults)
    if defaults.headers:
        shown["headers"] = {
            name: "***" if name.lower() in SECRET_HEADERS else value
            for name, value in defaults.headers.items()
        }
    return shown


def _tick(ref: weakref.ref[System], stop: threading.Event, interval: float) -> None:
    # The periodic health checks; holds the system weakly, so that a system
    # dropped without shutdown can still be collected.
    while not stop.wait(interval):
        system = ref()
        if system is None:
            return
        with contextlib.suppress(LLMError):
            system.health_check()
        del system
