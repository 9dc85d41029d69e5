"""llmkit.registry at scale: balancing strategies, cooldowns, rate limits and the response cache.

Most tests route 1,000 calls to an in-process provider (no network) under
a clock the test controls, so distributions, windows and expiry are exact.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from llmkit import registry, system
from llmkit.errors import (
    AllAttemptsFailedError,
    InvalidRequestError,
    RateLimitError,
    ServiceUnavailableError,
    StreamInterruptedError,
)
from llmkit.registry import MemoryState, Registry
from llmkit_contracts import OpenAIEmulator, Reply

HI = {"messages": [{"role": "user", "content": "Hi"}]}


class Clock:
    """Time that moves only when told to (or when a call 'takes' time)."""

    def __init__(self) -> None:
        self.now = 1_000_040.0  # 20 s into a rate-limit window (1,000,020 is a multiple of 60)
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


class Echo:
    """An in-process provider, ``echo_scale``: answers with the model's name.

    ``behaviour[model]`` may raise an error, or advance the clock (latency).
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.calls: Counter[str] = Counter()
        self.fail: dict[str, Callable[[], Exception]] = {}
        self.latency: dict[str, float] = {}
        self.delay: dict[str, float] = {}  # real seconds, for least_busy
        self.usage: int = 0
        self.lock = threading.Lock()

    def answer(self, request: Any) -> Any:
        from llmkit.provider import ChatResponse, Choice, Message, Usage

        model = request.model
        with self.lock:
            self.calls[model] += 1
        if model in self.delay:
            time.sleep(self.delay[model])
        self.clock.now += self.latency.get(model, 0.0)
        if model in self.fail:
            raise self.fail[model]()
        usage = Usage(total_tokens=self.usage) if self.usage else None
        return ChatResponse(
            model=model,
            choices=[Choice(message=Message(role="assistant", content=model))],
            usage=usage,
        )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def echo(clock: Clock) -> Echo:
    from llmkit.provider import ChatRequest, Config, ProviderKey, acompletion, completion

    class EchoScale(ProviderKey):
        name = "echo_scale"
        api_key_env = None

    provider = Echo(clock)

    def method(key: Any, request: Any, config: Any) -> Any:
        return provider.answer(request)

    # Real annotations, not strings: plum resolves them, and EchoScale is local.
    method.__annotations__ = {
        "key": EchoScale,
        "request": ChatRequest,
        "config": Config,
        "return": Any,
    }
    completion.dispatch(method)

    def amethod(key: Any, request: Any, config: Any) -> Any:
        async def answer() -> Any:
            return provider.answer(request)

        return answer()

    amethod.__annotations__ = dict(method.__annotations__)
    acompletion.dispatch(amethod)
    return provider


@pytest.fixture
def reg(clock: Clock) -> Registry:
    return Registry(clock=clock, sleep=clock.sleep, asleep=clock.asleep)


def deployments(*models: str, **each: Any) -> list[dict[str, Any]]:
    return [{"provider": "echo_scale", "model": model, **each} for model in models]


def served(reg: Registry, name: str, calls: int = 1000) -> Counter[str]:
    return Counter(reg.completion(name, HI).served_by.model for _ in range(calls))


# --- balancing ------------------------------------------------------------------------


def test_weighted_random_follows_the_weights(reg: Registry, echo: Echo) -> None:
    random.seed(7)
    reg.register(
        "w",
        {
            "deployments": [
                {"provider": "echo_scale", "model": "small", "weight": 1},
                {"provider": "echo_scale", "model": "big", "weight": 3},
            ]
        },
    )
    counts = served(reg, "w")
    # Expected 250/750; the bounds are over 3.5 standard deviations (13.7) wide.
    assert 200 <= counts["small"] <= 300
    assert counts["small"] + counts["big"] == 1000
    assert echo.calls == counts


def test_round_robin_takes_turns(reg: Registry, echo: Echo) -> None:
    reg.register("rr", {"deployments": deployments("a", "b", "c"), "strategy": "round_robin"})
    order = [reg.completion("rr", HI).served_by.model for _ in range(1000)]
    assert Counter(order) == {"a": 334, "b": 333, "c": 333}
    assert order[:6] == ["a", "b", "c", "a", "b", "c"]


def test_least_busy_avoids_the_deployment_with_calls_in_flight(reg: Registry, echo: Echo) -> None:
    echo.delay["slow"] = 0.02  # real time: its calls stay in flight
    reg.register("lb", {"deployments": deployments("slow", "fast"), "strategy": "least_busy"})
    counts: Counter[str] = Counter()
    lock = threading.Lock()

    def work(n: int) -> None:
        for _ in range(n):
            model = reg.completion("lb", HI).served_by.model
            with lock:
                counts[model] += 1

    threads = [threading.Thread(target=work, args=(125,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sum(counts.values()) == 1000
    # "slow" gets a call only when "fast" has as many in flight: rarely.
    assert counts["slow"] < 100 < counts["fast"]


def test_lowest_latency_settles_on_the_fastest(reg: Registry, echo: Echo) -> None:
    echo.latency.update({"a": 0.5, "b": 0.1, "c": 0.3})
    reg.register("ll", {"deployments": deployments("a", "b", "c"), "strategy": "lowest_latency"})
    counts = served(reg, "ll")
    # Each is measured once (an unmeasured one goes first), then the fastest wins.
    assert counts == {"a": 1, "b": 998, "c": 1}


def test_lowest_latency_reads_an_attached_systems_metrics() -> None:
    with OpenAIEmulator() as fast, OpenAIEmulator() as slow:
        config = {
            "providers": {
                "fast": {"provider": "openai", "api_key": "sk-x" * 4, "api_base": fast.base_url},
                "slow": {"provider": "openai", "api_key": "sk-x" * 4, "api_base": slow.base_url},
            }
        }
        with system.create_system(config) as sys_:
            for _ in range(3):
                fast.enqueue(Reply.text("f"))
                slow.enqueue(Reply.text("s", delay=0.05))
                sys_.completion("fast", "m", HI)
                sys_.completion("slow", "m", HI)
            reg = Registry(system=sys_)
            reg.register(
                "ll",
                {
                    "deployments": [
                        {"provider": "slow", "model": "m"},
                        {"provider": "fast", "model": "m"},
                    ],
                    "strategy": "lowest_latency",
                },
            )
            for _ in range(5):
                fast.enqueue(Reply.text("f"))
            models = [reg.completion("ll", HI).text for _ in range(5)]
    assert models == ["f"] * 5


# --- cooldowns ------------------------------------------------------------------------


def test_a_failing_deployment_cools_down_and_comes_back(
    reg: Registry, echo: Echo, clock: Clock
) -> None:
    echo.fail["a"] = lambda: ServiceUnavailableError("down")
    reg.register(
        "cd",
        {
            "deployments": deployments("a", "b"),
            "strategy": "round_robin",
            "cooldown": {"failures": 2, "window": 10, "seconds": 30},
        },
    )
    # Each failure of "a" moves the call on to "b" at once: no wait.
    for _ in range(4):
        assert reg.completion("cd", HI).served_by.model == "b"
    assert echo.calls["a"] == 2
    assert clock.slept == []
    # Cooling: 100 calls go to "b" without touching "a".
    assert served(reg, "cd", 100) == {"b": 100}
    assert echo.calls["a"] == 2
    # After 30 s "a" is tried again (and fails again).
    clock.now += 31
    del echo.fail["a"]
    assert set(served(reg, "cd", 10)) == {"a", "b"}


def test_failures_outside_the_window_do_not_add_up(reg: Registry, echo: Echo, clock: Clock) -> None:
    echo.fail["a"] = lambda: ServiceUnavailableError("down")
    reg.register("spare", {"provider": "echo_scale", "model": "spare"})
    reg.register(
        "cd",
        {
            "deployments": deployments("a"),
            "retries": 0,
            "fallbacks": ["spare"],
            "cooldown": {"failures": 2, "window": 10, "seconds": 30},
        },
    )
    ident = ["cd:0:echo_scale/a"]
    reg.completion("cd", HI)  # "a" fails once; the fallback answers
    clock.now += 11
    reg.completion("cd", HI)  # once more, but the first is out of the window
    assert reg.state.cooling(ident, clock.now) == {}
    reg.completion("cd", HI)  # twice within 10 s: cooling
    assert reg.state.cooling(ident, clock.now) == {ident[0]: clock.now + 30}
    assert echo.calls == {"a": 3, "spare": 3}


def test_a_call_fails_fast_when_every_deployment_is_cooling(
    reg: Registry, echo: Echo, clock: Clock
) -> None:
    echo.fail["a"] = echo.fail["b"] = lambda: ServiceUnavailableError("down")
    reg.register(
        "cd",
        {
            "deployments": deployments("a", "b"),
            "retries": 3,
            "cooldown": {"failures": 1, "window": 10, "seconds": 30},
        },
    )
    with pytest.raises(AllAttemptsFailedError):  # a, then b: both fail and cool down
        reg.completion("cd", HI)
    tried, slept = sum(echo.calls.values()), len(clock.slept)
    with pytest.raises(ServiceUnavailableError, match="every deployment of 'cd' is cooling") as e:
        reg.completion("cd", HI)
    assert sum(echo.calls.values()) == tried  # no deployment was called
    assert len(clock.slept) == slept  # nor waited for
    assert 28 < (e.value.retry_after or 0) <= 30


def test_bad_requests_do_not_cool_a_deployment(reg: Registry, echo: Echo, clock: Clock) -> None:
    echo.fail["a"] = lambda: InvalidRequestError("bad")
    reg.register(
        "cd",
        {"deployments": deployments("a"), "cooldown": {"failures": 1, "window": 10, "seconds": 30}},
    )
    for _ in range(3):
        with pytest.raises(InvalidRequestError):
            reg.completion("cd", HI)
    assert echo.calls["a"] == 3


# --- rate limits --------------------------------------------------------------------


def test_rpm_moves_calls_on_and_then_to_the_fallbacks(
    reg: Registry, echo: Echo, clock: Clock
) -> None:
    reg.register("spare", {"provider": "echo_scale", "model": "spare"})
    reg.register(
        "rl",
        {
            "deployments": deployments("a", "b", rpm=2),
            "strategy": "round_robin",
            "when_limited": "move",
        },
    )
    assert [reg.completion("rl", HI).served_by.model for _ in range(4)] == ["a", "b", "a", "b"]
    with pytest.raises(RateLimitError, match="every deployment of 'rl' is at its RPM") as e:
        reg.completion("rl", HI)
    assert e.value.retry_after == pytest.approx(40.0)  # the window turns in 40 s
    reg.register(
        "rl",
        {
            "deployments": deployments("a", "b", rpm=2),
            "when_limited": "move",
            "fallbacks": ["spare"],
        },
    )
    # The re-registered config counts in the same state: still full this minute.
    reply = reg.completion("rl", HI)
    assert (reply.served_by.model, reply.served_by.fallback) == ("spare", True)
    assert clock.slept == []


def test_rpm_waits_for_the_next_window(reg: Registry, echo: Echo, clock: Clock) -> None:
    reg.register("rl", {"deployments": deployments("a", rpm=3)})
    assert served(reg, "rl", 3) == {"a": 3}
    assert reg.completion("rl", HI).served_by.model == "a"
    assert clock.slept == [pytest.approx(40.0)]
    # 1,000 calls at 3 a minute: each window takes three.
    counts = served(reg, "rl", 1000)
    assert counts == {"a": 1000}
    assert len(clock.slept) == 1 + 333


def test_tpm_counts_the_reported_usage(reg: Registry, echo: Echo, clock: Clock) -> None:
    echo.usage = 45
    reg.register(
        "tl",
        {
            "deployments": deployments("a", "b", tpm=50),
            "strategy": "round_robin",
            "when_limited": "move",
        },
    )
    assert reg.completion("tl", HI).served_by.model == "a"  # estimate first, then 40 used
    assert reg.completion("tl", HI).served_by.model == "b"
    with pytest.raises(RateLimitError, match="RPM or TPM"):
        reg.completion("tl", HI)  # 40 + the estimate no longer fits either
    clock.now += 60
    assert reg.completion("tl", HI).served_by.model in ("a", "b")


def test_the_limit_wait_stops_at_a_with_timeout_deadline(reg: Registry, echo: Echo) -> None:
    reg.register("rl", {"deployments": deployments("a", rpm=1)})
    reg.completion("rl", HI)
    bounded = registry.with_timeout(reg.completion, 5.0)
    with pytest.raises(RateLimitError, match="after the call's deadline"):
        bounded("rl", HI)


# --- the response cache ----------------------------------------------------------------


def test_cache_hit_miss_and_expiry(reg: Registry, echo: Echo, clock: Clock) -> None:
    reg.register("c", {"provider": "echo_scale", "model": "a", "cache": {"ttl": 10}})
    first = reg.completion("c", HI)
    again = reg.completion("c", HI)
    assert echo.calls["a"] == 1
    assert (first.served_by.cached, again.served_by.cached) == (False, True)
    assert again.text == first.text == "a"
    assert again.served_by.attempts == 0
    # Another request misses; a struct and a dict of the same request share a key.
    reg.completion("c", {"messages": [{"role": "user", "content": "Bye"}]})
    assert echo.calls["a"] == 2
    from llmkit.types import ChatRequest, Message

    same = ChatRequest(model="x", messages=[Message(role="user", content="Hi")])
    assert reg.completion("c", same).served_by.cached
    # Past the ttl, it expires.
    clock.now += 11
    assert not reg.completion("c", HI).served_by.cached
    assert echo.calls["a"] == 3


def test_cache_skips_varied_answers_unless_asked(reg: Registry, echo: Echo) -> None:
    reg.register("c", {"provider": "echo_scale", "model": "a", "cache": True})
    for request in ({**HI, "temperature": 0.7}, {**HI, "n": 2}):
        reg.completion("c", request)
        assert not reg.completion("c", request).served_by.cached
    assert reg.completion("c", {**HI, "temperature": 0}) is not None
    assert reg.completion("c", {**HI, "temperature": 0}).served_by.cached
    reg.register("always", {"provider": "echo_scale", "model": "a", "cache": {"always": True}})
    reg.completion("always", {**HI, "temperature": 0.7})
    assert reg.completion("always", {**HI, "temperature": 0.7}).served_by.cached


def test_a_stream_is_cached_as_its_assembled_response(
    reg: Registry, emulator: OpenAIEmulator
) -> None:
    config = {"api_key": "sk-x" * 4, "api_base": emulator.base_url}
    reg.register(
        "c", {"provider": "openai", "model": "gpt-4o-mini", "config": config, "cache": {"ttl": 60}}
    )
    emulator.enqueue(Reply.text("Tokyo, on Honshu.", chunk_size=3))
    text = "".join(chunk.text for chunk in reg.stream("c", HI))
    assert text == "Tokyo, on Honshu."
    # Served from the cache, as a stream and as a call: no second request.
    replay = reg.stream("c", HI)
    assert replay.served_by.cached
    assert "".join(chunk.text for chunk in replay) == "Tokyo, on Honshu."
    assert reg.completion("c", HI).text == "Tokyo, on Honshu."
    assert len(emulator.requests) == 1


def test_a_broken_stream_is_not_cached(reg: Registry, emulator: OpenAIEmulator) -> None:
    config = {"api_key": "sk-x" * 4, "api_base": emulator.base_url}
    reg.register(
        "c",
        {
            "provider": "openai",
            "model": "gpt-4o-mini",
            "config": config,
            "cache": True,
            "retries": 0,
        },
    )
    emulator.enqueue(Reply.text("cut short here", chunk_size=2, disconnect_after=3))
    with pytest.raises(StreamInterruptedError):
        list(reg.stream("c", HI))
    emulator.enqueue(Reply.text("whole"))
    assert reg.completion("c", HI).text == "whole"


def test_a_poisoned_cache_entry_is_a_miss(reg: Registry, echo: Echo, clock: Clock) -> None:
    state = MemoryState()
    poisoned = Registry(state=state, clock=clock)
    poisoned.register("c", {"provider": "echo_scale", "model": "a", "cache": True})
    poisoned.completion("c", HI)
    for key in list(state._cache):
        state.put(key, b"{not json", 60, clock.now)
    assert not poisoned.completion("c", HI).served_by.cached
    assert echo.calls["a"] == 2


# --- configs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "pattern"),
    [
        ({"deployments": []}, r"deployments is empty"),
        ({"deployments": [{"provider": "echo_scale"}]}, r"missing required field `model`"),
        (
            {"deployments": [{"provider": "openai", "model": "m", "wieght": 2}]},
            r"'wieght'; did you mean 'weight'.* - at `\$\.deployments\[0\]\.wieght`",
        ),
        ({"deployments": [{"provider": "openai", "model": "m", "weight": 0}]}, r"weight above 0"),
        ({"deployments": [{"provider": "openai", "model": "m", "rpm": 0}]}, r"rpm of 1 or more"),
        (
            {"deployments": [{"provider": "openai", "model": "m"}], "strategy": "fastest"},
            r"- at `\$\.strategy`",
        ),
        (
            {"deployments": [{"provider": "openai", "model": "m"}], "provider": "openai"},
            r"remove provider",
        ),
        (
            {"provider": "openai", "model": "m", "strategy": "round_robin"},
            r"strategy goes with deployments",
        ),
        (
            {"deployments": [{"provider": "openai", "model": "m"}], "cooldown": {"failures": 0}},
            r"- at `\$\.cooldown\.failures`",
        ),
        ({"provider": "openai", "model": "m", "cache": {"ttl": -1}}, r"- at `\$\.cache\.ttl`"),
        (
            {
                "deployments": [
                    {"provider": "openai", "model": "m", "id": "x"},
                    {"provider": "openai", "model": "n", "id": "x"},
                ]
            },
            r"the id 'x'",
        ),
    ],
)
def test_bad_scale_configs(reg: Registry, config: Any, pattern: str) -> None:
    with pytest.raises(InvalidRequestError, match=pattern):
        reg.register("bad", config)


def test_get_config_shows_the_deployments(reg: Registry, echo: Echo) -> None:
    reg.register("rl", {"deployments": deployments("a", "b", rpm=5), "cache": True})
    shown = reg.get_config("rl")
    assert [d["id"] for d in shown["deployments"]] == [
        "rl:0:echo_scale/a",
        "rl:1:echo_scale/b",
    ]
    assert shown["strategy"] == "weighted"
    assert shown["when_limited"] == "wait"
    assert shown["cache"].ttl == 300.0


def test_async_calls_balance_too(reg: Registry, echo: Echo) -> None:
    import asyncio

    reg.register("rr", {"deployments": deployments("a", "b"), "strategy": "round_robin"})

    async def main() -> list[str]:
        return [(await reg.acompletion("rr", HI)).served_by.model for _ in range(4)]

    assert asyncio.run(main()) == ["a", "b", "a", "b"]


def test_all_deployments_failing_lists_the_attempts(reg: Registry, echo: Echo) -> None:
    echo.fail["a"] = echo.fail["b"] = lambda: ServiceUnavailableError("down")
    reg.register("spare", {"provider": "echo_scale", "model": "spare"})
    echo.fail["spare"] = lambda: ServiceUnavailableError("down too")
    reg.register(
        "cd",
        {"deployments": deployments("a", "b"), "retries": 1, "fallbacks": ["spare"]},
    )
    with pytest.raises(AllAttemptsFailedError) as caught:
        reg.completion("cd", HI)
    models = [attempt.model for attempt in caught.value.attempts]
    assert set(models) == {"a", "b", "spare"}
    assert models[-1] == "spare"
    # A named fallback's attempt carries its own config's name.
    assert caught.value.attempts[-1].name == "spare"


def test_a_failed_deployment_hands_over_even_without_retries(
    reg: Registry, echo: Echo, clock: Clock
) -> None:
    echo.fail["a"] = lambda: RateLimitError("slow down", retry_after=120)
    reg.register(
        "p", {"deployments": deployments("a", "b"), "strategy": "round_robin", "retries": 0}
    )
    reply = reg.completion("p", HI)
    assert reply.served_by.model == "b"
    assert reply.served_by.attempts == 2
    assert not reply.served_by.fallback  # another deployment of the same name, not a fallback
    assert clock.slept == []  # the 120 s Retry-After was a's, not b's


def test_all_deployments_failing_without_fallbacks_lists_them(reg: Registry, echo: Echo) -> None:
    echo.fail["a"] = lambda: ServiceUnavailableError("a is down")
    echo.fail["b"] = lambda: ServiceUnavailableError("b is down")
    reg.register("p", {"deployments": deployments("a", "b"), "retries": 0})
    with pytest.raises(AllAttemptsFailedError) as caught:
        reg.completion("p", HI)
    assert sorted(a.model for a in caught.value.attempts) == ["a", "b"]


def test_a_cancelled_call_gives_its_slot_back(reg: Registry, echo: Echo) -> None:
    import asyncio

    echo.delay["a"] = 0.2
    reg.register("lb", {"deployments": deployments("a"), "strategy": "least_busy"})
    pool = reg._compiled("lb").pool

    async def main() -> None:
        for _ in range(3):
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(asyncio.to_thread(reg.completion, "lb", HI), 0.01)

    asyncio.run(main())
    time.sleep(0.5)  # the threads finish their calls
    assert pool.in_flight == {"lb:0:echo_scale/a": 0}


def test_an_abandoned_async_call_releases_its_deployment(reg: Registry, echo: Echo) -> None:
    import asyncio

    reg.register("lb", {"deployments": deployments("a"), "strategy": "least_busy"})
    pool = reg._compiled("lb").pool

    async def hang(*args: Any) -> Any:
        await asyncio.sleep(10)

    reg._asend = hang  # type: ignore[method-assign,assignment]

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reg.acompletion("lb", HI), 0.05)

    asyncio.run(main())
    assert pool.in_flight == {"lb:0:echo_scale/a": 0}


def test_the_cache_starts_afresh_when_a_name_is_registered_elsewhere(
    reg: Registry, echo: Echo
) -> None:
    reg.register("c", {"provider": "echo_scale", "model": "a", "cache": True})
    assert reg.completion("c", HI).text == "a"
    reg.register("c", {"provider": "echo_scale", "model": "b", "cache": True})
    reply = reg.completion("c", HI)
    assert (reply.text, reply.served_by.cached) == ("b", False)


def test_the_cache_key_is_canonical(reg: Registry, echo: Echo) -> None:
    reg.register("c", {"provider": "echo_scale", "model": "a", "cache": True})
    reg.completion("c", {**HI, "temperature": 0})
    assert reg.completion("c", {**HI, "temperature": 0.0}).served_by.cached
    assert reg.completion("c", {**HI, "temperature": 0, "max_tokens": None}).served_by.cached
    assert echo.calls["a"] == 1
