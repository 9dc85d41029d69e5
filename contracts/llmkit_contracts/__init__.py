"""The reusable contract suite for llmkit providers.

* :mod:`llmkit_contracts.emulator`: the loopback server core and the
  protocol-neutral :class:`Reply`;
* :mod:`llmkit_contracts.emulators`: one wire protocol per provider API;
"""

from llmkit_contracts.emulator import (
    Emulator,
    Received,
    RecordedRequest,
    Reply,
    Turn,
    WireProtocol,
)
from llmkit_contracts.emulators import PROTOCOLS, OpenAIEmulator, OpenAIProtocol

__all__ = [
    "PROTOCOLS",
    "Emulator",
    "OpenAIEmulator",
    "OpenAIProtocol",
    "Received",
    "RecordedRequest",
    "Reply",
    "Turn",
    "WireProtocol",
]
