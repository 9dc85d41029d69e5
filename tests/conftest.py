"""Test-wide guards: no test may reach a real provider."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from llmkit_contracts import OpenAIEmulator

_real_connect = socket.socket.connect
_real_getaddrinfo = socket.getaddrinfo


def _is_local(host: Any) -> bool:
    if host in (None, "localhost", b"localhost", ""):
        return True
    if isinstance(host, bytes):
        host = host.decode()
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self: socket.socket, address: Any) -> None:
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
        raise RuntimeError(f"test tried to reach {address!r}; tests must stay on 127.0.0.1")
    _real_connect(self, address)


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if not _is_local(host):
        raise RuntimeError(f"test tried to resolve {host!r}; tests must stay on 127.0.0.1")
    return _real_getaddrinfo(host, *args, **kwargs)


def pytest_configure(config: pytest.Config) -> None:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign,assignment]
    socket.getaddrinfo = _guarded_getaddrinfo
    # Installed providers load once, before any test's registry scope opens.
    from llmkit import keys

    keys.load_entry_points()


def _provider_variables() -> list[str]:
    # Every installed provider's key and base-URL variables, read from the keys.
    from llmkit import keys

    keys.load_entry_points()
    names = {name for key in keys._table.values() for name in key.key_variables()}
    names |= {key.base_url_env for key in keys._table.values() if key.base_url_env}
    return sorted(names)


@pytest.fixture(autouse=True)
def _no_provider_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's real key (or endpoint) in the environment must never
    # leak into a test.
    for name in _provider_variables():
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def emulator() -> Iterator[OpenAIEmulator]:
    """The OpenAI emulator on 127.0.0.1, stopped after the test."""
    with OpenAIEmulator() as emu:
        yield emu


@pytest.fixture(autouse=True)
def _isolated_registry() -> Iterator[None]:
    # Keys, methods and framings a test registers are gone after it.
    from llmkit.provider import scoped_providers

    with scoped_providers():
        yield


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
