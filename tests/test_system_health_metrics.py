"""llmkit.system health checks (the probe generic, periodic checks) and metrics."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import msgspec
import pytest

import llmkit
from llmkit import _http, generics, system
from llmkit.provider import ChatRequest, Config, ProbeResult, ProviderKey, probe
from llmkit.system import ProviderHealth, System
from llmkit_contracts import OpenAIEmulator, Reply

KEY = "sk-system-test-0123456789"
MODEL = "gpt-4o-mini"
REQUEST = {"messages": [{"role": "user", "content": "Hello there"}]}
MODELS = b'{"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model"}, {"id": "o3"}]}'

Make = Callable[..., System]


class ModelsEmulator(OpenAIEmulator):
    """The OpenAI emulator, also serving ``GET /v1/models`` (behind the same key check)."""

    def refusal(
        self, method: str, path: str, headers: Mapping[str, str], payload: Any
    ) -> Reply | None:
        if path.partition("?")[0] == "/v1/models" and method == "GET":
            if not headers.get("authorization", "").startswith("Bearer sk-"):
                return Reply.error(401, message="Incorrect API key provided")
            return Reply.error(200, body=MODELS)  # an error reply is how a raw 200 is scripted
        return super().refusal(method, path, headers, payload)


class NoModels(llmkit.OpenAI):
    """An OpenAI-like provider whose API has no models endpoint: it brings its own probe."""

    name = "nomodels"


class Broken(llmkit.OpenAI):
    """A provider whose probe method breaks."""

    name = "brokenprobe"


@pytest.fixture
def models_emulator() -> Iterator[ModelsEmulator]:
    with ModelsEmulator() as emu:
        yield emu


@pytest.fixture
def make_system() -> Iterator[Make]:
    made: list[System] = []

    def make(base_url: str, **extra: Any) -> System:
        providers = extra.pop("providers", {"openai": {"api_key": KEY, "api_base": base_url}})
        created = system.create_system({"providers": providers, **extra})
        made.append(created)
        return created

    yield make
    for created in made:
        created.shutdown(timeout=10, cancel=True)


def _wait_until(check: Callable[[], bool], what: str) -> None:
    # A guard against a hang, not a timing threshold.
    event = threading.Event()
    for _ in range(2000):
        if check():
            return
        event.wait(0.005)
    raise AssertionError(f"never happened: {what}")


# --- the probe generic -------------------------------------------------------------------


def test_probe_default_gets_the_models_list(models_emulator: ModelsEmulator) -> None:
    key = llmkit.OpenAI()
    result = probe(key, Config(api_key=KEY, api_base=models_emulator.base_url))
    assert isinstance(result, ProbeResult)
    assert (result.status, result.models) == (200, ("gpt-4o-mini", "o3"))
    assert result.latency > 0
    (request,) = models_emulator.requests
    assert (request.method, request.path) == ("GET", "/v1/models")
    assert request.headers["authorization"] == f"Bearer {KEY}"


def test_probe_default_raises_the_providers_error(emulator: OpenAIEmulator) -> None:
    with pytest.raises(llmkit.NotFoundError) as caught:
        probe(llmkit.OpenAI(), Config(api_key=KEY, api_base=emulator.base_url, retries=0))
    assert caught.value.model is None
    assert caught.value.status == 404


def test_probe_is_a_generic_function() -> None:
    assert generics.generic_functions()["probe"] is probe


# --- health checks -------------------------------------------------------------------------


def test_system_health_check_models_probe(
    make_system: Make, models_emulator: ModelsEmulator
) -> None:
    made = make_system(models_emulator.base_url)
    assert made.health()["openai"].status == "unknown"
    result = system.health_check(made)
    health = result["openai"]
    assert isinstance(health, ProviderHealth)
    assert (health.name, health.status, health.probe) == ("openai", "healthy", "models")
    assert health.latency is not None
    assert health.checked_at is not None
    assert health.last_error is None
    assert system.health(made)["openai"] == health
    assert made.get_provider("openai")["health"]["status"] == "healthy"
    # Probes are not calls: the metrics saw nothing.
    assert made.metrics()["providers"] == {}


def test_system_health_check_failures_keep_the_last_error(
    make_system: Make, models_emulator: ModelsEmulator
) -> None:
    made = make_system(
        models_emulator.base_url,
        providers={
            "good": {"provider": "openai", "api_key": KEY, "api_base": models_emulator.base_url},
            "bad": {
                "provider": "openai",
                "api_key": "wrong-key-123456",
                "api_base": models_emulator.base_url,
            },
        },
    )
    first = made.health_check()
    assert (first["good"].status, first["bad"].status) == ("healthy", "unhealthy")
    bad = first["bad"]
    assert bad.last_error_type == "AuthenticationError"
    assert "Incorrect API key" in (bad.last_error or "")
    assert "wrong-key-123456" not in json.dumps(msgspec.to_builtins(bad))
    assert bad.consecutive_failures == 1
    assert made.health_check(["bad"])["bad"].consecutive_failures == 2
    # Back to health: the status changes, the last error is kept for the record.
    made.remove_provider("bad")
    made.add_provider(
        "bad", {"provider": "openai", "api_key": KEY, "api_base": models_emulator.base_url}
    )
    made._providers["bad"].health.latest = bad
    recovered = made.health_check(["bad"])["bad"]
    assert (recovered.status, recovered.consecutive_failures) == ("healthy", 0)
    assert recovered.last_error_type == "AuthenticationError"


def test_system_health_check_without_models_endpoint(
    make_system: Make, emulator: OpenAIEmulator
) -> None:
    health = make_system(emulator.base_url).health_check()["openai"]
    assert (health.status, health.last_error_type) == ("unhealthy", "NotFoundError")
    assert len(emulator.requests) == 1  # never retried


def test_system_health_check_completion_probe(make_system: Make, emulator: OpenAIEmulator) -> None:
    made = make_system(
        emulator.base_url,
        providers={
            "openai": {"api_key": KEY, "api_base": emulator.base_url, "probe_model": "gpt-4o-mini"}
        },
    )
    health = made.health_check()["openai"]
    assert (health.status, health.probe) == ("healthy", "completion")
    (request,) = emulator.requests
    assert request.json["model"] == "gpt-4o-mini"
    assert request.json["max_tokens"] == 1
    assert made.metrics()["providers"] == {}


def test_system_health_check_uses_a_providers_own_probe(
    make_system: Make, emulator: OpenAIEmulator
) -> None:
    calls: list[str] = []

    @probe.dispatch
    def _(key: NoModels, config: Config) -> Any:
        calls.append(config.api_base or "")
        return ProbeResult(status=200, latency=0.0)

    made = make_system(
        emulator.base_url,
        providers={
            "openai": {"provider": "nomodels", "api_key": KEY, "api_base": emulator.base_url}
        },
    )
    assert made.health_check()["openai"].status == "healthy"
    assert calls == [emulator.base_url]
    assert emulator.requests == []


def test_system_health_check_probe_that_breaks(make_system: Make, emulator: OpenAIEmulator) -> None:
    @probe.dispatch
    def _(key: Broken, config: Config) -> Any:
        raise RuntimeError("oops")

    made = make_system(
        emulator.base_url,
        providers={
            "openai": {"provider": "brokenprobe", "api_key": KEY, "api_base": emulator.base_url}
        },
    )
    health = made.health_check()["openai"]
    assert health.status == "unhealthy"
    assert "probe raised RuntimeError" in (health.last_error or "")


def test_system_periodic_health_checks(make_system: Make, models_emulator: ModelsEmulator) -> None:
    made = make_system(models_emulator.base_url, health_checks={"interval": 0.01})
    _wait_until(lambda: len(models_emulator.requests) >= 2, "two periodic probes")
    assert made.health()["openai"].status == "healthy"
    ticker = made._ticker
    assert ticker is not None
    assert ticker.is_alive()
    made.shutdown()
    assert not ticker.is_alive()


# --- metrics --------------------------------------------------------------------------------


def test_system_metrics_count_calls_and_attempts(
    make_system: Make, emulator: OpenAIEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_http, "_sleep", lambda seconds: None)  # no backoff waits
    made = make_system(emulator.base_url)
    emulator.enqueue(
        Reply.error(503, message="overloaded"),
        Reply.text("after a retry", prompt_tokens=7, completion_tokens=3),
        Reply.error(400, message="no"),
    )
    assert made.completion("openai", MODEL, REQUEST).text == "after a retry"
    with pytest.raises(llmkit.InvalidRequestError):
        made.completion("openai", MODEL, REQUEST)
    made.completion("openai", "gpt-4.1", REQUEST, stream=True).collect()
    exported = system.metrics(made)
    json.dumps(exported)  # a plain dict, all the way down
    mini = exported["providers"]["openai"][MODEL]
    assert {k: mini[k] for k in ("requests", "successes", "errors", "attempts", "retries")} == {
        "requests": 2,
        "successes": 1,
        "errors": {"InvalidRequestError": 1},
        "attempts": 3,
        "retries": 1,
    }
    assert mini["attempt_errors"] == {"InvalidRequestError": 1, "ServiceUnavailableError": 1}
    assert (mini["tokens_in"], mini["tokens_out"]) == (7, 3)
    assert (mini["in_flight"], mini["queue_depth"], mini["cancelled"]) == (0, 0, 0)
    assert mini["latency"]["count"] == 2
    assert mini["latency"]["p50"] <= mini["latency"]["p90"] <= mini["latency"]["p99"]
    assert mini["time_to_first_token"] == {"count": 0, "p50": None, "p90": None, "p99": None}
    assert mini["time_to_first_byte"]["count"] == 3
    streamed = exported["providers"]["openai"]["gpt-4.1"]
    assert streamed["successes"] == 1
    assert streamed["time_to_first_token"]["count"] == 1
    assert streamed["tokens_in"] == 10


def test_system_metrics_in_flight_during_a_call(
    make_system: Make, emulator: OpenAIEmulator
) -> None:
    made = make_system(emulator.base_url)
    emulator.enqueue(Reply.text("slow", delay=0.3))
    future = made.submit("openai", MODEL, REQUEST)
    _wait_until(lambda: bool(emulator.requests), "the call reached the server")
    assert made.metrics()["providers"]["openai"][MODEL]["in_flight"] == 1
    assert made.metrics()["pools"]["api_calls"]["running"] == 1
    future.result(timeout=30)
    assert made.metrics()["providers"]["openai"][MODEL]["in_flight"] == 0


def test_system_metrics_percentiles_are_nearest_rank() -> None:
    from llmkit.system._metrics import Stats

    stats = Stats()
    for value in range(1, 101):
        stats.started()
        stats.succeeded(float(value), None)
    latency = stats.export()["latency"]
    assert latency == {"count": 100, "p50": 50.0, "p90": 90.0, "p99": 99.0}


def test_system_metrics_many_threads_add_up(make_system: Make, emulator: OpenAIEmulator) -> None:
    made = make_system(emulator.base_url)

    def work() -> None:
        for _ in range(10):
            made.completion("openai", MODEL, REQUEST)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counters = made.metrics()["providers"]["openai"][MODEL]
    assert (counters["requests"], counters["successes"], counters["attempts"]) == (80, 80, 80)
    assert counters["in_flight"] == 0


def test_probe_result_is_exported_from_the_provider_sdk() -> None:
    import llmkit.provider

    assert llmkit.provider.ProbeResult is ProbeResult
    assert ProbeResult(status=200, latency=0.1).models == ()
    assert issubclass(NoModels, ProviderKey)
    assert ChatRequest.__name__ == "ChatRequest"
