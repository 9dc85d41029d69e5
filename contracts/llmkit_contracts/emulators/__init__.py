"""One wire protocol per module: what each provider's emulator speaks.

Each module defines a :class:`~llmkit_contracts.emulator.WireProtocol`
subclass; :data:`PROTOCOLS` maps every built-in provider name to the
protocol its emulator speaks (the OpenAI-compatible family by flavour).
"""

from llmkit_contracts.emulator import WireProtocol
from llmkit_contracts.emulators.anthropic import AnthropicEmulator, AnthropicProtocol
from llmkit_contracts.emulators.azure import AzureEmulator, AzureProtocol
from llmkit_contracts.emulators.compatible import FLAVOURS, CompatibleProtocol
from llmkit_contracts.emulators.gemini import GeminiEmulator, GeminiProtocol
from llmkit_contracts.emulators.mistral import MistralEmulator, MistralProtocol
from llmkit_contracts.emulators.ollama import OllamaEmulator, OllamaProtocol
from llmkit_contracts.emulators.openai import OpenAIEmulator, OpenAIProtocol

__all__ = [
    "FLAVOURS",
    "PROTOCOLS",
    "AnthropicEmulator",
    "AnthropicProtocol",
    "AzureEmulator",
    "AzureProtocol",
    "CompatibleProtocol",
    "GeminiEmulator",
    "GeminiProtocol",
    "MistralEmulator",
    "MistralProtocol",
    "OllamaEmulator",
    "OllamaProtocol",
    "OpenAIEmulator",
    "OpenAIProtocol",
]

PROTOCOLS: dict[str, type[WireProtocol]] = {
    **{protocol.name: protocol for protocol in (AnthropicProtocol, GeminiProtocol, OpenAIProtocol)},
    AzureProtocol.name: AzureProtocol,
    MistralProtocol.name: MistralProtocol,
    OllamaProtocol.name: OllamaProtocol,
    **FLAVOURS,
}
