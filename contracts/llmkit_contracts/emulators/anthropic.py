"""Anthropic's Messages API, as the emulator speaks it.

``POST /v1/messages`` answers with a ``message`` object or, for ``"stream":
true``, server-sent events: ``message_start``, ``ping``, per content block
``content_block_start`` / ``content_block_delta`` (``text_delta``,
``input_json_delta``, ``thinking_delta``, ``signature_delta``) /
``content_block_stop``, then ``message_delta`` (stop reason, output usage)
and ``message_stop``. Errors use Anthropic's envelope, ``{"type": "error",
"error": {"type", "message"}, "request_id"}``, with the error type of the
status (529 ``overloaded_error``); a stream that fails midway sends an
``event: error``.

Requests are checked as the real API checks them, with its messages where
they are known from recorded traffic and public reports: a key (in
``x-api-key``, or as a bearer token as the SDKs send it since 2.0) and an
``anthropic-version`` header; ``model``, ``messages`` and ``max_tokens``
required and unknown top-level fields refused (the beta ones pass with an
``anthropic-beta`` header); roles ``user`` and ``assistant`` only, the
system prompt top-level, the first turn a user's; consecutive turns of one
role are combined, as the API combines them, before a ``tool_result`` must
answer a ``tool_use`` of the turn before and every ``tool_use`` must be
answered in the turn after; the rules of extended thinking (budget at
least 1,024 and below ``max_tokens``, no forced tool, temperature 1, the
thinking blocks of a tool-use loop sent back, signatures intact: the
emulator signs the thinking it sends); tool names, ``tool_choice``,
sampling ranges, images whose bytes are of another type than they claim,
and JSON-schema output whose objects are not closed.

A scripted reply's reasoning becomes a thinking block when the request
enables thinking (a thinking model answers with one then, empty if the
script has none); tool calls get ids ``call_0``, ``call_1``...
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from typing import Any, ClassVar, Final

from llmkit_contracts.emulator import (
    Emulator,
    Received,
    Reply,
    Turn,
    WireProtocol,
    json_decode,
    json_encode,
    split_text,
)

__all__ = [
    "LLMKIT_JSON_INSTRUCTION",
    "AnthropicEmulator",
    "AnthropicProtocol",
    "signature_of",
]

_PATH: Final = "/v1/messages"
# 2026-10-21 is what the official SDKs send since their 2.0 release.
_VERSIONS: Final = frozenset({"2023-01-01", "2023-06-01", "2026-10-21"})
#: How llmkit's Anthropic codec asks for a JSON object (the API has no JSON
#: mode): the last system block. :meth:`AnthropicProtocol.received` reads it
#: back as ``response_format="json_object"``.
LLMKIT_JSON_INSTRUCTION: Final = (
    "Respond with a single JSON object and nothing else: no prose and no Markdown code fences."
)
_THINKING_DOCS: Final = "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"

_ERROR_TYPES: Final[Mapping[int, str]] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_STOP_REASONS: Final[Mapping[str, str]] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
# The top-level fields of the generally available API, and those betas add.
_ARGUMENTS: Final = frozenset(
    {
        "cache_control",
        "container",
        "inference_geo",
        "max_tokens",
        "messages",
        "metadata",
        "model",
        "output_config",
        "service_tier",
        "stop_sequences",
        "stream",
        "system",
        "temperature",
        "thinking",
        "tool_choice",
        "tools",
        "top_k",
        "top_p",
    }
)
_BETA_ARGUMENTS: Final = frozenset(
    {"context_management", "mcp_servers", "output_format", "speed", "user_profile_id"}
)
_USER_BLOCKS: Final = frozenset(
    {"text", "image", "document", "search_result", "tool_result", "container_upload"}
)
_ASSISTANT_BLOCKS: Final = frozenset(
    {
        "text",
        "tool_use",
        "thinking",
        "redacted_thinking",
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
        "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result",
        "tool_search_tool_result",
    }
)
_THOUGHTS: Final = ("thinking", "redacted_thinking")
_IMAGE_TYPES: Final = ("image/jpeg", "image/png", "image/gif", "image/webp")
_MAGIC: Final = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
_TOOL_NAME: Final = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_TOOL_ID: Final = re.compile(r"^[a-zA-Z0-9_-]+$")
_SERVER_TOOL: Final = re.compile(r"_\d{8}$")
_SIGNATURE_PREFIX: Final = "EmuSig"
_EFFORTS: Final = frozenset({"low", "medium", "high", "xhigh", "max"})


def signature_of(thinking: str) -> str:
    """The signature the emulator gives a thinking block, and checks when it comes back."""
    return _SIGNATURE_PREFIX + hashlib.sha256(thinking.encode("utf-8")).hexdigest()[:40]


def _refuse(message: str, status: int = 400) -> Reply:
    return Reply.error(status, message=message, type=_ERROR_TYPES.get(status))


def _extra(where: str) -> Reply:
    return _refuse(f"{where}: Extra inputs are not permitted")


def _missing(where: str) -> Reply:
    return _refuse(f"{where}: Field required")


# --- request checks --------------------------------------------------------------------


def _check_image(block: dict[str, Any], where: str) -> Reply | None:
    source = block.get("source")
    if not isinstance(source, dict):
        return _missing(f"{where}.image.source")
    kind = source.get("type")
    if kind == "url":
        return None if isinstance(source.get("url"), str) else _missing(f"{where}.source.url")
    if kind != "base64":
        return _refuse(
            f"{where}.image.source: Input tag {kind!r} found using 'type' does not match any "
            "of the expected tags: 'base64', 'url'"
        )
    media = source.get("media_type")
    if media not in _IMAGE_TYPES:
        return _refuse(
            f"{where}.image.source.base64.media_type: Input should be 'image/jpeg', "
            "'image/png', 'image/gif' or 'image/webp'"
        )
    try:
        head = base64.b64decode(str(source.get("data", ""))[:64], validate=True)
    except (binascii.Error, ValueError):
        return _refuse(f"{where}.image.source.base64.data: Invalid base64 data")
    actual = next((kind for magic, kind in _MAGIC if head.startswith(magic)), None)
    if actual is None and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        actual = "image/webp"
    if actual is not None and actual != media:
        return _refuse(
            f"{where}.image.source.base64: The image was specified using the {media} media "
            f"type, but the image appears to be a {actual} image"
        )
    return None


def _check_block(block: Any, role: str, where: str, beta: bool) -> Reply | None:
    if not isinstance(block, dict):
        return _refuse(f"{where}: Input should be a valid dictionary")
    kind = block.get("type")
    allowed = _USER_BLOCKS if role == "user" else _ASSISTANT_BLOCKS
    if kind not in allowed and not (beta and isinstance(kind, str)):
        other = _ASSISTANT_BLOCKS if role == "user" else _USER_BLOCKS
        if kind in other:
            return _refuse(f"{where}: `{kind}` blocks are not allowed in `{role}` messages")
        return _refuse(f"{where}.type: Input tag {kind!r} found using 'type' does not match")
    if kind == "text":
        text = block.get("text")
        if not isinstance(text, str):
            return _missing(f"{where}.text.text")
        if not text:
            return _refuse("messages: text content blocks must be non-empty")
    elif kind == "image":
        return _check_image(block, where)
    elif kind == "tool_use":
        if not isinstance(block.get("id"), str) or not _TOOL_ID.match(block["id"]):
            return _refuse(f"{where}.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'")
        if not isinstance(block.get("name"), str):
            return _missing(f"{where}.tool_use.name")
        if not isinstance(block.get("input"), dict):
            return _refuse(f"{where}.tool_use.input: Input should be a valid dictionary")
    elif kind == "tool_result":
        if not isinstance(block.get("tool_use_id"), str):
            return _missing(f"{where}.tool_result.tool_use_id")
        content = block.get("content")
        if isinstance(content, list):
            for k, part in enumerate(content):
                if isinstance(part, dict) and part.get("type") == "image":
                    refusal = _check_image(part, f"{where}.content.{k}")
                    if refusal is not None:
                        return refusal
    elif kind == "thinking":
        for name in ("thinking", "signature"):
            if not isinstance(block.get(name), str):
                return _missing(f"{where}.thinking.{name}")
        signature = block["signature"]
        if signature.startswith(_SIGNATURE_PREFIX) and signature != signature_of(block["thinking"]):
            return _refuse(f"{where}: Invalid `signature` in `thinking` block")
    elif kind == "redacted_thinking" and not isinstance(block.get("data"), str):
        return _missing(f"{where}.redacted_thinking.data")
    return None


def _check_message(i: int, message: Any, beta: bool) -> Reply | None:
    where = f"messages.{i}"
    if not isinstance(message, dict):
        return _refuse(f"{where}: Input should be a valid dictionary")
    role = message.get("role")
    if role == "system":
        return _refuse(
            'messages: Unexpected role "system". The Messages API accepts a top-level `system` '
            'parameter, not "system" as an input message role.'
        )
    if role not in ("user", "assistant"):
        return _refuse(f"{where}.role: Input should be 'user' or 'assistant'")
    for name in message:
        if name not in ("role", "content"):
            return _extra(f"{where}.{name}")
    if "content" not in message:
        return _missing(f"{where}.content")
    content = message["content"]
    if isinstance(content, str):
        return None
    if not isinstance(content, list):
        return _refuse(f"{where}.content: Input should be a valid list")
    for j, block in enumerate(content):
        refusal = _check_block(block, role, f"{where}.content.{j}", beta)
        if refusal is not None:
            return refusal
    return None


def _turns(messages: list[Any]) -> list[tuple[int, str, list[tuple[str, Any]]]]:
    """Consecutive messages of one role combined, as the API does: ``(first index, role, blocks)``.

    Each block is paired with where it was sent (``messages.i.content.j``).
    """
    turns: list[tuple[int, str, list[tuple[str, Any]]]] = []
    for i, message in enumerate(messages):
        content = message["content"]
        if isinstance(content, str):
            blocks = [(f"messages.{i}.content", {"type": "text", "text": content})]
        else:
            blocks = [(f"messages.{i}.content.{j}", block) for j, block in enumerate(content)]
        if turns and turns[-1][1] == message["role"]:
            turns[-1][2].extend(blocks)
        else:
            turns.append((i, message["role"], blocks))
    return turns


def _check_empty(messages: list[Any]) -> Reply | None:
    last = len(messages) - 1
    for i, message in enumerate(messages):
        content = message["content"]
        if (content == "" or content == []) and not (i == last and message["role"] == "assistant"):
            return _refuse(
                f"messages.{i}: all messages must have non-empty content except for the optional "
                "final assistant message"
            )
    return None


def _check_pairing(turns: list[tuple[int, str, list[tuple[str, Any]]]]) -> Reply | None:
    """Each ``tool_result`` answers a ``tool_use`` of the turn before, and each call is answered."""
    asked: list[str] = []
    asked_at = 0
    for first, role, blocks in turns:
        if role == "user":
            answered = set()
            for where, block in blocks:
                if block.get("type") != "tool_result":
                    continue
                if block.get("tool_use_id") not in asked:
                    return _refuse(
                        f"{where}: unexpected `tool_use_id` found in `tool_result` blocks: "
                        f"{block.get('tool_use_id')}. Each `tool_result` block must have a "
                        "corresponding `tool_use` block in the previous message."
                    )
                answered.add(block["tool_use_id"])
            missing = [call for call in asked if call not in answered]
            if missing:
                return _refuse(
                    f"messages.{asked_at}: `tool_use` ids were found without `tool_result` "
                    f"blocks immediately after: {', '.join(missing)}. Each `tool_use` block must "
                    "have a corresponding `tool_result` block in the next message."
                )
            asked = []
        else:
            asked = [b["id"] for _, b in blocks if b.get("type") == "tool_use"]
            asked_at = first
    return None


def _check_thinking_history(
    turns: list[tuple[int, str, list[tuple[str, Any]]]], thinking: bool
) -> Reply | None:
    for index, (first, role, blocks) in enumerate(turns):
        if role != "assistant" or not blocks:
            continue
        kinds = [block.get("type") for _, block in blocks]
        final = index == len(turns) - 1
        if any(kind in _THOUGHTS for kind in kinds):
            if kinds[0] not in _THOUGHTS:
                return _refuse(
                    f"{blocks[0][0]}: If an assistant message contains any thinking blocks, the "
                    f"first block must be thinking or redacted_thinking. Found {kinds[0]}."
                )
            if final and not thinking:
                return _refuse(
                    f"{blocks[0][0]}: When thinking is disabled, an `assistant` message in the "
                    "final position cannot contain `thinking`. To use thinking blocks, enable "
                    "`thinking` in your request."
                )
            if final and kinds[-1] in _THOUGHTS:
                return _refuse(
                    f"messages.{first}: The final block in an assistant message cannot be "
                    "`thinking`."
                )
    # A tool-use loop in progress: the assistant turn that made the last calls
    # must start with its thinking.
    if thinking and len(turns) >= 2 and turns[-1][1] == "user" and turns[-2][1] == "assistant":
        results = any(block.get("type") == "tool_result" for _, block in turns[-1][2])
        blocks = turns[-2][2]
        if results and blocks and blocks[0][1].get("type") not in _THOUGHTS:
            return _refuse(
                f"{blocks[0][0]}.type: Expected `thinking` or `redacted_thinking`, but found "
                f"`{blocks[0][1].get('type')}`. When `thinking` is enabled, a final `assistant` "
                "message must start with a thinking block (preceeding the lastmost set of "
                "`tool_use` and `tool_result` blocks). We recommend you include thinking blocks "
                "from previous turns. To avoid this requirement, disable `thinking`. Please "
                f"consult our documentation at {_THINKING_DOCS}"
            )
    return None


def _check_messages(payload: dict[str, Any], beta: bool, thinking: bool) -> Reply | None:
    messages = payload.get("messages")
    if messages is None:
        return _missing("messages")
    if not isinstance(messages, list):
        return _refuse("messages: Input should be a valid list")
    if not messages:
        return _refuse("messages: at least one message is required")
    for i, message in enumerate(messages):
        refusal = _check_message(i, message, beta)
        if refusal is not None:
            return refusal
    if messages[0]["role"] != "user":
        return _refuse('messages: first message must use the "user" role')
    turns = _turns(messages)
    return (
        _check_empty(messages) or _check_pairing(turns) or _check_thinking_history(turns, thinking)
    )


def _check_system(system: Any) -> Reply | None:
    if system is None or isinstance(system, str):
        return None
    if not isinstance(system, list):
        return _refuse("system: Input should be a valid string or a valid list")
    for k, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            return _refuse(f"system.{k}.type: Input should be 'text'")
        if not isinstance(block.get("text"), str) or not block["text"]:
            return _refuse("system: text content blocks must be non-empty")
        for name in block:
            if name not in ("type", "text", "cache_control", "citations"):
                return _extra(f"system.{k}.{name}")
    return None


def _check_tools(payload: dict[str, Any]) -> Reply | None:
    tools = payload.get("tools")
    names: list[str] = []
    if tools is not None:
        if not isinstance(tools, list):
            return _refuse("tools: Input should be a valid list")
        for k, tool in enumerate(tools):
            if not isinstance(tool, dict):
                return _refuse(f"tools.{k}: Input should be a valid dictionary")
            kind = tool.get("type")
            if isinstance(kind, str) and _SERVER_TOOL.search(kind):
                names.append(str(tool.get("name", kind)))
                continue  # a server tool: its fields are its own
            if kind not in (None, "custom"):
                return _refuse(f"tools.{k}: Input tag {kind!r} found using 'type' does not match")
            name = tool.get("name")
            if not isinstance(name, str) or not _TOOL_NAME.match(name):
                return _refuse(
                    f"tools.{k}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'"
                )
            schema = tool.get("input_schema")
            if not isinstance(schema, dict):
                return _missing(f"tools.{k}.custom.input_schema")
            if schema.get("type") != "object":
                return _refuse(f"tools.{k}.custom.input_schema.type: Input should be 'object'")
            for field in tool:
                if field not in _TOOL_FIELDS:
                    return _extra(f"tools.{k}.custom.{field}")
            names.append(name)
        if len(set(names)) != len(names):
            return _refuse("tools: Tool names must be unique.")
    return _check_tool_choice(payload.get("tool_choice"), names, tools is not None)


_TOOL_FIELDS: Final = frozenset(
    {
        "type",
        "name",
        "description",
        "input_schema",
        "cache_control",
        "strict",
        "eager_input_streaming",
        "allowed_callers",
        "defer_loading",
        "input_examples",
    }
)


def _check_tool_choice(choice: Any, names: list[str], has_tools: bool) -> Reply | None:
    if choice is None:
        return None
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind not in ("auto", "any", "tool", "none"):
        return _refuse(
            f"tool_choice: Input tag {kind!r} found using 'type' does not match any of the "
            "expected tags: 'auto', 'any', 'tool', 'none'"
        )
    if kind in ("any", "tool") and not has_tools:
        return _refuse("tool_choice: tool_choice may only be specified while providing tools.")
    if kind == "tool":
        name = choice.get("name")
        if not isinstance(name, str):
            return _missing("tool_choice.tool.name")
        if name not in names:
            return _refuse(f"tool_choice: Tool '{name}' not found in provided tools")
    return None


def _check_numbers(payload: dict[str, Any]) -> Reply | None:
    max_tokens = payload.get("max_tokens")
    if max_tokens is None:
        return _missing("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        return _refuse("max_tokens: Input should be a valid integer")
    if max_tokens < 0:
        return _refuse("max_tokens: Input should be greater than or equal to 0")
    for name in ("temperature", "top_p"):
        value = payload.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return _refuse(f"{name}: Input should be a valid number")
        if value < 0:
            return _refuse(f"{name}: Input should be greater than or equal to 0")
        if value > 1:
            return _refuse(f"{name}: Input should be less than or equal to 1")
    stop = payload.get("stop_sequences")
    if stop is not None and (
        not isinstance(stop, list) or not all(isinstance(s, str) for s in stop)
    ):
        return _refuse("stop_sequences: Input should be a valid list of strings")
    metadata = payload.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            return _refuse("metadata: Input should be a valid dictionary")
        for name in metadata:
            if name != "user_id":
                return _extra(f"metadata.{name}")
    if "stream" in payload and not isinstance(payload["stream"], bool):
        return _refuse("stream: Input should be a valid boolean")
    return None


def _thinking(payload: dict[str, Any]) -> tuple[Reply | None, bool]:
    """The refusal of the thinking settings, if any, and whether thinking is on."""
    config = payload.get("thinking")
    if config is None:
        return None, False
    kind = config.get("type") if isinstance(config, dict) else None
    if kind == "disabled":
        return None, False
    if kind == "adaptive":
        return None, True
    if kind != "enabled":
        return (
            _refuse(
                f"thinking: Input tag {kind!r} found using 'type' does not match any of the "
                "expected tags: 'enabled', 'disabled', 'adaptive'"
            ),
            False,
        )
    budget = config.get("budget_tokens")
    if isinstance(budget, bool) or not isinstance(budget, int):
        return _missing("thinking.enabled.budget_tokens"), True
    if budget < 1024:
        return (
            _refuse(
                "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
            ),
            True,
        )
    max_tokens = payload.get("max_tokens")
    if isinstance(max_tokens, int) and max_tokens <= budget:
        return (
            _refuse(
                "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our "
                f"documentation at {_THINKING_DOCS}#max-tokens-and-context-window-size"
            ),
            True,
        )
    choice = payload.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") in ("any", "tool"):
        return _refuse("Thinking may not be enabled when tool_choice forces tool use."), True
    temperature = payload.get("temperature")
    if temperature is not None and temperature != 1:
        return (
            _refuse(
                "`temperature` may only be set to 1 when thinking is enabled. Please consult our "
                f"documentation at {_THINKING_DOCS}#feature-compatibility"
            ),
            True,
        )
    return None, True


def _open_object(schema: Any, where: str) -> Reply | None:
    """The refusal of a JSON schema with an object that is not closed, if any."""
    if isinstance(schema, list):
        for item in schema:
            refusal = _open_object(item, where)
            if refusal is not None:
                return refusal
        return None
    if not isinstance(schema, dict):
        return None
    if schema.get("type") == "object":
        extra = schema.get("additionalProperties")
        if extra is True:
            return _refuse(
                f"{where}: For 'object' type, 'additionalProperties: true' is not supported. "
                "Please set 'additionalProperties' to false"
            )
        if extra is not False:
            return _refuse(
                f"{where}: For 'object' type, 'additionalProperties' must be explicitly set "
                "to false"
            )
    for name, value in schema.items():
        if name in ("properties", "$defs", "definitions") and isinstance(value, dict):
            refusal = _open_object(list(value.values()), where)
        elif name in ("items", "anyOf", "allOf", "oneOf", "prefixItems"):
            refusal = _open_object(value, where)
        else:
            continue
        if refusal is not None:
            return refusal
    return None


def _check_output(payload: dict[str, Any], beta: bool) -> Reply | None:
    config = payload.get("output_config")
    if config is None:
        return None
    if not isinstance(config, dict):
        return _refuse("output_config: Input should be a valid dictionary")
    for name in config:
        if name not in ("effort", "format") and not (beta and name == "task_budget"):
            return _extra(f"output_config.{name}")
    effort = config.get("effort")
    if effort is not None and effort not in _EFFORTS:
        return _refuse(
            "output_config.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max'"
        )
    fmt = config.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return _refuse("output_config.format.type: Input should be 'json_schema'")
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        return _missing("output_config.format.schema")
    return _open_object(schema, "output_config.format.schema")


# --- reading requests back ---------------------------------------------------------------


def _text(content: Any) -> tuple[str, int]:
    """The text of a content (string or blocks) and how many images it holds."""
    if isinstance(content, str):
        return content, 0
    if not isinstance(content, list):
        return "", 0
    texts = [b["text"] for b in content if isinstance(b, dict) and b.get("type") == "text"]
    images = sum(1 for b in content if isinstance(b, dict) and b.get("type") == "image")
    return "".join(texts), images


def _system(system: Any) -> tuple[str | None, bool]:
    """The system text, and whether it ends with llmkit's JSON-object instruction."""
    if system is None:
        return None, False
    texts = [system] if isinstance(system, str) else [b.get("text", "") for b in system]
    json_object = bool(texts) and texts[-1] == LLMKIT_JSON_INSTRUCTION
    if json_object:
        texts = texts[:-1]
    return ("\n".join(texts) if texts else None), json_object


def _user_turns(content: Any) -> list[Turn]:
    if not isinstance(content, list):
        return [Turn(role="user", text=_text(content)[0])]
    turns = [
        Turn(role="tool", text=_text(b.get("content", ""))[0], tool_call_id=b.get("tool_use_id"))
        for b in content
        if b.get("type") == "tool_result"
    ]
    rest = [b for b in content if b.get("type") != "tool_result"]
    if rest or not turns:
        text, images = _text(rest)
        turns.append(Turn(role="user", text=text, images=images))
    return turns


def _choice(choice: Any) -> str | None:
    if not isinstance(choice, dict):
        return None
    kind = choice.get("type")
    if kind == "any":
        return "required"
    if kind == "tool":
        return f"function:{choice.get('name')}"
    return str(kind)


def _usage(reply: Reply, *, output: int) -> dict[str, int]:
    return {
        "input_tokens": reply.prompt_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output,
    }


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + json_encode({"type": kind, **data}) + b"\n\n"


def _thinks(payload: Any) -> bool:
    config = payload.get("thinking") if isinstance(payload, dict) else None
    return isinstance(config, dict) and config.get("type") in ("enabled", "adaptive")


def _input(arguments: str) -> Any:
    try:
        value = json_decode(arguments)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class AnthropicProtocol(WireProtocol):
    """Anthropic's Messages API: ``/v1/messages``, content-block SSE events, ``message_stop``.

    The base URL is the host alone, as Anthropic's SDKs take it.
    """

    name: ClassVar[str] = "anthropic"
    base_path: ClassVar[str] = ""

    def route(self, method: str, path: str) -> Reply | None:
        """Serve ``POST /v1/messages`` only (404, else 405)."""
        if path != _PATH:
            return Reply.error(404, message="Not Found", type="not_found_error")
        if method != "POST":
            return Reply.error(
                405,
                message=f"Method {method} not allowed on {path}.",
                type="invalid_request_error",
                headers={"allow": "POST"},
            )
        return None

    def check(self, path: str, headers: Mapping[str, str], payload: Any) -> Reply | None:
        """Refuse what Anthropic refuses, with its status and message."""
        # Keys travel in x-api-key; the official SDKs since 2.0 send them as a
        # bearer token, which the API takes too.
        bearer = headers.get("authorization", "")
        if not headers.get("x-api-key", "").strip() and not (
            bearer.startswith("Bearer ") and bearer[7:].strip()
        ):
            return _refuse("x-api-key header is required", 401)
        version = headers.get("anthropic-version")
        if version is None:
            return _refuse("anthropic-version: header is required")
        if version not in _VERSIONS:
            return _refuse(f"anthropic-version: {version!r} is not a valid version")
        beta = bool(headers.get("anthropic-beta"))
        for name in payload:
            if name not in _ARGUMENTS and not (beta and name in _BETA_ARGUMENTS):
                return _extra(name)
        model = payload.get("model")
        if model is None:
            return _missing("model")
        if not isinstance(model, str) or not model:
            return _refuse("model: Input should be a valid string")
        refusal = _check_numbers(payload)
        if refusal is not None:
            return refusal
        refusal, thinking = _thinking(payload)
        return (
            refusal
            or _check_messages(payload, beta, thinking)
            or _check_system(payload.get("system"))
            or _check_tools(payload)
            or _check_output(payload, beta)
        )

    def wants_stream(self, path: str, payload: Any) -> bool:
        """``"stream": true`` in the body."""
        return isinstance(payload, dict) and payload.get("stream") is True

    def model(self, path: str, payload: Any) -> str:
        """The body's ``model``."""
        model = payload.get("model") if isinstance(payload, dict) else None
        return model if isinstance(model, str) else "emulator"

    def _content(self, reply: Reply, payload: Any) -> list[dict[str, Any]]:
        content: list[dict[str, Any]] = []
        if _thinks(payload):
            thought = reply.reasoning or ""
            content.append(
                {"type": "thinking", "thinking": thought, "signature": signature_of(thought)}
            )
        if reply.content:
            content.append({"type": "text", "text": reply.content})
        for index, (name, arguments) in enumerate(reply.calls):
            content.append(
                {
                    "type": "tool_use",
                    "id": f"call_{index}",
                    "name": name,
                    "input": _input(arguments),
                }
            )
        return content

    def body(self, reply: Reply, payload: Any, *, seq: int, model: str) -> bytes:
        """A ``message`` object."""
        return json_encode(
            {
                "id": f"msg_emu_{seq}",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": self._content(reply, payload),
                "stop_reason": _STOP_REASONS[reply.finish_reason],
                "stop_sequence": None,
                "usage": _usage(reply, output=reply.completion_tokens),
            }
        )

    def events(self, reply: Reply, payload: Any, *, seq: int, model: str) -> list[bytes]:
        """``message_start``, ``ping``, each block's events, ``message_delta``, ``message_stop``."""
        message: dict[str, Any] = {
            "id": f"msg_emu_{seq}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": _usage(reply, output=1),
        }
        events = [_event("message_start", {"message": message}), _event("ping", {})]
        size = reply.chunk_size
        calls = iter(reply.calls)
        for index, block in enumerate(self._content(reply, payload)):
            kind = block["type"]
            start: dict[str, Any]
            deltas: list[dict[str, Any]]
            if kind == "thinking":
                start = {"type": "thinking", "thinking": "", "signature": ""}
                deltas = [
                    {"type": "thinking_delta", "thinking": piece}
                    for piece in split_text(block["thinking"], size)
                ]
                deltas.append({"type": "signature_delta", "signature": block["signature"]})
            elif kind == "text":
                start = {"type": "text", "text": ""}
                deltas = [
                    {"type": "text_delta", "text": piece}
                    for piece in split_text(block["text"], size)
                ]
            else:
                start = {**block, "input": {}}
                arguments = next(calls)[1]
                deltas = [
                    {"type": "input_json_delta", "partial_json": piece}
                    for piece in split_text(arguments, size)
                ]
            events.append(_event("content_block_start", {"index": index, "content_block": start}))
            events.extend(
                _event("content_block_delta", {"index": index, "delta": delta}) for delta in deltas
            )
            events.append(_event("content_block_stop", {"index": index}))
        delta = {"stop_reason": _STOP_REASONS[reply.finish_reason], "stop_sequence": None}
        events.append(
            _event(
                "message_delta",
                {"delta": delta, "usage": {"output_tokens": reply.completion_tokens}},
            )
        )
        events.append(_event("message_stop", {}))
        return events

    def error_body(self, reply: Reply) -> bytes:
        """Anthropic's error envelope; the type follows the status unless given."""
        kind = reply.error_type or _ERROR_TYPES.get(
            reply.status, "api_error" if reply.status >= 500 else "invalid_request_error"
        )
        return json_encode(
            {
                "type": "error",
                "error": {"type": kind, "message": reply.message},
                "request_id": "req_emu_error",
            }
        )

    def error_event(self, reply: Reply) -> bytes:
        """An ``error`` event, as Anthropic sends when a stream fails midway."""
        error = {"type": reply.error_type or "overloaded_error", "message": reply.message}
        return _event("error", {"error": error})

    def received(self, path: str, payload: Any) -> Received:
        """The system prompt becomes :attr:`Received.system`; tool results become tool turns."""
        if not isinstance(payload, dict):
            return Received()
        system, json_object = _system(payload.get("system"))
        turns: list[Turn] = []
        messages = payload.get("messages")
        for message in messages if isinstance(messages, list) else ():
            content = message.get("content")
            if message.get("role") == "user":
                turns.extend(_user_turns(content))
                continue
            text, images = _text(content)
            blocks = content if isinstance(content, list) else []
            calls = tuple(
                (block["id"], block["name"], block.get("input"))
                for block in blocks
                if isinstance(block, dict) and block.get("type") == "tool_use"
            )
            turns.append(Turn(role="assistant", text=text, images=images, calls=calls))
        output = payload.get("output_config")
        fmt = output.get("format") if isinstance(output, dict) else None
        response_format = (
            "json_schema"
            if isinstance(fmt, dict) and fmt.get("type") == "json_schema"
            else "json_object"
            if json_object
            else None
        )
        stop = payload.get("stop_sequences")
        return Received(
            model=payload.get("model"),
            system=system,
            turns=tuple(turns),
            stream=payload.get("stream") is True,
            max_tokens=payload.get("max_tokens"),
            stop=tuple(stop or ()),
            tools=tuple(
                str(tool.get("name", tool.get("type"))) for tool in payload.get("tools") or ()
            ),
            tool_choice=_choice(payload.get("tool_choice")),
            response_format=response_format,
            temperature=payload.get("temperature"),
        )


class AnthropicEmulator(Emulator):
    """An :class:`~llmkit_contracts.emulator.Emulator` that speaks :class:`AnthropicProtocol`."""

    def __init__(self, *, default: Reply | None = None, strict: bool = True) -> None:
        super().__init__(AnthropicProtocol(), default=default, strict=strict)
