"""The contract suite over the Gemini provider, on its strict emulator.

Two models, because the API answers them differently: Gemini 2.5 Flash
thinks but gives function calls no ids and no thought signatures (llmkit
makes the ids up), Gemini 3 Flash gives both (llmkit sends the signatures
back, and the emulator refuses a current-turn call without one). Every
case runs for both; none is skipped (capabilities() claims all the flags
the cases need) and none is marked xfail.
"""

from __future__ import annotations

from typing import Any, ClassVar, cast

import llmkit_providers.gemini  # noqa: F401  registers "gemini" before the per-test snapshot
from llmkit.keys import resolve
from llmkit.provider import Capabilities, capabilities
from llmkit_contracts.cases import CASES
from llmkit_contracts.checks import check_provider
from llmkit_contracts.contract import ProviderContract
from llmkit_contracts.emulators.gemini import GeminiEmulator, GeminiProtocol

# Thoughts are asked for, so reasoning text comes back where the model gives it.
_THINKING: dict[str, Any] = {"options": {"include_thoughts": True, "thinking_budget": 1024}}


class TestGeminiContract(ProviderContract):
    key = "gemini"
    model = "gemini-2.5-flash"
    emulator = GeminiProtocol
    config: ClassVar[dict[str, Any]] = _THINKING


class TestGemini3Contract(ProviderContract):
    """Gemini 3: call ids from the API, thought signatures round-tripped."""

    key = "gemini"
    model = "gemini-3-flash-preview"
    emulator = GeminiProtocol
    config: ClassVar[dict[str, Any]] = {"options": {"include_thoughts": True}}


def test_gemini_contract_runs_every_case() -> None:
    # No case is skipped for these models: each capability a case needs is claimed.
    for contract in (TestGeminiContract, TestGemini3Contract):
        caps = cast(Capabilities, capabilities(resolve("gemini"), contract.model))
        with GeminiEmulator() as emulator:
            report = check_provider(
                "gemini", emulator, model=contract.model, capabilities=caps, config=contract.config
            )
        assert report.skipped == {}
        assert set(report.passed) == {case.name for case in CASES}
