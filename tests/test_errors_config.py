from __future__ import annotations

import pytest

import llmkit
from llmkit.config import Config, resolve_config, to_config
from llmkit.errors import scrub
from llmkit_providers.openai import OpenAI

SECRET = "sk-live-abcdefghijklmnop"


@pytest.mark.parametrize(
    ("cls", "parent", "retryable"),
    [
        (llmkit.AuthenticationError, llmkit.LLMError, False),
        (llmkit.PermissionDeniedError, llmkit.LLMError, False),
        (llmkit.NotFoundError, llmkit.LLMError, False),
        (llmkit.InvalidRequestError, llmkit.LLMError, False),
        (llmkit.ContextWindowError, llmkit.InvalidRequestError, False),
        (llmkit.ContentFilterError, llmkit.InvalidRequestError, False),
        (llmkit.RateLimitError, llmkit.LLMError, True),
        (llmkit.TimeoutError, llmkit.LLMError, True),
        (llmkit.ServiceUnavailableError, llmkit.LLMError, True),
        (llmkit.APIConnectionError, llmkit.LLMError, True),
        (llmkit.StreamInterruptedError, llmkit.LLMError, False),
        (llmkit.ProviderNotFoundError, llmkit.LLMError, False),
    ],
    ids=lambda v: getattr(v, "__name__", str(v)),
)
def test_errors_hierarchy_and_default_retryable(
    cls: type[llmkit.LLMError], parent: type[Exception], retryable: bool
) -> None:
    error = cls("boom", provider="openai", model="m", status=500, request_id="req_1")
    assert isinstance(error, parent)
    assert error.retryable is retryable
    assert "provider=openai" in str(error)
    assert "request_id=req_1" in str(error)


def test_errors_rate_limit_carries_retry_after() -> None:
    error = llmkit.RateLimitError("slow", retry_after=1.5)
    assert error.retry_after == 1.5
    assert llmkit.RateLimitError("slow", retryable=False).retryable is False


def test_errors_scrub_removes_key() -> None:
    assert scrub(f"bad key {SECRET}!", SECRET) == "bad key ***!"
    assert scrub("short abc", "abc") == "short abc"
    assert scrub("nothing", None) == "nothing"


def test_config_repr_masks_key() -> None:
    config = Config(api_key=SECRET, api_base="http://x")
    assert SECRET not in repr(config)
    assert SECRET not in str(config)
    assert SECRET not in repr([config])
    assert "api_key='***'" in repr(config)
    assert "api_base='http://x'" in repr(config)


def test_config_rejects_unknown_field() -> None:
    with pytest.raises(llmkit.InvalidRequestError, match="api_kee") as info:
        to_config({"api_kee": "x"})
    assert "api_key" in str(info.value)


def test_config_rejects_wrong_type() -> None:
    with pytest.raises(llmkit.InvalidRequestError, match="retries"):
        to_config({"retries": "many"})


def test_config_resolve_reads_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    resolved = resolve_config(OpenAI(), to_config(None))
    assert resolved.api_key == SECRET
    assert resolved.api_base == "https://api.openai.com/v1"


def test_config_resolve_strips_slash_and_keeps_given() -> None:
    resolved = resolve_config(OpenAI(), Config(api_key="k" * 10, api_base="http://h/v1/"))
    assert resolved.api_base == "http://h/v1"
    assert resolved.api_key == "k" * 10


def test_config_missing_key_names_variable() -> None:
    with pytest.raises(llmkit.AuthenticationError, match="OPENAI_API_KEY"):
        resolve_config(OpenAI(), Config())


def test_config_rich_repr_and_secret_headers_are_masked() -> None:
    from rich.pretty import pretty_repr

    config = Config(api_key=SECRET, headers={"Authorization": f"Bearer {SECRET}", "x-trace": "t"})
    for text in (repr(config), pretty_repr(config)):
        assert SECRET not in text
        assert "'x-trace': 't'" in text


def test_key_fallback_variables_are_read_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmkit import core
    from llmkit.config import Config, resolve_config
    from llmkit.keys import ProviderKey
    from llmkit.provider import scoped_providers

    with scoped_providers():

        class Twice(ProviderKey):
            __slots__ = ()
            name = "twice"
            default_base_url = "https://twice.example"
            api_key_env = "TWICE_API_KEY"
            api_key_env_fallbacks = ("TWICE_OTHER_KEY",)

        monkeypatch.delenv("TWICE_API_KEY", raising=False)
        monkeypatch.delenv("TWICE_OTHER_KEY", raising=False)
        assert not core.provider_available("twice")
        with pytest.raises(
            llmkit.AuthenticationError, match=r"set TWICE_API_KEY \(or TWICE_OTHER_KEY\)"
        ):
            resolve_config(Twice(), Config())
        monkeypatch.setenv("TWICE_OTHER_KEY", "other-key-123")
        assert core.provider_available("twice")
        assert resolve_config(Twice(), Config()).api_key == "other-key-123"
        monkeypatch.setenv("TWICE_API_KEY", "first-key-123")
        assert resolve_config(Twice(), Config()).api_key == "first-key-123"
        assert Twice.key_variables() == ("TWICE_API_KEY", "TWICE_OTHER_KEY")


def test_base_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmkit.config import Config, resolve_config
    from llmkit.keys import ProviderKey
    from llmkit.provider import scoped_providers

    with scoped_providers():

        class Local(ProviderKey):
            __slots__ = ()
            name = "local-env"
            default_base_url = "http://localhost:11434"
            base_url_env = "LOCAL_ENV_HOST"
            base_url_env_path = "/v1"

        class Hosted(ProviderKey):
            __slots__ = ()
            name = "hosted-env"
            base_url_env = "HOSTED_ENV_ENDPOINT"

        monkeypatch.delenv("LOCAL_ENV_HOST", raising=False)
        monkeypatch.delenv("HOSTED_ENV_ENDPOINT", raising=False)
        assert resolve_config(Local(), Config()).api_base == "http://localhost:11434"
        monkeypatch.setenv("LOCAL_ENV_HOST", "gpu-box:11434/")
        assert resolve_config(Local(), Config()).api_base == "http://gpu-box:11434/v1"
        assert resolve_config(Local(), Config(api_base="http://x")).api_base == "http://x"
        monkeypatch.setenv("LOCAL_ENV_HOST", "http://user:pw@box")
        with pytest.raises(
            llmkit.InvalidRequestError, match=r"LOCAL_ENV_HOST: .*credentials"
        ) as bad:
            resolve_config(Local(), Config())
        assert "pw" not in str(bad.value)
        with pytest.raises(llmkit.InvalidRequestError, match="set HOSTED_ENV_ENDPOINT"):
            resolve_config(Hosted(), Config())
        monkeypatch.setenv("HOSTED_ENV_ENDPOINT", "https://corp.example.com")
        assert resolve_config(Hosted(), Config()).api_base == "https://corp.example.com"
