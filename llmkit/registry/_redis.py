"""The registry's state in Redis, shared by every process that points at the same server.

Needs the ``redis`` client: ``pip install llmkit[redis]``. Each operation is
one round trip (a Lua script where it must be atomic). When Redis is down
or slow, the state falls back to this process's own :class:`MemoryState`,
logs one WARNING on the ``llmkit`` logger, and tries Redis again after
``retry_after`` seconds: calls go on, with limits and cooldowns counted
locally meanwhile.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from typing import Any

from llmkit.errors import InvalidRequestError
from llmkit.registry._state import WINDOW, MemoryState, window_of

__all__ = ["RedisState"]

log = logging.getLogger("llmkit")

# KEYS: requests, tokens. ARGV: rpm (-1: none), tpm (-1: none), tokens, ttl.
# Returns 1 when the request fits and was counted, else 0.
_TAKE = """
local requests = tonumber(redis.call('GET', KEYS[1]) or '0')
local used = tonumber(redis.call('GET', KEYS[2]) or '0')
local rpm, tpm, tokens = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if rpm >= 0 and requests + 1 > rpm then return 0 end
if tpm >= 0 and used > 0 and used + tokens > tpm then return 0 end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('INCRBY', KEYS[2], tokens)
redis.call('EXPIRE', KEYS[2], ARGV[4])
return 1
"""

# KEYS: tokens. ARGV: the correction, ttl. The count never goes below zero.
_ADD = """
local used = redis.call('INCRBY', KEYS[1], ARGV[1])
if used < 0 then redis.call('SET', KEYS[1], 0) end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS: failures (a sorted set of failure times), cooling.
# ARGV: now, window, failures, cooldown ms, until, a unique member.
# A sliding window on the registry's clock, as MemoryState keeps it.
# Returns 1 when the deployment is now cooling.
_FAIL = """
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], ARGV[5], 'PX', ARGV[4])
  return 1
end
return 0
"""


class RedisState:
    """:class:`~llmkit.registry.State` in Redis.

    Its operations block for at most ``timeout`` each, in async calls too
    (a round trip on a local network is well under a millisecond).

    Args:
        url: the server, ``redis://host:port/db`` (or pass ``client=``).
        prefix: put before every key, so several registries can share a server.
        timeout: seconds one Redis operation may take before it counts as down
            (a ``client=`` passed in keeps its own socket timeouts).
        retry_after: seconds to use local state after a failure before trying Redis again.
        client: a ``redis.Redis`` to use instead of one made from ``url``.

    Raises:
        InvalidRequestError: the ``redis`` package is not installed
            (``pip install llmkit[redis]``), or neither url nor client is given.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        prefix: str = "llmkit",
        timeout: float = 0.25,
        retry_after: float = 5.0,
        client: Any = None,
    ) -> None:
        if client is None:
            if url is None:
                raise InvalidRequestError("RedisState needs url= (redis://host:port/0) or client=")
            try:
                import redis
            except ImportError:
                raise InvalidRequestError(
                    "RedisState needs the redis client: pip install 'llmkit[redis]'"
                ) from None
            client = redis.Redis.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout
            )
        self._redis = client
        self._prefix = prefix
        self._retry_after = retry_after
        self._local = MemoryState()
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._take = client.register_script(_TAKE)
        self._add = client.register_script(_ADD)
        self._fail = client.register_script(_FAIL)
        self._serial = itertools.count()

    @property
    def degraded(self) -> bool:
        """Whether calls are using local state because Redis failed lately."""
        return time.monotonic() < self._down_until

    def _up(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, exc: Exception) -> None:
        with self._lock:
            first = self._up()
            self._down_until = time.monotonic() + self._retry_after
        if first:
            log.warning(
                "llmkit registry: Redis failed (%s: %s); using this process's own rate limits, "
                "cooldowns and cache for %.0f s, then trying Redis again",
                type(exc).__name__,
                exc,
                self._retry_after,
            )

    def _key(self, *parts: object) -> str:
        return ":".join((self._prefix, *map(str, parts)))

    def take(self, key: str, rpm: int | None, tpm: int | None, tokens: int, now: float) -> float:
        if self._up():
            window = window_of(now)
            try:
                fits = self._take(
                    keys=[self._key("rpm", key, window), self._key("tpm", key, window)],
                    args=[
                        -1 if rpm is None else rpm,
                        -1 if tpm is None else tpm,
                        tokens,
                        int(2 * WINDOW),
                    ],
                )
            except Exception as exc:
                self._failed(exc)
            else:
                return 0.0 if int(fits) == 1 else (window + 1) * WINDOW - now
        return self._local.take(key, rpm, tpm, tokens, now)

    def add_tokens(self, key: str, tokens: int, now: float) -> None:
        if self._up():
            try:
                self._add(
                    keys=[self._key("tpm", key, window_of(now))], args=[tokens, int(2 * WINDOW)]
                )
            except Exception as exc:
                self._failed(exc)
            else:
                return
        self._local.add_tokens(key, tokens, now)

    def fail(self, key: str, now: float, failures: int, window: float, seconds: float) -> bool:
        if self._up():
            try:
                cooling = self._fail(
                    keys=[self._key("fails", key), self._key("cool", key)],
                    args=[
                        repr(now),
                        repr(window),
                        failures,
                        max(int(seconds * 1000), 1),
                        repr(now + seconds),
                        f"{now!r}:{os.getpid()}:{next(self._serial)}",
                    ],
                )
            except Exception as exc:
                self._failed(exc)
            else:
                return int(cooling) == 1
        return self._local.fail(key, now, failures, window, seconds)

    def cooling(self, keys: list[str], now: float) -> dict[str, float]:
        if self._up():
            try:
                values = self._redis.mget([self._key("cool", key) for key in keys])
            except Exception as exc:
                self._failed(exc)
            else:
                found = {}
                for key, value in zip(keys, values, strict=True):
                    until = _number(value)
                    if until is not None and until > now:
                        found[key] = until
                return found
        return self._local.cooling(keys, now)

    def get(self, key: str, now: float) -> bytes | None:
        if self._up():
            try:
                value = self._redis.get(self._key("cache", key))
            except Exception as exc:
                self._failed(exc)
            else:
                if isinstance(value, str):  # a client made with decode_responses=True
                    return value.encode()
                return value if isinstance(value, bytes) else None
        return self._local.get(key, now)

    def put(self, key: str, value: bytes, ttl: float, now: float) -> None:
        if self._up():
            try:
                self._redis.set(self._key("cache", key), value, px=max(int(ttl * 1000), 1))
            except Exception as exc:
                self._failed(exc)
            else:
                return
        self._local.put(key, value, ttl, now)

    def __repr__(self) -> str:
        state = "degraded to local state" if self.degraded else "up"
        return f"<RedisState prefix={self._prefix!r} {state}>"


def _number(value: Any) -> float | None:
    # Whatever else wrote there, a value that is no number is no cooldown.
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None
