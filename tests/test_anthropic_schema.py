"""Every request body llmkit sends to Anthropic is valid against Anthropic's published schema.

The schema is the request body of ``POST /v1/messages`` from Anthropic's
OpenAPI document, vendored in ``tests/schemas/anthropic`` (see SOURCE.md):
``CreateMessageParams`` for the generally available API, and
``BetaCreateMessageParams`` for a request that names a beta (those carry
beta fields through ``extra_body``). The bodies are the ones the corpus
replays send (``test_anthropic_corpus``'s requests, encoded by the codec)
and every request of every contract case, caught at the emulator.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import msgspec
import pytest

# The corpus test module holds how a recording becomes an llmkit request.
import test_anthropic_corpus as replays
from referencing import Registry, Resource

import llmkit_providers.anthropic  # registers the key before the per-test snapshot
from llmkit.provider import build_call, prepare
from llmkit_contracts.checks import check_provider
from llmkit_contracts.emulator import Emulator, Reply
from llmkit_contracts.emulators.anthropic import AnthropicProtocol

assert llmkit_providers.anthropic.Anthropic.name == "anthropic"

SCHEMA_FILE = Path(__file__).parent / "schemas" / "anthropic" / "messages_create.json"
SCHEMA = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
_REGISTRY = Registry().with_resource("urn:anthropic", Resource.from_contents(SCHEMA))


def _validator(root: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(
        {"$ref": f"urn:anthropic#/$defs/{root}"}, registry=_REGISTRY
    )


GA = _validator("CreateMessageParams")
BETA = _validator("BetaCreateMessageParams")


RECORDS = replays.RECORDS

# A tool newer than the vendored document (May 2026): the API took it, the
# schema does not know it yet.
NEWER_THAN_SCHEMA = {
    "anthropic-chat-pydantic-ai-test_anthropic_advisor_tool-0",
    "anthropic-chat-pydantic-ai-test_anthropic_advisor_tool_redacted-0",
    "anthropic-chat_stream-pydantic-ai-test_anthropic_advisor_tool_stream-0",
}


def _problems(validator: jsonschema.Draft202012Validator, body: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message[:300]}"
        for error in validator.iter_errors(body)
    ]


def _sent(record: dict[str, Any]) -> tuple[dict[str, Any], Mapping[str, str]]:
    """The body and headers llmkit sends when it replays ``record`` (no network: the codec's call)."""
    request = replays._request_of(record)
    config: dict[str, Any] = {"api_key": "sk-ant-0000000000", "api_base": "http://127.0.0.1:9"}
    options = replays._options(record)
    if options:
        config["options"] = options
    call = build_call(
        *prepare("anthropic", request["model"], request, config, record["kind"] == "chat_stream")
    )
    return msgspec.json.decode(call.body), call.headers


def test_the_vendored_schema_is_the_messages_request() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    params = SCHEMA["$defs"]["CreateMessageParams"]
    assert params["required"] == ["model", "messages", "max_tokens"]
    assert params["additionalProperties"] is False
    assert "BetaCreateMessageParams" in SCHEMA["$defs"]


CHECKED = [r for r in RECORDS if r["id"] not in NEWER_THAN_SCHEMA]


@pytest.mark.parametrize("record", CHECKED, ids=[r["id"] for r in CHECKED])
def test_replayed_request_bodies_are_valid(record: dict[str, Any]) -> None:
    body, headers = _sent(record)
    validator = BETA if "anthropic-beta" in headers else GA
    assert _problems(validator, body) == []


@pytest.mark.parametrize("record_id", sorted(NEWER_THAN_SCHEMA))
def test_bodies_the_schema_is_too_old_for_fail_only_on_that_tool(record_id: str) -> None:
    [record] = [r for r in RECORDS if r["id"] == record_id]
    body, _ = _sent(record)
    assert [tool["type"] for tool in body["tools"]] == ["advisor_20260301"]
    assert _problems(GA, {**body, "tools": []}) == []


class _Recording(AnthropicProtocol):
    """The Anthropic protocol, keeping every request body it is sent."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []

    def check(self, path: str, headers: Mapping[str, str], payload: Any) -> Reply | None:
        self.bodies.append(payload)
        return super().check(path, headers, payload)


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"options": {"thinking_budget": 1024}},
        {"options": {"adaptive_thinking": True, "effort": "low"}},
    ],
    ids=["plain", "thinking", "adaptive"],
)
def test_contract_case_bodies_are_valid(config: dict[str, Any]) -> None:
    protocol = _Recording()
    with Emulator(protocol) as emulator:
        check_provider("anthropic", emulator, model="claude-sonnet-4-5", config=config)
    assert len(protocol.bodies) > 37
    problems = {
        json.dumps(body)[:200]: found for body in protocol.bodies if (found := _problems(GA, body))
    }
    assert problems == {}
