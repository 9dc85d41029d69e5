"""Replay real Anthropic Messages API traffic through llmkit's Anthropic codec.

The recordings in ``tests/fixtures/anthropic`` (see its ATTRIBUTION.md) are
the wire-format specification: request bodies Anthropic accepted, messages
and SSE streams as they came back, error envelopes with their statuses.
Every expectation below is computed from a recording with plain ``json``,
never through llmkit, so the codec cannot grade its own work.

Recorded bytes are served by :class:`llmkit_contracts.Replay` from the
strict Anthropic emulator on 127.0.0.1, so each request llmkit sends is
also checked as the real API checks it. This module holds what is
Anthropic's: how a recorded request becomes an llmkit request (and which
ones llmkit cannot express, with the reason), which event finishes an
answer, and what the recorded JSON says the answer is.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator, Mapping
from itertools import accumulate
from typing import Any, cast

import corpus
import msgspec
import pytest

import llmkit
import llmkit_providers.anthropic  # registers the key before the per-test snapshot
from llmkit.config import Config, resolve_config
from llmkit.generics import encode_request
from llmkit.streaming import EventPipeline
from llmkit.types import ChatResponse, HttpCall, StreamChunk
from llmkit_contracts import RecordedRequest, Replay, recorded_body, split_anywhere, truncations
from llmkit_contracts.emulators.anthropic import AnthropicProtocol

assert llmkit_providers.anthropic.Anthropic.name == "anthropic"


API_KEY = "sk-ant-test-0000000000"
PATH = "/v1/messages"

CHATS = corpus.load("anthropic", "chat", path=PATH)
STREAMS = corpus.load("anthropic", "chat_stream", path=PATH)
ERRORS = corpus.load("anthropic", "error")
RECORDS = CHATS + STREAMS


def _ids(records: list[dict[str, Any]]) -> list[str]:
    return [record["id"] for record in records]


# --- recorded requests as llmkit requests --------------------------------------------------

# Top-level fields with an llmkit form; the rest travel in extra_body.
_MODELLED = frozenset(
    {
        "model",
        "max_tokens",
        "messages",
        "system",
        "tools",
        "tool_choice",
        "stop_sequences",
        "stream",
        "temperature",
        "top_p",
        "metadata",
        "thinking",
        "output_config",
    }
)
# Top-level fields of betas: a request carrying one names the beta.
# (The recordings keep no request headers, so the beta names are Anthropic's
# documented ones where known; the emulator only asks that some beta is named.)
_BETA_FIELDS = {"mcp_servers": "mcp-client-2025-04-04", "context_management": "compact-2026-01-12"}
_TASK_BUDGETS = "task-budgets"


class Translation:
    """A recorded request in llmkit's terms: the request, the options, and what it cannot say."""

    def __init__(self) -> None:
        self.gaps: list[str] = []
        self.options: dict[str, Any] = {}

    def gap(self, reason: str) -> None:
        if reason not in self.gaps:
            self.gaps.append(reason)


def _data_url(media: str, data: str) -> str:
    return f"data:{media};base64,{data}"


def _part(block: dict[str, Any], out: Translation) -> dict[str, Any] | None:
    kind = block["type"]
    if "cache_control" in block:
        out.gap("cache_control on a block that is not the last of its message")
    if kind == "text":
        return {"type": "text", "text": block["text"]}
    source = block.get("source", {})
    if kind == "image" and source.get("type") == "base64":
        return {
            "type": "image_url",
            "image_url": {"url": _data_url(source["media_type"], source["data"])},
        }
    if kind == "image" and source.get("type") == "url":
        return {"type": "image_url", "image_url": {"url": source["url"]}}
    if kind == "document" and source.get("type") == "base64":
        file = {"file_data": _data_url(source["media_type"], source["data"])}
        return {"type": "file", "file": {**file, **_title(block)}}
    if kind == "document" and source.get("type") == "text":
        data = base64.b64encode(source["data"].encode()).decode()
        return {
            "type": "file",
            "file": {"file_data": _data_url("text/plain", data), **_title(block)},
        }
    if kind in ("image", "document"):
        out.gap(f"{kind} block with a {source.get('type')} source")
    else:
        out.gap(f"{kind} block (not modelled)")
    return None


def _title(block: dict[str, Any]) -> dict[str, Any]:
    return {"filename": block["title"]} if "title" in block else {}


def _with_cache(message: dict[str, Any], block: dict[str, Any] | None) -> dict[str, Any]:
    if block is not None and "cache_control" in block:
        message["provider_data"] = {"anthropic": {"cache_control": block["cache_control"]}}
    return message


def _user(content: Any, out: Translation) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    messages: list[dict[str, Any]] = []
    rest: list[dict[str, Any]] = []
    for block in content:
        if block["type"] != "tool_result":
            rest.append(block)
            continue
        if rest:
            out.gap("user text before tool results (llmkit sends the results first)")
        messages.append(_tool(block, out))
    if rest:
        last = rest[-1]
        stripped = [*rest[:-1], {k: v for k, v in last.items() if k != "cache_control"}]
        parts = [p for p in (_part(b, out) for b in stripped) if p is not None]
        messages.append(_with_cache({"role": "user", "content": parts}, last))
    return messages


def _tool(block: dict[str, Any], out: Translation) -> dict[str, Any]:
    content = block.get("content", "")
    if isinstance(content, list):
        content = [p for p in (_part(b, out) for b in content) if p is not None]
    message: dict[str, Any] = {
        "role": "tool",
        "tool_call_id": block["tool_use_id"],
        "content": content,
    }
    own: dict[str, Any] = {}
    if block.get("is_error"):
        own["is_error"] = True
    if "cache_control" in block:
        own["cache_control"] = block["cache_control"]
    if own:
        message["provider_data"] = {"anthropic": own}
    return message


def _assistant(content: Any, out: Translation) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts = [b["text"] for b in content if b["type"] == "text"]
    calls = [
        {
            "id": b["id"],
            "type": "function",
            "function": {"name": b["name"], "arguments": json.dumps(b["input"])},
        }
        for b in content
        if b["type"] == "tool_use"
    ]
    if any("caller" in b for b in content if b["type"] == "tool_use"):
        out.gap("tool_use with a caller (programmatic tool calling)")
    if any("cache_control" in b for b in content[:-1]):
        out.gap("cache_control on a block that is not the last of its message")
    special = [b for b in content if b["type"] not in ("text", "tool_use")]
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if not calls and message["content"] is None:
        message["content"] = ""
    if calls:
        message["tool_calls"] = calls
    if special:
        if len(texts) > 1:
            out.gap("assistant text in several blocks (llmkit holds one text)")
        layout = [_marker(b) for b in content]
        message["provider_data"] = {"anthropic": {"content": layout}}
        thoughts = [b.get("thinking", "") for b in content if b["type"] == "thinking"]
        if "".join(thoughts):
            message["reasoning"] = "".join(thoughts)
    elif len(texts) > 1:
        out.gap("assistant text in several blocks (llmkit holds one text)")
    elif texts and calls and content[0]["type"] != "text":
        out.gap("assistant tool calls before its text (llmkit sends the text first)")
    return _with_cache(message, content[-1] if content else None)


def _marker(block: dict[str, Any]) -> dict[str, Any]:
    if block["type"] == "text":
        return {"type": "text"}
    if block["type"] == "tool_use":
        return {"type": "tool_use", "id": block["id"]}
    return block


def _system(system: Any, out: Translation) -> list[dict[str, Any]]:
    if isinstance(system, str):
        return [{"role": "system", "content": system}]
    messages = []
    for block in system:
        message = {"role": "system", "content": block["text"]}
        messages.append(_with_cache(message, block))
    return messages


def _tools(body: dict[str, Any], request: dict[str, Any], out: Translation) -> None:
    tools = body.get("tools")
    choice = body.get("tool_choice")
    custom = all(t.get("type") in (None, "custom") and set(t) <= _TOOL_FIELDS for t in tools or ())
    if tools is not None and not custom:
        # Server tools and tool options llmkit does not model: the escape hatch.
        request["extra_body"]["tools"] = tools
        if choice is not None:
            request["extra_body"]["tool_choice"] = choice
        return
    if tools is not None:
        request["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t["name"],
                    "parameters": t["input_schema"],
                    **({"description": t["description"]} if "description" in t else {}),
                    **({"strict": t["strict"]} if "strict" in t else {}),
                },
            }
            for t in tools
        ]
    if choice is not None:
        kind = choice["type"]
        request["tool_choice"] = (
            {"type": "function", "function": {"name": choice["name"]}}
            if kind == "tool"
            else {"any": "required"}.get(kind, kind)
        )
        if choice.get("disable_parallel_tool_use"):
            request["parallel_tool_calls"] = False


_TOOL_FIELDS = frozenset({"type", "name", "description", "input_schema", "strict"})


def _settings(body: dict[str, Any], request: dict[str, Any], out: Translation) -> None:
    thinking = body.get("thinking")
    if thinking is not None:
        if thinking == {"type": "enabled", "budget_tokens": thinking.get("budget_tokens")}:
            out.options["thinking_budget"] = thinking["budget_tokens"]
        elif thinking == {"type": "adaptive"}:
            out.options["adaptive_thinking"] = True
        else:
            request["extra_body"]["thinking"] = thinking
    config = body.get("output_config")
    if config is not None:
        if set(config) <= {"format", "effort"}:
            if "format" in config:
                request["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "output", "schema": config["format"]["schema"]},
                }
            if "effort" in config:
                out.options["effort"] = config["effort"]
        else:
            request["extra_body"]["output_config"] = config
    if "stop_sequences" in body:
        request["stop"] = body["stop_sequences"]
    for name in ("temperature", "top_p"):
        if name in body:
            request[name] = body[name]
    if "metadata" in body:
        request["user"] = body["metadata"]["user_id"]


def translate(record: Mapping[str, Any]) -> tuple[dict[str, Any], Translation]:
    """A record's request body as an llmkit request dict, with its options and gaps."""
    body = copy.deepcopy(record["request"]["body"])
    out = Translation()
    request: dict[str, Any] = {
        "model": body["model"],
        "max_tokens": body.get("max_tokens"),
        "messages": [],
        "extra_body": {},
    }
    if body.get("system"):
        request["messages"] += _system(body["system"], out)
    for message in body["messages"]:
        if message["role"] == "user":
            request["messages"] += _user(message["content"], out)
        elif message["role"] == "assistant":
            request["messages"].append(_assistant(message["content"], out))
        else:
            out.gap("a system message inside the history (beta; llmkit moves it to system)")
    _tools(body, request, out)
    _settings(body, request, out)
    betas = sorted(_BETA_FIELDS[name] for name in body if name in _BETA_FIELDS)
    if set(body.get("output_config") or ()) - {"format", "effort"}:
        betas.append(_TASK_BUDGETS)
    if betas:
        request["extra_headers"] = {"anthropic-beta": ",".join(betas)}
    for name, value in body.items():
        if name not in _MODELLED:
            request["extra_body"][name] = value
    if not request["extra_body"]:
        del request["extra_body"]
    if request["max_tokens"] is None:
        del request["max_tokens"]
    return request, out


def _request_of(record: Mapping[str, Any]) -> dict[str, Any]:
    """The llmkit request replaying ``record``: the whole translation where llmkit can say it.

    A request llmkit cannot express whole gets a one-turn request instead, with
    the recording's model, thinking and limit: the recorded answer is served
    whatever was asked, so its decoding is checked all the same.
    """
    request, out = translate(record)
    if not out.gaps:
        return request
    first = next(m for m in record["request"]["body"]["messages"] if m["role"] == "user")
    text = first["content"] if isinstance(first["content"], str) else "Hello"
    return {
        "model": request["model"],
        "messages": [{"role": "user", "content": text}],
        **({"max_tokens": request["max_tokens"]} if "max_tokens" in request else {}),
    }


def _options(record: Mapping[str, Any]) -> dict[str, Any]:
    return translate(record)[1].options


EXPRESSIBLE = [record for record in RECORDS if not translate(record)[1].gaps]
GAPPED = {
    record["id"]: translate(record)[1].gaps for record in RECORDS if translate(record)[1].gaps
}


def _event_type(event: bytes) -> str | None:
    payloads = corpus.sse_data(event.decode("utf-8"))
    return json.loads(payloads[0])["type"] if payloads else None


def _finishes(event: bytes) -> bool:
    """Whether a recorded event ends the answer: the stop reason, or the end marker."""
    return _event_type(event) in ("message_delta", "message_stop")


class Replays:
    """One strict emulator per set of provider options (a thinking budget is an option)."""

    def __init__(self) -> None:
        self._running: dict[str, Replay] = {}

    def of(self, record: dict[str, Any]) -> Replay:
        options = _options(record)
        key = json.dumps(options, sort_keys=True)
        replay = self._running.get(key)
        if replay is None:
            config: dict[str, Any] = {"api_key": API_KEY}
            if options:
                config["options"] = options
            replay = Replay(
                "anthropic", AnthropicProtocol(), _request_of, finish=_finishes, config=config
            ).start()
            self._running[key] = replay
        return replay

    def stop(self) -> None:
        for replay in self._running.values():
            replay.stop()


@pytest.fixture(scope="module")
def replays() -> Iterator[Replays]:
    running = Replays()
    try:
        yield running
    finally:
        running.stop()


def _check_sent(replay: Replay, record: dict[str, Any], *, stream: bool) -> RecordedRequest:
    """The one request the client sent: the recorded endpoint, the key, the version, the model."""
    [sent] = replay.sent  # retries=0: exactly one request
    assert sent.method == "POST"
    assert sent.path == PATH
    assert sent.headers["x-api-key"] == API_KEY
    assert "authorization" not in sent.headers
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["content-type"].startswith("application/json")
    body = sent.json
    assert isinstance(body, dict)
    assert body["model"] == record["request"]["body"]["model"]
    assert body.get("stream", False) is stream
    return sent


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every piece of body llmkit's stream pipeline is fed, in order."""
    seen: list[bytes] = []
    feed = EventPipeline.feed

    def spy(self: EventPipeline, data: bytes) -> list[StreamChunk]:
        seen.append(bytes(data))
        return feed(self, data)

    monkeypatch.setattr(EventPipeline, "feed", spy)
    return seen


def _boundaries(pieces: list[bytes]) -> set[int]:
    return set(accumulate(len(piece) for piece in pieces))


# --- expectations from raw JSON --------------------------------------------------------

FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "length",
}


def _usage(usage: dict[str, Any]) -> dict[str, Any]:
    read = usage.get("cache_read_input_tokens")
    written = usage.get("cache_creation_input_tokens")
    prompt = usage["input_tokens"] + (read or 0) + (written or 0)
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": usage["output_tokens"],
        "total_tokens": prompt + usage["output_tokens"],
        "cached_tokens": read,
        "cache_write_tokens": written,
    }
    thinking = (usage.get("output_tokens_details") or {}).get("thinking_tokens")
    if thinking is not None:
        out["reasoning_tokens"] = thinking
    return out


def _expected(
    model: str, blocks: list[dict[str, Any]], stop: str, usage: dict[str, Any]
) -> dict[str, Any]:
    texts = [b["text"] for b in blocks if b["type"] == "text"]
    calls = [(b["id"], b["name"], b["input"]) for b in blocks if b["type"] == "tool_use"]
    thoughts = [b["thinking"] for b in blocks if b["type"] == "thinking"]
    special = any(b["type"] not in ("text", "tool_use") for b in blocks)
    text = "".join(texts)
    return {
        "model": model,
        "content": text if text or not calls else None,
        "tool_calls": calls,
        "reasoning": "".join(thoughts) or None,
        "provider_data": {"anthropic": {"content": [_marker(b) for b in blocks]}}
        if special
        else None,
        "finish_reason": FINISH[stop],
        "native_finish_reason": stop,
        "usage": _usage(usage),
    }


def _expected_response(body_text: str) -> dict[str, Any]:
    data = json.loads(body_text)
    return _expected(data["model"], data["content"], data["stop_reason"], data["usage"])


def _expected_stream(body_text: str) -> dict[str, Any]:
    """Assemble a recorded event stream by hand: blocks by index, usage merged."""
    blocks: dict[int, dict[str, Any]] = {}
    inputs: dict[int, str] = {}
    model = stop = None
    usage: dict[str, Any] = {}
    for payload in corpus.sse_data(body_text):
        event = json.loads(payload)
        kind = event["type"]
        if kind == "message_start":
            model = event["message"]["model"]
            usage = dict(event["message"]["usage"])
        elif kind == "content_block_start":
            blocks[event["index"]] = dict(event["content_block"])
        elif kind == "content_block_delta":
            delta = event["delta"]
            block = blocks[event["index"]]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] += delta["signature"]
            elif delta["type"] == "input_json_delta":
                inputs[event["index"]] = inputs.get(event["index"], "") + delta["partial_json"]
        elif kind == "content_block_stop" and inputs.get(event["index"]):
            blocks[event["index"]]["input"] = json.loads(inputs[event["index"]])
        elif kind == "message_delta":
            stop = event["delta"]["stop_reason"]
            usage.update(event["usage"])  # cumulative counts replace the first ones
    assert model is not None
    assert stop is not None
    return _expected(model, [blocks[i] for i in sorted(blocks)], stop, usage)


def _got(response: ChatResponse) -> dict[str, Any]:
    [choice] = response.choices
    message = choice.message
    usage = response.usage
    assert usage is not None
    prompt = usage.prompt_tokens_details
    completion = usage.completion_tokens_details
    flat: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "cached_tokens": prompt.cached_tokens if prompt else None,
        "cache_write_tokens": prompt.cache_write_tokens if prompt else None,
    }
    if completion is not None and completion.reasoning_tokens is not None:
        flat["reasoning_tokens"] = completion.reasoning_tokens
    return {
        "model": response.model,
        "content": message.content,
        "tool_calls": [
            (c.id, c.function.name, json.loads(c.function.arguments))
            for c in message.tool_calls or ()
        ],
        "reasoning": message.reasoning,
        "provider_data": message.provider_data,
        "finish_reason": choice.finish_reason,
        "native_finish_reason": choice.native_finish_reason,
        "usage": flat,
    }


# --- 0. the corpus itself ----------------------------------------------------------------

# Recorded requests llmkit cannot express whole, by reason; their answers are
# still decoded and checked (each replays a one-turn request instead).
EXCLUDED_REQUESTS: dict[str, list[str]] = {
    "a system message inside the history (beta; llmkit moves it to system)": [
        "chat-pydantic-ai-test_anthropic_fable_5_lazy_advertisement_live-1",
        "chat-pydantic-ai-test_anthropic_fable_5_lazy_advertisement_live-2",
        "chat-pydantic-ai-test_anthropic_lazy_advertisement_live-1",
        "chat-pydantic-ai-test_anthropic_live_delta_preserves_the_warmed_cache_prefix-1",
        "chat-pydantic-ai-test_inline_system_prompt_cache_prefix_is_reused-0",
        "chat-pydantic-ai-test_leading_cache_point_survives_the_instruction_moving_out-0",
        "chat-pydantic-ai-test_live_fallback_failover_capability_load_and_recovery-1",
        "chat-pydantic-ai-test_mid_conversation_system_prompt_before_another_request-0",
        "chat-pydantic-ai-test_mid_conversation_system_prompt_kept_mid_history-0",
        "chat-pydantic-ai-test_mid_conversation_system_prompt_without_user_turn-0",
        "chat-pydantic-ai-test_native_tool_availability_delta-0",
        "chat-pydantic-ai-test_tool_availability_portability_matrix_R4-T1-tool-additio-0",
    ],
    "assistant text in several blocks (llmkit holds one text)": [
        "chat-pydantic-ai-test_anthropic_server_tool_receive_history_from_another_prov-1",
        "chat-pydantic-ai-test_anthropic_web_search_tool-1",
        "chat_stream-pydantic-ai-test_anthropic_native_tool_search_streaming-1",
    ],
    "cache_control on a block that is not the last of its message": [
        "chat-pydantic-ai-test_anthropic_code_execution_files_cache_prefix_stable_mess-1",
    ],
    "container_upload block (not modelled)": [
        "chat-pydantic-ai-test_anthropic_code_execution_files-1",
        "chat-pydantic-ai-test_anthropic_code_execution_files_cache_prefix_stable_auto-1",
        "chat-pydantic-ai-test_anthropic_code_execution_files_cache_prefix_stable_auto-2",
        "chat-pydantic-ai-test_anthropic_code_execution_files_cache_prefix_stable_mess-1",
        "chat-pydantic-ai-test_anthropic_code_execution_files_cache_prefix_stable_mess-2",
        "chat-pydantic-ai-test_anthropic_code_execution_files_cache_prefix_stable_mess-2-2",
        "chat-pydantic-ai-test_anthropic_code_execution_files_multi_turn-2",
    ],
    "document block with a file source": [
        "chat-pydantic-ai-test_multimodal_tool_return_matrix_direct-uploaded_file-docu-1",
    ],
    "document block with a url source": [
        "chat-pydantic-ai-test_document_url_input-0",
        "chat-pydantic-ai-test_multimodal_tool_return_matrix_direct-url-document-anthr-1",
        "chat-pydantic-ai-test_multimodal_tool_return_matrix_tool_return_content-url-d-1",
    ],
    "image block with a file source": [
        "chat-pydantic-ai-test_multimodal_tool_return_matrix_tool_return_content-uploa-1",
    ],
    "tool_reference block (not modelled)": [
        "chat-pydantic-ai-test_anthropic_custom_callable_round_trip-1",
        "chat-pydantic-ai-test_anthropic_deferred_capability_tool_callable_without_too-1",
        "chat-pydantic-ai-test_anthropic_deferred_capability_without_tool_search_acros-2",
        "chat-pydantic-ai-test_anthropic_deferred_capability_without_tool_search_acros-2-2",
        "chat-pydantic-ai-test_anthropic_deferred_capability_without_tool_search_acros-2-3",
        "chat-pydantic-ai-test_anthropic_deferred_capability_without_tool_search_acros-2-4",
        "chat-pydantic-ai-test_anthropic_deferred_capability_without_tool_search_acros-2-5",
        "chat-pydantic-ai-test_anthropic_explicit_tool_search_keeps_search_surface-1",
        "chat-pydantic-ai-test_anthropic_explicit_tool_search_keeps_search_surface-2",
        "chat-pydantic-ai-test_anthropic_promotes_local_search_history_round_trip-0",
        "chat-pydantic-ai-test_anthropic_promotes_local_search_history_round_trip-1",
        "chat-pydantic-ai-test_cross_provider_capability_replay_openai-responses-gpt-5-4",
        "chat-pydantic-ai-test_tool_availability_portability_matrix_R1-T2-native-searc-0",
    ],
}


def test_anthropic_corpus_is_complete() -> None:
    # Every Anthropic chat, stream and error recording is replayed; a fixture
    # lost in a refactor must fail here rather than shrink coverage.
    assert (len(CHATS), len(STREAMS), len(ERRORS)) == (136, 16, 3)
    files = sorted(p.name for p in (corpus.FIXTURES / "anthropic").glob("*.json"))
    assert files == sorted(f"{r['id']}.json" for r in CHATS + STREAMS + ERRORS)
    assert all(r["request"]["host"] == "api.anthropic.com" for r in CHATS + STREAMS + ERRORS)
    assert len(EXPRESSIBLE) + len(GAPPED) == len(RECORDS)


def test_anthropic_default_endpoint_is_the_recorded_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without api_base the codec addresses the endpoint every recording was made against.
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    recorded = {f"https://{r['request']['host']}{r['request']['path']}" for r in RECORDS}
    key = llmkit_providers.anthropic.Anthropic()
    request = llmkit.types.to_request(_request_of(CHATS[0]))
    call = cast(
        HttpCall, encode_request(key, request, resolve_config(key, Config(api_key=API_KEY)))
    )
    assert recorded == {call.url}


# --- 1. responses ------------------------------------------------------------------------


@pytest.mark.parametrize("record", CHATS, ids=_ids(CHATS))
def test_anthropic_response_decoding(replays: Replays, record: dict[str, Any]) -> None:
    replay = replays.of(record)
    response = replay.complete(record)
    _check_sent(replay, record, stream=False)
    assert _got(response) == _expected_response(record["response"]["body_text"])


# --- 2. requests -------------------------------------------------------------------------


def _normal(body: dict[str, Any]) -> dict[str, Any]:
    """A request body in one spelling of what the API reads alike.

    A string content is one text block; ``"stream": false`` and
    ``"is_error": false`` are the defaults; a custom tool may say
    ``"type": "custom"`` or nothing.
    """
    body = copy.deepcopy(body)
    if body.get("stream") is False:
        del body["stream"]
    if isinstance(body.get("system"), str):
        body["system"] = [{"type": "text", "text": body["system"]}]
    for message in body["messages"]:
        if isinstance(message["content"], str):
            message["content"] = [{"type": "text", "text": message["content"]}]
        for block in message["content"]:
            if block.get("type") != "tool_result":
                continue
            if block.get("is_error") is False:
                del block["is_error"]
            if isinstance(block.get("content"), str):
                block["content"] = [{"type": "text", "text": block["content"]}]
            if block.get("content") == []:
                del block["content"]
    for tool in body.get("tools") or ():
        if tool.get("type") == "custom":
            del tool["type"]
    return body


@pytest.mark.parametrize("record", EXPRESSIBLE, ids=_ids(EXPRESSIBLE))
def test_anthropic_request_encoding(replays: Replays, record: dict[str, Any]) -> None:
    # What llmkit puts on the wire is the recorded request, and the strict
    # emulator accepts it (a refusal raises RefusedReplayError).
    replay = replays.of(record)
    stream = record["kind"] == "chat_stream"
    if stream:
        replay.stream(record)
    else:
        replay.complete(record)
    sent = _check_sent(replay, record, stream=stream).json
    assert _normal(sent) == _normal(record["request"]["body"])


def test_anthropic_requests_llmkit_cannot_express() -> None:
    # Each exclusion names why; a new one (or one that became expressible) fails here.
    table: dict[str, list[str]] = {}
    for reason, ids in EXCLUDED_REQUESTS.items():
        for record_id in ids:
            table.setdefault(f"anthropic-{record_id}", []).append(reason)
    assert {k: sorted(v) for k, v in GAPPED.items()} == table


# --- 3. streams --------------------------------------------------------------------------


def _check_grammar(chunks: tuple[StreamChunk, ...]) -> None:
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c for c in chunks for ch in c.choices if ch.finish_reason]
    assert len(finishes) == 1
    assert chunks[-1] is finishes[0]
    assert chunks[-1].usage is not None


@pytest.mark.parametrize("record", STREAMS, ids=_ids(STREAMS))
def test_anthropic_stream_accumulation(replays: Replays, record: dict[str, Any]) -> None:
    replay = replays.of(record)
    streamed = replay.stream(record)
    _check_sent(replay, record, stream=True)
    _check_grammar(streamed.chunks)
    assert _got(streamed.response) == _expected_stream(record["response"]["body_text"])


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("record", STREAMS, ids=_ids(STREAMS))
def test_anthropic_stream_split_anywhere(
    replays: Replays, reads: list[bytes], record: dict[str, Any], seed: int
) -> None:
    replay = replays.of(record)
    whole = replay.stream(record)
    body = recorded_body(record)
    pieces = split_anywhere(body, seed)
    assert b"".join(pieces) == body
    reads.clear()
    split = replay.stream(record, seed=seed)
    # The pieces reached the decoder as sent.
    assert b"".join(reads) == body
    assert _boundaries(pieces) <= _boundaries(reads)
    assert split.chunks == whole.chunks
    assert split.response == whole.response


_CUTS = [
    "empty-body",
    "after-first-event",
    "before-finish-event",
    "before-finish-unterminated",
    "inside-finish-event",
]


@pytest.mark.parametrize("ending", ["ended", "dropped"])
@pytest.mark.parametrize("cut", _CUTS)
@pytest.mark.parametrize("record", STREAMS, ids=_ids(STREAMS))
def test_anthropic_stream_truncated_raises(
    replays: Replays, record: dict[str, Any], cut: str, ending: str
) -> None:
    # The finish event is message_delta: every cut leaves out the stop reason
    # and message_stop, so the answer must not pass for a whole one.
    body = recorded_body(record)
    assert _event_type(body[len(truncations(body, _finishes)["before-finish-event"]) :]) == (
        "message_delta"
    )
    with pytest.raises(llmkit.StreamInterruptedError) as info:
        replays.of(record).truncated(record, cut, disconnect=ending == "dropped")
    assert info.value.provider == "anthropic"


@pytest.mark.parametrize("record", STREAMS, ids=_ids(STREAMS))
def test_anthropic_stream_cut_after_the_stop_reason_raises(
    replays: Replays, record: dict[str, Any]
) -> None:
    # Only message_stop ends a stream: the stop reason and usage alone do not.
    body = recorded_body(record)
    end = body.rindex(b"event: message_stop")
    with pytest.raises(llmkit.StreamInterruptedError):
        replays.of(record).stream(record, pieces=[body[:end]])


# --- 4. errors ---------------------------------------------------------------------------

_ERROR_CLASSES: dict[int, type[llmkit.LLMError]] = {
    400: llmkit.InvalidRequestError,
    404: llmkit.NotFoundError,
}


@pytest.mark.parametrize("record", ERRORS, ids=_ids(ERRORS))
def test_anthropic_error_mapping(replays: Replays, record: dict[str, Any]) -> None:
    # The count_tokens recording answered another endpoint; its envelope is the
    # same, so it is served to a Messages call all the same.
    recorded = record["response"]
    status = recorded["status"]
    envelope = json.loads(recorded["body_text"])
    replay = replays.of(record)
    with pytest.raises(llmkit.LLMError) as info:
        replay.complete(record)
    error = info.value
    [sent] = replay.sent
    assert sent.path == PATH
    assert type(error) is _ERROR_CLASSES[status]
    assert error.status == status
    assert error.provider == "anthropic"
    assert error.model == record["request"]["body"]["model"]
    assert error.code == envelope["error"]["type"]
    assert envelope["error"]["message"] in error.message
    assert error.request_id == envelope["request_id"]
    assert error.retryable is False
    for text in (str(error), repr(error), *map(str, error.args)):
        assert API_KEY not in text


# --- async parity ------------------------------------------------------------------------


def _sample(records: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    step = max(len(records) // count, 1)
    return records[::step][:count]


ASYNC_CHATS = _sample(CHATS, 6)
ASYNC_STREAMS = _sample(STREAMS, 4)


@pytest.mark.anyio
@pytest.mark.parametrize("record", ASYNC_CHATS, ids=_ids(ASYNC_CHATS))
async def test_anthropic_async_response_parity(replays: Replays, record: dict[str, Any]) -> None:
    replay = replays.of(record)
    response = await replay.acomplete(record)
    _check_sent(replay, record, stream=False)
    assert response == replay.complete(record)
    assert _got(response) == _expected_response(record["response"]["body_text"])


@pytest.mark.anyio
@pytest.mark.parametrize("split", [False, True], ids=["whole", "pieces"])
@pytest.mark.parametrize("record", ASYNC_STREAMS, ids=_ids(ASYNC_STREAMS))
async def test_anthropic_async_stream_parity(
    replays: Replays, reads: list[bytes], record: dict[str, Any], split: bool
) -> None:
    replay = replays.of(record)
    streamed = await replay.astream(record, seed=7 if split else None)
    _check_sent(replay, record, stream=True)
    body = recorded_body(record)
    pieces = split_anywhere(body, 7) if split else [body]
    assert _boundaries(pieces) <= _boundaries(reads)
    sync = replay.stream(record)
    assert streamed.chunks == sync.chunks
    assert streamed.response == sync.response


@pytest.mark.anyio
@pytest.mark.parametrize("record", ASYNC_STREAMS[:2], ids=_ids(ASYNC_STREAMS[:2]))
async def test_anthropic_async_stream_truncated_raises(
    replays: Replays, record: dict[str, Any]
) -> None:
    cut = truncations(recorded_body(record), _finishes)["before-finish-event"]
    with pytest.raises(llmkit.StreamInterruptedError):
        await replays.of(record).astream(record, pieces=[cut])


def test_anthropic_thinking_round_trips_through_history(replays: Replays) -> None:
    # The second turn of a recorded thinking conversation sends the first
    # answer back; llmkit's own decoded answer, appended to the history,
    # puts the same thinking block (text and signature) on the wire.
    first = next(r for r in CHATS if r["id"].endswith("test_thinking_roundtrip_anthropic-0"))
    replay = replays.of(first)
    answer = replay.complete(first).choices[0].message
    request = _request_of(first)
    follow = {
        **request,
        "messages": [
            *request["messages"],
            msgspec.to_builtins(answer),
            {"role": "user", "content": "And then?"},
        ],
    }
    replay.complete(first, request=follow)
    [sent] = replay.sent
    recorded = json.loads(first["response"]["body_text"])["content"]
    assert sent.json["messages"][1] == {"role": "assistant", "content": recorded}
