"""One provider of a running system: its key, settings, transport, calls in flight, health."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import msgspec

from llmkit.config import Config, to_config
from llmkit.errors import InvalidRequestError, ProviderNotFoundError
from llmkit.system._abort import SystemTransport
from llmkit.system._config import ProviderConfig, key_of
from llmkit.system._health import HealthRecord

__all__ = ["Entry"]

ConfigLike = Config | Mapping[str, Any] | None


class Entry:
    """One provider of a running system: its key, config, transport and calls in flight."""

    __slots__ = (
        "_idle",
        "_lock",
        "closed",
        "config",
        "health",
        "in_flight",
        "key",
        "name",
        "removed",
        "settings",
        "transport",
    )

    def __init__(
        self, name: str, settings: ProviderConfig, config: Config, transport: SystemTransport
    ) -> None:
        self.name = name
        self.settings = settings
        self.key = key_of(settings, name)
        self.config = config
        self.transport = transport
        # A plain lock on the path of every call; the condition shares it and
        # is only waited on once the provider is removed.
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self.in_flight = 0
        self.removed = False
        self.closed = False
        self.health = HealthRecord(name, "completion" if settings.probe_model else "models")

    def enter(self) -> None:
        """Count a call in; raises ``ProviderNotFoundError`` once the provider is removed."""
        with self._lock:
            if self.removed:
                raise ProviderNotFoundError(
                    f"provider {self.name!r} was removed from this system; add_provider() it "
                    "again to use it",
                    provider=self.name,
                )
            self.in_flight += 1

    def exit(self) -> None:
        """Count a call out; the last one out of a removed provider closes its clients."""
        with self._lock:
            self.in_flight -= 1
            if not self.removed:
                return
            last = not self.in_flight and not self.closed
            if last:
                self.closed = True
            self._idle.notify_all()
        if last:
            self.transport.close()

    def retire(self, deadline: float | None) -> bool:
        """Refuse new calls, wait for those in flight, close the clients; ``False`` on timeout."""
        with self._idle:
            self.removed = True
            while self.in_flight:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False  # the last call out closes the clients
                self._idle.wait(left)
            close = not self.closed
            self.closed = True
        if close:
            self.transport.close()
        return True

    def overridden(self, config: ConfigLike) -> Config:
        """This provider's config with a call's own settings on top.

        Raises:
            InvalidRequestError: a bad field, or a transport (the system has its own).
        """
        own = to_config(config)
        if own.transport is not None:
            raise InvalidRequestError(
                "a system sends through its own transport; remove transport= from the call's "
                "config",
                provider=self.name,
            )
        changes = {
            name: getattr(own, name)
            for name in own.__struct_fields__
            if getattr(own, name) is not None
        }
        return msgspec.structs.replace(self.config, **changes) if changes else self.config

    def describe(self) -> dict[str, Any]:
        shown = dict(self.settings._shown())
        return {
            "name": self.name,
            "provider": self.key.name,
            "api_base": self.config.api_base or self.key.default_base_url or None,
            "config": shown,
            "in_flight": self.in_flight,
            "health": self.health.latest.to_dict(),
        }
