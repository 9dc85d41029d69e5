"""Retries, fallbacks and timeouts as plain function wrappers.

For code that calls llmkit through functions of its own rather than
through named configs::

    ask = compose(with_timeout(10.0), with_retry(retries=3), with_fallback([backup]))(primary)

Each wrapper takes the function first and returns the wrapped one; called
without it, it returns a decorator, which :func:`compose` chains (the
first one listed is outermost). Async functions get async wrappers.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

from llmkit import _http
from llmkit.errors import AllAttemptsFailedError, Attempt, InvalidRequestError, LLMError
from llmkit.errors import TimeoutError as LLMTimeoutError
from llmkit.registry._backoff import Backoff
from llmkit.registry._spec import FALLBACK_ERRORS

__all__ = ["compose", "with_fallback", "with_retry", "with_timeout"]

F = TypeVar("F", bound=Callable[..., Any])
Wrapper = Callable[[F], F]


def _is_async(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn)


def _check_callable(fn: Any, what: str) -> None:
    if not callable(fn):
        raise InvalidRequestError(f"{what} must be a function, not {type(fn).__name__}")


def with_retry(
    fn: F | None = None,
    /,
    *,
    retries: int = 2,
    retry_delay: float = 0.5,
    retry_max_delay: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    """Retry ``fn`` on retryable llmkit errors, with jittered backoff and ``Retry-After``.

    A ``Retry-After`` longer than ``retry_max_delay`` is not waited out:
    the error is raised for a fallback to take over.

    Raises:
        InvalidRequestError: bad settings, at wrapping time.
        LLMError: the last error, once the retries are used up.
    """
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 100:
        raise InvalidRequestError(f"retries must be a whole number from 0 to 100, not {retries!r}")
    for label, value in (("retry_delay", retry_delay), ("retry_max_delay", retry_max_delay)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e6:
            raise InvalidRequestError(f"{label} must be seconds from 0, not {value!r}")
    backoff = Backoff(retries, float(retry_delay), float(retry_max_delay))

    async def aretry(again: Callable[[], Any], pending: Any) -> Any:
        tries = 0
        while True:
            try:
                return await pending
            except LLMError as error:
                wait = backoff.wait(error, tries)
                if wait is None:
                    raise
                tries += 1
                await asyncio.sleep(wait)
                pending = again()

    def wrap(inner: F) -> F:
        _check_callable(inner, "with_retry's function")
        if _is_async(inner):

            @functools.wraps(inner)
            async def aretrying(*args: Any, **kwargs: Any) -> Any:
                return await aretry(lambda: inner(*args, **kwargs), inner(*args, **kwargs))

            return cast(F, aretrying)

        @functools.wraps(inner)
        def retrying(*args: Any, **kwargs: Any) -> Any:
            tries = 0
            while True:
                try:
                    result = inner(*args, **kwargs)
                except LLMError as error:
                    wait = backoff.wait(error, tries)
                    if wait is None:
                        raise
                    tries += 1
                    sleep(wait)
                    continue
                if inspect.isawaitable(result):
                    # A plain function that returns a coroutine (a lambda
                    # around an async call): retried as one.
                    return aretry(lambda: inner(*args, **kwargs), result)
                return result

        return cast(F, retrying)

    return wrap if fn is None else wrap(fn)


def with_fallback(
    fn: F | Sequence[Callable[..., Any]] | None = None,
    fallbacks: Sequence[Callable[..., Any]] = (),
    /,
    *,
    on: Sequence[str] = (),
) -> Any:
    """Call ``fn``; when it fails with a retryable error, call each fallback in turn.

    Every function gets the same arguments. ``on`` adds error kinds that
    move on too: ``"context_window"``, ``"content_filter"``. As a
    decorator: ``with_fallback([backup])``.

    Raises:
        InvalidRequestError: bad arguments, at wrapping time.
        AllAttemptsFailedError: ``fn`` and every fallback failed (``attempts``).
        LLMError: an error that does not move on, as it was.
    """
    primary: F | None
    if isinstance(fn, Sequence) and not fallbacks:
        primary, fallbacks = None, fn  # with_fallback([backup]) as a decorator
    else:
        primary = cast("F | None", fn)
    if isinstance(on, str):
        on = (on,)
    for kind in on:
        if kind not in FALLBACK_ERRORS:
            raise InvalidRequestError(
                f"on= takes {', '.join(map(repr, FALLBACK_ERRORS))}, not {kind!r}"
            )
    moving_on = tuple(FALLBACK_ERRORS[kind] for kind in on)
    backups = list(fallbacks)
    if not backups:
        raise InvalidRequestError("with_fallback needs at least one fallback function")
    for backup in backups:
        _check_callable(backup, "a fallback")

    def record(attempts: list[Attempt], error: LLMError) -> None:
        attempts.append(Attempt(None, error.provider or "?", error.model or "?", error))

    def give_up(attempts: list[Attempt], error: LLMError) -> LLMError:
        if len(attempts) == 1:
            return error
        failed = AllAttemptsFailedError(None, attempts)
        failed.__cause__ = error
        return failed

    def moves_on(error: LLMError) -> bool:
        return error.retryable or isinstance(error, moving_on)

    async def afall(
        chain: list[Callable[..., Any]], start: int, pending: Any, args: Any, kwargs: Any
    ) -> Any:
        attempts: list[Attempt] = []
        step = start
        while True:
            try:
                return await pending if inspect.isawaitable(pending) else pending
            except LLMError as error:
                record(attempts, error)
                step += 1
                if step == len(chain) or not moves_on(error):
                    raise give_up(attempts, error) from None
            try:
                pending = chain[step](*args, **kwargs)
            except LLMError as error:
                pending = _raised(error)

    def wrap(inner: F) -> F:
        _check_callable(inner, "with_fallback's function")
        chain: list[Callable[..., Any]] = [inner, *backups]
        if _is_async(inner):

            @functools.wraps(inner)
            async def afalling(*args: Any, **kwargs: Any) -> Any:
                return await afall(chain, 0, inner(*args, **kwargs), args, kwargs)

            return cast(F, afalling)

        @functools.wraps(inner)
        def falling(*args: Any, **kwargs: Any) -> Any:
            attempts: list[Attempt] = []
            for i, step in enumerate(chain):
                try:
                    result = step(*args, **kwargs)
                except LLMError as error:
                    record(attempts, error)
                    if i == len(chain) - 1 or not moves_on(error):
                        raise give_up(attempts, error) from None
                    continue
                if inspect.isawaitable(result):
                    return afall(chain, i, result, args, kwargs)
                return result
            raise AssertionError("unreachable")

        return cast(F, falling)

    return wrap if primary is None else wrap(primary)


async def _raised(error: LLMError) -> Any:
    raise error


def _timed_out(seconds: float) -> LLMTimeoutError:
    return LLMTimeoutError(
        f"the call did not finish within with_timeout's {seconds:g} s and was aborted; "
        "raise the timeout, or ask for less (max_tokens)",
        retryable=False,
    )


def with_timeout(fn: Any, seconds: float | None = None, /) -> Any:
    """Bound ``fn`` to ``seconds``; the llmkit calls it makes are aborted when time is up.

    ``with_timeout(fn, 10.0)`` wraps; ``with_timeout(10.0)`` is a decorator.
    The bound reaches every llmkit call the function makes in its thread or
    task: the transport cuts off the socket read in progress, so no thread
    is left waiting on the network. A coroutine function (or one that
    returns a coroutine) is also cancelled. A stream returned by ``fn``
    stays bound by the same deadline: when it passes mid-stream, reading
    raises ``TimeoutError`` ("the call's deadline passed").

    Raises:
        InvalidRequestError: ``seconds`` is not a positive number.
        TimeoutError: the time ran out (llmkit's, not the builtin).
    """
    if seconds is None:
        fn, seconds = None, fn
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not 0 < seconds <= 86_400
    ):
        raise InvalidRequestError(
            f"with_timeout takes seconds above 0 and at most a day, not {seconds!r}"
        )
    limit = float(seconds)

    def timed_out(error: LLMError, deadline: float) -> LLMError:
        # Out of time, whatever the error says (a fallback's "deadline
        # passed" wrapped in AllAttemptsFailedError included): say which limit.
        return _timed_out(limit) if time.monotonic() >= deadline - 0.01 else error

    async def abound(pending: Any) -> Any:
        with _http.deadline_scope(limit) as deadline:
            try:
                async with asyncio.timeout(max(deadline - time.monotonic(), 0.0)):
                    return await pending
            except TimeoutError:  # asyncio's, the builtin
                raise _timed_out(limit) from None
            except LLMError as error:
                late = timed_out(error, deadline)
                if late is error:
                    raise
                raise late from error

    def wrap(inner: F) -> F:
        _check_callable(inner, "with_timeout's function")
        if _is_async(inner):

            @functools.wraps(inner)
            async def abounded(*args: Any, **kwargs: Any) -> Any:
                return await abound(inner(*args, **kwargs))

            return cast(F, abounded)

        @functools.wraps(inner)
        def bounded(*args: Any, **kwargs: Any) -> Any:
            with _http.deadline_scope(limit) as deadline:
                try:
                    result = inner(*args, **kwargs)
                except LLMError as error:
                    late = timed_out(error, deadline)
                    if late is error:
                        raise
                    raise late from error
            if inspect.isawaitable(result):
                return abound(result)
            return result

        return cast(F, bounded)

    return wrap if fn is None else wrap(fn)


def compose(*wrappers: Callable[[Any], Any]) -> Callable[[F], F]:
    """Chain decorators: ``compose(a, b)(fn)`` is ``a(b(fn))``, so ``a`` is outermost.

    Raises:
        InvalidRequestError: an argument is not callable.
    """
    for wrapper in wrappers:
        _check_callable(wrapper, "each of compose's arguments")

    def composed(fn: F) -> F:
        for wrapper in reversed(wrappers):
            fn = wrapper(fn)
        return fn

    return composed
