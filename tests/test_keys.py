from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any

import httpx
import msgspec
import pytest

import llmkit
from llmkit import core, generics, keys
from llmkit.config import Config
from llmkit.keys import ProviderKey, resolve
from llmkit.types import (
    Capabilities,
    ChatRequest,
    ChatResponse,
    Choice,
    HttpCall,
    HttpResponse,
    Message,
)
from llmkit_providers.openai import OpenAI, OpenAICompatible


class EchoKey(ProviderKey):
    """A third-party style provider defined the way a plug-in would."""

    __slots__ = ()
    name = "testecho"
    default_base_url = "http://echo.invalid"
    api_key_env = None


@generics.encode_request.dispatch
def _encode(key: EchoKey, request: ChatRequest, config: Config) -> Any:
    return HttpCall(url=f"{config.api_base}/echo", body=msgspec.json.encode(request), headers={})


@generics.decode_response.dispatch
def _decode(key: EchoKey, response: HttpResponse, request: ChatRequest) -> Any:
    text = response.body.decode()
    return ChatResponse(choices=[Choice(message=Message(role="assistant", content=text))])


@generics.decode_error.dispatch
def _error(key: EchoKey, response: HttpResponse, request: ChatRequest) -> Any:
    return llmkit.ServiceUnavailableError("echo failed")


@generics.capabilities.dispatch
def _caps(key: EchoKey, model: str) -> Any:
    return Capabilities(streaming=False)


def test_keys_resolve_name_and_key() -> None:
    key = resolve("openai")
    assert isinstance(key, OpenAI)
    assert resolve(key) is key
    assert OpenAI() == OpenAI()
    assert hash(OpenAI()) == hash(OpenAI())
    assert repr(OpenAI()) == "OpenAI()"


def test_keys_unknown_name_suggests_closest() -> None:
    with pytest.raises(llmkit.ProviderNotFoundError) as info:
        resolve("opnai")
    message = str(info.value)
    assert "Did you mean 'openai'?" in message
    assert "Known: " in message


def test_keys_unknown_name_without_match_says_how_to_fix() -> None:
    with pytest.raises(llmkit.ProviderNotFoundError, match="Install the package"):
        resolve("zzzzzzzz")


def test_keys_name_must_be_lowercase() -> None:
    with pytest.raises(ValueError, match="lowercase"):
        type("Bad", (ProviderKey,), {"name": "Bad", "__slots__": ()})


def test_keys_subclass_without_name_is_not_registered() -> None:
    class Tweaked(OpenAI):
        __slots__ = ()

    assert isinstance(resolve("openai"), OpenAI)
    assert type(resolve("openai")) is OpenAI
    assert isinstance(Tweaked(), OpenAICompatible)


def test_keys_builtin_provider_comes_from_entry_point() -> None:
    names = {ep.name for ep in entry_points(group=keys.ENTRY_POINT_GROUP)}
    assert "openai" in names
    assert "openai" in core.list_providers()


def test_keys_broken_entry_point_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = EntryPoint(
        name="brokenprov", value="no_such_module_xyz:Key", group=keys.ENTRY_POINT_GROUP
    )
    monkeypatch.setattr(keys, "_loaded", False)
    monkeypatch.setattr(keys, "_load_errors", {})
    monkeypatch.setattr(keys, "entry_points", lambda group: [broken])
    with pytest.raises(llmkit.ProviderNotFoundError, match="failed to load") as info:
        resolve("brokenprov")
    assert "ModuleNotFoundError" in str(info.value)


def test_keys_third_party_provider_uses_default_completion() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, content=b"echoed")

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        reply = core.completion(
            "testecho",
            "m",
            {"messages": [{"role": "user", "content": "x"}]},
            {"http_client": client},
        )
    assert reply.text == "echoed"
    assert seen == ["http://echo.invalid/echo"]
    assert core.provider_available("testecho") is True
    assert core.provider_info("testecho").capabilities.streaming is False


def test_generics_dispatch_stays_cached_after_all_entry_points_load() -> None:
    keys.load_entry_points()
    functions = generics.generic_functions()
    for name, function in functions.items():
        assert function._resolver.is_faithful, f"{name} lost plum's cache (unfaithful signature)"
    request = ChatRequest(model="m", messages=[Message(role="user", content="x")])
    for _ in range(3):
        generics.encode_request(OpenAI(), request, Config(api_key="k" * 10, api_base="http://h"))
    cache = functions["encode_request"]._cache
    assert (OpenAI, ChatRequest, Config) in cache


def test_keys_plugin_may_resolve_while_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    class Reentrant:
        name = "reentrant"
        value = "x:y"

        def load(self) -> type[ProviderKey]:
            # A plug-in that looks providers up at import must not deadlock.
            assert "openai" in core.list_providers()
            return OpenAI

    monkeypatch.setattr(keys, "_loaded", False)
    monkeypatch.setattr(keys, "entry_points", lambda group: [Reentrant()])
    keys.load_entry_points()
    assert isinstance(resolve("reentrant"), OpenAI)
