"""The contract suite over the native Ollama provider, on its strict emulator.

Three servers, because they answer differently: a current one (tool calls
come with ids), one from before 0.12.10 (no ids: llmkit makes them up and
pairs the results by ``tool_name`` too), and a current one asked to think
(``think: true``). Every case runs for each; none is skipped (a local
server runs whatever model it is given, so capabilities() claims every
flag the API can carry) and none is marked xfail: ``tool_choice``
``required`` and named, which Ollama has no field for, are forced through
``format``.
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
    emulator = OllamaProtocol


class TestOllamaLegacyContract(ProviderContract):
    """A server before 0.12.10: tool calls without ids, results paired by name too."""

    key = "ollama"
    model = "llama3.2"
    emulator = OllamaProtocol(tool_call_ids=False)


class TestOllamaThinkContract(ProviderContract):
    """``think`` switched on through the provider options: reasoning comes back."""

    key = "ollama"
    model = "qwen3:8b"
    emulator = OllamaProtocol({"qwen3:8b": ("tools", "thinking", "vision")})
    config: ClassVar[dict[str, Any]] = {"options": {"think": True}}


COVERED: dict[str, list[type[ProviderContract]]] = {
    "ollama": [TestOllamaContract, TestOllamaLegacyContract, TestOllamaThinkContract],
}


@pytest.mark.parametrize("contract", COVERED["ollama"], ids=lambda c: c.__name__)
def test_ollama_contract_runs_every_case(contract: type[ProviderContract]) -> None:
    caps = cast(Capabilities, capabilities(resolve("ollama"), contract.model))
    protocol = contract.emulator
    with Emulator(protocol() if isinstance(protocol, type) else protocol) as emulator:
        report = check_provider(
            "ollama", emulator, model=contract.model, capabilities=caps, config=contract.config
        )
    assert report.skipped == {}
    assert set(report.passed) == {case.name for case in CASES}


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
