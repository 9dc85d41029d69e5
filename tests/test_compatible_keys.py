"""The OpenAI-compatible family: each key's data, and each quirk on its emulator flavour.

The contract suite (test_compatible_contract.py) checks that every key
works; this module checks what makes each one different: names, base
URLs and key variables as the issue's table gives them, the ``kimi``
alias, regional endpoints and other provider options, keyless local
servers, and the quirks that are data (reasoning fields, provider data,
usage elsewhere, in-stream errors) against the emulator flavour that has
them.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, cast

import httpx
import msgspec
import pytest

import llmkit
import llmkit_providers.ollama
from llmkit import core
from llmkit.keys import resolve
from llmkit.provider import HttpCall, encode_request, prepare
from llmkit_contracts import Emulator, Reply
from llmkit_contracts.emulators import compatible as flavours
from llmkit_providers import compatible
from llmkit_providers.openai import OpenAI, OpenAICompatible

HI = {"messages": [{"role": "user", "content": "Hi"}]}
KEY = "sk-family-0123456789"

# The table: name -> (base URL, key variables).
TABLE = {
    "openrouter": ("https://openrouter.ai/api/v1", ("OPENROUTER_API_KEY",)),
    "deepseek": ("https://api.deepseek.com", ("DEEPSEEK_API_KEY",)),
    "moonshot": ("https://api.moonshot.ai/v1", ("MOONSHOT_API_KEY", "KIMI_API_KEY")),
    "kimi": ("https://api.moonshot.ai/v1", ("MOONSHOT_API_KEY", "KIMI_API_KEY")),
    "zai": ("https://api.z.ai/api/paas/v4", ("ZAI_API_KEY",)),
    "groq": ("https://api.groq.com/openai/v1", ("GROQ_API_KEY",)),
    "together": ("https://api.together.xyz/v1", ("TOGETHER_API_KEY",)),
    "fireworks": ("https://api.fireworks.ai/inference/v1", ("FIREWORKS_API_KEY",)),
    "xai": ("https://api.x.ai/v1", ("XAI_API_KEY",)),
    "cerebras": ("https://api.cerebras.ai/v1", ("CEREBRAS_API_KEY",)),
    "perplexity": ("https://api.perplexity.ai", ("PERPLEXITY_API_KEY",)),
    "vllm": ("http://localhost:8000/v1", ()),
    "lmstudio": ("http://localhost:1234/v1", ()),
    "llamacpp": ("http://localhost:8080/v1", ()),
    "ollama_openai": ("http://localhost:11434/v1", ()),
}


@pytest.fixture(autouse=True)
def _no_family_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    # The keys are not entry points yet, so conftest does not know their variables.
    for _, variables in TABLE.values():
        for name in variables:
            monkeypatch.delenv(name, raising=False)
    for name in ("VLLM_API_KEY", "OLLAMA_HOST"):
        monkeypatch.delenv(name, raising=False)


def _call(name: str, model: str, request: Any = None, **config: Any) -> HttpCall:
    """The HTTP call llmkit would make, without making it."""
    settings = {"api_key": KEY, **config}
    key, req, cfg = prepare(
        name, model, request or HI, settings, bool((request or {}).get("stream"))
    )
    return cast(HttpCall, encode_request(key, req, cfg))


def _body(call: HttpCall) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(call.body))


# --- the table --------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TABLE))
def test_family_key_has_the_tables_base_url_and_variables(name: str) -> None:
    base, variables = TABLE[name]
    key = resolve(name)
    assert isinstance(key, OpenAICompatible)
    assert key.name == name
    assert key.default_base_url == base
    assert key.key_variables() == variables
    call = _call(name, "m")
    assert call.url == base + "/chat/completions"
    assert call.headers["Authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize("name", sorted(TABLE))
def test_family_key_answers_core_completion_by_name(name: str) -> None:
    # core.completion(name, ...) works for every name of the table.
    protocol = flavours.FLAVOURS[name]()
    with Emulator(protocol) as emulator:
        emulator.enqueue(Reply.text("Hello from " + name))
        answer = core.completion(
            name, "some-model", HI, {"api_key": KEY, "api_base": emulator.base_url}
        )
        [sent] = emulator.requests
    assert answer.text == "Hello from " + name
    assert sent.path == protocol.chat_path


@pytest.mark.parametrize("name", ["moonshot", "groq", "openrouter"])
def test_hosted_key_without_a_key_names_its_variables(name: str) -> None:
    with pytest.raises(llmkit.AuthenticationError) as info:
        core.completion(name, "m", HI)
    for variable in TABLE[name][1]:
        assert variable in str(info.value)


def test_moonshot_reads_kimi_api_key_when_moonshot_api_key_is_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KIMI_API_KEY", "sk-kimi-0000")
    _, _, config = prepare("moonshot", "kimi-k2", HI, None, False)
    assert config.api_key == "sk-kimi-0000"
    monkeypatch.setenv("MOONSHOT_API_KEY", "sk-moon-0000")
    _, _, config = prepare("kimi", "kimi-k2", HI, None, False)
    assert config.api_key == "sk-moon-0000"


def test_kimi_is_an_alias_of_moonshot() -> None:
    # A name-only subclass: the same data and methods, its own name in errors.
    kimi, moonshot = resolve("kimi"), resolve("moonshot")
    assert isinstance(kimi, compatible.Moonshot)
    assert type(kimi) is compatible.Kimi
    for field in ("default_base_url", "reasoning_fields", "reasoning_echo", "options_type"):
        assert getattr(kimi, field) == getattr(moonshot, field)
    assert core.provider_info("kimi").capabilities == core.provider_info("moonshot").capabilities
    with pytest.raises(llmkit.AuthenticationError) as info:
        core.completion("kimi", "kimi-k2", HI)
    assert info.value.provider == "kimi"


@pytest.mark.parametrize("name", ["vllm", "lmstudio", "llamacpp", "ollama_openai"])
def test_local_server_needs_no_key(name: str) -> None:
    protocol = flavours.FLAVOURS[name]()
    with Emulator(protocol) as emulator:
        emulator.enqueue(Reply.text("local"))
        answer = core.completion(name, "m", HI, {"api_base": emulator.base_url})
        [sent] = emulator.requests
    assert answer.text == "local"
    assert "authorization" not in sent.headers


def test_vllm_sends_vllm_api_key_when_it_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_API_KEY", "vllm-secret-0000")
    with Emulator(flavours.VLLMProtocol()) as emulator:
        emulator.enqueue(Reply.text("ok"), Reply.error(401, message="bad key vllm-secret-0000"))
        core.completion("vllm", "m", HI, {"api_base": emulator.base_url})
        with pytest.raises(llmkit.AuthenticationError) as info:
            core.completion("vllm", "m", HI, {"api_base": emulator.base_url})
        first, second = emulator.requests
    assert first.headers["authorization"] == "Bearer vllm-secret-0000"
    assert second.headers["authorization"] == "Bearer vllm-secret-0000"
    # The key read by the codec is scrubbed like any other.
    assert "vllm-secret-0000" not in str(info.value)
    # api_key= wins over the variable.
    call = _call("vllm", "m", api_key="explicit-0000")
    assert call.headers["Authorization"] == "Bearer explicit-0000"


def test_vllm_refuses_an_unusable_vllm_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_API_KEY", "two words")
    with pytest.raises(llmkit.AuthenticationError, match="VLLM_API_KEY"):
        core.completion("vllm", "m", HI, {"api_base": "http://127.0.0.1:9/v1"})


def test_ollama_openai_follows_ollama_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "gpu-box:11434")
    _, _, config = prepare("ollama_openai", "qwen3", HI, None, False)
    assert config.api_base == "http://gpu-box:11434/v1"


@pytest.mark.parametrize(
    ("value", "base"),
    [
        ("gpu-box", "http://gpu-box:11434"),
        ("0.0.0.0", "http://127.0.0.1:11434"),
        (":8080", "http://127.0.0.1:8080"),
        ("::", "http://[::1]:11434"),
        ("https://ollama.example.com/ollama/", "https://ollama.example.com:443/ollama"),
    ],
)
def test_ollama_openai_reads_ollama_host_as_ollama_does(
    monkeypatch: pytest.MonkeyPatch, value: str, base: str
) -> None:
    # One reading for both keys: "gpu-box" is port 11434 for each, not 80.
    monkeypatch.setenv("OLLAMA_HOST", value)
    _, _, native = prepare("ollama", "qwen3", HI, None, False)
    _, _, openai = prepare("ollama_openai", "qwen3", HI, None, False)
    assert native.api_base == base
    assert openai.api_base == base + "/v1"


@pytest.mark.parametrize("value", ["http://u:p@gpu-box:1", "[::1", "gpu-box?x=1"])
def test_ollama_openai_refuses_the_ollama_host_forms_ollama_refuses(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", value)
    with pytest.raises(llmkit.InvalidRequestError, match="OLLAMA_HOST") as raised:
        prepare("ollama_openai", "qwen3", HI, None, False)
    assert raised.value.provider == "ollama_openai"
    assert ":p@" not in str(raised.value)


def test_ollama_openai_says_how_to_start_ollama_when_nothing_answers() -> None:
    native = llmkit_providers.ollama.Ollama
    assert compatible.OllamaOpenAI.connect_hint == native.connect_hint

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    with (
        httpx.Client(transport=httpx.MockTransport(refuse)) as client,
        pytest.raises(llmkit.APIConnectionError, match="`ollama serve`"),
    ):
        core.completion("ollama_openai", "qwen3", HI, {"retries": 0, "http_client": client})


# --- provider options: regions, thinking, OpenRouter's routing and headers ------


@pytest.mark.parametrize(
    ("name", "region", "base"),
    [
        ("moonshot", "cn", "https://api.moonshot.cn/v1"),
        ("moonshot", "global", "https://api.moonshot.ai/v1"),
        ("kimi", "cn", "https://api.moonshot.cn/v1"),
        ("zai", "cn", "https://open.bigmodel.cn/api/paas/v4"),
        ("zai", "global", "https://api.z.ai/api/paas/v4"),
    ],
)
def test_region_option_picks_the_regional_endpoint(name: str, region: str, base: str) -> None:
    call = _call(name, "m", options={"region": region})
    assert call.url == base + "/chat/completions"


def test_region_option_gives_way_to_an_explicit_api_base() -> None:
    call = _call("zai", "m", options={"region": "cn"}, api_base="https://proxy.example/v4")
    assert call.url == "https://proxy.example/v4/chat/completions"


def test_unknown_region_fails_before_any_call() -> None:
    with pytest.raises(llmkit.InvalidRequestError, match=r"no region 'eu'.*cn, global"):
        core.completion("moonshot", "m", HI, {"api_key": KEY, "options": {"region": "eu"}})


@pytest.mark.parametrize("name", ["zai", "moonshot"])
def test_thinking_option_is_sent(name: str) -> None:
    call = _call(name, "glm-4.6", options={"thinking": {"type": "disabled"}})
    assert _body(call)["thinking"] == {"type": "disabled"}
    assert "thinking" not in _body(_call(name, "glm-4.6"))


def test_unknown_option_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(llmkit.InvalidRequestError, match="region, thinking"):
        _call("zai", "m", options={"budget": 3})
    with pytest.raises(llmkit.InvalidRequestError, match="takes no provider options"):
        _call("groq", "m", options={"region": "cn"})


def test_openrouter_options_become_headers_and_routing_fields() -> None:
    options = {
        "http_referer": "https://myapp.example",
        "x_title": "My App",
        "provider": {"order": ["anthropic", "openai"], "allow_fallbacks": False},
        "models": ["anthropic/claude-sonnet-4.5", "openai/gpt-4o"],
        "route": "fallback",
        "transforms": ["middle-out"],
        "reasoning": {"effort": "high"},
        "usage": {"include": True},
    }
    with Emulator(flavours.OpenRouterProtocol()) as emulator:
        emulator.enqueue(Reply.text("routed"))
        core.completion(
            "openrouter",
            "openai/gpt-4o",
            HI,
            {"api_key": KEY, "api_base": emulator.base_url, "options": options},
        )
        [sent] = emulator.requests
    assert sent.headers["http-referer"] == "https://myapp.example"
    assert sent.headers["x-title"] == "My App"
    for field in ("provider", "models", "route", "transforms", "reasoning", "usage"):
        assert sent.json[field] == options[field]


def test_openrouter_header_options_must_fit_a_header() -> None:
    with pytest.raises(llmkit.InvalidRequestError, match="x_title"):
        _call("openrouter", "m", options={"x_title": "line\nbreak"})


def test_openrouter_sends_max_completion_tokens_for_openai_reasoning_models() -> None:
    assert _body(_call("openrouter", "openai/o3", {**HI, "max_tokens": 9})) == {
        "model": "openai/o3",
        "messages": HI["messages"],
        "max_completion_tokens": 9,
    }
    assert _body(_call("openrouter", "openai/gpt-4o", {**HI, "max_tokens": 9}))["max_tokens"] == 9


# --- reasoning: where it arrives, where it goes back -------------------------------


def _history(reasoning: str) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "Six times seven?"},
        {"role": "assistant", "content": "42", "reasoning": reasoning},
        {"role": "user", "content": "Doubled?"},
    ]


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("deepseek", "reasoning_content"),
        ("moonshot", "reasoning_content"),
        ("zai", "reasoning_content"),
        ("xai", "reasoning_content"),
        ("fireworks", "reasoning_content"),
        ("vllm", "reasoning_content"),
        ("llamacpp", "reasoning_content"),
        ("groq", "reasoning"),
        ("cerebras", "reasoning"),
        ("openrouter", "reasoning"),
        ("ollama_openai", "reasoning"),
    ],
)
@pytest.mark.parametrize("streaming", [False, True], ids=["body", "stream"])
def test_reasoning_arrives_in_the_providers_field(name: str, field: str, streaming: bool) -> None:
    protocol = flavours.FLAVOURS[name]()
    assert protocol.reasoning_field == field
    with Emulator(protocol) as emulator:
        emulator.enqueue(Reply.text("42", reasoning="Six times seven is forty-two.", chunk_size=3))
        config = {"api_key": KEY, "api_base": emulator.base_url}
        if streaming:
            answer = core.stream(name, "m", HI, config).collect()
        else:
            answer = core.completion(name, "m", HI, config)
        [sent] = emulator.requests
    assert answer.choices[0].message.reasoning == "Six times seven is forty-two."
    assert answer.text == "42"
    assert sent.json is not None


@pytest.mark.parametrize(
    ("name", "echo"),
    [
        ("deepseek", "reasoning_content"),
        ("moonshot", "reasoning_content"),
        ("zai", "reasoning_content"),
        ("cerebras", "reasoning"),
        ("ollama_openai", "reasoning"),
        ("groq", None),
        ("openrouter", None),
        ("vllm", None),
        ("perplexity", None),
    ],
)
def test_history_reasoning_goes_back_where_the_provider_takes_it(
    name: str, echo: str | None
) -> None:
    messages = _body(_call(name, "m", {"messages": _history("I multiplied.")}))["messages"]
    assistant = messages[1]
    assert "reasoning_content" not in assistant or echo == "reasoning_content"
    assert "reasoning" not in assistant or echo == "reasoning"
    if echo is not None:
        assert assistant[echo] == "I multiplied."
    assert "reasoning" not in messages[0]
    assert "reasoning_content" not in messages[2]


def test_deepseek_round_trip_sends_reasoning_content_back() -> None:
    with Emulator(flavours.DeepSeekProtocol()) as emulator:
        emulator.enqueue(Reply.text("42", reasoning="Six sevens."), Reply.text("84"))
        config = {"api_key": KEY, "api_base": emulator.base_url}
        first = core.completion("deepseek", "deepseek-reasoner", HI, config)
        history = [*HI["messages"], msgspec.to_builtins(first.choices[0].message)]
        history.append({"role": "user", "content": "Doubled?"})
        second = core.completion("deepseek", "deepseek-reasoner", {"messages": history}, config)
        _, sent = emulator.requests
    assert second.text == "84"
    assert sent.json["messages"][1]["reasoning_content"] == "Six sevens."


# --- provider data: OpenRouter's reasoning_details, Perplexity's citations ----------


@pytest.mark.parametrize("streaming", [False, True], ids=["body", "stream"])
def test_openrouter_reasoning_details_are_kept_and_sent_back(streaming: bool) -> None:
    with Emulator(flavours.OpenRouterProtocol()) as emulator:
        emulator.enqueue(
            Reply.text("42", reasoning="Six sevens are forty-two.", chunk_size=4),
            Reply.text("84"),
        )
        config = {"api_key": KEY, "api_base": emulator.base_url}
        if streaming:
            first = core.stream("openrouter", "anthropic/claude-sonnet-4.5", HI, config).collect()
        else:
            first = core.completion("openrouter", "anthropic/claude-sonnet-4.5", HI, config)
        message = first.choices[0].message
        details = (message.provider_data or {})["openrouter"]["reasoning_details"]
        # Streamed pieces of one block are joined into one.
        assert details == [
            {
                "type": "reasoning.text",
                "text": "Six sevens are forty-two.",
                "format": "unknown",
                "index": 0,
            }
        ]
        history = [*HI["messages"], msgspec.to_builtins(message)]
        history.append({"role": "user", "content": "Doubled?"})
        core.completion("openrouter", "anthropic/claude-sonnet-4.5", {"messages": history}, config)
        _, sent = emulator.requests
    assert sent.json["messages"][1]["reasoning_details"] == details
    assert "provider_data" not in sent.json["messages"][1]


def test_other_providers_data_is_not_sent_to_openrouter() -> None:
    history = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Yo", "provider_data": {"anthropic": {"signature": "s"}}},
        {"role": "user", "content": "Again"},
    ]
    assistant = _body(_call("openrouter", "m", {"messages": history}))["messages"][1]
    assert assistant == {"role": "assistant", "content": "Yo"}


@pytest.mark.parametrize("streaming", [False, True], ids=["body", "stream"])
def test_perplexity_citations_are_kept_in_provider_data(streaming: bool) -> None:
    with Emulator(flavours.PerplexityProtocol()) as emulator:
        emulator.enqueue(Reply.text("Paris [1]."))
        config = {"api_key": KEY, "api_base": emulator.base_url}
        if streaming:
            answer = core.stream("perplexity", "sonar", HI, config).collect()
        else:
            answer = core.completion("perplexity", "sonar", HI, config)
    data = (answer.choices[0].message.provider_data or {})["perplexity"]
    assert data["citations"] == ["https://example.com/emulated-source"]
    assert data["search_results"][0]["url"] == "https://example.com/emulated-source"


def test_perplexity_claims_no_tools() -> None:
    caps = core.provider_info("perplexity", "sonar-pro").capabilities
    assert caps.streaming
    assert not caps.tools
    assert not caps.reasoning


# --- usage elsewhere, and in-stream errors -------------------------------------------


def test_groq_usage_comes_from_x_groq_when_no_usage_chunk_was_asked() -> None:
    request = {**HI, "stream_options": {"include_usage": False}}
    with Emulator(flavours.GroqProtocol()) as emulator:
        emulator.enqueue(Reply.text("fast", prompt_tokens=7, completion_tokens=3))
        answer = core.stream(
            "groq",
            "llama-3.3-70b-versatile",
            request,
            {"api_key": KEY, "api_base": emulator.base_url},
        ).collect()
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (7, 3)


@pytest.mark.parametrize(
    ("name", "kind", "status", "error"),
    [
        ("groq", "invalid_request_error", 400, llmkit.InvalidRequestError),
        ("groq", None, 500, llmkit.ServiceUnavailableError),
        ("openrouter", "429", 429, llmkit.RateLimitError),
        ("openrouter", None, 502, llmkit.ServiceUnavailableError),
    ],
)
def test_in_stream_error_events_raise_the_mapped_error(
    name: str, kind: str | None, status: int, error: type[llmkit.LLMError]
) -> None:
    # Groq: "event: error" with status_code; OpenRouter: an error on a chunk
    # that still has a choice, its code an HTTP status.
    reply = Reply.text("Once upon a time, far away.", error_after=3, message="Gone wrong")
    if name == "groq":
        reply = dataclasses.replace(reply, error_type=kind)
    else:
        reply = dataclasses.replace(reply, code=kind)
    with Emulator(flavours.FLAVOURS[name]()) as emulator:
        emulator.enqueue(reply)
        stream = core.stream(name, "m", HI, {"api_key": KEY, "api_base": emulator.base_url})
        chunks: list[llmkit.StreamChunk] = []
        with pytest.raises(error) as info:
            chunks.extend(stream)
    assert info.value.status == status
    assert "Gone wrong" in info.value.message
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Once upo"


def test_openrouter_error_envelope_names_the_upstream_provider() -> None:
    with Emulator(flavours.OpenRouterProtocol()) as emulator:
        emulator.enqueue(
            Reply.error(429, message="Provider returned error", code="rate-limited upstream")
        )
        with pytest.raises(llmkit.RateLimitError) as info:
            core.completion(
                "openrouter", "m", HI, {"api_key": KEY, "api_base": emulator.base_url, "retries": 0}
            )
    assert "Provider returned error (Emulated: rate-limited upstream)" in info.value.message
    assert info.value.code == "429"


# --- the fast path ---------------------------------------------------------------------


def test_only_keys_that_differ_leave_openais_path() -> None:
    # A key with nothing but names takes OpenAI's own path (no extra work a
    # call); a key with quirks has them compiled once, at definition.
    assert OpenAI._wire is None
    assert compatible.Together._wire is not None  # reasoning_content is read too
    assert compatible.LMStudio._wire is not None

    class Plain(OpenAICompatible):
        __slots__ = ()
        name = "test-plain-compatible"
        default_base_url = "https://plain.example/v1"

    assert Plain._wire is None
    with pytest.raises(ValueError, match="name no capability"):

        class Wrong(OpenAICompatible):
            __slots__ = ()
            model_flags = {"thinking": ("x",)}  # noqa: RUF012


def test_model_flags_switch_capabilities_per_model() -> None:
    assert core.provider_info("deepseek", "deepseek-reasoner").capabilities.reasoning
    assert not core.provider_info("deepseek", "deepseek-chat").capabilities.reasoning
    assert core.provider_info("groq", "openai/gpt-oss-120b").capabilities.reasoning
    assert core.provider_info("together", "deepseek-ai/DeepSeek-R1").capabilities.reasoning
    assert not core.provider_info("groq", "llama-3.3-70b-versatile").capabilities.reasoning
    assert core.provider_info("vllm").capabilities.reasoning


def test_config_headers_win_over_a_keys_own_headers() -> None:
    call = _call(
        "openrouter",
        "m",
        options={"x_title": "From options"},
        headers={"X-Title": "From config"},
    )
    assert call.headers["X-Title"] == "From config"
