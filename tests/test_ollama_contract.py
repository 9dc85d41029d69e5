"""The contract suite over the native Ollama provider, on its strict emulator.

Five servers, because they answer differently: a current one (tool calls
come with ids), one from before 0.12.10 (no ids: llmkit makes them up and
pairs the results by ``tool_name`` too), one asked to think (``think:
true``), and models of other families: a vision model without tools, and
one that has tools, vision and thinking. Each emulator pulls only its
model, with what Ollama's library says that model can do, so a case the
model cannot pass is refused by the emulator as the server would refuse it.

capabilities() is per model family: a case is skipped exactly where the
model lacks its capability, and across the five every case runs. None is
marked xfail: ``tool_choice`` ``required`` and named, which Ollama has no
field for, are forced through ``format``.
"""

from __future__ import annotations

from typing import Any, ClassVar, cast

import pytest

import llmkit_providers.ollama  # registers "ollama" before the per-test snapshot
from llmkit.keys import resolve
from llmkit.provider import Capabilities, capabilities
from llmkit_contracts.cases import CASES
from llmkit_contracts.checks import check_provider
from llmkit_contracts.contract import ProviderContract
from llmkit_contracts.emulator import Emulator
from llmkit_contracts.emulators.ollama import OllamaProtocol

assert llmkit_providers.ollama.Ollama.name == "ollama"


class TestOllamaContract(ProviderContract):
    key = "ollama"
    model = "qwen3"
    emulator = OllamaProtocol({"qwen3": ("tools", "thinking")})


class TestOllamaLegacyContract(ProviderContract):
    """A server before 0.12.10: tool calls without ids, results paired by name too."""

    key = "ollama"
    model = "llama3.2"
    emulator = OllamaProtocol({"llama3.2": ("tools",)}, tool_call_ids=False)


class TestOllamaThinkContract(ProviderContract):
    """``think`` switched on through the provider options: reasoning comes back."""

    key = "ollama"
    model = "qwen3:8b"
    emulator = OllamaProtocol({"qwen3:8b": ("tools", "thinking")})
    config: ClassVar[dict[str, Any]] = {"options": {"think": True}}


class TestOllamaVisionContract(ProviderContract):
    """A vision model without tools (gemma3): images go as base64 beside the text."""

    key = "ollama"
    model = "gemma3:4b"
    emulator = OllamaProtocol({"gemma3:4b": ("vision",)})


class TestOllamaAllRoundContract(ProviderContract):
    """A model with tools, vision and thinking (qwen3-vl): every case runs."""

    key = "ollama"
    model = "qwen3-vl:8b"
    emulator = OllamaProtocol({"qwen3-vl:8b": ("tools", "vision", "thinking")})


COVERED: dict[str, list[type[ProviderContract]]] = {
    "ollama": [
        TestOllamaContract,
        TestOllamaLegacyContract,
        TestOllamaThinkContract,
        TestOllamaVisionContract,
        TestOllamaAllRoundContract,
    ],
}
# Capability flag -> what `ollama show` lists for a model that has it.
_ABILITY = {"tools": "tools", "vision": "vision", "reasoning": "thinking"}


def _missing(caps: Capabilities) -> set[str]:
    """The cases a model with ``caps`` cannot run."""
    return {case.name for case in CASES if any(not getattr(caps, flag) for flag in case.needs)}


@pytest.mark.parametrize("contract", COVERED["ollama"], ids=lambda c: c.__name__)
def test_ollama_contract_skips_exactly_what_the_model_lacks(
    contract: type[ProviderContract],
) -> None:
    caps = cast(Capabilities, capabilities(resolve("ollama"), contract.model))
    protocol = contract.emulator
    assert isinstance(protocol, OllamaProtocol)
    # The emulator's model can do what capabilities() says, no more, no less.
    assert protocol.models is not None
    [abilities] = protocol.models.values()
    assert {name for flag, name in _ABILITY.items() if getattr(caps, flag)} == set(abilities)
    with Emulator(protocol) as emulator:
        report = check_provider(
            "ollama", emulator, model=contract.model, capabilities=caps, config=contract.config
        )
    assert set(report.skipped) == _missing(caps)
    assert set(report.passed) == {case.name for case in CASES} - _missing(caps)


def test_every_case_runs_on_some_ollama_model() -> None:
    ran: set[str] = set()
    for contract in COVERED["ollama"]:
        caps = cast(Capabilities, capabilities(resolve("ollama"), contract.model))
        ran |= {case.name for case in CASES} - _missing(caps)
    assert ran == {case.name for case in CASES}
    assert _missing(cast(Capabilities, capabilities(resolve("ollama"), "qwen3-vl:8b"))) == set()


def test_a_model_that_cannot_think_refuses_think_true() -> None:
    # The emulator's per-model capabilities are live: think on a model
    # without thinking is the server's 400, which the suite would report.
    protocol = OllamaProtocol({"llama3.2": ("tools", "vision")})
    with Emulator(protocol) as emulator, pytest.raises(AssertionError, match="support thinking"):
        check_provider(
            "ollama",
            emulator,
            model="llama3.2",
            config={"options": {"think": True}},
            cases=[case for case in CASES if case.name == "plain_text"],
        )
