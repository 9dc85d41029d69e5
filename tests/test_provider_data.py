"""What varies by provider is data on the key: auth, request ids, secrets, options."""

from __future__ import annotations

import json
import time
from types import MappingProxyType
from typing import Any

import httpx
import msgspec
import pytest

import llmkit
from llmkit import core
from llmkit.config import Config, auth_headers, resolve_config
from llmkit_providers.openai import OpenAICompatible

HI = {"messages": [{"role": "user", "content": "Hi"}]}
OK = {
    "id": "c1",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}],
}


class Region(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    region: str = "eu"
    api_version: str | None = None


class Keyed(OpenAICompatible):
    """A compatible provider that takes its key in x-api-key, bare."""

    __slots__ = ()
    name = "testkeyed"
    default_base_url = "https://keyed.example/v1"
    api_key_env = "TESTKEYED_API_KEY"
    auth_header = "x-api-key"
    auth_prefix = ""
    request_id_headers = ("x-keyed-request",)
    secret_headers = frozenset({"x-keyed-session"})
    options_type = Region


class Keyless(OpenAICompatible):
    __slots__ = ()
    name = "testkeyless"
    default_base_url = "http://127.0.0.1:9/v1"
    auth_header = None


def _client(seen: list[httpx.Request], reply: httpx.Response | None = None) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return reply if reply is not None else httpx.Response(200, json=OK)

    return httpx.Client(transport=httpx.MockTransport(handler))


def test_provider_auth_header_and_prefix_come_from_the_key() -> None:
    seen: list[httpx.Request] = []
    core.completion(Keyed(), "m", HI, {"api_key": "k-0123456789", "http_client": _client(seen)})
    assert seen[0].headers["x-api-key"] == "k-0123456789"
    assert "authorization" not in seen[0].headers


def test_provider_without_auth_header_sends_no_key() -> None:
    config = resolve_config(Keyless(), Config(api_key="k-0123456789"))
    assert auth_headers(Keyless(), config) == {}


def test_provider_request_id_and_secret_headers_come_from_the_key() -> None:
    seen: list[httpx.Request] = []
    reply = httpx.Response(
        401,
        json={"error": {"message": "bad session sess-0123456789abcdef"}},
        headers={"x-keyed-request": "rq-7", "x-request-id": "not-this-one"},
    )
    config = {
        "api_key": "k-0123456789",
        "http_client": _client(seen, reply),
        "headers": {"x-keyed-session": "sess-0123456789abcdef"},
    }
    with pytest.raises(llmkit.AuthenticationError) as info:
        core.completion(Keyed(), "m", HI, config)
    assert info.value.request_id == "rq-7"
    assert "sess-0123456789abcdef" not in str(info.value)


def test_provider_token_provider_is_called_and_kept_until_expiry() -> None:
    calls: list[int] = []

    def token() -> tuple[str, float]:
        calls.append(1)
        return f"tok-{len(calls):010d}", time.time() + 3600

    seen: list[httpx.Request] = []
    config = {"token_provider": token, "http_client": _client(seen)}
    core.completion("openai", "m", HI, config)
    core.completion("openai", "m", HI, config)
    assert calls == [1]
    assert seen[1].headers["authorization"] == "Bearer tok-0000000001"


def test_provider_token_provider_refreshes_an_expiring_token() -> None:
    calls: list[int] = []

    def token() -> tuple[str, float]:
        calls.append(1)
        return f"tok-{len(calls):010d}", time.time() + 30  # inside the 60 s margin

    seen: list[httpx.Request] = []
    config = {"token_provider": token, "http_client": _client(seen)}
    core.completion("openai", "m", HI, config)
    core.completion("openai", "m", HI, config)
    assert len(calls) == 2
    assert seen[1].headers["authorization"] == "Bearer tok-0000000002"


@pytest.mark.parametrize(
    ("token", "fragment"),
    [
        (lambda: 5, "must return a string"),
        (lambda: ("t", float("nan")), "must return a string"),
        (lambda: 1 / 0, "raised ZeroDivisionError"),
    ],
    ids=["int", "nan-expiry", "raises"],
)
def test_provider_token_provider_failures_are_authentication_errors(
    token: Any, fragment: str
) -> None:
    seen: list[httpx.Request] = []
    with pytest.raises(llmkit.AuthenticationError, match=fragment) as info:
        core.completion("openai", "m", HI, {"token_provider": token, "http_client": _client(seen)})
    assert seen == []
    assert info.value.__cause__ is None


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"token_provider": "sk-not-callable"}, "must be a callable"),
        ({"token_provider": lambda: "t", "api_key": "k"}, "both api_key and token_provider"),
        ({"options": ["region"]}, "options must be a dict"),
    ],
    ids=["not-callable", "both", "options-list"],
)
def test_provider_config_checks_new_fields(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(llmkit.InvalidRequestError, match=fragment):
        Config(**kwargs)


def test_provider_options_are_converted_to_the_keys_struct() -> None:
    config = resolve_config(Keyed(), Config(api_key="k", options={"region": "us"}))
    assert config.options == Region(region="us")
    same = Region(region="ap")
    assert resolve_config(Keyed(), Config(api_key="k", options=same)).options is same


@pytest.mark.parametrize(
    ("key", "options", "fragment"),
    [
        (Keyed(), {"regoin": "us"}, r"regoin.*its options are: region, api_version"),
        (Keyed(), {"region": 5}, r"region"),
        (Keyless(), {"region": "us"}, "takes no provider options"),
    ],
    ids=["unknown", "wrong-type", "none-taken"],
)
def test_provider_bad_options_refused_before_sending(
    key: llmkit.ProviderKey, options: dict[str, Any], fragment: str
) -> None:
    seen: list[httpx.Request] = []
    config = {"api_key": "k-0123456789", "options": options, "http_client": _client(seen)}
    with pytest.raises(llmkit.InvalidRequestError, match=fragment):
        core.completion(key, "m", HI, config)
    assert seen == []


def test_provider_capabilities_fallback_agrees_with_struct_defaults() -> None:
    class Bare(llmkit.ProviderKey):
        name = "testbare"

    assert core.provider_info(Bare()).capabilities == llmkit.Capabilities()
    assert not any(msgspec.structs.astuple(llmkit.Capabilities()))


@pytest.mark.parametrize(
    ("model", "reasoning"),
    [("o3-mini", True), ("gpt-5", True), ("gpt-4o-mini", False), ("", False)],
)
def test_provider_capabilities_depend_on_the_model(model: str, reasoning: bool) -> None:
    caps = core.provider_info("openai", model).capabilities
    assert caps.reasoning is reasoning
    assert caps.streaming
    assert caps.tools


class Quirky(OpenAICompatible):
    __slots__ = ()
    name = "testquirky"
    default_base_url = "https://quirky.example/api"
    api_key_env = "TESTQUIRKY_API_KEY"
    chat_path = "/v2/chat"
    max_completion_tokens_models = ("think-",)
    drop_fields = frozenset({"seed"})
    rename_fields = MappingProxyType({"user": "end_user_id"})


def test_provider_compatible_quirks_are_class_data() -> None:
    seen: list[httpx.Request] = []
    request = {**HI, "seed": 7, "user": "u1", "max_tokens": 5}
    core.completion(
        Quirky(), "think-1", request, {"api_key": "k-0123", "http_client": _client(seen)}
    )
    body = json.loads(seen[0].content)
    assert str(seen[0].url) == "https://quirky.example/api/v2/chat"
    assert "seed" not in body
    assert body["end_user_id"] == "u1"
    assert "user" not in body
    assert body["max_completion_tokens"] == 5
    assert "max_tokens" not in body
    assert core.provider_info(Quirky(), "think-1").capabilities.reasoning


@pytest.mark.parametrize("streaming", [False, True], ids=["plain", "stream"])
def test_provider_stream_options_are_the_codecs_business(streaming: bool) -> None:
    seen: list[httpx.Request] = []
    sse = b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"x"}}]}\n\ndata: [DONE]\n\n'
    reply = httpx.Response(200, content=sse, headers={"content-type": "text/event-stream"})
    config = {"api_key": "k-0123", "http_client": _client(seen, None if not streaming else reply)}
    request = {**HI, "stream_options": {"include_usage": False}}
    if streaming:
        core.stream("openai", "m", request, config).collect()
    else:
        core.completion("openai", "m", request, config)
    body = json.loads(seen[0].content)
    assert body.get("stream_options") == ({"include_usage": False} if streaming else None)


def test_provider_reasoning_and_opaque_data_are_assembled_from_deltas() -> None:
    from llmkit.streaming import accumulate

    chunks = [
        llmkit.StreamChunk(
            choices=[llmkit.types.ChunkChoice(delta=llmkit.types.Delta(reasoning="Let me "))]
        ),
        llmkit.StreamChunk(
            choices=[
                llmkit.types.ChunkChoice(
                    delta=llmkit.types.Delta(
                        reasoning="think.", provider_data={"anthropic": {"signature": "sig-1"}}
                    )
                )
            ]
        ),
        llmkit.StreamChunk(
            choices=[llmkit.types.ChunkChoice(delta=llmkit.types.Delta(content="42"))]
        ),
    ]
    message = accumulate(chunks).choices[0].message
    assert message.reasoning == "Let me think."
    assert message.provider_data == {"anthropic": {"signature": "sig-1"}}
    assert message.content == "42"


def test_provider_foreign_reasoning_in_history_is_not_sent_to_openai() -> None:
    seen: list[httpx.Request] = []
    earlier = llmkit.Message(
        role="assistant",
        content="42",
        reasoning="Let me think.",
        provider_data={"anthropic": {"signature": "sig-1", "redacted": "b64=="}},
    )
    history = [
        llmkit.Message(role="user", content="?"),
        earlier,
        llmkit.Message(role="user", content="Why?"),
    ]
    request = llmkit.ChatRequest(model="gpt-4o-mini", messages=history)
    core.completion(
        "openai", "gpt-4o-mini", request, {"api_key": "k-0123", "http_client": _client(seen)}
    )
    sent = json.loads(seen[0].content)["messages"]
    assert sent[1] == {"role": "assistant", "content": "42"}
    # The history itself keeps them for the provider that wants them back.
    assert history[1].provider_data == {"anthropic": {"signature": "sig-1", "redacted": "b64=="}}
    dict_history = msgspec.to_builtins(history)
    seen.clear()
    core.completion(
        "openai",
        "m",
        {"messages": dict_history},
        {"api_key": "k-0123", "http_client": _client(seen)},
    )
    assert json.loads(seen[0].content)["messages"][1] == {"role": "assistant", "content": "42"}


def test_provider_usage_has_cache_write_tokens() -> None:
    usage = msgspec.json.decode(
        b'{"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 6}}',
        type=llmkit.Usage,
    )
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cache_write_tokens == 6


def test_provider_scope_removes_keys_methods_and_framings() -> None:
    from llmkit import generics, keys
    from llmkit._framing import SSEDecoder, framing
    from llmkit.provider import (
        ChatRequest,
        Config,
        HttpCall,
        ProviderKey,
        SSEEvent,
        encode_request,
        register_framing,
        scoped_providers,
    )

    with scoped_providers():

        class Passing(ProviderKey):
            name = "testpassing"

        def encode(key: Passing, request: ChatRequest, config: Config) -> Any:
            return HttpCall(url="http://127.0.0.1:9", body=b"", headers={})

        encode.__annotations__ = {"key": Passing, "request": ChatRequest, "config": Config}
        encode_request.dispatch(encode)
        register_framing("test-scoped", SSEDecoder, SSEEvent)
        assert keys.resolve("testpassing") == Passing()
        assert generics.build_call(Passing(), ChatRequest(model="m", messages=[]), Config())
    with pytest.raises(llmkit.ProviderNotFoundError):
        keys.resolve("testpassing")
    assert framing("test-scoped") is None
    with pytest.raises(llmkit.LLMError, match="no encode_request method"):
        generics.build_call(Passing(), ChatRequest(model="m", messages=[]), Config())
    # What was there before the scope still works.
    assert core.provider_info("openai").capabilities.streaming


# --- found by review of the provider SDK --------------------------------------------------


class Signed(OpenAICompatible):
    __slots__ = ()
    name = "testsigned"
    default_base_url = "https://signed.example/v1"
    api_key_env = "TESTSIGNED_API_KEY"
    auth_header = "x-api-key"
    auth_prefix = ""
    secret_headers = frozenset({"x-sig"})


def test_provider_secret_headers_set_by_the_codec_are_scrubbed() -> None:
    from llmkit.provider import encode_request
    from llmkit_providers.openai import encode_openai_request

    def encode(key: Signed, request: Any, config: Config) -> Any:
        call = encode_openai_request(key, request, config)
        call.headers["x-sig"] = "SIGNATURE-SECRET-123456"
        return call

    encode.__annotations__ = {"key": Signed, "request": llmkit.ChatRequest, "config": Config}
    encode_request.dispatch(encode)

    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": {"message": json.dumps(dict(request.headers))}})

    client = httpx.Client(transport=httpx.MockTransport(echo))
    with pytest.raises(llmkit.AuthenticationError) as info:
        core.completion(Signed(), "m", HI, {"api_key": "KEYSECRET-abcdef", "http_client": client})
    assert "SIGNATURE-SECRET-123456" not in str(info.value)
    assert "KEYSECRET-abcdef" not in str(info.value)


def test_provider_scope_keeps_entry_points_loaded_inside_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from llmkit import keys
    from llmkit.provider import scoped_providers

    monkeypatch.setattr(keys, "_loaded", False)
    with scoped_providers():
        core.list_providers()
    assert core.validate_request("openai", {**HI, "model": "m"}).model == "m"


def test_provider_options_struct_for_a_provider_without_options() -> None:
    class Other(msgspec.Struct):
        a: int = 1

    with pytest.raises(llmkit.InvalidRequestError, match="takes no provider options"):
        resolve_config(Keyless(), Config(options=Other()))
    with pytest.raises(llmkit.InvalidRequestError, match="surrogate"):
        resolve_config(Keyed(), Config(api_key="k", options={"\ud800": 1}))


def test_provider_config_repr_hides_options_and_token_provider() -> None:
    shown = repr(Config(options={"aws_secret": "AKIA-SECRET-1"}, token_provider=lambda: "t"))
    assert "AKIA-SECRET-1" not in shown
    assert "options=<dict>" in shown


def test_provider_token_cache_holds_for_bound_methods() -> None:
    class Credential:
        calls = 0

        def get(self) -> tuple[str, float]:
            self.calls += 1
            return "tok-0123456789", time.time() + 3600

    cred = Credential()
    for _ in range(3):
        resolve_config(llmkit.OpenAI(), Config(token_provider=cred.get))
    assert cred.calls == 1


def test_provider_token_provider_exception_is_not_kept() -> None:
    def failing() -> str:
        raise RuntimeError("client_secret=hunter2-secret")

    with pytest.raises(llmkit.AuthenticationError) as info:
        resolve_config(llmkit.OpenAI(), Config(token_provider=failing))
    assert info.value.__cause__ is None
    assert info.value.__context__ is None


def test_provider_framer_failure_is_a_stream_error() -> None:
    from llmkit.provider import (
        EventPipeline,
        StreamState,
        register_framing,
        unregister_framing,
    )

    class Strict:
        def feed(self, chunk: bytes) -> list[bytes]:
            return []

        def flush(self) -> list[bytes]:
            raise ValueError("partial frame at end of body")

    register_framing("test-strict", Strict, bytes)
    try:
        pipeline = EventPipeline("test-strict", lambda e, s: None, StreamState(provider="p"))
        assert pipeline.feed(b"abc") == []
        assert pipeline.finish() == []
        assert isinstance(pipeline.error, llmkit.StreamInterruptedError)
        assert "could not be cut into events" in str(pipeline.error)
    finally:
        unregister_framing("test-strict")


def test_provider_decode_event_returning_junk_is_an_llm_error() -> None:
    from llmkit.provider import EventPipeline, StreamState

    junk: Any = lambda event, state: {"not": "a chunk"}  # noqa: E731 - a broken codec
    pipeline = EventPipeline("sse", junk, StreamState(provider="p"))
    assert pipeline.feed(b"data: x\n\n") == []
    assert isinstance(pipeline.error, llmkit.LLMError)
    assert "not a StreamChunk" in str(pipeline.error)


def test_provider_accumulator_results_do_not_share_provider_data() -> None:
    from llmkit.provider import Accumulator, ChunkChoice, Delta, StreamChunk

    folded = Accumulator()
    folded.add(StreamChunk(choices=[ChunkChoice(delta=Delta(provider_data={"a": {"x": 1}}))]))
    first = folded.result()
    folded.add(StreamChunk(choices=[ChunkChoice(delta=Delta(provider_data={"b": {"y": 2}}))]))
    assert first.choices[0].message.provider_data == {"a": {"x": 1}}


def test_provider_malformed_token_names_the_token_provider() -> None:
    with pytest.raises(llmkit.AuthenticationError, match="check the token_provider") as info:
        resolve_config(llmkit.OpenAI(), Config(token_provider=lambda: "tok en-0123456789"))
    assert "OPENAI_API_KEY" not in str(info.value)


@pytest.mark.parametrize(
    ("bad", "found"),
    [(float("nan"), "NaN"), (float("inf"), "inf"), ("x\ud800", "surrogate")],
)
def test_provider_data_is_checked_like_free_form_json(bad: object, found: str) -> None:
    from llmkit import core

    history = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello", "provider_data": {"anthropic": {"x": [bad]}}},
        {"role": "user", "content": "Again"},
    ]
    with pytest.raises(llmkit.InvalidRequestError, match=r"messages\[1\]\.provider_data") as err:
        core.validate_request("openai", {"model": "m", "messages": history})
    assert found.lower() in str(err.value).lower() or "surrogate" in str(err.value)
