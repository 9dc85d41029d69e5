"""The contract suite over the Mistral provider, against the strict Mistral emulator.

Three models, because capabilities differ by model: Magistral always
thinks (and reads images), Mistral Small thinks with
``reasoning_effort: "high"`` (an option the contract class sets), and
Codestral does neither, so its image and reasoning cases are skipped, each
naming the capability ``capabilities()`` reports as missing. No case is
marked xfail.
"""

from __future__ import annotations

from typing import Any, ClassVar, cast

import msgspec
import pytest

import llmkit_providers.mistral  # noqa: F401  registers "mistral" before the per-test snapshot
from llmkit.keys import resolve
from llmkit.provider import Capabilities, build_call, capabilities, prepare
from llmkit_contracts.cases import CASES
from llmkit_contracts.checks import check_provider
from llmkit_contracts.contract import ProviderContract
from llmkit_contracts.emulators.mistral import MistralEmulator, MistralProtocol

_EFFORT: dict[str, Any] = {"options": {"reasoning_effort": "high"}}


class TestMistralContract(ProviderContract):
    """Magistral: reasoning (thinking chunks round-tripped) and images; every case runs."""

    key = "mistral"
    model = "magistral-medium-latest"
    emulator = MistralProtocol


class TestMistralSmallContract(ProviderContract):
    """Mistral Small with adjustable reasoning switched on through the provider options."""

    key = "mistral"
    model = "mistral-small-latest"
    emulator = MistralProtocol
    config: ClassVar[dict[str, Any]] = _EFFORT


class TestCodestralContract(ProviderContract):
    """A model without vision or reasoning: those two cases skip, naming the capability."""

    key = "mistral"
    model = "codestral-latest"
    emulator = MistralProtocol


COVERED: dict[str, list[type[ProviderContract]]] = {
    "mistral": [TestMistralContract, TestMistralSmallContract, TestCodestralContract],
}


@pytest.mark.parametrize(
    ("model", "skipped"),
    [
        ("magistral-medium-latest", set()),
        ("mistral-small-latest", set()),
        ("codestral-latest", {"image_input", "reasoning_round_trip"}),
    ],
)
def test_mistral_skips_name_missing_capabilities(model: str, skipped: set[str]) -> None:
    caps = cast(Capabilities, capabilities(resolve("mistral"), model))
    with MistralEmulator() as emulator:
        report = check_provider("mistral", emulator, model=model, config=_EFFORT)
    assert set(report.skipped) == skipped
    assert set(report.passed) == {case.name for case in CASES} - skipped
    for reason in report.skipped.values():
        flag = reason.split("'")[1]
        assert getattr(caps, flag) is False


def test_mistral_reasoning_round_trip_sends_the_thinking_back() -> None:
    # The reasoning case's second request carries the first answer's thinking
    # chunk on the assistant message, which the emulator checks.
    with MistralEmulator() as emulator:
        check_provider(
            "mistral",
            emulator,
            model="magistral-medium-latest",
            cases=[case for case in CASES if case.name == "reasoning_round_trip"],
        )
        sent = [request.json for request in emulator.requests]
    history = sent[-1]["messages"]
    assert history[1]["role"] == "assistant"
    assert history[1]["content"] == [
        {
            "type": "thinking",
            "thinking": [{"type": "text", "text": "Six times seven is forty-two."}],
        },
        {"type": "text", "text": "42"},
    ]


def test_mistral_effort_option_reaches_the_wire_in_the_contract() -> None:
    key, request, config = prepare(
        "mistral",
        "mistral-small-latest",
        {"messages": [{"role": "user", "content": "Hi"}]},
        {**_EFFORT, "api_key": "sk-0000000000", "api_base": "http://127.0.0.1:9/v1"},
        False,
    )
    body = msgspec.json.decode(build_call(key, request, config).body)
    assert body["reasoning_effort"] == "high"
