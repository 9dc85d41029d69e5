"""The examples and the README's provider recipe run as written."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import llmkit
from llmkit import core
from llmkit_contracts.cases import CASES
from llmkit_contracts.checks import check_provider
from llmkit_contracts.emulator import Emulator

ROOT = Path(__file__).resolve().parent.parent
HI = {"messages": [{"role": "user", "content": "Hi"}]}


def test_examples_core_usage_runs() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "core_usage.py")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert "completion: Tokyo." in out
    assert "stream:    Tokyo, on Honshu. | finish: stop" in out
    assert "retried:    Tokyo, after one retry." in out
    assert "$.messages[0].role" in out


@pytest.fixture
def acme() -> Iterator[type[llmkit.ProviderKey]]:
    # Imported afresh in each test, as a package would be in a new process:
    # the registry scope of the previous test removed its key and methods.
    sys.path.insert(0, str(ROOT / "examples" / "acme_provider"))
    sys.modules.pop("acme_llm", None)
    try:
        import acme_llm  # type: ignore[import-not-found]

        yield acme_llm.Acme
    finally:
        sys.path.remove(str(ROOT / "examples" / "acme_provider"))
        sys.modules.pop("acme_llm", None)


def test_examples_third_party_provider_completion(acme: type[llmkit.ProviderKey]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url == "https://api.acme.example/v1/generate"
        assert request.headers["x-acme-key"] == "acme-key-123456"
        assert json.loads(request.content) == {
            "model": "acme-1",
            "system": "Be brief.",
            "turns": [
                {"speaker": "user", "text": "Hi"},
                {"speaker": "model", "text": "Hello."},
                {"speaker": "user", "text": "Count."},
            ],
            "max_output": 4,
            "stop": ["5"],
            "stream": False,
        }
        return httpx.Response(
            200,
            json={
                "id": "gen_1",
                "model": "acme-1-2025",
                "output": "one two three four",
                "stop_reason": "max_output",
                "tokens_in": 3,
                "tokens_out": 4,
            },
        )

    request = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": [{"type": "text", "text": "Count."}]},
        ],
        "max_tokens": 4,
        "stop": "5",
    }
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        config = {"api_key": "acme-key-123456", "http_client": client}
        reply = core.completion("acme", "acme-1", request, config)
    assert (reply.id, reply.model, reply.text) == ("gen_1", "acme-1-2025", "one two three four")
    choice = reply.choices[0]
    assert choice.finish_reason == "length"
    assert choice.native_finish_reason == "max_output"
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.total_tokens) == (3, 7)
    assert core.provider_info("acme").api_key_env == "ACME_API_KEY"
    assert core.provider_info("acme").capabilities == llmkit.Capabilities(streaming=True)


def test_examples_third_party_provider_ndjson_stream(acme: type[llmkit.ProviderKey]) -> None:
    done = b'{"done": true, "stop_reason": "stop_sequence", "tokens_in": 2, "tokens_out": 3}\n'
    body = [b'{"text": "hel', b'lo"}\n{"text": " world"}\n', done]

    def handler(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content)["stream"] is True
        return httpx.Response(200, content=iter(body))

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        config = {"api_key": "acme-key-123456", "http_client": client, "retries": 0}
        chunks = list(core.stream(acme(), "acme-1", HI, config))
        assert [c.text for c in chunks] == ["hello", " world", ""]
        assert [c.choices[0].delta.role for c in chunks] == ["assistant", None, None]
        answer = llmkit.accumulate(chunks)
        assert answer.choices[0].finish_reason == "stop"
        assert answer.choices[0].native_finish_reason == "stop_sequence"
        assert answer.usage is not None
        assert answer.usage.total_tokens == 5

        body[:] = [b'{"text": "cut"}\n']
        with pytest.raises(llmkit.StreamInterruptedError):
            core.stream("acme", "acme-1", HI, config).collect()

        body[:] = [b'{"text": "so"}\n{"error": {"kind": "overloaded", "message": "Busy."}}\n']
        with pytest.raises(llmkit.ServiceUnavailableError, match="Busy") as failed:
            core.stream("acme", "acme-1", HI, config).collect()
        assert (failed.value.status, failed.value.code) == (529, "overloaded")


@pytest.mark.parametrize(
    ("status", "headers", "body", "error", "says"),
    [
        (
            401,
            {},
            b'{"error": {"kind": "authentication", "message": "Bad key."}}',
            llmkit.AuthenticationError,
            "Bad key. Check ACME_API_KEY",
        ),
        (
            429,
            {"retry-after": "7"},
            b'{"error": {"kind": "rate_limited", "message": "Slow."}}',
            llmkit.RateLimitError,
            "Slow.",
        ),
        (
            400,
            {},
            b'{"error": {"kind": "context_length", "message": "Too long."}}',
            llmkit.ContextWindowError,
            "Too long.",
        ),
        (502, {}, b"<html>Bad gateway</html>", llmkit.ServiceUnavailableError, "Bad gateway"),
    ],
    ids=["401-auth", "429-retry-after", "400-context", "502-not-acme"],
)
def test_examples_third_party_provider_errors(
    acme: type[llmkit.ProviderKey],
    status: int,
    headers: dict[str, str],
    body: bytes,
    error: type[llmkit.LLMError],
    says: str,
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers=headers, content=body)

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        config = {"api_key": "acme-key-123456", "http_client": client, "retries": 0}
        with pytest.raises(error, match=says) as failed:
            core.completion("acme", "acme-1", HI, config)
    assert failed.value.status == status
    assert failed.value.retry_after == (7.0 if headers else None)


def test_examples_third_party_provider_refuses_what_it_cannot_send(
    acme: type[llmkit.ProviderKey],
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("nothing is sent")

    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        config = {"api_key": "acme-key-123456", "http_client": client}
        with pytest.raises(llmkit.InvalidRequestError, match="Acme has no tools"):
            core.completion("acme", "acme-1", {**HI, "tools": [tool]}, config)


def _readme_recipe() -> str:
    # The README's provider recipe: the python block that defines the Acme key.
    import re

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks: list[str] = re.findall(r"```python\n(.*?)```", readme, re.S)
    return next(block for block in blocks if "class Acme(ProviderKey)" in block)


def test_examples_readme_provider_recipe_runs(acme: type[llmkit.ProviderKey]) -> None:
    # The abridged codec passes the contract suite against Acme's emulator,
    # skipping only what it declares it cannot do.
    from acme_llm.emulator import AcmeProtocol  # type: ignore[import-not-found]

    recipe: dict[str, Any] = {"__name__": "readme_recipe"}
    exec(compile(_readme_recipe(), "README.md", "exec"), recipe)
    key = recipe["Acme"]()
    assert type(key) is not acme
    with Emulator(AcmeProtocol()) as emulator:
        report = check_provider(key, emulator, model="acme-1")
    assert set(report.passed) | set(report.skipped) == {case.name for case in CASES}
    assert {reason.split("'")[1] for reason in report.skipped.values()} == {
        "tools",
        "vision",
        "json_mode",
        "json_schema",
        "reasoning",
    }


@pytest.mark.parametrize(
    ("change", "error", "says"),
    [
        ({"extra_headers": {"x-acme-key": ""}}, llmkit.AuthenticationError, "x-acme-key"),
        ({"extra_body": {"top_k": 3}}, llmkit.InvalidRequestError, "Unknown field 'top_k'"),
        ({"extra_body": {"turns": []}}, llmkit.InvalidRequestError, "non-empty array"),
        (
            {"extra_body": {"turns": [{"speaker": "bot", "text": "Hi"}]}},
            llmkit.InvalidRequestError,
            "'user' or 'model'",
        ),
        ({"extra_body": {"max_output": 0}}, llmkit.InvalidRequestError, "at least 1"),
    ],
    ids=["blank-key", "unknown-field", "no-turns", "bad-speaker", "max-output-0"],
)
def test_examples_acme_emulator_refuses_as_the_api_does(
    acme: type[llmkit.ProviderKey],
    change: dict[str, Any],
    error: type[llmkit.LLMError],
    says: str,
) -> None:
    from acme_llm.emulator import AcmeProtocol

    with Emulator(AcmeProtocol()) as emulator:
        config = {"api_key": "acme-key-123456", "api_base": emulator.base_url, "retries": 0}
        with pytest.raises(error, match=says):
            core.completion("acme", "acme-1", {**HI, **change}, config)
        assert emulator.requests, "the refusal came from the emulator, not the codec"


def _llmkit_imports(source: str) -> set[str]:
    import ast

    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "llmkit" or name.startswith("llmkit.")}


def test_examples_providers_import_only_the_provider_sdk() -> None:
    sources = {
        "README recipe": _readme_recipe(),
        "acme_llm": (ROOT / "examples/acme_provider/acme_llm/__init__.py").read_text("utf-8"),
        "openai": (ROOT / "providers/llmkit_providers/openai.py").read_text("utf-8"),
    }
    for where, source in sources.items():
        assert _llmkit_imports(source) == {"llmkit.provider"}, where


def test_examples_registry_usage_runs() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "registry_usage.py")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert "by name:    Tokyo. | served by openai" in out
    assert "fallback:   Tokyo, from Claude. | anthropic/claude-haiku-4-5, 3 attempts" in out
    assert "stream:     Tokyo, on Honshu." in out
    assert "routed:     Tokyo, carefully. | model claude-sonnet-4-5" in out
    assert "all failed: ['openai/gpt-4o-mini', 'openai/gpt-4o-mini'," in out
    assert "at `$.modle`" in out
    assert "configs:    ['claude', 'fast', 'smart']" in out
