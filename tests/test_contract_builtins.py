"""The contract suite over every built-in provider, and the suite's own teeth."""

from collections.abc import Iterator
from importlib.metadata import entry_points
from typing import Any

import msgspec
import pytest
import test_anthropic_contract as anthropic_contract
import test_compatible_contract as compatible_contract
import test_gemini_contract as gemini_contract
import test_mistral_contract as mistral_contract
import test_ollama_contract as ollama_contract

from llmkit.keys import resolve
from llmkit.provider import (
    ENTRY_POINT_GROUP,
    Capabilities,
    ChatRequest,
    ChatResponse,
    HttpResponse,
    SSEEvent,
    StreamChunk,
    StreamState,
    capabilities,
    decode_event,
    decode_response,
    scoped_providers,
)
from llmkit_contracts import Emulator, OpenAIEmulator, OpenAIProtocol
from llmkit_contracts.cases import CASES, case_named
from llmkit_contracts.checks import check_errors, check_provider, check_stream
from llmkit_contracts.contract import ProviderContract
from llmkit_providers.openai import OpenAICompatible


class TestOpenAIContract(ProviderContract):
    key = "openai"
    model = "gpt-4o-mini"
    emulator = OpenAIProtocol


class TestOpenAIReasoningContract(ProviderContract):
    """A reasoning model: max_tokens is renamed, reasoning text round-trips."""

    key = "openai"
    model = "o3-mini"
    emulator = OpenAIProtocol


# Every built-in provider and the contract classes that cover it (the
# other modules are imported whole, so their classes are not collected
# here again); a new built-in fails test_every_builtin_is_covered until
# it is listed.
COVERED: dict[str, list[type[ProviderContract]]] = {
    **compatible_contract.COVERED,
    "anthropic": [
        anthropic_contract.TestAnthropicContract,
        anthropic_contract.TestAnthropicPlainContract,
    ],
    "gemini": [gemini_contract.TestGeminiContract, gemini_contract.TestGemini3Contract],
    **mistral_contract.COVERED,
    **ollama_contract.COVERED,
    "openai": [TestOpenAIContract, TestOpenAIReasoningContract],
}


def test_every_builtin_is_covered() -> None:
    builtins = {
        entry.name
        for entry in entry_points(group=ENTRY_POINT_GROUP)
        if entry.value.startswith("llmkit_providers.")
    }
    assert {"anthropic", "gemini", "openai"} <= builtins
    missing = sorted(builtins - set(COVERED))
    assert not missing, f"add a ProviderContract class for {missing}"
    for name, contracts in COVERED.items():
        assert all(contract.key == name for contract in contracts), name


@pytest.mark.parametrize("name", sorted(COVERED))
def test_every_skip_is_a_capability_the_provider_reports_missing(name: str) -> None:
    # No unexplained skip: across the models (and options) chosen for a
    # provider, every case runs, or every model skips it for a capability
    # that capabilities() reports as missing for that model.
    key = resolve(name)
    ran: set[str] = set()
    for contract in COVERED[name]:
        caps = capabilities(key, contract.model)
        protocol = contract.emulator() if isinstance(contract.emulator, type) else contract.emulator
        with Emulator(protocol) as emulator:
            report = check_provider(name, emulator, model=contract.model, config=contract.config)
        for case_name, reason in report.skipped.items():
            flag = reason.split("'")[1]
            assert flag in case_named(case_name).needs or flag == "streaming", reason
            assert getattr(caps, flag) is False, reason
        ran |= set(report.passed)
        assert set(report.passed) | set(report.skipped) == {case.name for case in CASES}
    # The built-ins with every capability run every case somewhere.
    if name in ("anthropic", "gemini", "openai", "openrouter"):
        assert ran == {case.name for case in CASES}


@pytest.fixture
def derived() -> Iterator[str]:
    # A derived key, as the OpenAI-compatible family defines them: a
    # different name and path, the same codec.
    with scoped_providers():

        class Relay(OpenAICompatible):
            __slots__ = ()
            name = "contract-relay"
            default_base_url = "https://relay.example/v1"
            api_key_env = "RELAY_API_KEY"

        yield Relay.name


def test_a_derived_key_passes_the_suite(derived: str) -> None:
    with OpenAIEmulator() as emulator:
        report = check_provider(derived, emulator, model="gpt-4o-mini")
    # Relay declares capabilities through OpenAICompatible, like OpenAI.
    assert "tool_calls_parallel" in report.passed
    assert set(report.skipped) == {"reasoning_round_trip"}


def test_check_stream_and_check_errors_select_their_cases() -> None:
    with OpenAIEmulator() as emulator:
        streams = check_stream("openai", emulator, model="gpt-4o-mini")
        errors = check_errors("openai", emulator, model="gpt-4o-mini")
    assert set(streams.passed) == {
        "stream_grammar",
        "stream_disconnect",
        "stream_error_event",
        "stream_early_close",
    }
    assert "error_429_retry_after" in errors.passed
    assert "read_timeout" in errors.passed
    assert "stream_disconnect" in errors.passed
    assert "plain_text" not in errors.passed


# --- a codec that breaks three rules fails, naming each case ---------------------------


def _mangle_chunk(chunk: StreamChunk) -> StreamChunk | None:
    if chunk.usage is not None and not chunk.choices:
        return None  # usage dropped
    choices = []
    for choice in chunk.choices:
        delta = choice.delta
        if delta.tool_calls:
            calls = [
                msgspec.structs.replace(
                    call,
                    function=msgspec.structs.replace(call.function, arguments="}")
                    if call.function and call.function.arguments
                    else call.function,
                )
                for call in delta.tool_calls
            ]
            delta = msgspec.structs.replace(delta, tool_calls=calls)
        finish = "stop" if choice.finish_reason == "length" else choice.finish_reason
        choices.append(msgspec.structs.replace(choice, delta=delta, finish_reason=finish))
    return msgspec.structs.replace(chunk, choices=choices, usage=None)


@pytest.fixture
def broken() -> Iterator[str]:
    with scoped_providers():

        class Broken(OpenAICompatible):
            __slots__ = ()
            name = "contract-broken"
            default_base_url = "https://broken.example/v1"
            api_key_env = "BROKEN_API_KEY"

        plain = decode_response.invoke(OpenAICompatible, HttpResponse, ChatRequest)
        event = decode_event.invoke(OpenAICompatible, SSEEvent, StreamState)

        @decode_response.dispatch
        def _response(key: Broken, response: HttpResponse, request: ChatRequest) -> Any:
            answer: ChatResponse = plain(key, response, request)
            choices = []
            for choice in answer.choices:
                message = choice.message
                if message.tool_calls:
                    calls = [
                        msgspec.structs.replace(
                            call,
                            function=msgspec.structs.replace(call.function, arguments="{bad"),
                        )
                        for call in message.tool_calls
                    ]
                    message = msgspec.structs.replace(message, tool_calls=calls)
                finish = "stop" if choice.finish_reason == "length" else choice.finish_reason
                choices.append(
                    msgspec.structs.replace(choice, message=message, finish_reason=finish)
                )
            return msgspec.structs.replace(answer, choices=choices, usage=None)

        @decode_event.dispatch
        def _event(key: Broken, item: SSEEvent, state: StreamState) -> Any:
            chunk = event(key, item, state)
            return chunk if not isinstance(chunk, StreamChunk) else _mangle_chunk(chunk)

        yield Broken.name


def test_a_broken_codec_fails_naming_each_case(broken: str) -> None:
    with OpenAIEmulator() as emulator, pytest.raises(AssertionError) as failed:
        check_provider(broken, emulator, model="gpt-4o-mini")
    message = str(failed.value)
    # The wrong finish reason, the dropped usage and the mangled arguments.
    assert "- max_tokens_length: [sync] finish_reason is 'stop', expected 'length'" in message
    assert "- usage_present: [sync] usage is None, expected (123, 45)" in message
    assert "- tool_call_single: [sync] tool_calls is" in message
    # Cases the breakage does not touch still pass.
    assert "- system_prompt:" not in message
    assert "- error_401:" not in message


def test_case_names_are_unique_and_found() -> None:
    names = [case.name for case in CASES]
    assert len(names) == len(set(names))
    assert case_named("plain_text").kind == "answer"
    with pytest.raises(KeyError, match="no contract case named"):
        case_named("nope")


# --- the ProviderContract guards ----------------------------------------------------------


class _Unmarked(ProviderContract):
    key = "openai"
    model = "gpt-4o-mini"
    emulator = OpenAIProtocol

    def test_plain_text(self, contract_emulator: Any) -> None:
        pass  # an override that would hide the case


class _Marked(ProviderContract):
    key = "openai"
    model = "gpt-4o-mini"
    emulator = OpenAIProtocol

    @pytest.mark.xfail(reason="the provider cannot", strict=True)
    def test_plain_text(self, contract_emulator: Any) -> None:
        raise AssertionError("expected to fail")


class _NotStrict(ProviderContract):
    key = "openai"
    model = "gpt-4o-mini"
    emulator = OpenAIProtocol

    @pytest.mark.xfail(reason="the provider cannot")
    def test_error_404(self, contract_emulator: Any) -> None:
        raise AssertionError("expected to fail")


def test_an_unmarked_override_fails_the_guard() -> None:
    with pytest.raises(AssertionError, match="test_plain_text override contract cases"):
        _Unmarked().test_overrides_are_marked()
    with pytest.raises(AssertionError, match="test_error_404 override"):
        _NotStrict().test_overrides_are_marked()
    _Marked().test_overrides_are_marked()
    TestOpenAIContract().test_overrides_are_marked()


def test_a_missing_capability_skips_naming_it() -> None:
    class NoTools(ProviderContract):
        key = "openai"
        model = "gpt-4o-mini"
        emulator = OpenAIProtocol
        capabilities = Capabilities(streaming=False)

    with OpenAIEmulator() as emulator:
        with pytest.raises(pytest.skip.Exception, match="needs capability 'tools'"):
            NoTools().run_contract_case("tool_call_single", emulator)
        with pytest.raises(pytest.skip.Exception, match="needs capability 'streaming'"):
            NoTools().run_contract_case("stream_grammar", emulator)
        # A case that streams in some modes runs the others.
        NoTools().run_contract_case("plain_text", emulator)
    assert [r.json["stream"] for r in emulator.requests if r.json.get("stream")] == []
