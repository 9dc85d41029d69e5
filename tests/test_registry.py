"""llmkit.registry against the emulators: routing, fallbacks, retries, setup, safety, bad input."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import llmkit
from llmkit import registry, system
from llmkit.errors import (
    AllAttemptsFailedError,
    AuthenticationError,
    ContextWindowError,
    InvalidRequestError,
    LLMError,
    ProviderNotFoundError,
    RateLimitError,
    ServiceUnavailableError,
    StreamInterruptedError,
    TimeoutError,
)
from llmkit.registry import Registry, RoutedResponse, ServedBy
from llmkit_contracts import AnthropicEmulator, OpenAIEmulator, Reply

HI = {"messages": [{"role": "user", "content": "Hi"}]}
KEY = "sk-emulator-000000"


class Sleeps:
    """A sleep that records its waits instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)

    async def asleep(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def reg(sleeps: Sleeps) -> Registry:
    return Registry(sleep=sleeps, asleep=sleeps.asleep)


@pytest.fixture(autouse=True)
def _empty_default_registry() -> Iterator[None]:
    registry.clear()
    yield
    registry.clear()


@pytest.fixture
def anthropic_emulator() -> Iterator[AnthropicEmulator]:
    with AnthropicEmulator() as emu:
        yield emu


def openai_at(emulator: OpenAIEmulator, **extra: Any) -> dict[str, Any]:
    return {"api_key": KEY, "api_base": emulator.base_url, **extra}


def fixed(emulator: OpenAIEmulator, model: str = "gpt-4o-mini", **extra: Any) -> dict[str, Any]:
    return {"provider": "openai", "model": model, "config": openai_at(emulator), **extra}


def sent_models(emulator: OpenAIEmulator) -> list[str]:
    return [request.json["model"] for request in emulator.requests if request.json]


# --- calls by name ---------------------------------------------------------------


def test_completion_by_name_records_who_served(reg: Registry, emulator: OpenAIEmulator) -> None:
    reg.register("fast", fixed(emulator))
    emulator.enqueue(Reply.text("Paris."))
    reply = reg.completion("fast", HI)
    assert isinstance(reply, RoutedResponse)
    assert isinstance(reply, llmkit.ChatResponse)
    assert reply.text == "Paris."
    assert reply.served_by == ServedBy(provider="openai", model="gpt-4o-mini", name="fast")
    assert sent_models(emulator) == ["gpt-4o-mini"]


def test_the_config_model_wins_over_the_requests(reg: Registry, emulator: OpenAIEmulator) -> None:
    reg.register("fast", fixed(emulator))
    emulator.enqueue(Reply.text("ok"))
    reg.completion("fast", {**HI, "model": "gpt-4o"})
    assert sent_models(emulator) == ["gpt-4o-mini"]


def test_module_functions_use_the_default_registry(emulator: OpenAIEmulator) -> None:
    registry.register("fast", fixed(emulator))
    assert registry.list_configs() == ["fast"]
    assert registry.get_config("fast")["model"] == "gpt-4o-mini"
    emulator.enqueue(Reply.text("one"), Reply.text("two"))
    assert registry.completion("fast", HI).text == "one"
    assert registry.chat("fast", "Hi", system_prompt="Be brief", temperature=0.5) == "two"
    sent = emulator.requests[-1].json
    assert sent is not None
    assert sent["temperature"] == 0.5
    assert sent["messages"][0] == {"role": "system", "content": "Be brief"}
    assert registry.unregister("fast") is True
    assert registry.unregister("fast") is False
    assert registry.list_configs() == []


def test_stream_by_name(reg: Registry, emulator: OpenAIEmulator) -> None:
    reg.register("fast", fixed(emulator))
    emulator.enqueue(Reply.text("Hello there.", chunk_size=3))
    with reg.stream("fast", HI) as stream:
        assert stream.served_by.model == "gpt-4o-mini"
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Hello there."
    emulator.enqueue(Reply.text("Hello again.", chunk_size=3))
    whole = reg.stream("fast", HI).collect()
    assert whole.text == "Hello again."
    assert whole.served_by is not None
    assert whole.served_by.name == "fast"


def test_async_calls_by_name(reg: Registry, emulator: OpenAIEmulator) -> None:
    reg.register("fast", fixed(emulator))
    emulator.enqueue(Reply.text("a"), Reply.text("streamed", chunk_size=2), Reply.text("c"))

    async def main() -> tuple[str, str, str]:
        one = await reg.acompletion("fast", HI)
        stream = await reg.astream("fast", HI)
        two = await stream.acollect()
        three = await reg.achat("fast", "Hi")
        return one.text, two.text, three

    assert asyncio.run(main()) == ("a", "streamed", "c")


# --- routing -------------------------------------------------------------------


def test_router_picks_provider_and_model_per_request(
    reg: Registry, emulator: OpenAIEmulator, anthropic_emulator: AnthropicEmulator
) -> None:
    seen: list[Any] = []

    def route(request: Any) -> dict[str, str]:
        seen.append(request.get("priority"))
        if request.get("priority") == "high":
            return {"provider": "anthropic", "model": "claude-sonnet-4-5"}
        return {"provider": "openai", "model": "gpt-4o-mini"}

    reg.register(
        "smart",
        registry.create_router(
            route,
            {
                "openai": openai_at(emulator),
                "anthropic": {"api_key": KEY, "api_base": anthropic_emulator.base_url},
            },
            keys=["priority"],
        ),
    )
    emulator.enqueue(Reply.text("cheap"))
    anthropic_emulator.enqueue(Reply.text("careful"))
    low = reg.completion("smart", {**HI, "priority": "low"})
    high = reg.completion("smart", {**HI, "priority": "high"})
    assert (low.text, low.served_by) == (
        "cheap",
        ServedBy(provider="openai", model="gpt-4o-mini", name="smart"),
    )
    assert high.text == "careful"
    assert high.served_by is not None
    assert high.served_by.provider == "anthropic"
    assert seen == ["low", "high"]
    # The custom key went to the router and not to either provider.
    assert "priority" not in (emulator.requests[-1].json or {})
    assert "priority" not in (anthropic_emulator.requests[-1].json or {})


def test_router_with_one_config_for_any_provider(reg: Registry, emulator: OpenAIEmulator) -> None:
    reg.register(
        "any",
        {
            "router": lambda r: {"provider": "openai", "model": "gpt-4o"},
            "config": openai_at(emulator),
        },
    )
    emulator.enqueue(Reply.text("ok"))
    assert reg.completion("any", HI).served_by == ServedBy(
        provider="openai", model="gpt-4o", name="any"
    )


def test_undeclared_router_keys_are_all_handed_over_and_stripped(
    reg: Registry, emulator: OpenAIEmulator
) -> None:
    got: list[Any] = []

    def route(request: Any) -> dict[str, str]:
        got.append((request["tenant"], request["tier"]))
        return {"provider": "openai", "model": "gpt-4o-mini"}

    reg.register("open", {"router": route, "configs": {"openai": openai_at(emulator)}})
    emulator.enqueue(Reply.text("ok"))
    reg.completion("open", {**HI, "tenant": "acme", "tier": 2})
    assert got == [("acme", 2)]
    sent = emulator.requests[-1].json or {}
    assert "tenant" not in sent
    assert "tier" not in sent


def test_declared_keys_refuse_any_other_unknown_key(
    reg: Registry, emulator: OpenAIEmulator
) -> None:
    reg.register(
        "smart",
        registry.create_router(
            lambda r: {"provider": "openai", "model": "gpt-4o-mini"},
            {"openai": openai_at(emulator)},
            keys=["priority"],
        ),
    )
    with pytest.raises(InvalidRequestError, match=r"'prority' - at `\$\.prority`.*priority"):
        reg.completion("smart", {**HI, "prority": "high"})
    assert emulator.requests == []


def test_a_named_config_refuses_unknown_keys_as_core_does(
    reg: Registry, emulator: OpenAIEmulator
) -> None:
    reg.register("fast", fixed(emulator))
    with pytest.raises(InvalidRequestError, match="priority"):
        reg.completion("fast", {**HI, "priority": "high"})
    assert emulator.requests == []


def test_router_returning_an_unknown_provider(reg: Registry, emulator: OpenAIEmulator) -> None:
    reg.register("r", {"router": lambda r: {"provider": "opnai", "model": "m"}, "config": {}})
    with pytest.raises(ProviderNotFoundError, match=r"router of 'r' returned an unknown.*'openai'"):
        reg.completion("r", HI)
    reg.register(
        "r2",
        {"router": lambda r: {"provider": "anthropic", "model": "m"}, "configs": {"openai": {}}},
    )
    with pytest.raises(InvalidRequestError, match="'anthropic', which its configs do not hold"):
        reg.completion("r2", HI)
    assert emulator.requests == []


@pytest.mark.parametrize(
    "returned",
    [
        None,
        "openai",
        {"provider": "openai"},
        {"provider": "openai", "model": ""},
        {"provider": "openai", "model": "m", "temperature": 1},
    ],
)
def test_router_returning_something_unusable(reg: Registry, returned: Any) -> None:
    reg.register("r", {"router": lambda r: returned, "config": {}})
    with pytest.raises(InvalidRequestError, match="router of 'r' returned"):
        reg.completion("r", HI)


def test_a_router_that_raises(reg: Registry) -> None:
    def route(request: Any) -> dict[str, str]:
        raise KeyError("priority")

    reg.register("r", {"router": route, "config": {}})
    with pytest.raises(LLMError, match="router of 'r' raised KeyError") as caught:
        reg.completion("r", HI)
    assert isinstance(caught.value.__cause__, KeyError)


# --- retries and fallbacks -----------------------------------------------------------


def test_retries_back_off_and_honour_retry_after(
    reg: Registry, emulator: OpenAIEmulator, sleeps: Sleeps
) -> None:
    reg.register("fast", fixed(emulator, retries=3, retry_delay=0.2))
    emulator.enqueue(
        Reply.error(503),
        Reply.error(429, headers={"retry-after": "3"}),
        Reply.error(500),
        Reply.text("finally"),
    )
    reply = reg.completion("fast", HI)
    assert reply.text == "finally"
    assert reply.served_by is not None
    assert (reply.served_by.attempts, reply.served_by.fallback) == (4, False)
    first, second, third = sleeps.waits
    assert 0.1 <= first <= 0.2  # equal jitter: half to all of the step
    assert second == 3.0  # the server's Retry-After
    assert 0.4 <= third <= 0.8
    # Attempts are made (and counted) once: the transport did not retry under the registry.
    assert len(emulator.requests) == 4


def test_retries_used_up_raise_the_error_itself(
    reg: Registry, emulator: OpenAIEmulator, sleeps: Sleeps
) -> None:
    reg.register("fast", fixed(emulator, retries=1, retry_delay=0.01))
    emulator.enqueue(Reply.error(503), Reply.error(503))
    with pytest.raises(ServiceUnavailableError):
        reg.completion("fast", HI)
    assert len(emulator.requests) == 2
    assert len(sleeps.waits) == 1


def test_config_retries_hand_retrying_to_the_transport(
    reg: Registry, emulator: OpenAIEmulator, sleeps: Sleeps
) -> None:
    reg.register(
        "fast",
        {
            "provider": "openai",
            "model": "gpt-4o-mini",
            "retries": 0,
            "config": openai_at(emulator, retries=1),
        },
    )
    emulator.enqueue(Reply.error(503, headers={"retry-after": "0.01"}), Reply.text("ok"))
    reply = reg.completion("fast", HI)
    assert reply.text == "ok"
    assert sleeps.waits == []
    assert len(emulator.requests) == 2


def test_a_long_retry_after_moves_on_to_the_fallback(
    reg: Registry, emulator: OpenAIEmulator, sleeps: Sleeps
) -> None:
    reg.register(
        "fast",
        fixed(
            emulator,
            retry_max_delay=5.0,
            fallbacks=[{"provider": "openai", "model": "gpt-4o", "config": openai_at(emulator)}],
        ),
    )
    emulator.enqueue(Reply.error(429, headers={"retry-after": "60"}), Reply.text("backup"))
    reply = reg.completion("fast", HI)
    assert reply.text == "backup"
    assert sleeps.waits == []
    assert reply.served_by == ServedBy(
        provider="openai", model="gpt-4o", name="fast", attempts=2, fallback=True
    )


def test_fallbacks_by_name_and_inline(
    reg: Registry, emulator: OpenAIEmulator, anthropic_emulator: AnthropicEmulator
) -> None:
    reg.register(
        "claude",
        {
            "provider": "anthropic",
            "model": "claude-haiku-4-5",
            "config": {"api_key": KEY, "api_base": anthropic_emulator.base_url},
        },
    )
    reg.register(
        "main",
        fixed(
            emulator,
            retries=0,
            fallbacks=[
                {"provider": "openai", "model": "gpt-4o", "config": openai_at(emulator)},
                "claude",
            ],
        ),
    )
    emulator.enqueue(Reply.error(500), Reply.error(503))
    anthropic_emulator.enqueue(Reply.text("from claude"))
    reply = reg.completion("main", HI)
    assert reply.text == "from claude"
    assert reply.served_by == ServedBy(
        provider="anthropic", model="claude-haiku-4-5", name="main", attempts=3, fallback=True
    )
    assert sent_models(emulator) == ["gpt-4o-mini", "gpt-4o"]


def test_when_all_fail_every_attempt_is_listed(reg: Registry, emulator: OpenAIEmulator) -> None:
    reg.register(
        "main",
        fixed(
            emulator,
            retries=1,
            retry_delay=0.01,
            fallbacks=[{"provider": "openai", "model": "gpt-4o", "config": openai_at(emulator)}],
        ),
    )
    emulator.enqueue(Reply.error(503), Reply.error(500), Reply.error(429))
    emulator.enqueue(Reply.error(429))
    with pytest.raises(AllAttemptsFailedError) as caught:
        reg.completion("main", HI)
    failed = caught.value
    assert [(a.provider, a.model, type(a.error)) for a in failed.attempts] == [
        ("openai", "gpt-4o-mini", ServiceUnavailableError),
        ("openai", "gpt-4o-mini", ServiceUnavailableError),
        ("openai", "gpt-4o", RateLimitError),
        ("openai", "gpt-4o", RateLimitError),
    ]
    assert isinstance(failed.__cause__, RateLimitError)
    assert "openai/gpt-4o-mini: ServiceUnavailableError" in str(failed)
    assert "openai/gpt-4o: RateLimitError" in str(failed)
    assert failed.retryable
    assert isinstance(failed, LLMError)


def test_errors_that_do_not_move_on(reg: Registry, emulator: OpenAIEmulator) -> None:
    backup = {"provider": "openai", "model": "gpt-4o", "config": openai_at(emulator)}
    reg.register("main", fixed(emulator, fallbacks=[backup]))
    emulator.enqueue(Reply.error(401))
    with pytest.raises(AuthenticationError):
        reg.completion("main", HI)
    emulator.enqueue(
        Reply.error(
            400, code="context_length_exceeded", message="maximum context length is 128000 tokens"
        )
    )
    with pytest.raises(ContextWindowError):
        reg.completion("main", HI)
    assert sent_models(emulator) == ["gpt-4o-mini", "gpt-4o-mini"]


def test_fallback_on_context_window_when_configured(
    reg: Registry, emulator: OpenAIEmulator
) -> None:
    backup = {"provider": "openai", "model": "gpt-4.1", "config": openai_at(emulator)}
    reg.register("main", fixed(emulator, fallbacks=[backup], fallback_on=["context_window"]))
    emulator.enqueue(
        Reply.error(
            400, code="context_length_exceeded", message="maximum context length is 128000 tokens"
        ),
        Reply.text("long context"),
    )
    reply = reg.completion("main", HI)
    assert reply.text == "long context"
    assert reply.served_by is not None
    assert reply.served_by.model == "gpt-4.1"


def test_a_stream_that_fails_before_its_first_chunk_falls_back(
    reg: Registry, emulator: OpenAIEmulator, anthropic_emulator: AnthropicEmulator
) -> None:
    reg.register(
        "main",
        fixed(
            emulator,
            retries=0,
            fallbacks=[
                {
                    "provider": "anthropic",
                    "model": "claude-haiku-4-5",
                    "config": {"api_key": KEY, "api_base": anthropic_emulator.base_url},
                },
            ],
        ),
    )
    # Headers and a 200, then the connection drops before any chunk.
    emulator.enqueue(Reply.text("never seen", disconnect_after=0))
    anthropic_emulator.enqueue(Reply.text("from the fallback", chunk_size=4))
    stream = reg.stream("main", HI)
    assert stream.served_by.provider == "anthropic"
    assert stream.served_by.fallback
    assert stream.collect().text == "from the fallback"


def test_a_stream_that_fails_at_its_start_falls_back(
    reg: Registry, emulator: OpenAIEmulator
) -> None:
    backup = {"provider": "openai", "model": "gpt-4o", "config": openai_at(emulator)}
    reg.register("main", fixed(emulator, retries=0, fallbacks=[backup]))
    emulator.enqueue(Reply.error(503), Reply.text("second", chunk_size=2))

    async def main() -> tuple[str, ServedBy]:
        stream = await reg.astream("main", HI)
        return (await stream.acollect()).text, stream.served_by

    text, served = asyncio.run(main())
    assert text == "second"
    assert served.model == "gpt-4o"


def test_a_stream_broken_after_a_chunk_raises_and_does_not_fall_back(
    reg: Registry, emulator: OpenAIEmulator
) -> None:
    backup = {"provider": "openai", "model": "gpt-4o", "config": openai_at(emulator)}
    reg.register("main", fixed(emulator, retries=0, fallbacks=[backup]))
    emulator.enqueue(Reply.text("a long answer cut short", chunk_size=2, disconnect_after=3))
    stream = reg.stream("main", HI)
    with pytest.raises(StreamInterruptedError):
        list(stream)
    assert sent_models(emulator) == ["gpt-4o-mini"]


def test_a_missing_fallback_name_is_named(reg: Registry, emulator: OpenAIEmulator) -> None:
    reg.register("claude", fixed(emulator))
    reg.register("main", fixed(emulator, retries=0, fallbacks=["cluade"]))
    emulator.enqueue(Reply.error(503))
    with pytest.raises(ProviderNotFoundError, match=r"'cluade' of 'main'.*did you mean 'claude'"):
        reg.completion("main", HI)


# --- a registry on a system --------------------------------------------------------------


def test_a_registry_runs_its_calls_on_a_system(emulator: OpenAIEmulator) -> None:
    config = {"providers": {"openai": openai_at(emulator)}}
    with system.create_system(config) as sys_:
        reg = Registry(system=sys_)
        reg.register("fast", {"provider": "openai", "model": "gpt-4o-mini"})
        emulator.enqueue(Reply.text("on the system"), Reply.text("streamed", chunk_size=3))
        assert reg.completion("fast", HI).text == "on the system"
        assert reg.stream("fast", HI).collect().text == "streamed"
        counted = sys_.metrics()
    assert "openai" in str(counted)
    assert sent_models(emulator) == ["gpt-4o-mini", "gpt-4o-mini"]


# --- wrappers --------------------------------------------------------------------------


def test_with_retry_and_with_fallback_as_plain_functions(emulator: OpenAIEmulator) -> None:
    def primary(request: Any) -> llmkit.ChatResponse:
        return llmkit.completion("openai", "gpt-4o-mini", request, openai_at(emulator, retries=0))

    def backup(request: Any) -> llmkit.ChatResponse:
        return llmkit.completion("openai", "gpt-4o", request, openai_at(emulator, retries=0))

    waits: list[float] = []
    ask = registry.compose(
        registry.with_fallback([backup]),
        registry.with_retry(retries=1, retry_delay=0.01, sleep=waits.append),
    )(primary)
    emulator.enqueue(Reply.error(503), Reply.error(503), Reply.text("backup"))
    assert ask(HI).text == "backup"
    assert len(waits) == 1
    assert sent_models(emulator) == ["gpt-4o-mini", "gpt-4o-mini", "gpt-4o"]
    emulator.enqueue(Reply.error(503), Reply.error(503), Reply.error(500))
    with pytest.raises(AllAttemptsFailedError) as caught:
        ask(HI)
    assert len(caught.value.attempts) == 2


def test_with_timeout_aborts_the_http_call(emulator: OpenAIEmulator) -> None:
    emulator.enqueue(Reply.text("too late", delay=30.0))
    ask = registry.with_timeout(
        lambda r: llmkit.completion("openai", "gpt-4o-mini", r, openai_at(emulator)), 0.3
    )
    began = time.monotonic()
    with pytest.raises(TimeoutError, match=r"with_timeout.s 0\.3 s"):
        ask(HI)
    # Not a speed check: the server holds its reply for 30 s, so returning
    # at all before then shows the read was cut off rather than waited out.
    assert time.monotonic() - began < 15


def test_with_timeout_closes_a_trickling_stream(emulator: OpenAIEmulator) -> None:
    emulator.enqueue(Reply.text("slow " * 200, chunk_size=1, chunk_delay=0.05))
    start = registry.with_timeout(
        lambda r: llmkit.stream("openai", "gpt-4o-mini", r, openai_at(emulator)), 0.3
    )
    with pytest.raises(LLMError, match="deadline"):
        list(start(HI))
    # The server's next write finds the socket closed by the client.
    for _ in range(300):
        if not emulator.open_connections():
            break
        time.sleep(0.01)
    assert not emulator.open_connections()


def test_with_timeout_bounds_a_registry_stream(reg: Registry, emulator: OpenAIEmulator) -> None:
    reg.register("fast", fixed(emulator, retries=0))
    emulator.enqueue(Reply.text("slow " * 40, chunk_size=2, chunk_delay=0.05))
    start = registry.with_timeout(reg.stream, 0.3)
    stream = start("fast", HI)
    with pytest.raises(LLMError, match="deadline"):
        list(stream)


def test_with_timeout_cancels_a_coroutine(emulator: OpenAIEmulator) -> None:
    emulator.enqueue(Reply.text("too late", delay=30.0))

    async def ask(request: Any) -> llmkit.ChatResponse:
        return await llmkit.acompletion("openai", "gpt-4o-mini", request, openai_at(emulator))

    with pytest.raises(TimeoutError, match="with_timeout"):
        asyncio.run(registry.with_timeout(0.3)(ask)(HI))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: registry.with_timeout(print, -1), "seconds above 0"),
        (lambda: registry.with_timeout(print, float("nan")), "seconds above 0"),
        (lambda: registry.with_retry(print, retries=-1), "retries"),
        (lambda: registry.with_fallback(print, []), "at least one fallback"),
        (lambda: registry.with_fallback(print, [1]), "must be a function"),  # type: ignore[list-item]
        (lambda: registry.with_fallback(print, [print], on=["everything"]), "on= takes"),
        (lambda: registry.compose(3), "must be a function"),  # type: ignore[arg-type]
    ],
)
def test_wrappers_refuse_bad_settings(make: Any, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        make()


# --- setup from the environment ----------------------------------------------------------

SETUPS = sorted(name for name in registry.__all__ if name.startswith("setup_"))


def test_there_is_a_setup_for_every_builtin_provider() -> None:
    from importlib.metadata import entry_points

    from llmkit.provider import ENTRY_POINT_GROUP

    # The built-ins are the entry points llmkit itself declares (other test
    # modules add providers of their own, which have no setup_*).
    builtins = {
        point.name
        for point in entry_points(group=ENTRY_POINT_GROUP)
        if point.value.startswith("llmkit_providers.")
    }
    assert {name.removeprefix("setup_") for name in SETUPS} == builtins | set(
        registry.DEFAULT_MODELS
    )
    assert set(registry.DEFAULT_MODELS) >= builtins


@pytest.mark.parametrize("setup_name", SETUPS)
def test_each_setup_registers_its_provider_with_its_default_model(setup_name: str) -> None:
    provider = setup_name.removeprefix("setup_")
    if provider not in llmkit.list_providers():
        pytest.fail(f"{provider} is not installed")
    name = getattr(registry, setup_name)()
    assert name == provider
    config = registry.get_config(provider)
    assert (config["provider"], config["model"]) == (provider, registry.DEFAULT_MODELS[provider])
    renamed = getattr(registry, setup_name)(name="mine", model="m-1", timeout=5)
    assert renamed == "mine"
    assert registry.get_config("mine")["config"].timeout == 5


def test_setup_reads_the_key_at_call_time(
    emulator: OpenAIEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.setup_openai(api_base=emulator.base_url)
    with pytest.raises(AuthenticationError, match="OPENAI_API_KEY"):
        registry.completion("openai", HI)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    emulator.enqueue(Reply.text("ok"))
    assert registry.completion("openai", HI).text == "ok"


def test_quick_setup_registers_what_the_environment_has_keys_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from llmkit.registry import _setup

    monkeypatch.setattr(_setup, "_ollama_answers", lambda timeout: False)
    assert registry.quick_setup() == []  # no key variable set, no local server
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-x")
    assert registry.quick_setup() == ["anthropic"]
    assert registry.list_configs() == ["anthropic"]
    registry.clear()
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-a")
    monkeypatch.setenv("GOOGLE_API_KEY", "g-b")  # Gemini's second variable
    monkeypatch.setenv("MOONSHOT_API_KEY", "m-c")  # moonshot, and not its alias kimi
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "az-d")  # no endpoint yet: not registered
    reg = Registry()
    names = _setup_without_ollama(reg)
    assert names == ["gemini", "moonshot", "openai"]
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://example.openai.azure.com")
    assert _setup_without_ollama(reg) == ["azure"]  # the others are kept as they were
    assert reg.get_config("openai")["model"] == registry.DEFAULT_MODELS["openai"]


def _setup_without_ollama(reg: Registry) -> list[str]:
    from llmkit.registry import _setup

    return _setup.quick_setup(reg, probe=lambda timeout: False)


def test_quick_setup_and_ollama(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmkit.registry import _setup

    if "ollama" not in llmkit.list_providers():
        pytest.fail("the native ollama provider is not installed")
    probed: list[float] = []

    def no_server(timeout: float) -> bool:
        probed.append(timeout)
        return False

    reg = Registry()
    assert _setup.quick_setup(reg, probe=no_server) == []
    assert probed == [registry.OLLAMA_PROBE_SECONDS]
    assert _setup.quick_setup(reg, probe=lambda t: True) == ["ollama"]
    reg.clear()
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:11434")
    assert _setup.quick_setup(reg, probe=lambda t: pytest.fail("no probe needed")) == ["ollama"]


def test_the_real_ollama_probe_gives_up_fast_on_a_closed_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from llmkit.registry import _setup

    monkeypatch.setattr(_setup, "_OLLAMA_DEFAULT", "http://127.0.0.1:9")
    assert _setup._ollama_answers(0.25) is False


# --- thread safety --------------------------------------------------------------------


def test_registering_while_sixteen_threads_route(reg: Registry) -> None:
    # Routing is all this measures: a router config whose provider is a key
    # with no network (the Echo provider below answers in process).
    from llmkit.provider import ChatRequest, Choice, Config, Message, ProviderKey, completion
    from llmkit.provider import ChatResponse as Response

    class Echo(ProviderKey):
        name = "echo_registry"
        api_key_env = None

    def echo(key: Any, request: Any, config: Any) -> Any:
        return Response(
            model=request.model,
            choices=[Choice(message=Message(role="assistant", content=request.model))],
        )

    # Real annotations, not strings: plum resolves them, and Echo is local.
    echo.__annotations__ = {"key": Echo, "request": ChatRequest, "config": Config, "return": Any}
    completion.dispatch(echo)

    reg.register("live", {"provider": "echo_registry", "model": "m-0"})
    errors: list[BaseException] = []
    seen: set[str] = set()
    stop = threading.Event()

    def route() -> None:
        try:
            while not stop.is_set():
                reply = reg.completion("live", HI)
                assert reply.text == reply.served_by.model
                seen.add(reply.text)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=route) for _ in range(16)]
    for thread in threads:
        thread.start()
    while not seen:
        time.sleep(0.001)
    for i in range(1, 40):
        reg.register("live", {"provider": "echo_registry", "model": f"m-{i}"})
        reg.register(f"other-{i}", {"provider": "echo_registry", "model": "x"})
        reg.unregister(f"other-{i - 1}")
        time.sleep(0.0005)  # let the routing threads run between registrations
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert [type(e).__name__ + str(e)[-300:] for e in errors] == []
    assert len(seen) > 1  # routing saw registrations land
    assert reg.list_configs() == ["live", "other-39"]


# --- bad input ------------------------------------------------------------------------


def test_an_unknown_name_suggests_the_closest(reg: Registry, emulator: OpenAIEmulator) -> None:
    reg.register("fast", fixed(emulator))
    with pytest.raises(
        ProviderNotFoundError, match=r"'fsat'.*did you mean 'fast'.*Registered: fast"
    ):
        reg.completion("fsat", HI)
    with pytest.raises(InvalidRequestError, match="must be a string"):
        reg.completion(3, HI)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("config", "pattern"),
    [
        (
            {"provider": "openai", "modle": "x"},
            r"unknown key 'modle'; did you mean 'model'.* - at `\$\.modle`",
        ),
        (
            {"provider": "openai", "model": "x", "config": {"api_kye": "k"}},
            r"'api_kye'; did you mean 'api_key'.*api_base.* - at `\$\.config\.api_kye`",
        ),
        (
            {"provider": "openai", "model": "x", "config": {"timeout": -1}},
            r"timeout.* - at `\$\.config`",
        ),
        (
            {"provider": "openai", "model": "x", "retries": "2"},
            r"Expected `int`.* - at `\$\.retries`",
        ),
        ({"provider": "openai", "model": "x", "retries": 1000}, r"- at `\$\.retries`"),
        (
            {"provider": "openai", "model": "x", "retry_delay": float("nan")},
            r"- at `\$\.retry_delay`",
        ),
        ({"provider": "openai", "model": ""}, r"model name.* - at `\$\.model`"),
        ({"provider": "openai"}, r"give provider and model"),
        ({"model": "x"}, r"give provider and model"),
        (
            {"provider": "openai", "model": "x", "fallbacks": [{"provider": "openai"}]},
            r"model is required - at `\$\.fallbacks\[0\]\.model`",
        ),
        (
            {
                "provider": "openai",
                "model": "x",
                "fallbacks": [{"provider": "openai", "model": "y", "config": {"retires": 1}}],
            },
            r"'retires'; did you mean 'retries'.* - at `\$\.fallbacks\[0\]\.config\.retires`",
        ),
        ({"provider": "openai", "model": "x", "fallbacks": ["self"]}, r"its own fallback"),
        (
            {"provider": "openai", "model": "x", "fallback_on": ["everything"]},
            r"- at `\$\.fallback_on\[0\]`",
        ),
        ({"router": 3, "config": {}}, r"router must be a function"),
        ({"router": print, "provider": "openai"}, r"the router picks the provider"),
        ({"router": print, "configs": {}, "config": {}}, r"not both"),
        ({"router": print, "configs": {}}, r"configs is empty"),
        ({"router": print, "keys": ["messages"]}, r"'messages' is a chat-request field"),
        ({"provider": "openai", "model": "x", "keys": ["a"]}, r"keys goes with a router"),
        (
            {"provider": "anthropic", "model": "x", "config": {"options": {"thinking_budgt": 1}}},
            r"invalid options for anthropic.*thinking_budget.* - at `\$\.config\.options`",
        ),
        ("openai", r"expected a dict, not str"),
    ],
)
def test_bad_configs_are_refused_at_register_time_with_their_path(
    reg: Registry, config: Any, pattern: str
) -> None:
    with pytest.raises(InvalidRequestError, match=pattern):
        reg.register("self", config)
    assert reg.list_configs() == []


def test_an_unknown_provider_is_named_with_its_path(reg: Registry) -> None:
    with pytest.raises(
        ProviderNotFoundError, match=r"'opnai'.*Did you mean 'openai'.*`\$\.provider`"
    ):
        reg.register("x", {"provider": "opnai", "model": "m"})
    with pytest.raises(ProviderNotFoundError, match=r"`\$\.configs\.antropic`"):
        reg.register("x", {"router": print, "configs": {"antropic": {}}})


@pytest.mark.parametrize("name", ["", " ", 3, None, "a\nb"])
def test_bad_names(reg: Registry, name: Any) -> None:
    with pytest.raises(InvalidRequestError, match="name"):
        reg.register(name, {"provider": "openai", "model": "m"})


def test_no_key_in_any_message(reg: Registry, emulator: OpenAIEmulator) -> None:
    secret = "sk-live-0123456789abcdefghij"
    reg.register(
        "main",
        {
            "provider": "openai",
            "model": "m",
            "retries": 0,
            "config": {"api_key": secret, "api_base": emulator.base_url},
            "fallbacks": [
                {
                    "provider": "openai",
                    "model": "n",
                    "config": {"api_key": secret, "api_base": emulator.base_url},
                }
            ],
        },
    )
    emulator.enqueue(
        Reply.error(503, message=f"bad key {secret}"), Reply.error(500, message=f"echo {secret}")
    )
    with pytest.raises(AllAttemptsFailedError) as caught:
        reg.completion("main", HI)
    assert secret[:12] not in str(caught.value)
    shown = reg.get_config("main")
    assert secret[:12] not in repr(shown)
    assert shown["config"].api_key == secret  # masked in its repr only


def test_repr_and_contains(reg: Registry, emulator: OpenAIEmulator) -> None:
    reg.register("fast", fixed(emulator))
    assert "fast" in reg
    assert "slow" not in reg
    assert repr(reg) == "<Registry [fast]>"
    with pytest.raises(InvalidRequestError, match="System"):
        Registry(system=object())


# --- found in review ------------------------------------------------------------------


def test_a_routers_custom_keys_do_not_reach_its_fallbacks(
    reg: Registry, emulator: OpenAIEmulator
) -> None:
    reg.register("plain", fixed(emulator, model="gpt-4.1"))
    reg.register(
        "smart",
        registry.create_router(
            lambda r: {"provider": "openai", "model": "gpt-4o-mini"},
            {"openai": openai_at(emulator)},
            keys=["priority"],
            fallbacks=[{"provider": "openai", "model": "gpt-4o", "config": openai_at(emulator)}],
        ),
    )
    emulator.enqueue(Reply.error(503), Reply.error(503), Reply.error(503), Reply.text("inline"))
    assert reg.completion("smart", {**HI, "priority": "high"}).text == "inline"
    reg.register(
        "smart",
        registry.create_router(
            lambda r: {"provider": "openai", "model": "gpt-4o-mini"},
            {"openai": openai_at(emulator)},
            keys=["priority"],
            fallbacks=["plain"],
        ),
    )
    emulator.enqueue(Reply.error(503), Reply.error(503), Reply.error(503), Reply.text("named"))
    reply = reg.completion("smart", {**HI, "priority": "high"})
    assert (reply.text, reply.served_by.model) == ("named", "gpt-4.1")
    assert all("priority" not in (r.json or {}) for r in emulator.requests)


def test_a_stream_that_breaks_before_any_content_falls_back(
    reg: Registry, emulator: OpenAIEmulator
) -> None:
    # The first event only opens the message (the role); nothing was said yet.
    backup = {"provider": "openai", "model": "gpt-4o", "config": openai_at(emulator)}
    reg.register("main", fixed(emulator, retries=0, fallbacks=[backup]))
    emulator.enqueue(Reply.text("never said", chunk_size=2, disconnect_after=1))
    emulator.enqueue(Reply.text("from the fallback", chunk_size=4))
    stream = reg.stream("main", HI)
    assert stream.served_by.model == "gpt-4o"
    assert "".join(chunk.text for chunk in stream) == "from the fallback"


def test_with_timeout_names_its_limit_after_a_fallback(
    reg: Registry, emulator: OpenAIEmulator
) -> None:
    backup = {"provider": "openai", "model": "gpt-4o", "config": openai_at(emulator)}
    reg.register("main", fixed(emulator, retries=0, fallbacks=[backup]))
    emulator.enqueue(Reply.error(503), Reply.text("slow", delay=30.0))
    with pytest.raises(TimeoutError, match=r"with_timeout's 0\.5 s") as caught:
        registry.with_timeout(reg.completion, 0.5)("main", HI)
    assert isinstance(caught.value.__cause__, AllAttemptsFailedError)


def test_wrappers_handle_a_plain_function_returning_a_coroutine(
    reg: Registry, emulator: OpenAIEmulator
) -> None:
    reg.register("fast", fixed(emulator, retries=0))
    emulator.enqueue(Reply.error(503), Reply.text("second try"))
    retried = registry.with_retry(lambda r: reg.acompletion("fast", r), retries=1, retry_delay=0.01)
    assert asyncio.run(retried(HI)).text == "second try"
    emulator.enqueue(Reply.text("too late", delay=30.0))
    bounded = registry.with_timeout(lambda r: reg.acompletion("fast", r), 0.3)
    with pytest.raises(TimeoutError, match="with_timeout"):
        asyncio.run(bounded(HI))


def test_create_router_refuses_strings_for_lists() -> None:
    with pytest.raises(InvalidRequestError, match="keys must be a list"):
        registry.create_router(print, {"openai": {}}, keys="priority")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match="configs must be a dict"):
        registry.create_router(print, None)  # type: ignore[arg-type]


def test_errors_with_a_surrogate_key_print(reg: Registry) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        reg.register("c", {"provider": "openai", "model": "m", "\ud800": 2})
    str(caught.value).encode()  # printable and encodable: the key is escaped
    assert r"$['\ud800']" in str(caught.value)
    with pytest.raises(InvalidRequestError, match="model name"):
        reg.register("c", {"provider": "openai", "model": "gpt\ud800"})


def test_a_router_error_never_echoes_values(reg: Registry) -> None:
    secret = "sk-live-0123456789abcdefghij"
    reg.register("r", {"router": lambda r: {"provider": "openai", "model": "m", "api_key": secret}})
    with pytest.raises(InvalidRequestError) as caught:
        reg.completion("r", HI)
    assert secret[:12] not in str(caught.value)
    assert "'api_key': str" in str(caught.value)

    def leaky(request: Any) -> dict[str, str]:
        raise ValueError(f"cannot use {secret}")

    reg.register("r", {"router": leaky})
    with pytest.raises(LLMError) as raised:
        reg.completion("r", HI)
    assert secret[:12] not in str(raised.value)


def test_chat_refuses_a_model(reg: Registry, emulator: OpenAIEmulator) -> None:
    reg.register("fast", fixed(emulator))
    with pytest.raises(InvalidRequestError, match="the named config decides the model"):
        reg.chat("fast", "Hi", model="gpt-4o")
