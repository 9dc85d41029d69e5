"""One wire protocol per module: what each provider's emulator speaks.

Each module defines a :class:`~llmkit_contracts.emulator.WireProtocol`
subclass; :data:`PROTOCOLS` maps protocol names to them.
"""

from llmkit_contracts.emulator import WireProtocol
from llmkit_contracts.emulators.anthropic import AnthropicEmulator, AnthropicProtocol
from llmkit_contracts.emulators.gemini import GeminiEmulator, GeminiProtocol
from llmkit_contracts.emulators.openai import OpenAIEmulator, OpenAIProtocol

__all__ = [
    "PROTOCOLS",
    "AnthropicEmulator",
    "AnthropicProtocol",
    "GeminiEmulator",
    "GeminiProtocol",
    "OpenAIEmulator",
    "OpenAIProtocol",
]

PROTOCOLS: dict[str, type[WireProtocol]] = {
    protocol.name: protocol for protocol in (AnthropicProtocol, GeminiProtocol, OpenAIProtocol)
}
