"""Endpoints registered at run time: ``llmkit.provider.register_openai_compatible``.

A user points llmkit at any OpenAI-compatible endpoint without writing a
class; after that the name works everywhere a provider name does. Each
test's registration is undone when it ends (tests/conftest.py scopes the
registry), so names can be reused across tests.
"""

from __future__ import annotations

from typing import Any

import pytest

import llmkit
import llmkit.provider
import llmkit_providers.compatible as compatible
from llmkit import core
from llmkit.keys import resolve
from llmkit.provider import Capabilities, cached_dispatch
from llmkit_contracts import OpenAIEmulator, Reply, check_provider
from llmkit_providers.openai import OpenAICompatible

HI = {"messages": [{"role": "user", "content": "Hi"}]}


def test_register_is_reachable_from_the_provider_sdk() -> None:
    assert llmkit.provider.register_openai_compatible is compatible.register_openai_compatible
    assert "register_openai_compatible" in llmkit.provider.__all__
    with pytest.raises(AttributeError, match="no_such_thing"):
        llmkit.provider.no_such_thing  # noqa: B018


def test_registered_endpoint_works_end_to_end(
    emulator: OpenAIEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The user's own endpoint: a name, a base URL, a key variable, a header.
    monkeypatch.setenv("CORP_KEY", "corp-secret-0123")
    key = llmkit.provider.register_openai_compatible(
        "corp", api_base=emulator.base_url, api_key_env="CORP_KEY", headers={"X-Team": "search"}
    )
    assert resolve("corp") is key
    assert isinstance(key, OpenAICompatible)
    emulator.enqueue(Reply.text("Hello from corp"), Reply.text("Streamed from corp"))
    answer = core.completion("corp", "corp-model-1", HI)
    streamed = core.stream("corp", "corp-model-1", HI).collect()
    first, second = emulator.requests
    assert answer.text == "Hello from corp"
    assert streamed.text == "Streamed from corp"
    for sent in (first, second):
        assert sent.path == "/v1/chat/completions"
        assert sent.headers["authorization"] == "Bearer corp-secret-0123"
        assert sent.headers["x-team"] == "search"
    assert "corp" in core.list_providers()
    assert core.provider_info("corp").default_base_url == emulator.base_url


def test_registered_endpoint_passes_the_contract_suite(emulator: OpenAIEmulator) -> None:
    llmkit.provider.register_openai_compatible("corp-llm", api_base=emulator.base_url)
    report = check_provider("corp-llm", emulator, model="gpt-4o-mini")
    assert set(report.skipped) == {"reasoning_round_trip"}


def test_registered_endpoint_names_its_key_variable_when_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CORP_KEY", raising=False)
    llmkit.provider.register_openai_compatible(
        "corp", api_base="https://llm.corp.example/v1", api_key_env="CORP_KEY"
    )
    with pytest.raises(llmkit.AuthenticationError, match="CORP_KEY"):
        core.completion("corp", "m", HI)


def test_registered_endpoint_without_a_key_variable_sends_no_key(
    emulator: OpenAIEmulator,
) -> None:
    llmkit.provider.register_openai_compatible("corp", api_base=emulator.base_url)
    emulator.strict = False  # the OpenAI emulator wants a key; this endpoint does not
    emulator.enqueue(Reply.text("open"))
    assert core.completion("corp", "m", HI).text == "open"
    assert "authorization" not in emulator.requests[0].headers


def test_registered_capabilities_and_quirks_are_data(emulator: OpenAIEmulator) -> None:
    caps = Capabilities(streaming=True, tools=True, reasoning=True)
    llmkit.provider.register_openai_compatible(
        "thinker",
        api_base=emulator.base_url,
        capabilities=caps,
        max_completion_tokens_models=("o",),
        reasoning_fields=("reasoning_content",),
    )
    assert core.provider_info("thinker").capabilities == caps
    emulator.enqueue(Reply.text("ok"))
    core.completion("thinker", "o9", {**HI, "max_tokens": 4}, {"api_key": "k-0000"})
    assert emulator.requests[0].json["max_completion_tokens"] == 4


@pytest.mark.parametrize("name", ["openai", "groq", "deepseek"])
def test_registering_a_known_name_is_refused(name: str) -> None:
    before = resolve(name)
    with pytest.raises(llmkit.InvalidRequestError, match=f"{name!r} exists already"):
        llmkit.provider.register_openai_compatible(name, api_base="https://x.example/v1")
    assert resolve(name) is before


def test_registering_twice_is_refused_unless_replaced(emulator: OpenAIEmulator) -> None:
    llmkit.provider.register_openai_compatible("corp", api_base="https://old.example/v1")
    with pytest.raises(llmkit.InvalidRequestError, match="replace=True"):
        llmkit.provider.register_openai_compatible("corp", api_base=emulator.base_url)
    new = llmkit.provider.register_openai_compatible(
        "corp", api_base=emulator.base_url, replace=True
    )
    assert resolve("corp") is new
    emulator.enqueue(Reply.text("new endpoint"))
    assert core.completion("corp", "m", HI, {"api_key": "k-0000"}).text == "new endpoint"


def test_replace_true_may_shadow_a_builtin_for_this_process(emulator: OpenAIEmulator) -> None:
    llmkit.provider.register_openai_compatible("groq", api_base=emulator.base_url, replace=True)
    emulator.enqueue(Reply.text("proxied"))
    assert core.completion("groq", "m", HI, {"api_key": "k-0000"}).text == "proxied"


@pytest.mark.parametrize(
    "name",
    ["Corp", "corp llm", "", "córp", "-corp", "corp/llm", "CORP", 42, None],
    ids=["upper", "space", "empty", "non-ascii", "dash-first", "slash", "all-upper", "int", "none"],
)
def test_a_name_that_is_not_lowercase_ascii_is_refused(name: Any) -> None:
    with pytest.raises(llmkit.InvalidRequestError, match="lowercase ASCII"):
        llmkit.provider.register_openai_compatible(name, api_base="https://x.example/v1")


@pytest.mark.parametrize(
    ("api_base", "match"),
    [
        ("ftp://files.example/v1", "http:// or https://"),
        ("llm.corp.example/v1", "http:// or https://"),
        ("https://alice:s3cret@llm.corp.example/v1", "holds credentials"),
        ("https://alice@llm.corp.example/v1", "holds credentials"),
        ("https://llm.corp.example/v1?key=1", "query"),
        (42, "string URL"),
    ],
    ids=["ftp", "no-scheme", "user-password", "user", "query", "not-a-string"],
)
def test_an_api_base_that_is_not_plain_http_is_refused(api_base: Any, match: str) -> None:
    with pytest.raises(llmkit.InvalidRequestError, match=match) as info:
        llmkit.provider.register_openai_compatible("corp", api_base=api_base)
    assert "s3cret" not in str(info.value)
    with pytest.raises(llmkit.ProviderNotFoundError):
        resolve("corp")


def test_bad_headers_and_variables_are_refused() -> None:
    with pytest.raises(llmkit.InvalidRequestError, match="header"):
        llmkit.provider.register_openai_compatible(
            "corp", api_base="https://x.example/v1", headers={"X-Bad": "line\nbreak"}
        )
    with pytest.raises(llmkit.InvalidRequestError, match="environment variable"):
        llmkit.provider.register_openai_compatible(
            "corp", api_base="https://x.example/v1", api_key_env="NOT A NAME"
        )


def test_registering_keeps_dispatch_cached(emulator: OpenAIEmulator) -> None:
    # A run-time endpoint registers no method: plum's cache for the keys
    # already in use stays as it was, and the new key's entries stay put.
    emulator.enqueue(Reply.text("a"), Reply.text("b"), Reply.text("c"), Reply.text("d"))
    config = {"api_key": "k-0000", "api_base": emulator.base_url}
    openai = resolve("openai")
    core.completion("openai", "gpt-4o-mini", HI, config)
    before = cached_dispatch(openai)
    key = llmkit.provider.register_openai_compatible("corp", api_base=emulator.base_url)
    assert cached_dispatch(openai) == before
    core.completion("corp", "m", HI, config)
    first = cached_dispatch(key)
    assert first["encode_request"]
    assert first["decode_response"]
    core.completion("corp", "m", HI, config)
    llmkit.provider.register_openai_compatible("corp-two", api_base=emulator.base_url)
    core.completion("openai", "gpt-4o-mini", HI, config)
    assert cached_dispatch(key) == first
    assert cached_dispatch(openai) == before
