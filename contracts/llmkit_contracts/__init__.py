"""The reusable contract suite for llmkit providers.

* :mod:`llmkit_contracts.emulator`: the loopback server core and the
  protocol-neutral :class:`Reply`;
* :mod:`llmkit_contracts.emulators`: one wire protocol per provider API;
* :mod:`llmkit_contracts.cases`: the contract cases, as data;
* :mod:`llmkit_contracts.checks`: ``check_provider``, ``check_stream`` and
  ``check_errors``, which need no test framework;
* :mod:`llmkit_contracts.replay`: recorded traffic replayed through a
  provider, split anywhere and cut short;
* :mod:`llmkit_contracts.contract`: ``ProviderContract``, the suite as a
  pytest base class (with the ``pytest11`` plugin in
  :mod:`llmkit_contracts.plugin`); imported on its own, since it needs pytest.
"""

from llmkit_contracts.cases import CASES, Case, Expect, case_named
from llmkit_contracts.checks import (
    ContractReport,
    check_errors,
    check_provider,
    check_stream,
    missing_capability,
    run_case,
)
from llmkit_contracts.emulator import (
    Emulator,
    Received,
    RecordedRequest,
    Reply,
    Turn,
    WireProtocol,
)
from llmkit_contracts.emulators import (
    PROTOCOLS,
    AnthropicEmulator,
    AnthropicProtocol,
    AzureEmulator,
    AzureProtocol,
    CompatibleProtocol,
    GeminiEmulator,
    GeminiProtocol,
    MistralEmulator,
    MistralProtocol,
    OllamaEmulator,
    OllamaProtocol,
    OpenAIEmulator,
    OpenAIProtocol,
)
from llmkit_contracts.replay import (
    CUTS,
    RefusedReplayError,
    Replay,
    Streamed,
    outline,
    recorded_body,
    split_anywhere,
    truncations,
)

__all__ = [
    "CASES",
    "CUTS",
    "PROTOCOLS",
    "AnthropicEmulator",
    "AnthropicProtocol",
    "AzureEmulator",
    "AzureProtocol",
    "Case",
    "CompatibleProtocol",
    "ContractReport",
    "Emulator",
    "Expect",
    "GeminiEmulator",
    "GeminiProtocol",
    "MistralEmulator",
    "MistralProtocol",
    "OllamaEmulator",
    "OllamaProtocol",
    "OpenAIEmulator",
    "OpenAIProtocol",
    "Received",
    "RecordedRequest",
    "RefusedReplayError",
    "Replay",
    "Reply",
    "Streamed",
    "Turn",
    "WireProtocol",
    "case_named",
    "check_errors",
    "check_provider",
    "check_stream",
    "missing_capability",
    "outline",
    "recorded_body",
    "run_case",
    "split_anywhere",
    "truncations",
]
