"""One call by name, as it goes: where it is sent, what failed, and what to try next.

The policy in one place, for calls and streams, sync and async alike:

* a deployment that fails with a retryable error hands the call to
  another deployment of the same name at once, without using a retry;
* otherwise a retryable error is retried on the same target after a
  backoff (or its ``Retry-After``), ``retries`` times;
* then, for a retryable error or a kind listed in ``fallback_on``, the
  call moves on to the next fallback;
* when nothing is left, the error is raised as it was if only one place
  was tried, else ``AllAttemptsFailedError`` listing every attempt.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from llmkit.errors import AllAttemptsFailedError, Attempt, LLMError, StreamInterruptedError
from llmkit.registry._backoff import Backoff
from llmkit.registry._balance import BUSY, COOLING, Pool
from llmkit.registry._spec import Compiled, Deployed, Target
from llmkit.types import ServedBy

__all__ = ["Call", "Following", "Try"]

#: A place to go next: the target (or pool), the request for it, the config's name.
Following = tuple[Any, Any, str]


class Try(NamedTuple):
    """One attempt under way: its target, the deployment it came from, when it began."""

    target: Target
    deployed: Deployed | None
    began: float


class Call:
    """The state of one call by name."""

    __slots__ = (
        "avoid",
        "backoff",
        "compiled",
        "current",
        "failures",
        "following",
        "label",
        "moves",
        "routed",
        "stream",
        "switches",
        "tokens",
        "tries",
    )

    def __init__(
        self,
        compiled: Compiled,
        current: Target | Pool,
        routed: Any,
        following: Callable[[], Iterator[Following]],
        stream: bool,
    ) -> None:
        # What only a failure needs (backoff, the fallbacks' iterator) is
        # made on the first failure: a call that succeeds at once pays for none.
        self.compiled = compiled
        self.current: Any = current
        self.routed = routed
        self.label = compiled.name  # the config the current target belongs to
        self.following: Iterator[Following] | Callable[[], Iterator[Following]] = following
        self.stream = stream
        self.backoff: Backoff | None = None
        self.failures: list[Attempt] = []
        self.tries = 0  # retries made on the current target
        self.moves = 0  # fallbacks moved on to
        self.switches = 0  # deployments of a pool handed over to
        self.avoid: set[str] = set()  # the current pool's deployments that failed
        self.tokens = 0  # the prompt's estimated tokens, for TPM limits

    def retryable(self, error: LLMError) -> bool:
        """Whether trying again is safe: a retryable error, or a stream broken before any chunk."""
        return error.retryable or (self.stream and isinstance(error, StreamInterruptedError))

    def record(self, target: Target | None, error: LLMError) -> None:
        """Add a failed attempt to the list an ``AllAttemptsFailedError`` would show."""
        if target is None:
            provider, model = "-", "(no deployment free)"
        else:
            provider, model = target.key.name, target.model
        self.failures.append(Attempt(self.label, provider, model, error))

    def switch(self, target: Target, deployed: Deployed, error: LLMError) -> bool:
        """Hand the call to another deployment after ``deployed`` failed; whether one is left."""
        self.avoid.add(deployed.id)
        if not self.retryable(error) or len(self.avoid) >= len(self.current.deployments):
            return False
        self.record(target, error)
        self.switches += 1
        return True

    def failed(self, target: Target | None, error: LLMError) -> float:
        """Record ``error`` and decide: the seconds to wait before the next attempt.

        The next attempt goes to the same target, or (after moving on)
        to ``current``/``routed``, which this updates.

        Raises:
            LLMError: nothing is left to try: the error itself when only one
                place was tried, else ``AllAttemptsFailedError`` listing all.
        """
        self.record(target, error)
        retryable = self.retryable(error)
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
            self.avoid.clear()
            return wait
        if retryable or pooled or isinstance(error, self.compiled.fallback_errors):
            following = self.following
            if not isinstance(following, Iterator):
                following = self.following = following()
            step = next(following, None)
            if step is not None:
                self.current, self.routed, self.label = step
                self.tries = 0
                self.moves += 1
                self.avoid.clear()
                return 0.0
        if not (self.moves or self.switches):
            raise error
        raise AllAttemptsFailedError(self.compiled.name, self.failures) from error

    def served(self, attempt: Try) -> ServedBy:
        """Who answered: the attempt's target, and how the call got there."""
        target, deployed = attempt.target, attempt.deployed
        return ServedBy(
            provider=target.key.name,
            model=target.model,
            name=self.compiled.name,
            attempts=len(self.failures) + 1,
            fallback=self.moves > 0,
            deployment=None if deployed is None else deployed.id,
        )
