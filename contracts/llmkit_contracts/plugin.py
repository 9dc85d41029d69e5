"""The pytest plugin of the contract suite (entry point ``pytest11``).

It is inert: it defines one fixture, ``contract_emulator``, which only a
subclass of :class:`llmkit_contracts.contract.ProviderContract` requests,
and imports nothing of llmkit until then. A test module that subclasses
the contract gets one emulator per class, started before its first case
and stopped after its last.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

__all__ = ["contract_emulator"]


@pytest.fixture(scope="class")
def contract_emulator(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The running emulator of the requesting ``ProviderContract`` class.

    Raises:
        TypeError: the class's ``emulator`` is not a ``WireProtocol`` (class or instance).
    """
    from llmkit_contracts.emulator import Emulator, WireProtocol

    protocol = getattr(request.cls, "emulator", None)
    if isinstance(protocol, type) and issubclass(protocol, WireProtocol):
        protocol = protocol()
    if not isinstance(protocol, WireProtocol):
        raise TypeError(
            "a ProviderContract needs emulator = <a WireProtocol subclass>, e.g. "
            "llmkit_contracts.emulators.OpenAIProtocol or your own protocol module's class"
        )
    with Emulator(protocol) as emulator:
        yield emulator
