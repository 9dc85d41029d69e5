"""Acme through llmkit's contract suite, against its own emulator."""

from acme_llm.emulator import AcmeProtocol

from llmkit_contracts.contract import ProviderContract


class TestAcmeContract(ProviderContract):
    key = "acme"
    model = "acme-1"
    emulator = AcmeProtocol
