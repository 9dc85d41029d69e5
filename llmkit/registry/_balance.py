"""Load balancing across the deployments of one name: strategies, cooldowns and rate limits.

A config with ``deployments`` gets a :class:`Pool`. Before each attempt
the pool picks a deployment:

1. those cooling down after repeated failures are left out; when all are,
   the call fails fast with ``ServiceUnavailableError`` (its
   ``retry_after`` says when the first is back);
2. the rest are ordered by the strategy: ``weighted`` (random, by weight),
   ``round_robin``, ``least_busy`` (fewest calls in flight from this
   registry) or ``lowest_latency`` (the attached system's median latency,
   else the registry's own moving average; an unmeasured one goes first);
3. the first whose RPM and TPM leave room is counted and used. When none
   has room, ``when_limited="wait"`` waits for the window to turn and
   ``"move"`` raises ``RateLimitError`` so the config's fallbacks take over.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Callable, Collection
from typing import Any, Final

from llmkit.errors import LLMError, RateLimitError, ServiceUnavailableError
from llmkit.registry._spec import Deployed
from llmkit.registry._state import State

__all__ = ["BUSY", "COOLING", "Pool", "estimate_tokens"]

#: ``code`` of the errors a pool raises itself; a registry moves on at once.
COOLING: Final = "llmkit_all_cooling"
BUSY: Final = "llmkit_all_rate_limited"
_OWN: Final = (COOLING, BUSY)

# Weight of the newest sample in the latency moving average.
_ALPHA = 0.3
# How often the system's latency percentiles are read again, in seconds.
_SYSTEM_REFRESH = 1.0


class Pool:
    """The deployments of one name and what this registry knows of them."""

    __slots__ = (
        "_latency",
        "_lock",
        "_rotation",
        "_system_latency",
        "_system_read",
        "cooldown",
        "deployments",
        "in_flight",
        "name",
        "strategy",
        "when_limited",
    )

    def __init__(
        self,
        name: str,
        deployments: tuple[Deployed, ...],
        strategy: str,
        cooldown: tuple[int, float, float] | None,
        when_limited: str,
    ) -> None:
        self.name = name
        self.deployments = deployments
        self.strategy = strategy
        self.cooldown = cooldown
        self.when_limited = when_limited
        self.in_flight = dict.fromkeys((d.id for d in deployments), 0)
        self._latency: dict[str, float] = {}
        self._rotation = itertools.count()
        self._lock = threading.Lock()
        self._system_latency: dict[str, float] = {}
        self._system_read = -1e18

    @property
    def limited(self) -> bool:
        """Whether any deployment has an RPM or TPM limit."""
        return any(d.rpm is not None or d.tpm is not None for d in self.deployments)

    def pick(
        self,
        state: State,
        tokens: int,
        now: float,
        system: Any = None,
        avoid: Collection[str] = (),
    ) -> tuple[Deployed | None, float]:
        """The deployment to use now, counted against its limits; or ``None`` and the wait.

        Deployments in ``avoid`` (those that failed earlier in the same
        call) come last, whatever the strategy says.

        Raises:
            ServiceUnavailableError: every deployment is cooling down (code ``COOLING``).
            RateLimitError: none has room and ``when_limited`` is ``"move"`` (code ``BUSY``).
        """
        ids = [d.id for d in self.deployments]
        cooling = state.cooling(ids, now) if self.cooldown is not None else {}
        ready = [d for d in self.deployments if d.id not in cooling]
        if not ready:
            back = min(cooling.values()) - now
            raise ServiceUnavailableError(
                f"every deployment of {self.name!r} is cooling down after repeated failures; "
                f"the first is back in {back:.1f} s. Add deployments or fallbacks, or lower "
                "the cooldown",
                retry_after=back,
                code=COOLING,
            )
        wait = float("inf")
        ordered = self._ordered(ready, system, now)
        if avoid:
            ordered.sort(key=lambda d: d.id in avoid)  # stable: keeps the strategy's order
        for deployed in ordered:
            if deployed.rpm is None and deployed.tpm is None:
                return deployed, 0.0
            left = state.take(deployed.id, deployed.rpm, deployed.tpm, tokens, now)
            if left <= 0:
                return deployed, 0.0
            wait = min(wait, left)
        if self.when_limited == "wait":
            return None, wait
        raise RateLimitError(
            f"every deployment of {self.name!r} is at its RPM or TPM limit for this minute; "
            f"room again in {wait:.1f} s. Raise the limits, add deployments, or set "
            'when_limited="wait"',
            retry_after=wait,
            code=BUSY,
        )

    def _ordered(self, ready: list[Deployed], system: Any, now: float) -> list[Deployed]:
        strategy = self.strategy
        if len(ready) == 1:
            return ready
        if strategy == "weighted":
            first = random.choices(ready, weights=[d.weight for d in ready])[0]
            return [first, *(d for d in ready if d is not first)]
        if strategy == "round_robin":
            turn = next(self._rotation) % len(ready)
            return ready[turn:] + ready[:turn]
        shuffled = random.sample(ready, len(ready))  # ties broken at random
        if strategy == "least_busy":
            busy = self.in_flight
            return sorted(shuffled, key=lambda d: busy[d.id])
        latency = self._system_latencies(system, now) if system is not None else self._latency
        return sorted(shuffled, key=lambda d: latency.get(d.id, 0.0))

    def _system_latencies(self, system: Any, now: float) -> dict[str, float]:
        # A full metrics snapshot sorts every latency sample: read it once a second.
        if now - self._system_read < _SYSTEM_REFRESH:
            return self._system_latency
        self._system_read = now
        try:
            providers = system.metrics()["providers"]
        except Exception:
            return self._latency
        found: dict[str, float] = {}
        for deployed in self.deployments:
            target = deployed.target
            stats = providers.get(target.provider, {}).get(target.model, {})
            median = stats.get("latency", {}).get("p50")
            if isinstance(median, int | float):
                found[deployed.id] = float(median)
        self._system_latency = found
        return found

    def started(self, deployed: Deployed) -> None:
        """A call to ``deployed`` begins."""
        with self._lock:
            self.in_flight[deployed.id] += 1

    def ended(
        self,
        deployed: Deployed,
        state: State,
        now: float,
        seconds: float,
        error: LLMError | None,
        counts: bool = False,
    ) -> None:
        """A call to ``deployed`` ended after ``seconds``.

        A failure that ``counts`` (the deployment's own trouble: a retryable
        error) adds to its cooldown; the pool's own refusals never do.
        """
        with self._lock:
            self.in_flight[deployed.id] -= 1
            if error is None:
                old = self._latency.get(deployed.id)
                self._latency[deployed.id] = (
                    seconds if old is None else old + _ALPHA * (seconds - old)
                )
        cooldown = self.cooldown
        if error is not None and counts and cooldown is not None and error.code not in _OWN:
            failures, window, cool = cooldown
            state.fail(deployed.id, now, failures, window, cool)

    def release(self, deployed: Deployed) -> None:
        """A call to ``deployed`` was abandoned (cancelled): give its slot back."""
        with self._lock:
            self.in_flight[deployed.id] -= 1


def estimate_tokens(encode: Callable[[Any], bytes], messages: Any) -> int:
    """A cheap guess at a prompt's tokens, for TPM: its JSON's bytes over four, rounded up."""
    try:
        size = len(encode(messages))
    except Exception:
        return 1
    return max(-(-size // 4), 1)
