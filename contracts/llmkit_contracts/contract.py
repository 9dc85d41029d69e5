"""``ProviderContract``: the whole contract suite as one pytest base class.

Subclass it in a test module, name the provider, a model and the
protocol its emulator speaks, and pytest runs one test per contract case::

    from llmkit_contracts.contract import ProviderContract
    from acme_llm.emulator import AcmeProtocol

    class TestAcmeContract(ProviderContract):
        key = "acme"
        model = "acme-1"
        emulator = AcmeProtocol

A case whose capability the provider lacks is skipped, naming it. A case
the provider cannot pass is overridden, and the override must say why::

    @pytest.mark.xfail(reason="Acme has no error envelope", strict=True)
    def test_error_404(self, contract_emulator): ...

:meth:`ProviderContract.test_overrides_are_marked` fails for an override
without ``xfail(reason=..., strict=True)``, so a case never disappears
quietly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any, ClassVar, cast

import pytest

from llmkit.provider import (
    ENTRY_POINT_GROUP,
    Capabilities,
    ProviderKey,
    cached_dispatch,
    capabilities,
    prepare,
)
from llmkit_contracts.cases import CASES, Case
from llmkit_contracts.checks import CONTRACT_KEY, missing_capability, run_case
from llmkit_contracts.emulator import Emulator, WireProtocol

__all__ = ["ProviderContract"]

_PROBE: Mapping[str, Any] = {"messages": [{"role": "user", "content": "Hi"}]}


class ProviderContract:
    """Base class: one ``test_<case>`` method per contract case, plus two guards.

    Attributes:
        key: the provider's name or key.
        model: the model to ask for.
        capabilities: what the provider claims; ``None`` asks its
            ``capabilities`` method for ``model``.
        emulator: the :class:`~llmkit_contracts.emulator.WireProtocol` its
            emulator speaks (a class or an instance).
        config: config entries on top of the suite's.
    """

    key: ClassVar[str | ProviderKey]
    model: ClassVar[str]
    capabilities: ClassVar[Capabilities | None] = None
    emulator: ClassVar[type[WireProtocol] | WireProtocol]
    config: ClassVar[Mapping[str, Any]] = {}

    def contract_capabilities(self, contract_emulator: Emulator) -> Capabilities:
        """The capabilities the cases are gated on."""
        if self.capabilities is not None:
            return self.capabilities
        settings = {"api_key": CONTRACT_KEY, "api_base": contract_emulator.base_url}
        key, _, _ = prepare(self.key, self.model, _PROBE, settings, False)
        return cast(Capabilities, capabilities(key, self.model))

    def run_contract_case(self, name: str, contract_emulator: Emulator) -> None:
        """Run the case called ``name``; skip it, naming the capability it lacks."""
        case = next(case for case in CASES if case.name == name)
        caps = self.contract_capabilities(contract_emulator)
        reason = missing_capability(case, caps)
        if reason is not None:
            pytest.skip(reason)
        run_case(
            case,
            self.key,
            contract_emulator,
            model=self.model,
            capabilities=caps,
            config=self.config,
        )

    def test_overrides_are_marked(self) -> None:
        """Every overridden case carries ``xfail(reason=..., strict=True)``."""
        unmarked = []
        for case in CASES:
            name = f"test_{case.name}"
            method = getattr(type(self), name)
            if method is getattr(ProviderContract, name):
                continue
            if not any(_is_strict_xfail(mark) for mark in getattr(method, "pytestmark", [])):
                unmarked.append(name)
        assert not unmarked, (
            f"{', '.join(unmarked)} override contract cases without "
            "@pytest.mark.xfail(reason=..., strict=True); say why the provider cannot pass them"
        )

    def test_found_through_its_entry_point(self) -> None:
        """The provider is installed: its name is in the ``llmkit.providers`` entry points.

        The cases call it by name, but importing the package (for its
        emulator, say) registers the key too; this proves a fresh process
        finds it.
        """
        name = self.key if isinstance(self.key, str) else self.key.name
        found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
        assert found, (
            f"no {ENTRY_POINT_GROUP!r} entry point is named {name!r}; declare it in the "
            f'package\'s pyproject.toml: [project.entry-points."{ENTRY_POINT_GROUP}"]'
        )
        settings = {"api_key": CONTRACT_KEY, "api_base": "http://127.0.0.1"}
        key, _, _ = prepare(self.key, self.model, _PROBE, settings, False)
        assert found[0].load() is type(key), f"the {name!r} entry point names another class"

    def test_dispatch_stays_cached(self, contract_emulator: Emulator) -> None:
        """After loading, the provider's methods resolve once and stay in plum's cache."""
        settings = {"api_key": CONTRACT_KEY, "api_base": contract_emulator.base_url}
        key, _, _ = prepare(self.key, self.model, _PROBE, settings, False)
        self.run_contract_case("plain_text", contract_emulator)
        first = cached_dispatch(key)
        missing = [name for name in ("encode_request", "decode_response") if not first[name]]
        assert not missing, f"after a call, plum's cache holds no {missing} method for {key.name}"
        self.run_contract_case("plain_text", contract_emulator)
        assert cached_dispatch(key) == first, "the second call resolved its methods again"


def _is_strict_xfail(mark: Any) -> bool:
    return bool(
        mark.name == "xfail" and mark.kwargs.get("strict") is True and mark.kwargs.get("reason")
    )


def _case_test(case: Case) -> Callable[[ProviderContract, Emulator], None]:
    def test(self: ProviderContract, contract_emulator: Emulator) -> None:
        self.run_contract_case(case.name, contract_emulator)

    test.__name__ = test.__qualname__ = f"test_{case.name}"
    test.__doc__ = case.doc or f"The contract case {case.name!r}."
    return test


for _case in CASES:
    setattr(ProviderContract, f"test_{_case.name}", _case_test(_case))
del _case
