"""The contract suite over every key of the OpenAI-compatible family and Azure.

Each key runs against its own emulator flavour
(``llmkit_contracts.emulators.compatible`` and ``.azure``), so the cases
exercise what is the key's own: its path, where its reasoning text arrives
and goes back, how its stream errors look. The models are ones whose
capabilities switch on every case the provider supports; a skip names a
capability the provider lacks (DeepSeek has no image input, Perplexity no
function tools, ...).
"""

from __future__ import annotations

from typing import Any, cast

import pytest

import llmkit_providers.azure
import llmkit_providers.compatible  # registers the family by name
from llmkit.keys import resolve
from llmkit.provider import Capabilities, cached_dispatch, capabilities
from llmkit_contracts import Emulator, check_provider, missing_capability
from llmkit_contracts.cases import CASES
from llmkit_contracts.contract import ProviderContract
from llmkit_contracts.emulators import compatible as flavours
from llmkit_contracts.emulators.azure import AzureProtocol


class TestOpenRouterContract(ProviderContract):
    key = "openrouter"
    model = "openai/o3"
    emulator = flavours.OpenRouterProtocol


class TestDeepSeekContract(ProviderContract):
    key = "deepseek"
    model = "deepseek-reasoner"
    emulator = flavours.DeepSeekProtocol


class TestMoonshotContract(ProviderContract):
    key = "moonshot"
    model = "kimi-k2.5"
    emulator = flavours.MoonshotProtocol


class TestKimiContract(ProviderContract):
    key = "kimi"
    model = "kimi-k2.5"
    emulator = flavours.MoonshotProtocol


class TestZaiContract(ProviderContract):
    key = "zai"
    model = "glm-4.5v"
    emulator = flavours.ZaiProtocol


class TestGroqContract(ProviderContract):
    key = "groq"
    model = "openai/gpt-oss-120b"
    emulator = flavours.GroqProtocol


class TestGroqVisionContract(ProviderContract):
    """A vision model (and no reasoning): the image case runs here."""

    key = "groq"
    model = "meta-llama/llama-4-scout-17b-16e-instruct"
    emulator = flavours.GroqProtocol


class TestTogetherContract(ProviderContract):
    key = "together"
    model = "deepseek-ai/DeepSeek-R1"
    emulator = flavours.TogetherProtocol


class TestFireworksContract(ProviderContract):
    key = "fireworks"
    model = "accounts/fireworks/models/deepseek-r1"
    emulator = flavours.FireworksProtocol


class TestXAIContract(ProviderContract):
    key = "xai"
    model = "grok-4"
    emulator = flavours.XAIProtocol


class TestCerebrasContract(ProviderContract):
    key = "cerebras"
    model = "gpt-oss-120b"
    emulator = flavours.CerebrasProtocol


class TestPerplexityContract(ProviderContract):
    key = "perplexity"
    model = "sonar-pro"
    emulator = flavours.PerplexityProtocol


class TestVLLMContract(ProviderContract):
    key = "vllm"
    model = "Qwen/Qwen3-8B"
    emulator = flavours.VLLMProtocol


class TestLMStudioContract(ProviderContract):
    key = "lmstudio"
    model = "qwen/qwen3-8b"
    emulator = flavours.LMStudioProtocol


class TestLlamaCppContract(ProviderContract):
    key = "llamacpp"
    model = "qwen3-8b"
    emulator = flavours.LlamaCppProtocol


class TestOllamaOpenAIContract(ProviderContract):
    key = "ollama_openai"
    model = "qwen3:8b"
    emulator = flavours.OllamaOpenAIProtocol


class TestAzureContract(ProviderContract):
    key = "azure"
    model = "gpt-4o-mini"
    emulator = AzureProtocol


class TestAzureReasoningContract(ProviderContract):
    """An o-series deployment: max_tokens goes as max_completion_tokens, reasoning round-trips."""

    key = "azure"
    model = "o3-mini"
    emulator = AzureProtocol


COVERED: dict[str, list[type[ProviderContract]]] = {
    "openrouter": [TestOpenRouterContract],
    "deepseek": [TestDeepSeekContract],
    "moonshot": [TestMoonshotContract],
    "kimi": [TestKimiContract],
    "zai": [TestZaiContract],
    "groq": [TestGroqContract, TestGroqVisionContract],
    "together": [TestTogetherContract],
    "fireworks": [TestFireworksContract],
    "xai": [TestXAIContract],
    "cerebras": [TestCerebrasContract],
    "perplexity": [TestPerplexityContract],
    "vllm": [TestVLLMContract],
    "lmstudio": [TestLMStudioContract],
    "llamacpp": [TestLlamaCppContract],
    "ollama_openai": [TestOllamaOpenAIContract],
    "azure": [TestAzureContract, TestAzureReasoningContract],
}

# What each provider lacks, and so skips; everything else must run.
EXPECTED_SKIPS = {
    "deepseek": {"image_input", "json_schema_output"},
    "moonshot": {"json_schema_output"},
    "kimi": {"json_schema_output"},
    "zai": {"json_schema_output"},
    "cerebras": {"image_input"},
    "perplexity": {
        "json_mode",
        "reasoning_round_trip",
        "tool_arguments_streamed",
        "tool_call_single",
        "tool_calls_parallel",
        "tool_choice_auto",
        "tool_choice_named",
        "tool_choice_none",
        "tool_choice_required",
        "tool_no_arguments",
        "tool_result_round_trip",
    },
}


def test_every_key_of_the_family_is_covered() -> None:
    assert set(COVERED) == {*flavours.FLAVOURS, "azure"}


@pytest.mark.parametrize("name", sorted(COVERED))
def test_skips_are_only_what_the_provider_lacks(name: str) -> None:
    # The contract classes skip a case for a capability capabilities()
    # reports as missing; across a provider's models, that is only what the
    # provider lacks (Azure's o-series model runs the reasoning case).
    key = resolve(name)
    skipped_everywhere = {case.name for case in CASES}
    for contract in COVERED[name]:
        caps = cast(Capabilities, capabilities(key, contract.model))
        skipped_everywhere &= {
            case.name for case in CASES if missing_capability(case, caps) is not None
        }
    assert skipped_everywhere == EXPECTED_SKIPS.get(name, set())


def _protocol(contract: type[ProviderContract]) -> Any:
    protocol = contract.emulator
    return protocol() if isinstance(protocol, type) else protocol


def test_dispatch_stays_cached_with_every_key_loaded() -> None:
    # Every key of the family and Azure, each called twice: their methods
    # resolve once and stay in plum's cache, whatever the others do.
    keys = {name: resolve(name) for name in COVERED}
    counts = {}
    for name, contracts in COVERED.items():
        with Emulator(_protocol(contracts[0])) as emulator:
            check_provider(name, emulator, model=contracts[0].model, cases=CASES[:1])
        counts[name] = cached_dispatch(keys[name])
        assert counts[name]["encode_request"], name
        assert counts[name]["decode_response"], name
    for name, contracts in COVERED.items():
        with Emulator(_protocol(contracts[0])) as emulator:
            check_provider(name, emulator, model=contracts[0].model, cases=CASES[:1])
    assert {name: cached_dispatch(key) for name, key in keys.items()} == counts
    assert llmkit_providers.azure.AzureOpenAI() == keys["azure"]
