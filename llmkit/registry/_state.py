"""The registry's shared state: rate-limit counters, cooldowns and cached responses.

Everything that several processes may need to agree on goes through the
small :class:`State` interface. :class:`MemoryState` keeps it in this
process (the default); :class:`~llmkit.registry.RedisState` keeps it in
Redis, so that processes share it.

Times are the registry clock's seconds (``time.time`` unless a test gives
another). Rate limits count in fixed one-minute windows (``int(now //
60)``), so every process sharing the state agrees on the window without
talking; cooldowns and cache entries hold the time they end.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Protocol, runtime_checkable

__all__ = ["WINDOW", "MemoryState", "State", "window_of"]

#: The length of a rate-limit window, in seconds: RPM and TPM are per minute.
WINDOW = 60.0


def window_of(now: float) -> int:
    """The number of the rate-limit window ``now`` falls in."""
    return int(now // WINDOW)


@runtime_checkable
class State(Protocol):
    """Where a registry keeps what its calls must agree on.

    Keys are deployment ids (``"main:0:openai/gpt-4o-mini"``) and cache keys;
    an implementation stores them as it likes.
    """

    def take(self, key: str, rpm: int | None, tpm: int | None, tokens: int, now: float) -> float:
        """Count one request of ``tokens`` for ``key`` if it fits its limits; return the wait.

        Returns ``0.0`` when it fits (and is counted), else the seconds until
        the window turns. A request larger than ``tpm`` fits an empty window.
        """
        ...

    def add_tokens(self, key: str, tokens: int, now: float) -> None:
        """Correct ``key``'s token count in ``now``'s window by ``tokens`` (may be negative)."""
        ...

    def fail(self, key: str, now: float, failures: int, window: float, seconds: float) -> bool:
        """Record a failure of ``key``; return whether it is cooling down now.

        After ``failures`` failures within ``window`` seconds, ``key`` cools
        down for ``seconds``.
        """
        ...

    def cooling(self, keys: list[str], now: float) -> dict[str, float]:
        """Of ``keys``, those cooling at ``now``, with the time each is back."""
        ...

    def get(self, key: str, now: float) -> bytes | None:
        """The cached value under ``key``, unless missing or expired."""
        ...

    def put(self, key: str, value: bytes, ttl: float, now: float) -> None:
        """Cache ``value`` under ``key`` until ``now + ttl``."""
        ...


class MemoryState:
    """:class:`State` in this process: thread-safe, nothing shared with others."""

    def __init__(self, *, max_cached: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._requests: dict[str, tuple[int, int]] = {}  # key -> (window, count)
        self._tokens: dict[str, tuple[int, int]] = {}
        self._failures: dict[str, deque[float]] = {}
        self._cooling: dict[str, float] = {}
        self._cache: dict[str, tuple[float, bytes]] = {}
        self._max_cached = max_cached

    def take(self, key: str, rpm: int | None, tpm: int | None, tokens: int, now: float) -> float:
        window = window_of(now)
        with self._lock:
            seen, requests = self._requests.get(key, (window, 0))
            if seen != window:
                requests = 0
            seen, used = self._tokens.get(key, (window, 0))
            if seen != window:
                used = 0
            over_rpm = rpm is not None and requests + 1 > rpm
            over_tpm = tpm is not None and used > 0 and used + tokens > tpm
            if over_rpm or over_tpm:
                return (window + 1) * WINDOW - now
            self._requests[key] = (window, requests + 1)
            self._tokens[key] = (window, used + tokens)
            return 0.0

    def add_tokens(self, key: str, tokens: int, now: float) -> None:
        window = window_of(now)
        with self._lock:
            seen, used = self._tokens.get(key, (window, 0))
            if seen != window:
                used = 0
            self._tokens[key] = (window, max(used + tokens, 0))

    def fail(self, key: str, now: float, failures: int, window: float, seconds: float) -> bool:
        with self._lock:
            times = self._failures.setdefault(key, deque())
            times.append(now)
            while times and times[0] <= now - window:
                times.popleft()
            if len(times) < failures:
                return False
            times.clear()
            self._cooling[key] = now + seconds
            return True

    def cooling(self, keys: list[str], now: float) -> dict[str, float]:
        cooling = self._cooling
        if not cooling:
            return {}
        with self._lock:
            return {key: cooling[key] for key in keys if cooling.get(key, 0.0) > now}

    def get(self, key: str, now: float) -> bytes | None:
        with self._lock:
            entry = self._cache.get(key)
            if entry is None:
                return None
            if entry[0] <= now:
                del self._cache[key]
                return None
            return entry[1]

    def put(self, key: str, value: bytes, ttl: float, now: float) -> None:
        with self._lock:
            cache = self._cache
            if len(cache) >= self._max_cached and key not in cache:
                # Drop the oldest entry (dicts keep insertion order): a bound,
                # not an LRU; expired entries go first when they are read.
                del cache[next(iter(cache))]
            cache[key] = (now + ttl, value)

    def __repr__(self) -> str:
        return f"<MemoryState: {len(self._cache)} cached, {len(self._cooling)} cooldowns>"
