"""Error bodies shown in messages: escapes resolved, so an echoed key is always scrubbed."""

from __future__ import annotations

import json

import httpx
import pytest

from llmkit import core
from llmkit.errors import LLMError
from llmkit.provider import body_text

SECRET = "sk-SECRETSECRETSECRET123"
ESCAPED = "".join(f"\\u{ord(c):04x}" for c in SECRET[:4]) + SECRET[4:]
HI = {"messages": [{"role": "user", "content": "Hi"}]}
MODELS = {
    "openai": "gpt-4o-mini",
    "anthropic": "claude-haiku-4-5",
    "gemini": "gemini-2.5-flash",
    "mistral": "mistral-small-latest",
    "ollama": "llama3.2",
    "deepseek": "deepseek-chat",
}


def test_body_text_resolves_escapes_and_cuts_before_a_word() -> None:
    assert body_text(b'{"x":"key ' + ESCAPED.encode() + b'"}') == f'{{"x":"key {SECRET}"}}'
    assert body_text(b"\\ud800 x") == "\ufffd x"
    shown = body_text(("word " * 200).encode(), 50)
    assert shown.endswith("word ...")
    assert len(shown) <= 54
    assert body_text(b"a" * 600).endswith(" ...")
    assert body_text(b"") == ""


@pytest.mark.parametrize("provider", sorted(MODELS))
@pytest.mark.parametrize("size", [100, 70_000])
def test_an_escaped_key_in_any_error_body_is_scrubbed(provider: str, size: int) -> None:
    # Not the provider's own error envelope: a proxy's JSON, small and huge.
    body = json.dumps({"x": "key " + "@", "pad": "A" * size}).replace("@", ESCAPED).encode()
    body = body.replace(b"\\\\u", b"\\u")
    assert ESCAPED.encode() in body

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, content=body, headers={"content-type": "application/json"})

    client = httpx.Client(transport=httpx.MockTransport(answer))
    config = {
        "api_key": SECRET,
        "api_base": "http://127.0.0.1:9/v1",
        "retries": 0,
        "http_client": client,
    }
    with pytest.raises(LLMError) as caught:
        core.completion(provider, MODELS[provider], HI, config)
    text = str(caught.value) + repr(caught.value)
    assert SECRET[4:16] not in text
    assert SECRET not in text
