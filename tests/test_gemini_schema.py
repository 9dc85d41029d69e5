"""Every request body llmkit sends to Gemini fits Google's published request type.

Source of the types: the ``google-ai-generativelanguage`` package, version
0.12.1 (installed in the dev environment, 2026-11), module
``google.ai.generativelanguage_v1beta.types``: ``GenerateContentRequest``
and the messages under it, generated from Google's protos. A body is parsed
strictly into the underlying protobuf message with
``json_format.ParseDict(..., ignore_unknown_fields=False)``: an unknown
field, a wrong type or a bad enum value fails. (``model`` is a field of the
request message but travels in the URL, so bodies leave it out.)

Checked: every body the contract cases send (both contract models, every
mode), every body the corpus replays send, and a set of requests that uses
every field the codec can write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib.metadata import version
from typing import Any, cast

import msgspec
import pytest
import test_gemini_corpus as gemini_corpus
from google.ai import generativelanguage_v1beta as glm
from google.protobuf import json_format  # type: ignore[import-untyped]

import llmkit
import llmkit_providers.gemini  # noqa: F401  registers "gemini" before the per-test snapshot
from llmkit.config import Config, resolve_config
from llmkit.generics import encode_request
from llmkit.keys import resolve
from llmkit.provider import Capabilities, capabilities
from llmkit.types import HttpCall
from llmkit_contracts.checks import check_provider
from llmkit_contracts.emulator import Emulator, Reply
from llmkit_contracts.emulators.gemini import GeminiProtocol

TYPES_PACKAGE = "google-ai-generativelanguage"
TYPES_VERSION = (0, 12, 1)

# Fields the API takes (the recordings use them) that version 0.12.1 of the
# types predates; a recorded body holding one cannot be checked against them.
NEWER_THAN_TYPES = (
    "includeServerSideToolInvocations",
    '"toolCall"',
    '"thinking_level"',
    '"id"',  # ExecutableCode.id
    "file_search_store_names",
    "FunctionResponsePart",
    "repeated field tools must be in []",  # a lone tool object, which the API also takes
)


def _problem(body: Mapping[str, Any]) -> str | None:
    """Why ``body`` does not parse as a ``GenerateContentRequest``, or ``None``."""
    try:
        json_format.ParseDict(
            dict(body), glm.GenerateContentRequest.pb()(), ignore_unknown_fields=False
        )
    except json_format.ParseError as exc:
        return str(exc)
    return None


def test_gemini_types_package_is_the_recorded_one() -> None:
    installed = tuple(int(part) for part in version(TYPES_PACKAGE).split(".")[:3])
    assert installed >= TYPES_VERSION


def test_gemini_strict_parsing_refuses_what_it_should() -> None:
    # The check has teeth: unknown fields, wrong types and bad enums fail.
    assert _problem({"contents": [{"role": "user", "parts": [{"text": "x"}]}]}) is None
    assert "temprature" in str(_problem({"generationConfig": {"temprature": 1}}))
    assert _problem({"generationConfig": {"temperature": "hot"}}) is not None
    assert _problem({"toolConfig": {"functionCallingConfig": {"mode": "SOMETIMES"}}}) is not None


# --- the contract cases' bodies --------------------------------------------------------


class _Recording(GeminiProtocol):
    """The Gemini protocol, keeping every body it is asked to check."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []

    def check(self, path: str, headers: Mapping[str, str], payload: Any) -> Reply | None:
        self.bodies.append(payload)
        return super().check(path, headers, payload)


@pytest.mark.parametrize("model", ["gemini-2.5-flash", "gemini-3-flash-preview"])
def test_gemini_contract_bodies_fit_the_types(model: str) -> None:
    protocol = _Recording()
    caps = cast(Capabilities, capabilities(resolve("gemini"), model))
    config = {"options": {"include_thoughts": True, "thinking_budget": 1024}}
    with Emulator(protocol) as emulator:
        report = check_provider("gemini", emulator, model=model, capabilities=caps, config=config)
    assert not report.skipped
    assert len(protocol.bodies) > len(report.passed)
    for body in protocol.bodies:
        assert _problem(body) is None, body


# --- the corpus replays' bodies --------------------------------------------------------


def _replayed_bodies() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """``(id, recorded body, llmkit's body)`` for every recorded request."""
    module = gemini_corpus
    key = resolve("gemini")
    out = []
    for record in module.REQUESTS:
        converted = module._convert(record)
        config = resolve_config(key, Config(api_key="x" * 12, options=converted.options or None))
        request = llmkit.validate_request("gemini", converted.request)
        if record["kind"] == "chat_stream":
            request = msgspec.structs.replace(request, stream=True)
        call = cast(HttpCall, encode_request(key, request, config))
        out.append((record["id"], record["request"]["body"], msgspec.json.decode(call.body)))
    return out


def test_gemini_replayed_bodies_fit_the_types() -> None:
    checked = newer = 0
    for ident, recorded, ours in _replayed_bodies():
        problem = _problem(recorded)
        if problem is not None:
            # The recording itself uses API fields the types package predates.
            assert any(name in problem for name in NEWER_THAN_TYPES), (ident, problem)
            assert _problem(ours) is not None, ident
            newer += 1
            continue
        assert _problem(ours) is None, (ident, _problem(ours))
        checked += 1
    assert (checked, newer) == (144, 17)


# --- every field the codec writes ------------------------------------------------------

_PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNk"
    "YAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)
_WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
_FEATURES: Sequence[tuple[str, dict[str, Any], dict[str, Any] | None]] = [
    (
        "media",
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": _PNG}},
                        {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}},
                        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
                        {"type": "file", "file": {"file_data": "data:application/pdf;base64,AA=="}},
                        {
                            "type": "file",
                            "file": {"file_id": "https://x.test/f", "filename": "a.pdf"},
                        },
                    ],
                },
            ]
        },
        None,
    ),
    (
        "tools",
        {
            "messages": [
                {"role": "user", "content": "Weather?"},
                {
                    "role": "assistant",
                    "content": "Looking.",
                    "reasoning": "They want weather.",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                        }
                    ],
                    "provider_data": {
                        "gemini": {
                            "thought_signature": "AAAA",
                            "text_signature": "BBBB",
                            "call_signatures": {"c1": "CCCC"},
                        }
                    },
                },
                {"role": "tool", "tool_call_id": "c1", "content": '{"temp": 18}'},
                {"role": "user", "content": "Thanks"},
            ],
            "tools": [_WEATHER],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        },
        None,
    ),
    (
        "generation",
        {
            "messages": [{"role": "user", "content": "JSON please"}],
            "max_tokens": 100,
            "temperature": 0.3,
            "top_p": 0.9,
            "seed": 7,
            "n": 2,
            "stop": ["END", "STOP"],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"type": "object"}},
            },
        },
        {
            "thinking_budget": 256,
            "include_thoughts": True,
            "top_k": 20,
            "safety_settings": [
                {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}
            ],
            "cached_content": "cachedContents/abc",
        },
    ),
    (
        "choices",
        {
            "messages": [{"role": "user", "content": "Hi"}],
            "tools": [_WEATHER],
            "tool_choice": "none",
            "response_format": {"type": "json_object"},
        },
        None,
    ),
]


@pytest.mark.parametrize(("name", "request_", "options"), _FEATURES, ids=[f[0] for f in _FEATURES])
def test_gemini_every_field_fits_the_types(
    name: str, request_: dict[str, Any], options: dict[str, Any] | None
) -> None:
    key = resolve("gemini")
    config = resolve_config(key, Config(api_key="x" * 12, options=options))
    request = llmkit.validate_request("gemini", {"model": "gemini-2.5-flash", **request_})
    body = msgspec.json.decode(cast(HttpCall, encode_request(key, request, config)).body)
    assert _problem(body) is None
