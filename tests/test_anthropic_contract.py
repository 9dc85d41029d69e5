"""The contract suite over the Anthropic provider, against the strict Anthropic emulator."""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec
import pytest

import llmkit_providers.anthropic  # registers the key before the per-test snapshot
from llmkit.provider import build_call, capabilities, prepare
from llmkit_contracts.cases import CASES
from llmkit_contracts.checks import check_provider
from llmkit_contracts.contract import ProviderContract
from llmkit_contracts.emulator import Emulator
from llmkit_contracts.emulators.anthropic import AnthropicProtocol

THINKING: dict[str, Any] = {"options": {"thinking_budget": 1024}}


class TestAnthropicContract(ProviderContract):
    """A model that thinks, with thinking on: every case runs, the reasoning round trip too.

    The emulator answers a thinking request with a signed thinking block and
    checks the signature when the history sends it back; the cases that force
    a tool or set max_tokens below the budget run without thinking, as the
    codec sends them (Anthropic refuses thinking there).
    """

    key = "anthropic"
    model = "claude-sonnet-4-5"
    emulator = AnthropicProtocol
    config: ClassVar[dict[str, Any]] = THINKING


class TestAnthropicPlainContract(ProviderContract):
    """The same model without thinking options: no thinking block on the wire at all."""

    key = "anthropic"
    model = "claude-sonnet-4-5"
    emulator = AnthropicProtocol


def test_anthropic_capabilities_run_every_case() -> None:
    key = llmkit_providers.anthropic.Anthropic()
    caps = capabilities(key, TestAnthropicContract.model)
    assert all(msgspec.to_builtins(caps).get(flag) for case in CASES for flag in case.needs)


@pytest.mark.parametrize(
    ("model", "skipped"),
    [
        ("claude-sonnet-4-5", set()),
        ("claude-3-5-haiku-latest", {"reasoning_round_trip", "json_schema_output"}),
    ],
)
def test_anthropic_skips_name_missing_capabilities(model: str, skipped: set[str]) -> None:
    with Emulator(AnthropicProtocol()) as emulator:
        report = check_provider("anthropic", emulator, model=model, config=THINKING)
    assert set(report.skipped) == skipped
    assert len(report.passed) + len(report.skipped) == len(CASES)


def test_anthropic_thinking_reaches_the_wire_in_the_contract() -> None:
    # The contract class's option really turns thinking on (and signs the answer).
    key, request, config = prepare(
        "anthropic",
        "claude-sonnet-4-5",
        {"messages": [{"role": "user", "content": "Hi"}]},
        {**THINKING, "api_key": "sk-ant-0000000000", "api_base": "http://127.0.0.1:9"},
        False,
    )
    body = msgspec.json.decode(build_call(key, request, config).body)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert body["max_tokens"] == 1024 + 4096
