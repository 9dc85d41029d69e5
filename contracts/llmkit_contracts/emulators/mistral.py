"""Mistral's chat completions (``POST /v1/chat/completions``), as the emulator speaks it.

The answers are OpenAI-shaped with Mistral's differences, as recorded
traffic shows them: tool calls carry nine-character ids and an ``index``
(no ``type``); a model that reasons answers with a content list of a
``thinking`` chunk (``{"type": "thinking", "thinking": [{"type": "text",
"text": ...}]}``) and a ``text`` chunk, and streams each thinking piece as
such a list; a stream always carries usage, on the chunk with the finish
reason, then ``data: [DONE]``; a streamed answer's tool calls arrive whole,
in one chunk. An error in the middle of a stream is sent as a ``data:``
event holding Mistral's error object (the API reference documents none; the
codec must raise on it whatever its shape).

Requests are checked as the real API checks them, with its answers:

* a Bearer key is required (401 ``{"message": "Unauthorized", ...}``);
* every field the request types do not know is refused with a 422 whose
  message holds pydantic's ``extra_forbidden`` errors (``stream_options``,
  ``user``, ``seed``, ``max_completion_tokens``, a ``name`` on a user
  message, ``required`` beside a function's ``parameters``...), as are
  missing required fields (a function's ``parameters``), values of the
  wrong type and out-of-range numbers;
* a tool-call id (on an assistant's call or a tool message) that is not nine
  ASCII letters or digits gets a 400 ``invalid_function_call`` (code 3280);
* every call must be answered by a tool message before the next turn, and
  the last message must be a user or tool message (or an assistant's with
  ``prefix: true``): a 400 ``invalid_request_message_order`` otherwise.

Errors use ``{"object": "error", "message", "type", "param", "code"}``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any, ClassVar, Final

from llmkit_contracts.emulator import (
    Emulator,
    Received,
    Reply,
    json_encode,
    split_text,
)
from llmkit_contracts.emulators.openai import OpenAIProtocol

__all__ = ["MistralEmulator", "MistralProtocol"]

_PATH: Final = "/v1/chat/completions"
# Every field of Mistral's chat-completion request; anything else is a 422.
_ARGUMENTS: Final = frozenset(
    {
        "model",
        "messages",
        "temperature",
        "top_p",
        "max_tokens",
        "stream",
        "stop",
        "random_seed",
        "metadata",
        "response_format",
        "tools",
        "tool_choice",
        "presence_penalty",
        "frequency_penalty",
        "min_tokens",
        "repetition_penalty",
        "top_k",
        "logprobs",
        "top_logprobs",
        "prompt_logprobs",
        "top_prompt_logprobs",
        "n",
        "prediction",
        "parallel_tool_calls",
        "reasoning_effort",
        "prompt_mode",
        "guardrails",
        "prompt_cache_key",
        "service_tier",
        "safe_prompt",
    }
)
_MESSAGE_FIELDS: Final[Mapping[str, frozenset[str]]] = {
    "system": frozenset({"role", "content"}),
    "user": frozenset({"role", "content"}),
    "assistant": frozenset({"role", "content", "tool_calls", "prefix"}),
    "tool": frozenset({"role", "content", "tool_call_id", "name"}),
}
# Content chunk type -> (its fields, its required field).
_PARTS: Final[Mapping[str, tuple[frozenset[str], str]]] = {
    "text": (frozenset({"type", "text"}), "text"),
    "image_url": (frozenset({"type", "image_url"}), "image_url"),
    "document_url": (frozenset({"type", "document_url", "document_name"}), "document_url"),
    "reference": (frozenset({"type", "reference_ids"}), "reference_ids"),
    "file": (frozenset({"type", "file_id"}), "file_id"),
    "thinking": (frozenset({"type", "thinking", "signature", "closed"}), "thinking"),
    "input_audio": (frozenset({"type", "input_audio"}), "input_audio"),
}
_SYSTEM_PARTS: Final = frozenset({"text", "thinking"})
_CALL_FIELDS: Final = frozenset({"id", "type", "function", "index"})
_TOOL_FIELDS: Final = frozenset({"type", "function"})
_FUNCTION_FIELDS: Final = frozenset({"name", "description", "parameters", "strict"})
_FORMAT_FIELDS: Final = frozenset({"type", "json_schema"})
_SCHEMA_FIELDS: Final = frozenset({"name", "schema", "description", "strict"})
_TOOL_CHOICES: Final = ("auto", "none", "any", "required")
_EFFORTS: Final = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
_ALPHABET: Final = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ERROR_TYPES: Final[Mapping[int, tuple[str, str | None]]] = {
    400: ("invalid_request_error", None),
    401: ("unauthorized", None),
    403: ("forbidden", None),
    404: ("not_found", None),
    422: ("invalid_request_error", None),
    429: ("rate_limited", "1300"),
}


def _valid_id(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 9 and value.isascii() and value.isalnum()


def _call_id(seq: int, index: int) -> str:
    """Nine letters and digits, as Mistral's ids are: ``emu`` and six base-62 digits."""
    number = seq * 64 + index
    digits = []
    for _ in range(6):
        number, rest = divmod(number, 62)
        digits.append(_ALPHABET[rest])
    return "emu" + "".join(reversed(digits))


def _envelope(message: Any, kind: str, code: str | None) -> bytes:
    return json_encode(
        {"object": "error", "message": message, "type": kind, "param": None, "code": code}
    )


def _refuse(message: str, kind: str = "invalid_request_error", code: str | None = None) -> Reply:
    return Reply.error(400, body=_envelope(message, kind, code), message=message)


class _Problems:
    """Pydantic-style validation errors, gathered as the API reports them all at once."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, kind: str, loc: list[Any], msg: str, value: Any = None) -> None:
        self.items.append({"type": kind, "loc": ["body", *loc], "msg": msg, "input": value})

    def extra(self, loc: list[Any], value: Any) -> None:
        self.add("extra_forbidden", loc, "Extra inputs are not permitted", value)

    def missing(self, loc: list[Any], value: Any) -> None:
        self.add("missing", loc, "Field required", value)

    def fields(self, value: dict[str, Any], allowed: frozenset[str], loc: list[Any]) -> None:
        for name in value:
            if name not in allowed:
                self.extra([*loc, name], value[name])

    def reply(self) -> Reply | None:
        if not self.items:
            return None
        body = _envelope({"detail": self.items}, "invalid_request_error", None)
        return Reply.error(422, body=body, message=self.items[0]["msg"])


def _number(
    problems: _Problems, payload: dict[str, Any], name: str, low: float, high: float
) -> None:
    value = payload.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        problems.add("float_type", [name], "Input should be a valid number", value)
    elif value < low:
        problems.add(
            "greater_than_equal", [name], f"Input should be greater than or equal to {low}", value
        )
    elif value > high:
        problems.add(
            "less_than_equal", [name], f"Input should be less than or equal to {high}", value
        )


def _integer(problems: _Problems, payload: dict[str, Any], name: str, low: int) -> None:
    value = payload.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        problems.add("int_type", [name], "Input should be a valid integer", value)
    elif value < low:
        problems.add(
            "greater_than_equal", [name], f"Input should be greater than or equal to {low}", value
        )


def _check_parts(problems: _Problems, content: list[Any], role: str, loc: list[Any]) -> None:
    for j, part in enumerate(content):
        at = [*loc, "content", j]
        kind = part.get("type") if isinstance(part, dict) else None
        if (
            not isinstance(kind, str)
            or kind not in _PARTS
            or (role == "system" and kind not in _SYSTEM_PARTS)
        ):
            problems.add(
                "union_tag_invalid",
                at,
                f"Input tag '{kind}' found using 'type' does not match any of the expected tags",
                part,
            )
            continue
        fields, required = _PARTS[kind]
        problems.fields(part, fields, [*at, kind])
        if required not in part:
            problems.missing([*at, kind, required], part)
        elif kind == "thinking":
            inner = part["thinking"]
            if not isinstance(inner, list) or not all(
                isinstance(item, dict)
                and item.get("type") in ("text", "reference")
                and (item.get("type") != "text" or isinstance(item.get("text"), str))
                for item in inner
            ):
                problems.add(
                    "list_type",
                    [*at, kind, "thinking"],
                    "Input should be a valid list of chunks",
                    inner,
                )
        elif kind == "text" and not isinstance(part["text"], str):
            problems.add(
                "string_type", [*at, kind, "text"], "Input should be a valid string", part["text"]
            )


def _check_message(problems: _Problems, i: int, message: Any) -> None:
    if not isinstance(message, dict):
        problems.add(
            "model_attributes_type", ["messages", i], "Input should be a valid dictionary", message
        )
        return
    role = message.get("role")
    if not isinstance(role, str) or role not in _MESSAGE_FIELDS:
        problems.add(
            "union_tag_invalid",
            ["messages", i],
            f"Input tag '{role}' found using 'role' does not match any of the expected tags: "
            "'system', 'user', 'assistant', 'tool'",
            message,
        )
        return
    loc: list[Any] = ["messages", i, role]
    problems.fields(message, _MESSAGE_FIELDS[role], loc)
    content = message.get("content")
    if "content" not in message and role != "assistant":
        problems.missing([*loc, "content"], message)
    elif isinstance(content, list):
        _check_parts(problems, content, role, loc)
    elif content is not None and not isinstance(content, str):
        problems.add("string_type", [*loc, "content"], "Input should be a valid string", content)
    calls = message.get("tool_calls")
    if role == "assistant" and calls is not None:
        if not isinstance(calls, list):
            problems.add("list_type", [*loc, "tool_calls"], "Input should be a valid list", calls)
            return
        for j, call in enumerate(calls):
            at = [*loc, "tool_calls", j]
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict):
                problems.missing([*at, "function"], call)
                continue
            problems.fields(call, _CALL_FIELDS, at)
            problems.fields(function, frozenset({"name", "arguments"}), [*at, "function"])
            if not isinstance(function.get("name"), str):
                problems.missing([*at, "function", "name"], function)
            if not isinstance(function.get("arguments"), (str, dict)):
                problems.missing([*at, "function", "arguments"], function)


def _check_tools(problems: _Problems, payload: dict[str, Any]) -> None:
    tools = payload.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            problems.add("list_type", ["tools"], "Input should be a valid list", tools)
            tools = []
        for i, tool in enumerate(tools):
            function = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(function, dict) or tool.get("type", "function") != "function":
                problems.add("model_type", ["tools", i], "Input should be a function tool", tool)
                continue
            problems.fields(tool, _TOOL_FIELDS, ["tools", i])
            problems.fields(function, _FUNCTION_FIELDS, ["tools", i, "function"])
            if not isinstance(function.get("name"), str):
                problems.missing(["tools", i, "function", "name"], function)
            if not isinstance(function.get("parameters"), dict):
                problems.missing(["tools", i, "function", "parameters"], function)
    choice = payload.get("tool_choice")
    if isinstance(choice, dict):
        function = choice.get("function")
        problems.fields(choice, frozenset({"type", "function"}), ["tool_choice"])
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            problems.missing(["tool_choice", "function", "name"], choice)
    elif choice is not None and choice not in _TOOL_CHOICES:
        problems.add(
            "enum", ["tool_choice"], "Input should be 'auto', 'none', 'any' or 'required'", choice
        )


def _check_format(problems: _Problems, payload: dict[str, Any]) -> None:
    fmt = payload.get("response_format")
    if fmt is None:
        return
    if not isinstance(fmt, dict):
        problems.add("model_type", ["response_format"], "Input should be a valid dictionary", fmt)
        return
    problems.fields(fmt, _FORMAT_FIELDS, ["response_format"])
    if fmt.get("type") not in (None, "text", "json_object", "json_schema"):
        problems.add(
            "enum",
            ["response_format", "type"],
            "Input should be 'text', 'json_object' or 'json_schema'",
            fmt.get("type"),
        )
    schema = fmt.get("json_schema")
    if fmt.get("type") == "json_schema" and not isinstance(schema, dict):
        problems.missing(["response_format", "json_schema"], fmt)
    elif isinstance(schema, dict):
        problems.fields(schema, _SCHEMA_FIELDS, ["response_format", "json_schema"])
        for name in ("name", "schema"):
            if name not in schema:
                problems.missing(["response_format", "json_schema", name], schema)


def _check_scalars(problems: _Problems, payload: dict[str, Any]) -> None:
    _number(problems, payload, "temperature", 0.0, 2.0)
    _number(problems, payload, "top_p", 0.0, 1.0)
    _integer(problems, payload, "max_tokens", 0)
    _integer(problems, payload, "n", 1)
    _integer(problems, payload, "random_seed", 0)
    for name in ("stream", "safe_prompt", "parallel_tool_calls"):
        value = payload.get(name)
        if value is not None and not isinstance(value, bool):
            problems.add("bool_type", [name], "Input should be a valid boolean", value)
    stop = payload.get("stop")
    if stop is not None and not (
        isinstance(stop, str) or (isinstance(stop, list) and all(isinstance(s, str) for s in stop))
    ):
        problems.add("string_type", ["stop"], "Input should be a valid string or list", stop)
    effort = payload.get("reasoning_effort")
    if effort is not None and effort not in _EFFORTS:
        problems.add(
            "enum", ["reasoning_effort"], f"Input should be one of {', '.join(_EFFORTS)}", effort
        )
    mode = payload.get("prompt_mode")
    if mode is not None and mode != "reasoning":
        problems.add("enum", ["prompt_mode"], "Input should be 'reasoning'", mode)


def _check_history(messages: list[dict[str, Any]]) -> Reply | None:
    """The rules the API checks once the request has its shape: ids, pairing, last role."""
    open_calls: list[str] = []
    for message in messages:
        role = message["role"]
        ids = [call.get("id") for call in message.get("tool_calls") or ()]
        if role == "tool":
            ids = [message.get("tool_call_id")]
        for value in ids:
            if not _valid_id(value):
                return _refuse(
                    f"Tool call id was {value} but must be a-z, A-Z, 0-9, with a length of 9.",
                    "invalid_function_call",
                    "3280",
                )
        if role == "tool":
            if message.get("tool_call_id") not in open_calls:
                return _refuse(
                    f"Unexpected tool call id {message.get('tool_call_id')} in tool results",
                    "invalid_request_message_order",
                    "3230",
                )
            open_calls.remove(message["tool_call_id"])
            continue
        if open_calls:
            return _refuse(
                "Not the same number of function calls and responses",
                "invalid_request_message_order",
                "3230",
            )
        if role == "assistant":
            if not message.get("content") and not message.get("tool_calls"):
                return _refuse(
                    "Assistant message must have either content or tool_calls, but not none.",
                    "invalid_request_message_order",
                    "3230",
                )
            open_calls = list(ids)
    last = messages[-1]
    if open_calls or not (
        last["role"] in ("user", "tool") or (last["role"] == "assistant" and last.get("prefix"))
    ):
        return _refuse(
            f"Expected last role User or Tool (or Assistant with prefix True) for serving but got "
            f"{last['role']}",
            "invalid_request_message_order",
            "3230",
        )
    return None


class MistralProtocol(OpenAIProtocol):
    """Mistral chat completions: ``/v1/chat/completions``, Mistral's checks and answers.

    What is read back (:meth:`received`) is OpenAI's reading, with
    ``tool_choice: "any"`` read as ``"required"`` (the same thing).
    """

    name: ClassVar[str] = "mistral"
    base_path: ClassVar[str] = "/v1"
    chat_path: ClassVar[str] = _PATH
    arguments: ClassVar[frozenset[str]] = _ARGUMENTS
    max_tokens_refused = None

    def route(self, method: str, path: str) -> Reply | None:
        """Serve ``POST`` on the chat path only; FastAPI's answers otherwise."""
        if path != self.chat_path:
            return Reply.error(404, body=json_encode({"detail": "Not Found"}), message="Not Found")
        if method != "POST":
            return Reply.error(
                405,
                body=json_encode({"detail": "Method Not Allowed"}),
                message="Method Not Allowed",
                headers={"allow": "POST"},
            )
        return None

    def auth_refusal(self, path: str, headers: Mapping[str, str]) -> Reply | None:
        """A Bearer key is required; without one, Mistral's bare 401 body."""
        token = headers.get("authorization", "")
        if not token.startswith("Bearer ") or not token[7:].strip():
            body = json_encode({"message": "Unauthorized", "request_id": "emu0000000000000"})
            return Reply.error(401, body=body, message="Unauthorized")
        return None

    def check(self, path: str, headers: Mapping[str, str], payload: Any) -> Reply | None:
        """Refuse what Mistral refuses: 422 for the request's shape, 400 for its history."""
        refusal = self.auth_refusal(path, headers)
        if refusal is not None:
            return refusal
        problems = _Problems()
        problems.fields(payload, self.arguments, [])
        if not isinstance(payload.get("model"), str):
            problems.missing(["model"], payload)
        messages = payload.get("messages")
        if not isinstance(messages, list) or not messages:
            problems.add(
                "too_short",
                ["messages"],
                "List should have at least 1 item after validation",
                messages,
            )
            messages = []
        for i, message in enumerate(messages):
            _check_message(problems, i, message)
        _check_tools(problems, payload)
        _check_format(problems, payload)
        _check_scalars(problems, payload)
        return problems.reply() or _check_history(messages)

    # --- answers --------------------------------------------------------------------------

    def _content(self, reply: Reply, text: str | None) -> Any:
        if reply.reasoning is None:
            return text or ""
        thinking = {"type": "thinking", "thinking": [{"type": "text", "text": reply.reasoning}]}
        return [thinking, {"type": "text", "text": text}] if text else [thinking]

    def body(self, reply: Reply, payload: Any, *, seq: int, model: str) -> bytes:
        """A ``chat.completion``: thinking chunks in the content when the reply reasons."""
        calls = [
            {
                "id": _call_id(seq, index),
                "function": {"name": name, "arguments": arguments},
                "index": index,
            }
            for index, (name, arguments) in enumerate(reply.calls)
        ]
        message = {
            "role": "assistant",
            "content": self._content(reply, reply.content),
            "tool_calls": calls or None,
        }
        return json_encode(
            {
                "id": f"{seq:032x}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": reply.finish_reason}],
                "usage": _usage(reply),
            }
        )

    def events(self, reply: Reply, payload: Any, *, seq: int, model: str) -> list[bytes]:
        """Role, thinking pieces, text pieces, the calls whole, finish with usage, ``[DONE]``."""
        head = {
            "id": f"{seq:032x}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            return b"data: " + json_encode({**head, "choices": [choice], **extra}) + b"\n\n"

        size = reply.chunk_size
        events = [chunk({"role": "assistant", "content": ""})]
        for piece in split_text(reply.reasoning or "", size):
            thinking = {"type": "thinking", "thinking": [{"type": "text", "text": piece}]}
            events.append(chunk({"content": [thinking]}))
        events.extend(chunk({"content": piece}) for piece in split_text(reply.content or "", size))
        if reply.calls:
            calls = [
                {
                    "id": _call_id(seq, index),
                    "function": {"name": name, "arguments": arguments},
                    "index": index,
                }
                for index, (name, arguments) in enumerate(reply.calls)
            ]
            events.append(chunk({"tool_calls": calls}))
        events.append(chunk({"content": ""}, reply.finish_reason, usage=_usage(reply)))
        events.append(b"data: [DONE]\n\n")
        return events

    def error_body(self, reply: Reply) -> bytes:
        """Mistral's error object; a 401 its bare ``message`` body."""
        if reply.status == 401:
            return json_encode({"message": reply.message, "request_id": "emu0000000000000"})
        kind, code = _ERROR_TYPES.get(
            reply.status,
            ("internal_server_error" if reply.status >= 500 else "invalid_request_error", None),
        )
        return _envelope(reply.message, reply.error_type or kind, reply.code or code)

    def error_event(self, reply: Reply) -> bytes:
        """Mistral's error object as a ``data:`` event."""
        kind = reply.error_type or "internal_server_error"
        return b"data: " + _envelope(reply.message, kind, reply.code) + b"\n\n"

    def received(self, path: str, payload: Any) -> Received:
        """OpenAI's reading, with object arguments and ``tool_choice: "any"`` understood."""
        if isinstance(payload, dict) and isinstance(payload.get("messages"), list):
            payload = {**payload, "messages": [_string_arguments(m) for m in payload["messages"]]}
        received = super().received(path, payload)
        if received.tool_choice == "any":
            return dataclasses.replace(received, tool_choice="required")
        return received


def _string_arguments(message: Any) -> Any:
    calls = message.get("tool_calls") if isinstance(message, dict) else None
    if not calls or all(isinstance(c.get("function", {}).get("arguments"), str) for c in calls):
        return message
    fixed = []
    for call in calls:
        function = dict(call["function"])
        if not isinstance(function.get("arguments"), str):
            function["arguments"] = json_encode(function.get("arguments")).decode()
        fixed.append({**call, "function": function})
    return {**message, "tool_calls": fixed}


def _usage(reply: Reply) -> dict[str, Any]:
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


class MistralEmulator(Emulator):
    """An :class:`~llmkit_contracts.emulator.Emulator` that speaks :class:`MistralProtocol`."""

    def __init__(self, *, default: Reply | None = None, strict: bool = True) -> None:
        super().__init__(MistralProtocol(), default=default, strict=strict)
