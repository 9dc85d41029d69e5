"""Azure OpenAI: deployment URLs, api-version, api-key or Entra ID, content filtering.

Against the Azure emulator (``llmkit_contracts.emulators.azure``), which
checks the deployment path, the ``api-version`` query and the auth header
as Azure does, answers with its filter results, and refuses a filtered
prompt with its content-filter envelope. The contract suite runs in
test_compatible_contract.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest

import llmkit
from llmkit import core
from llmkit.provider import HttpCall, encode_request, prepare
from llmkit_contracts import Emulator, Reply
from llmkit_contracts.emulators.azure import AzureEmulator, AzureProtocol
from llmkit_providers.azure import DEFAULT_API_VERSION, AzureOpenAI

HI = {"messages": [{"role": "user", "content": "Hi"}]}
KEY = "0123456789abcdef0123456789abcdef"  # the shape of an Azure key
# The shape of an Entra ID access token (a JWT; this one is not signed).
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJjb2duaXRpdmUifQ.c2lnbmF0dXJl"
VARIABLES = ("AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_VERSION")


@pytest.fixture(autouse=True)
def _no_azure_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def azure() -> Iterator[Emulator]:
    with AzureEmulator() as emulator:
        yield emulator


def _config(emulator: Emulator, **more: Any) -> dict[str, Any]:
    return {"api_key": KEY, "api_base": emulator.base_url, "retries": 0, **more}


def _call(model: str, request: Any = None, **config: Any) -> HttpCall:
    settings = {"api_key": KEY, "api_base": "https://res.openai.azure.com", **config}
    key, req, cfg = prepare("azure", model, request or HI, settings, False)
    return cast(HttpCall, encode_request(key, req, cfg))


# --- the URL ----------------------------------------------------------------------


def test_azure_calls_the_deployment_named_by_the_model(azure: Emulator) -> None:
    azure.enqueue(Reply.text("Hello from Azure"))
    answer = core.completion("azure", "gpt-4o-mini", HI, _config(azure))
    [sent] = azure.requests
    assert answer.text == "Hello from Azure"
    assert sent.path == (
        f"/openai/deployments/gpt-4o-mini/chat/completions?api-version={DEFAULT_API_VERSION}"
    )
    assert sent.headers["api-key"] == KEY
    assert "authorization" not in sent.headers


def test_azure_deployment_and_api_version_come_from_the_options() -> None:
    call = _call(
        "gpt-4o", options={"deployment": "prod chat/1", "api_version": "2025-04-01-preview"}
    )
    assert call.url == (
        "https://res.openai.azure.com/openai/deployments/prod%20chat%2F1/chat/completions"
        "?api-version=2025-04-01-preview"
    )
    assert json.loads(call.body)["model"] == "gpt-4o"


def test_azure_api_version_comes_from_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_VERSION", "2024-12-01-preview")
    assert _call("gpt-4o").url.endswith("?api-version=2024-12-01-preview")
    # The option wins over the variable.
    call = _call("gpt-4o", options={"api_version": "2024-10-21"})
    assert call.url.endswith("?api-version=2024-10-21")


def test_azure_endpoint_comes_from_its_variable(
    azure: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", azure.base_url + "/")
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
    azure.enqueue(Reply.text("from the environment"))
    assert core.completion("azure", "gpt-4o", HI).text == "from the environment"
    assert azure.requests[0].path.startswith("/openai/deployments/gpt-4o/chat/completions?")


def test_azure_without_an_endpoint_names_the_variable_before_any_call(
    azure: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
    with pytest.raises(llmkit.InvalidRequestError, match="AZURE_OPENAI_ENDPOINT") as info:
        core.completion("azure", "gpt-4o", HI)
    assert info.value.provider == "azure"
    assert azure.requests == []
    with pytest.raises(llmkit.InvalidRequestError, match="AZURE_OPENAI_ENDPOINT"):
        core.stream("azure", "gpt-4o", HI)


def test_azure_without_a_key_names_its_variable() -> None:
    with pytest.raises(llmkit.AuthenticationError, match="AZURE_OPENAI_API_KEY"):
        core.completion("azure", "gpt-4o", HI, {"api_base": "https://res.openai.azure.com"})


def test_azure_endpoint_may_not_carry_a_query(monkeypatch: pytest.MonkeyPatch) -> None:
    # The codec adds api-version; a query in the endpoint is refused as any api_base's is.
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://res.openai.azure.com/?api-version=1")
    with pytest.raises(llmkit.InvalidRequestError, match=r"AZURE_OPENAI_ENDPOINT.*query"):
        core.completion("azure", "gpt-4o", HI, {"api_key": KEY})


def test_azure_emulator_refuses_a_request_without_api_version(azure: Emulator) -> None:
    refusal = AzureProtocol().check(
        "/openai/deployments/d/chat/completions", {"api-key": KEY}, {"model": "m", "messages": []}
    )
    assert refusal is not None
    assert refusal.status == 404


# --- auth: api-key, or an Entra ID token as Bearer -----------------------------------


def test_azure_sends_an_entra_id_token_as_bearer(azure: Emulator) -> None:
    azure.enqueue(Reply.text("token accepted"))
    answer = core.completion("azure", "gpt-4o", HI, _config(azure, api_key=TOKEN))
    [sent] = azure.requests
    assert answer.text == "token accepted"
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"
    assert "api-key" not in sent.headers


def test_azure_token_provider_is_asked_again_when_the_token_expires(azure: Emulator) -> None:
    calls: list[float] = []

    def token() -> tuple[str, float]:
        calls.append(time.time())
        # Expires in 30 s: inside the minute's margin, so it is fetched anew each call.
        return TOKEN, time.time() + 30

    config = {"api_base": azure.base_url, "token_provider": token, "retries": 0}
    azure.enqueue(Reply.text("one"), Reply.text("two"))
    core.completion("azure", "gpt-4o", HI, config)
    core.completion("azure", "gpt-4o", HI, config)
    assert len(calls) == 2
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in azure.requests)


def test_azure_token_provider_token_is_kept_until_it_expires(azure: Emulator) -> None:
    calls: list[int] = []

    def token() -> tuple[str, float]:
        calls.append(1)
        return TOKEN, time.time() + 3600

    config = {"api_base": azure.base_url, "token_provider": token, "retries": 0}
    azure.enqueue(Reply.text("one"), Reply.text("two"))
    core.completion("azure", "gpt-4o", HI, config)
    core.completion("azure", "gpt-4o", HI, config)
    assert len(calls) == 1


def test_azure_bad_key_is_an_authentication_error_naming_the_variable(azure: Emulator) -> None:
    azure.enqueue(Reply.error(401, message="Access denied due to invalid subscription key."))
    with pytest.raises(llmkit.AuthenticationError) as info:
        core.completion("azure", "gpt-4o", HI, _config(azure))
    assert "AZURE_OPENAI_API_KEY" in info.value.message
    assert KEY not in str(info.value)
    assert info.value.request_id == "req_emu_1"


# --- content filtering -----------------------------------------------------------------


@pytest.mark.parametrize("streaming", [False, True], ids=["body", "stream"])
def test_azure_filtered_prompt_raises_content_filter_error(
    azure: Emulator, streaming: bool
) -> None:
    message = (
        "The response was filtered due to the prompt triggering Azure OpenAI's content "
        "management policy."
    )
    azure.enqueue(Reply.error(400, message=message, code="content_filter"))
    call = core.stream if streaming else core.completion
    with pytest.raises(llmkit.ContentFilterError) as info:
        call("azure", "gpt-4o", HI, _config(azure))
    assert info.value.status == 400
    assert info.value.code == "content_filter"
    assert "content management policy" in info.value.message


@pytest.mark.parametrize("streaming", [False, True], ids=["body", "stream"])
def test_azure_filtered_completion_finishes_with_content_filter(
    azure: Emulator, streaming: bool
) -> None:
    azure.enqueue(Reply.text("The first part", finish_reason="content_filter"))
    if streaming:
        answer = core.stream("azure", "gpt-4o", HI, _config(azure)).collect()
    else:
        answer = core.completion("azure", "gpt-4o", HI, _config(azure))
    choice = answer.choices[0]
    assert choice.finish_reason == "content_filter"
    assert answer.text == "The first part"
    results = (choice.message.provider_data or {})["azure"]["content_filter_results"]
    assert results["violence"] == {"filtered": True, "severity": "high"}


def test_azure_keeps_the_prompt_filter_results(azure: Emulator) -> None:
    azure.enqueue(Reply.text("fine"))
    answer = core.completion("azure", "gpt-4o", HI, _config(azure))
    data = (answer.choices[0].message.provider_data or {})["azure"]
    assert data["prompt_filter_results"][0]["content_filter_results"]["hate"]["filtered"] is False


def test_azure_stream_skips_the_opening_filter_chunk(azure: Emulator) -> None:
    azure.enqueue(Reply.text("streamed", chunk_size=3))
    chunks = list(core.stream("azure", "gpt-4o", HI, _config(azure)))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(chunk.id for chunk in chunks)


# --- the o-series rule ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "field"),
    [
        ("o1", "max_completion_tokens"),
        ("o3-mini", "max_completion_tokens"),
        ("o4-mini", "max_completion_tokens"),
        ("gpt-5", "max_completion_tokens"),
        ("gpt-4o", "max_tokens"),
    ],
)
def test_azure_sends_max_completion_tokens_to_o_series_deployments(
    azure: Emulator, model: str, field: str
) -> None:
    # The emulator refuses max_tokens for reasoning models, as Azure does.
    azure.enqueue(Reply.text("short", finish_reason="length"))
    answer = core.completion("azure", model, {**HI, "max_tokens": 5}, _config(azure))
    assert answer.choices[0].finish_reason == "length"
    body = azure.requests[0].json
    assert body[field] == 5
    assert ("max_tokens" in body) is (field == "max_tokens")


def test_azure_is_an_openai_compatible_key() -> None:
    key = llmkit.provider_info("azure")
    assert key.api_key_env == "AZURE_OPENAI_API_KEY"
    assert key.default_base_url == ""
    assert AzureOpenAI.base_url_env == "AZURE_OPENAI_ENDPOINT"
    assert llmkit.provider_info("azure", "o3-mini").capabilities.reasoning
    assert not llmkit.provider_info("azure", "gpt-4o").capabilities.reasoning
