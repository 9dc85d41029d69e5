"""The reusable contract suite for llmkit providers.

This release ships the provider emulators (:mod:`llmkit_contracts.emulator`):
real HTTP servers on 127.0.0.1 that tests and ``llmkit demo`` script. The
case catalogue and ``check_provider`` land with the full contract suite.
"""

__all__: list[str] = []
