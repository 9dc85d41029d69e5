"""llmkit.system: config validation, the three call shapes, futures, asyncio, run-time providers."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any, cast

import httpx
import pytest

import llmkit
from llmkit import system
from llmkit.config import Config
from llmkit.system import (
    PoolConfig,
    ProviderConfig,
    System,
    SystemConfig,
    SystemStream,
    ThreadPools,
)
from llmkit.types import ChatRequest, ChatResponse, Message
from llmkit_contracts import OpenAIEmulator, Reply

KEY = "sk-system-test-0123456789"
MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "Hello there"}]
REQUEST = {"messages": MESSAGES}

Make = Callable[..., System]


@pytest.fixture
def make_system(emulator: OpenAIEmulator) -> Iterator[Make]:
    """Systems over the emulator, shut down after the test."""
    made: list[System] = []

    def make(**extra: Any) -> System:
        providers = extra.pop(
            "providers", {"openai": {"api_key": KEY, "api_base": emulator.base_url}}
        )
        created = system.create_system({"providers": providers, **extra})
        made.append(created)
        return created

    yield make
    for created in made:
        created.shutdown(timeout=10, cancel=True)


def _wait_until(check: Callable[[], bool], what: str) -> None:
    # A guard against a hang, not a timing threshold: the condition is
    # expected to hold within milliseconds.
    event = threading.Event()
    for _ in range(2000):
        if check():
            return
        event.wait(0.005)
    raise AssertionError(f"never happened: {what}")


# --- the surface -------------------------------------------------------------------------

SYSTEM_API = [
    "Defaults",
    "HealthChecks",
    "PoolConfig",
    "ProviderConfig",
    "ProviderHealth",
    "System",
    "SystemConfig",
    "SystemStream",
    "ThreadPools",
    "acompletion",
    "add_provider",
    "completion",
    "create_system",
    "get_global_system",
    "get_provider",
    "health",
    "health_check",
    "init",
    "list_providers",
    "make_request",
    "metrics",
    "remove_provider",
    "set_global_system",
    "shutdown",
    "shutdown_system",
    "submit",
    "system_info",
    "with_config",
    "with_system",
]

# Module functions that take the system first, and the method each one is.
SYSTEM_FIRST = {
    "acompletion": "acompletion",
    "add_provider": "add_provider",
    "completion": "completion",
    "get_provider": "get_provider",
    "health": "health",
    "health_check": "health_check",
    "list_providers": "list_providers",
    "make_request": "make_request",
    "metrics": "metrics",
    "remove_provider": "remove_provider",
    "shutdown_system": "shutdown",
    "submit": "submit",
    "system_info": "system_info",
}


def test_system_all_matches_the_kept_list() -> None:
    assert sorted(system.__all__) == sorted(SYSTEM_API)
    for name in system.__all__:
        assert getattr(system, name) is not None, name


@pytest.mark.parametrize(("function", "method"), sorted(SYSTEM_FIRST.items()))
def test_system_module_function_is_also_a_method(function: str, method: str) -> None:
    assert callable(getattr(system, function))
    assert callable(getattr(System, method))
    assert "Raises:" in (getattr(system, function).__doc__ or "")


def test_system_is_not_imported_by_import_llmkit() -> None:
    code = "import sys, llmkit; print('llmkit.system' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    "call",
    [
        lambda: system.completion("openai", MODEL, REQUEST),  # type: ignore[call-overload]
        lambda: system.metrics({}),  # type: ignore[arg-type]
        lambda: system.shutdown_system(None),  # type: ignore[arg-type]
        lambda: system.with_system("x").__enter__(),  # type: ignore[arg-type]
    ],
    ids=["completion", "metrics", "shutdown_system", "with_system"],
)
def test_system_first_argument_must_be_a_system(call: Callable[[], Any]) -> None:
    with pytest.raises(llmkit.InvalidRequestError, match="must be a System from"):
        call()


# --- config ------------------------------------------------------------------------------


def _config(**parts: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"providers": {"openai": {"api_key": KEY}}}
    config.update(parts)
    return config


BAD_CONFIGS = [
    (
        _config(thread_pools={"api_calls": {"queue_size": "many"}}),
        "$.thread_pools.api_calls.queue_size",
        "Expected `int`",
    ),
    (
        _config(thread_pools={"api_calls": {"queue_size": -1}}),
        "$.thread_pools.api_calls.queue_size",
        "from 0",
    ),
    (
        _config(thread_pools={"health_checks": {"pool_size": 0}}),
        "$.thread_pools.health_checks.pool_size",
        "from 1",
    ),
    (
        _config(thread_pools={"api_calls": {"when_full": "drop"}}),
        "$.thread_pools.api_calls.when_full",
        "'block' or 'raise'",
    ),
    (
        _config(thread_pools={"api_calls": {"queue_sise": 5}}),
        "$.thread_pools.api_calls",
        "unknown field `queue_sise`",
    ),
    (_config(threadpools={}), "$", "unknown field `threadpools`"),
    (
        {"providers": {"openai": {"api_key": KEY, "timeout": "soon"}}},
        "$.providers.openai.timeout",
        "Expected `float | null`",
    ),
    (
        {"providers": {"openai": {"api_key": KEY, "timeout": -1}}},
        "$.providers.openai",
        "timeout must be",
    ),
    (
        {"providers": {"openai-eu": {"provider": "openai", "api_key": KEY, "retries": 1000}}},
        "$.providers['openai-eu']",
        "retries must be",
    ),
    (
        {"providers": {"openai": {"api_key": KEY, "transport": object()}}},
        "$.providers.openai",
        "its own transport",
    ),
    (
        {"providers": {"openai": {"api_key": KEY, "api_base": "ftp://x"}}},
        "$.providers.openai",
        "http:// or https://",
    ),
    (_config(defaults={"provider": "anthropic"}), "$.defaults.provider", "not one of"),
    (_config(defaults={"stream_buffer": 0}), "$.defaults.stream_buffer", "from 1"),
    (_config(defaults={"timeout": 0}), "$.defaults.timeout", "above 0"),
    (_config(health_checks={"interval": -5}), "$.health_checks.interval", "above 0"),
    ({"providers": {"openai": "sk-..."}}, "$.providers.openai", "dict or a ProviderConfig"),
    ({"providers": {"": {}}}, "$.providers", "non-empty string"),
]


@pytest.mark.parametrize(
    ("config", "path", "message"),
    BAD_CONFIGS,
    ids=[f"{path}:{message}" for _, path, message in BAD_CONFIGS],
)
def test_system_config_errors_name_the_path(config: Any, path: str, message: str) -> None:
    with pytest.raises(llmkit.InvalidRequestError) as caught:
        system.create_system(config)
    text = str(caught.value)
    assert f"at `{path}`" in text
    assert message in text
    assert KEY not in text


@pytest.mark.parametrize(
    ("providers", "path"),
    [
        ({"opnai": {"api_key": KEY}}, "$.providers.opnai"),
        ({"eu": {"provider": "opnai", "api_key": KEY}}, "$.providers.eu.provider"),
    ],
    ids=["name", "provider-field"],
)
def test_system_config_unknown_provider_names_the_path(
    providers: dict[str, Any], path: str
) -> None:
    with pytest.raises(llmkit.ProviderNotFoundError) as caught:
        system.create_system({"providers": providers})
    assert f"at `{path}`" in str(caught.value)
    assert "Did you mean 'openai'?" in str(caught.value)


def test_system_config_not_a_dict() -> None:
    with pytest.raises(llmkit.InvalidRequestError, match="must be a dict or a SystemConfig"):
        system.create_system(["openai"])  # type: ignore[arg-type]


def test_system_config_typed_structs_and_llmkit_config(emulator: OpenAIEmulator) -> None:
    config = SystemConfig(
        providers={
            "eu": ProviderConfig(provider="openai", api_key=KEY, api_base=emulator.base_url),
        },
        thread_pools=ThreadPools(api_calls=PoolConfig(pool_size=2, queue_size=3)),
    )
    with system.create_system(config) as made:
        made.add_provider("openai", Config(api_key=KEY, api_base=emulator.base_url))
        assert made.list_providers() == ["eu", "openai"]
        assert made.system_info()["thread_pools"]["api_calls"]["pool_size"] == 2
        assert made.completion("eu", MODEL, REQUEST, stream=False).text == "Echo: Hello there"
        assert made.completion("openai", MODEL, REQUEST, stream=False).text == "Echo: Hello there"


def test_system_config_typed_values_are_checked_too() -> None:
    config = SystemConfig(thread_pools=ThreadPools(api_calls=PoolConfig(queue_size=-3)))
    with pytest.raises(llmkit.InvalidRequestError, match=r"\$\.thread_pools\.api_calls"):
        system.create_system(config)


def test_system_provider_config_repr_hides_the_key() -> None:
    config = ProviderConfig(api_key=KEY, headers={"x-api-key": KEY, "x-team": "blue"})
    assert KEY not in repr(config)
    assert "x-team" in repr(config)


def test_system_empty_config_has_no_providers() -> None:
    with system.create_system() as made:
        assert made.list_providers() == []
        with pytest.raises(llmkit.ProviderNotFoundError, match="Its providers: none"):
            made.completion("openai", MODEL, REQUEST)


# --- calls -------------------------------------------------------------------------------


SHAPES: list[tuple[str, Callable[[System], Any]]] = [
    ("positional", lambda s: system.completion(s, "openai", MODEL, REQUEST)),
    ("positional-method", lambda s: s.completion("openai", MODEL, REQUEST)),
    ("positional-config", lambda s: s.completion("openai", MODEL, REQUEST, {"timeout": 30})),
    (
        "struct",
        lambda s: s.completion(
            "openai",
            MODEL,
            ChatRequest(model="", messages=[Message(role="user", content="Hello there")]),
        ),
    ),
    (
        "request-only",
        lambda s: system.completion(s, {"provider": "openai", "model": MODEL, **REQUEST}),
    ),
    (
        "make_request",
        lambda s: system.make_request(s, {"provider": "openai", "model": MODEL, **REQUEST}),
    ),
    (
        "make_request-method",
        lambda s: s.make_request({"provider": "openai", "model": MODEL, **REQUEST}),
    ),
    ("keywords", lambda s: system.completion(s, provider="openai", model=MODEL, messages=MESSAGES)),
    (
        "keywords-method",
        lambda s: s.completion(provider="openai", model=MODEL, messages=MESSAGES, temperature=0.5),
    ),
]


@pytest.mark.parametrize("call", [c for _, c in SHAPES], ids=[n for n, _ in SHAPES])
def test_system_completion_shapes(make_system: Make, call: Callable[[System], Any]) -> None:
    reply = call(make_system())
    assert isinstance(reply, ChatResponse)
    assert reply.text == "Echo: Hello there"


STREAM_SHAPES: list[tuple[str, Callable[[System], Any]]] = [
    ("positional-keyword", lambda s: s.completion("openai", MODEL, REQUEST, stream=True)),
    (
        "request-only-keyword",
        lambda s: s.completion({"provider": "openai", "model": MODEL, **REQUEST}, stream=True),
    ),
    (
        "request-only",
        lambda s: s.completion({"provider": "openai", "model": MODEL, "stream": True, **REQUEST}),
    ),
    (
        "keywords",
        lambda s: system.completion(
            s, provider="openai", model=MODEL, messages=MESSAGES, stream=True
        ),
    ),
]


@pytest.mark.parametrize("call", [c for _, c in STREAM_SHAPES], ids=[n for n, _ in STREAM_SHAPES])
def test_system_completion_stream_shapes(make_system: Make, call: Callable[[System], Any]) -> None:
    handle = call(make_system())
    assert isinstance(handle, SystemStream)
    assert "".join(chunk.text for chunk in handle) == "Echo: Hello there"


def test_system_stream_keyword_decides_outside_the_one_dict_shape(make_system: Make) -> None:
    made = make_system()
    # As in llmkit.core: the positional shape decides with stream= alone.
    streaming: dict[str, Any] = {**REQUEST, "stream": True}
    assert isinstance(made.completion("openai", MODEL, streaming), ChatResponse)
    # The one-dict shape follows the dict, unless stream= is given.
    one = {"provider": "openai", "model": MODEL, **streaming}
    assert isinstance(made.completion(one), SystemStream)
    assert isinstance(made.completion(one, stream=False), ChatResponse)


def test_system_defaults_give_provider_and_model(
    make_system: Make, emulator: OpenAIEmulator
) -> None:
    made = make_system(defaults={"provider": "openai", "model": "gpt-4.1"})
    assert made.completion(messages=MESSAGES).text == "Echo: Hello there"
    reply = made.completion(REQUEST)
    assert isinstance(reply, ChatResponse)
    assert reply.text == "Echo: Hello there"
    assert [r.json["model"] for r in emulator.requests] == ["gpt-4.1", "gpt-4.1"]


def test_system_per_call_config_overrides_the_provider(
    make_system: Make, emulator: OpenAIEmulator
) -> None:
    made = make_system()
    made.completion("openai", MODEL, REQUEST, config={"headers": {"x-trace": "abc"}})
    made.completion("openai", MODEL, REQUEST)
    traces = [r.headers.get("x-trace") for r in emulator.requests]
    assert traces == ["abc", None]
    with pytest.raises(llmkit.InvalidRequestError, match="its own transport"):
        made.completion("openai", MODEL, REQUEST, {"transport": llmkit.Transport()})
    with pytest.raises(llmkit.InvalidRequestError, match="config given twice"):
        made.completion("openai", MODEL, REQUEST, {}, config={})  # type: ignore[call-overload]


def test_system_defaults_apply_to_every_provider(
    make_system: Make, emulator: OpenAIEmulator
) -> None:
    base = emulator.base_url
    made = make_system(
        providers={
            "openai": {"api_key": KEY, "api_base": base},
            "tagged": {
                "provider": "openai",
                "api_key": KEY,
                "api_base": base,
                "headers": {"x-team": "red"},
            },
        },
        defaults={"headers": {"x-team": "blue", "x-app": "demo"}, "retries": 0},
    )
    made.completion("openai", MODEL, REQUEST)
    made.completion("tagged", MODEL, REQUEST)
    first, second = emulator.requests
    assert (first.headers["x-team"], first.headers["x-app"]) == ("blue", "demo")
    assert (second.headers["x-team"], second.headers["x-app"]) == ("red", "demo")


BAD_CALLS: list[tuple[str, Callable[[System], Any], type[Exception], str]] = [
    (
        "unknown-provider",
        lambda s: s.completion("opnai", MODEL, REQUEST),
        llmkit.ProviderNotFoundError,
        "Unknown provider 'opnai' in this system. Its providers: openai",
    ),
    (
        "provider-type",
        lambda s: cast(Any, s).completion(3, MODEL, REQUEST),
        llmkit.InvalidRequestError,
        "provider must be",
    ),
    (
        "no-provider",
        lambda s: s.completion(messages=MESSAGES, model=MODEL),
        llmkit.InvalidRequestError,
        "no provider",
    ),
    (
        "no-model",
        lambda s: s.completion(provider="openai", messages=MESSAGES),
        llmkit.InvalidRequestError,
        "no model",
    ),
    (
        "bad-request",
        lambda s: s.completion("openai", MODEL, {"messages": [{"role": "usr", "content": "x"}]}),
        llmkit.InvalidRequestError,
        "$.messages[0].role",
    ),
    (
        "bad-field",
        lambda s: s.completion(provider="openai", model=MODEL, messages=MESSAGES, temprature=1),
        llmkit.InvalidRequestError,
        "temprature",
    ),
    (
        "two-positional",
        lambda s: cast(Any, s).completion("openai", MODEL),
        llmkit.InvalidRequestError,
        "got 2 positional",
    ),
    (
        "request-not-dict",
        lambda s: cast(Any, s).completion("hello"),
        llmkit.InvalidRequestError,
        "must be a dict",
    ),
    (
        "bad-config",
        lambda s: s.completion("openai", MODEL, REQUEST, {"timeout": -1}),
        llmkit.InvalidRequestError,
        "timeout must be",
    ),
    (
        "submit-stream",
        lambda s: s.submit("openai", MODEL, REQUEST, stream=True),
        llmkit.InvalidRequestError,
        "submit() runs whole calls",
    ),
    (
        "submit-unknown",
        lambda s: s.submit("opnai", MODEL, REQUEST),
        llmkit.ProviderNotFoundError,
        "opnai",
    ),
    (
        "acompletion-unknown",
        lambda s: asyncio.run(s.acompletion("opnai", MODEL, REQUEST)),
        llmkit.ProviderNotFoundError,
        "opnai",
    ),
    ("health-unknown", lambda s: s.health_check(["opnai"]), llmkit.ProviderNotFoundError, "opnai"),
    (
        "health-not-list",
        lambda s: s.health_check(cast(Any, "openai")),
        llmkit.InvalidRequestError,
        "list of provider names",
    ),
    ("get-unknown", lambda s: s.get_provider("opnai"), llmkit.ProviderNotFoundError, "opnai"),
    ("remove-unknown", lambda s: s.remove_provider("opnai"), llmkit.ProviderNotFoundError, "opnai"),
    (
        "remove-not-str",
        lambda s: s.remove_provider(cast(Any, None)),
        llmkit.InvalidRequestError,
        "name must be",
    ),
    (
        "add-existing",
        lambda s: s.add_provider("openai", {"api_key": KEY}),
        llmkit.InvalidRequestError,
        "already in this system",
    ),
    (
        "add-bad-path",
        lambda s: s.add_provider("extra", {"provider": "openai", "timeout": "x"}),
        llmkit.InvalidRequestError,
        "$.providers.extra.timeout",
    ),
    (
        "add-unknown",
        lambda s: s.add_provider("opnai", {}),
        llmkit.ProviderNotFoundError,
        "$.providers.opnai",
    ),
]


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [(c, e, m) for _, c, e, m in BAD_CALLS],
    ids=[n for n, *_ in BAD_CALLS],
)
def test_system_bad_input_fails_before_any_network_call(
    make_system: Make,
    emulator: OpenAIEmulator,
    call: Callable[[System], Any],
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error) as caught:
        call(make_system())
    assert message in str(caught.value)
    assert emulator.requests == []


def test_system_provider_errors_come_through(make_system: Make, emulator: OpenAIEmulator) -> None:
    made = make_system()
    emulator.enqueue(Reply.error(401, message="Incorrect API key provided: " + KEY))
    with pytest.raises(llmkit.AuthenticationError) as caught:
        made.completion("openai", MODEL, REQUEST)
    assert KEY not in str(caught.value)
    counters = made.metrics()["providers"]["openai"][MODEL]
    assert counters["errors"] == {"AuthenticationError": 1}
    assert counters["in_flight"] == 0


def test_system_missing_key_fails_at_call(make_system: Make, emulator: OpenAIEmulator) -> None:
    made = make_system(providers={"openai": {"api_base": emulator.base_url}})
    with pytest.raises(llmkit.AuthenticationError, match="OPENAI_API_KEY"):
        made.completion("openai", MODEL, REQUEST)
    assert emulator.requests == []


def test_system_provider_key_instance_selects_by_name(make_system: Make) -> None:
    from llmkit_providers.openai import OpenAI

    assert make_system().completion(OpenAI(), MODEL, REQUEST).text == "Echo: Hello there"


# --- futures and asyncio -------------------------------------------------------------------


def test_system_submit_returns_a_future(make_system: Make) -> None:
    made = make_system()
    futures = [system.submit(made, "openai", MODEL, REQUEST) for _ in range(5)]
    futures.append(made.submit(provider="openai", model=MODEL, messages=MESSAGES))
    assert all(isinstance(future, Future) for future in futures)
    assert {future.result(timeout=30).text for future in futures} == {"Echo: Hello there"}
    assert made.metrics()["providers"]["openai"][MODEL]["successes"] == 6


def test_system_submit_error_goes_into_the_future(
    make_system: Make, emulator: OpenAIEmulator
) -> None:
    emulator.enqueue(Reply.error(400, message="bad things"))
    future = make_system().submit("openai", MODEL, REQUEST)
    with pytest.raises(llmkit.InvalidRequestError, match="bad things"):
        future.result(timeout=30)


def test_system_submit_cancelled_while_queued_never_runs(
    make_system: Make, emulator: OpenAIEmulator
) -> None:
    made = make_system(thread_pools={"api_calls": {"pool_size": 1}})
    emulator.enqueue(Reply.text("slow", delay=0.3))
    first = made.submit("openai", MODEL, REQUEST)
    second = made.submit("openai", MODEL, REQUEST)
    assert second.cancel()
    assert first.result(timeout=30).text == "slow"
    _wait_until(lambda: made.metrics()["pools"]["api_calls"]["queued"] == 0, "queue empty")
    assert len(emulator.requests) == 1
    counters = made.metrics()["providers"]["openai"][MODEL]
    assert (counters["cancelled"], counters["queue_depth"], counters["in_flight"]) == (1, 0, 0)


def test_system_acompletion(make_system: Make) -> None:
    made = make_system()

    async def main() -> list[str]:
        replies = await asyncio.gather(
            system.acompletion(made, "openai", MODEL, REQUEST),
            made.acompletion({"provider": "openai", "model": MODEL, **REQUEST}, stream=False),
            made.acompletion(provider="openai", model=MODEL, messages=MESSAGES, stream=False),
        )
        return [reply.text for reply in replies]

    assert asyncio.run(main()) == ["Echo: Hello there"] * 3


def test_system_acompletion_does_not_block_the_loop(
    make_system: Make, emulator: OpenAIEmulator
) -> None:
    made = make_system()
    emulator.enqueue(Reply.text("late", delay=0.5))

    async def main() -> tuple[str, int]:
        call = asyncio.ensure_future(made.acompletion("openai", MODEL, REQUEST, stream=False))
        ticks = 0
        while not call.done():
            ticks += 1
            await asyncio.sleep(0.01)
        return (await call).text, ticks

    text, ticks = asyncio.run(main())
    assert text == "late"
    assert ticks > 2  # the loop kept running while the call was on a pool thread


def test_system_acompletion_cancelled_aborts_the_call(
    make_system: Make, emulator: OpenAIEmulator
) -> None:
    made = make_system(thread_pools={"api_calls": {"pool_size": 1}})
    emulator.enqueue(Reply.text("never", delay=3600))

    async def main() -> None:
        call = asyncio.ensure_future(made.acompletion("openai", MODEL, REQUEST, stream=False))
        while not emulator.requests:
            await asyncio.sleep(0.005)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call

    asyncio.run(main())
    # The one pool thread was freed at once: the next call runs.
    assert made.submit("openai", MODEL, REQUEST).result(timeout=30).text == "Echo: Hello there"
    counters = made.metrics()["providers"]["openai"][MODEL]
    assert counters["cancelled"] == 1
    assert counters["in_flight"] == 0


# --- providers at run time -----------------------------------------------------------------


def test_system_add_provider_then_call(make_system: Make, emulator: OpenAIEmulator) -> None:
    made = make_system(providers={})
    system.add_provider(
        made, "eu", {"provider": "openai", "api_key": KEY, "api_base": emulator.base_url}
    )
    assert system.list_providers(made) == ["eu"]
    assert made.completion("eu", MODEL, REQUEST).text == "Echo: Hello there"
    info = system.get_provider(made, "eu")
    assert (info["name"], info["provider"], info["api_base"]) == ("eu", "openai", emulator.base_url)
    assert info["config"]["api_key"] == "'***'"
    assert KEY not in repr(system.system_info(made))
    assert list(made.metrics()["providers"]) == ["eu"]


def test_system_remove_provider_lets_in_flight_calls_finish(
    make_system: Make, emulator: OpenAIEmulator
) -> None:
    made = make_system()
    emulator.enqueue(Reply.text("finished", delay=0.3))
    running = made.submit("openai", MODEL, REQUEST)
    _wait_until(lambda: bool(emulator.requests), "the call reached the server")
    transport = made._providers["openai"].transport
    system.remove_provider(made, "openai")
    # remove_provider returned only once the call was done; then it closed the clients.
    assert running.done()
    assert running.result().text == "finished"
    assert transport._sync == {}
    with pytest.raises(llmkit.ProviderNotFoundError, match="Its providers: none"):
        made.completion("openai", MODEL, REQUEST)
    made.add_provider("openai", {"api_key": KEY, "api_base": emulator.base_url})
    assert made.completion("openai", MODEL, REQUEST).text == "Echo: Hello there"


def test_system_remove_provider_timeout_closes_later(
    make_system: Make, emulator: OpenAIEmulator
) -> None:
    made = make_system()
    emulator.enqueue(Reply.text("slow " * 6, chunk_delay=0.01, chunk_size=1))
    handle = made.completion("openai", MODEL, REQUEST, stream=True)
    next(handle)
    entry = made._providers["openai"]
    with pytest.raises(llmkit.TimeoutError, match="1 calls still in flight"):
        made.remove_provider("openai", timeout=0.01)
    assert not entry.closed
    assert handle.collect().text.startswith("slow slow")
    _wait_until(lambda: entry.closed, "the last call closed the clients")


def test_system_removed_provider_refuses_a_late_call(make_system: Make) -> None:
    made = make_system()
    entry = made._providers["openai"]
    made.remove_provider("openai")
    with pytest.raises(llmkit.ProviderNotFoundError, match="was removed"):
        entry.enter()


def test_system_add_and_remove_from_many_threads(
    make_system: Make, emulator: OpenAIEmulator
) -> None:
    made = make_system()
    errors: list[BaseException] = []

    def churn(n: int) -> None:
        name = f"extra{n}"
        try:
            for _ in range(5):
                made.add_provider(
                    name, {"provider": "openai", "api_key": KEY, "api_base": emulator.base_url}
                )
                assert made.completion(name, MODEL, REQUEST).text == "Echo: Hello there"
                made.remove_provider(name)
        except BaseException as exc:
            errors.append(exc)

    def call() -> None:
        try:
            for _ in range(10):
                made.completion("openai", MODEL, REQUEST)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=churn, args=(n,)) for n in range(4)]
    threads += [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert made.list_providers() == ["openai"]
    assert made.metrics()["providers"]["openai"][MODEL]["successes"] == 40


def test_system_many_threads_share_a_bounded_pool(
    make_system: Make, emulator: OpenAIEmulator
) -> None:
    made = make_system(thread_pools={"api_calls": {"pool_size": 3, "queue_size": 100}})
    results: list[str] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(5):
            text = made.completion("openai", MODEL, REQUEST).text
            with lock:
                results.append(text)

    threads = [threading.Thread(target=work) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["Echo: Hello there"] * 60
    # At most pool_size calls ran at once, so at most that many connections opened.
    assert len({request.connection for request in emulator.requests}) <= 3
    pool = made.metrics()["pools"]["api_calls"]
    assert (pool["running"], pool["queued"], pool["completed"]) == (0, 0, 60)


def test_system_injected_http_client_is_used_and_left_open() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(
            200,
            json={
                "id": "x",
                "object": "chat.completion",
                "created": 1,
                "model": MODEL,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "mocked"},
                        "finish_reason": "stop",
                    }
                ],
            },
        )

    client = httpx.Client(transport=httpx.MockTransport(handler))
    config = {
        "providers": {
            "openai": {"api_key": KEY, "api_base": "http://mock.invalid/v1", "http_client": client}
        }
    }
    with system.create_system(config) as made:
        assert made.completion("openai", MODEL, REQUEST).text == "mocked"
    assert seen == ["http://mock.invalid/v1/chat/completions"]
    assert not client.is_closed  # the system closes only the clients it owns
    client.close()


def test_system_example_runs() -> None:
    from pathlib import Path

    example = Path(__file__).resolve().parent.parent / "examples" / "system_usage.py"
    out = subprocess.run(
        [sys.executable, str(example)], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert "positional: Tokyo." in out
    assert "stream:     Tokyo, on Honshu. | finish: stop" in out
    assert "health:     openai healthy via completion" in out
    assert "after:      this system is shut down" in out
    assert "global:     Tokyo, globally." in out


def test_system_info_hides_secret_headers(make_system: Make) -> None:
    made = make_system(defaults={"headers": {"Authorization": f"Bearer {KEY}", "x-app": "demo"}})
    info = system.system_info(made)
    assert info["defaults"]["headers"] == {"Authorization": "***", "x-app": "demo"}
    assert info["state"] == "running"
    assert KEY not in repr(info)


def test_system_forgets_removed_providers_once_closed(
    make_system: Make, emulator: OpenAIEmulator
) -> None:
    made = make_system()
    for _ in range(5):
        made.add_provider(
            "churn", {"provider": "openai", "api_key": KEY, "api_base": emulator.base_url}
        )
        made.completion("churn", MODEL, REQUEST)
        made.remove_provider("churn")
    assert len(made._transports) <= 3  # openai, the last removed one, at most one more
    assert len(made._retired) <= 1
