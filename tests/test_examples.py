"""The examples and the README's provider recipe run as written."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import llmkit
from llmkit import core

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
        return httpx.Response(
            200, json={"output": "hello from acme", "tokens_in": 3, "tokens_out": 4}
        )

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        config = {"api_key": "acme-key-123456", "http_client": client}
        reply = core.completion("acme", "acme-1", HI, config)
    assert reply.text == "hello from acme"
    assert reply.usage is not None
    assert reply.usage.total_tokens == 7
    assert core.provider_info("acme").api_key_env == "ACME_API_KEY"


def test_examples_third_party_provider_ndjson_stream(acme: type[llmkit.ProviderKey]) -> None:
    body = [b'{"text": "hel', b'lo"}\n{"text": " world"}\n', b'{"done": true}\n']

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=iter(body))

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        config = {"api_key": "acme-key-123456", "http_client": client}
        stream = core.stream(acme(), "acme-1", HI, config)
        assert [c.text for c in stream] == ["hello", " world", ""]
        assert stream.collect().choices[0].finish_reason == "stop"

        body[:] = [b'{"text": "cut"}\n']
        with pytest.raises(llmkit.StreamInterruptedError):
            core.stream("acme", "acme-1", HI, config).collect()


def _readme_recipe() -> str:
    # The README's provider recipe: the python block that defines Contoso.
    import re

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks: list[str] = re.findall(r"```python\n(.*?)```", readme, re.S)
    return next(block for block in blocks if "class Contoso" in block)


def test_examples_readme_provider_recipe_runs() -> None:
    recipe = _readme_recipe()
    exec(compile(recipe, "README.md", "exec"), {"__name__": "readme_recipe"})

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url == "https://api.contoso.example/v1/chat"
        assert request.headers["x-contoso-key"] == "contoso-key-1234"
        if b'"stream":true' in request.content:
            return httpx.Response(
                200,
                content=b'data: {"choices": [{"delta": {"content": "yo"}}]}\n\ndata: [DONE]\n\n',
            )
        return httpx.Response(
            200, json={"choices": [{"message": {"role": "assistant", "content": "hi"}}]}
        )

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        config = {"api_key": "contoso-key-1234", "http_client": client}
        assert core.completion("contoso", "m", HI, config).text == "hi"
        assert [c.text for c in core.stream("contoso", "m", HI, config)] == ["yo"]


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
