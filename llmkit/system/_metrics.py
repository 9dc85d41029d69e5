"""Metrics per provider and model, fed by the transport's attempt events and the system's calls.

Two sources feed one :class:`Stats` per ``(provider, model)``:

* the transport's :class:`~llmkit.AttemptEvent` after every HTTP attempt:
  ``attempts``, ``retries`` (an attempt followed by another), attempt
  errors by type and the time to the response headers;
* the system's own accounting of each call: ``requests``, ``successes``,
  final ``errors`` by type, ``in_flight``, ``queue_depth``, the latency of
  the whole call (retries included), the time to the first chunk of a
  stream, and the tokens of the usage the provider reported.

Latencies keep the last :data:`SAMPLES` values per key; percentiles are
computed when :meth:`Metrics.snapshot` exports everything as a plain dict.
"""

from __future__ import annotations

import contextvars
import math
import threading
from collections import deque
from typing import Any

from llmkit._http import AttemptEvent
from llmkit.types import Usage

__all__ = ["AttemptListener", "Metrics", "Stats", "probing"]

SAMPLES = 2048

#: Set while a health probe runs: its attempts are not calls and are not counted.
probing: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "llmkit_system_probing", default=False
)


class Stats:
    """The counters of one provider and model; every update holds its lock."""

    __slots__ = (
        "attempt_errors",
        "attempts",
        "cancelled",
        "errors",
        "first_byte",
        "in_flight",
        "latency",
        "lock",
        "queued",
        "requests",
        "retries",
        "successes",
        "tokens_in",
        "tokens_out",
        "ttft",
    )

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.successes = 0
        self.errors: dict[str, int] = {}
        self.cancelled = 0
        self.attempts = 0
        self.retries = 0
        self.attempt_errors: dict[str, int] = {}
        self.in_flight = 0
        self.queued = 0
        self.tokens_in = 0
        self.tokens_out = 0
        self.latency: deque[float] = deque(maxlen=SAMPLES)
        self.ttft: deque[float] = deque(maxlen=SAMPLES)
        self.first_byte: deque[float] = deque(maxlen=SAMPLES)

    def queue(self, change: int) -> None:
        """A call of this key started (+1) or stopped (-1) waiting in a queue."""
        with self.lock:
            self.queued += change

    def started(self) -> None:
        """A call started running."""
        with self.lock:
            self.requests += 1
            self.in_flight += 1

    def counted(self) -> None:
        """A call was accepted, waiting for a slot: a request, not yet in flight."""
        with self.lock:
            self.requests += 1

    def running(self) -> None:
        """An accepted call (see :meth:`counted`) started running."""
        with self.lock:
            self.in_flight += 1

    def succeeded(self, seconds: float, usage: Usage | None) -> None:
        """A running call ended well after ``seconds``, reporting ``usage``."""
        with self.lock:
            self.in_flight -= 1
            self.successes += 1
            self.latency.append(seconds)
            if usage is not None:
                self.tokens_in += usage.prompt_tokens
                self.tokens_out += usage.completion_tokens

    def failed(self, error: BaseException, seconds: float | None, running: bool = True) -> None:
        """A call ended with ``error`` (``running``: after it started)."""
        name = type(error).__name__
        with self.lock:
            if running:
                self.in_flight -= 1
            self.errors[name] = self.errors.get(name, 0) + 1
            if seconds is not None:
                self.latency.append(seconds)

    def cancelled_call(self, running: bool = True) -> None:
        """A call was stopped by its caller (a stream closed early, an asyncio task cancelled)."""
        with self.lock:
            if running:
                self.in_flight -= 1
            self.cancelled += 1

    def rejected(self, error: BaseException) -> None:
        """A call was refused before it ran (a full queue)."""
        name = type(error).__name__
        with self.lock:
            self.requests += 1
            self.errors[name] = self.errors.get(name, 0) + 1

    def first_token(self, seconds: float) -> None:
        """A stream's first chunk came ``seconds`` after it started."""
        with self.lock:
            self.ttft.append(seconds)

    def attempt(self, event: AttemptEvent) -> None:
        """Count one HTTP attempt the transport reported."""
        with self.lock:
            self.attempts += 1
            if event.wait is not None:
                self.retries += 1
            error = event.error
            if error is not None:
                name = type(error).__name__
                self.attempt_errors[name] = self.attempt_errors.get(name, 0) + 1
            if event.first_byte is not None:
                self.first_byte.append(event.first_byte)

    def export(self) -> dict[str, Any]:
        """These counters as a plain dict (percentiles in seconds, ``None`` without samples)."""
        with self.lock:
            latency = sorted(self.latency)
            ttft = sorted(self.ttft)
            first_byte = sorted(self.first_byte)
            return {
                "requests": self.requests,
                "successes": self.successes,
                "errors": dict(sorted(self.errors.items())),
                "cancelled": self.cancelled,
                "attempts": self.attempts,
                "retries": self.retries,
                "attempt_errors": dict(sorted(self.attempt_errors.items())),
                "in_flight": self.in_flight,
                "queue_depth": self.queued,
                "latency": _percentiles(latency),
                "time_to_first_token": _percentiles(ttft),
                "time_to_first_byte": _percentiles(first_byte),
                "tokens_in": self.tokens_in,
                "tokens_out": self.tokens_out,
            }


def _percentiles(ordered: list[float]) -> dict[str, Any]:
    # Nearest rank: the smallest sample with at least p of them at or below it.
    def rank(p: float) -> float | None:
        if not ordered:
            return None
        return ordered[min(len(ordered), max(1, math.ceil(p * len(ordered)))) - 1]

    return {"count": len(ordered), "p50": rank(0.5), "p90": rank(0.9), "p99": rank(0.99)}


class Metrics:
    """Every :class:`Stats` of a system, by provider name and model."""

    __slots__ = ("_lock", "_stats")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats: dict[tuple[str, str], Stats] = {}

    def stats(self, provider: str, model: str) -> Stats:
        """The counters of ``provider`` (its name in the system) and ``model``."""
        stats = self._stats.get((provider, model))
        if stats is None:
            with self._lock:
                stats = self._stats.setdefault((provider, model), Stats())
        return stats

    def listener(self, provider: str) -> AttemptListener:
        """The transport's ``on_attempt`` hook for ``provider`` (its name in the system)."""
        return AttemptListener(self, provider)

    def snapshot(self) -> dict[str, dict[str, dict[str, Any]]]:
        """``{provider: {model: counters}}`` as plain dicts, sorted by name."""
        with self._lock:
            items = sorted(self._stats.items())
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for (provider, model), stats in items:
            out.setdefault(provider, {})[model] = stats.export()
        return out


class AttemptListener:
    """Feeds one provider's attempt events to its :class:`Stats`, model by model."""

    __slots__ = ("_by_model", "_metrics", "_provider")

    def __init__(self, metrics: Metrics, provider: str) -> None:
        self._metrics = metrics
        self._provider = provider
        self._by_model: dict[str, Stats] = {}

    def __call__(self, event: AttemptEvent) -> None:
        if probing.get():
            return  # a health probe is not a call
        stats = self._by_model.get(event.model)
        if stats is None:
            stats = self._by_model[event.model] = self._metrics.stats(self._provider, event.model)
        stats.attempt(event)
