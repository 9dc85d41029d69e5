"""Health probes: one per provider, on the system's health pool.

A probe is the provider's :func:`~llmkit.provider.probe` method (by default
``GET {api_base}/models``), or, when the provider's config names a
``probe_model``, a one-token completion to that model. It is never retried:
it reports what the provider does now. Its HTTP attempts are not counted in
the call metrics.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import msgspec

from llmkit import generics
from llmkit.config import Config, resolve_config
from llmkit.errors import LLMError
from llmkit.keys import ProviderKey
from llmkit.system._metrics import probing

__all__ = ["HealthRecord", "ProviderHealth", "probe_once"]


class ProviderHealth(msgspec.Struct, frozen=True, kw_only=True):
    """What the latest health probe of one provider found.

    Attributes:
        name: the provider's name in the system.
        status: ``"healthy"``, ``"unhealthy"``, or ``"unknown"`` before any probe.
        probe: ``"models"`` (the provider's ``probe`` method) or ``"completion"``.
        latency: seconds the latest probe took.
        checked_at: when it ended (epoch seconds).
        last_error: the message of the latest failed probe, kept after a
            later success (never holds an API key).
        last_error_type: that error's class name (``"AuthenticationError"``).
        last_error_at: when that probe ended (epoch seconds).
        consecutive_failures: failed probes since the last success.
    """

    name: str
    status: str = "unknown"
    probe: str = "models"
    latency: float | None = None
    checked_at: float | None = None
    last_error: str | None = None
    last_error_type: str | None = None
    last_error_at: float | None = None
    consecutive_failures: int = 0

    def to_dict(self) -> dict[str, Any]:
        """This record as a plain dict."""
        return msgspec.structs.asdict(self)


class HealthRecord:
    """The latest :class:`ProviderHealth` of one provider, updated by its probes."""

    __slots__ = ("_lock", "latest")

    def __init__(self, name: str, probe: str) -> None:
        self._lock = threading.Lock()
        self.latest = ProviderHealth(name=name, probe=probe)

    def record(self, latency: float, error: LLMError | None) -> ProviderHealth:
        """Fold one probe's outcome in; return the new record."""
        now = time.time()
        with self._lock:
            old = self.latest
            if error is None:
                new = msgspec.structs.replace(
                    old, status="healthy", latency=latency, checked_at=now, consecutive_failures=0
                )
            else:
                new = msgspec.structs.replace(
                    old,
                    status="unhealthy",
                    latency=latency,
                    checked_at=now,
                    last_error=str(error),
                    last_error_type=type(error).__name__,
                    last_error_at=now,
                    consecutive_failures=old.consecutive_failures + 1,
                )
            self.latest = new
            return new


def probe_once(
    key: ProviderKey, config: Config, probe_model: str | None, timeout: float
) -> LLMError | None:
    """Probe a provider once; return the error it met, or ``None`` when it answered well."""
    token = probing.set(True)
    try:
        settings = resolve_config(key, config)
        deadline = timeout if settings.deadline is None else min(settings.deadline, timeout)
        settings = msgspec.structs.replace(settings, retries=0, deadline=deadline)
        if probe_model:
            request = {"messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}
            key, checked, settings = generics.prepare(key, probe_model, request, settings, False)
            generics.completion(key, checked, settings)
        else:
            generics.probe(key, settings)
    except LLMError as exc:
        return exc
    except Exception as exc:
        return LLMError(
            f"{key.name}'s probe raised {type(exc).__name__}; report it to the provider package",
            provider=key.name,
            retryable=False,
        )
    finally:
        probing.reset(token)
    return None
