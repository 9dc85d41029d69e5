"""One wire protocol per module: what each provider's emulator speaks.

Each module defines a :class:`~llmkit_contracts.emulator.WireProtocol`
subclass; :data:`PROTOCOLS` maps protocol names to them.
"""

from llmkit_contracts.emulator import WireProtocol
from llmkit_contracts.emulators.openai import OpenAIEmulator, OpenAIProtocol

__all__ = ["PROTOCOLS", "OpenAIEmulator", "OpenAIProtocol"]

PROTOCOLS: dict[str, type[WireProtocol]] = {OpenAIProtocol.name: OpenAIProtocol}
