"""OpenAI's chat-completions API, as the emulator speaks it.

``POST /v1/chat/completions`` answers with a ``chat.completion`` object or,
for ``"stream": true``, ``chat.completion.chunk`` server-sent events with
an optional usage chunk and ``data: [DONE]``. Errors use OpenAI's
``{"error": {"message", "type", "param", "code"}}`` envelope.

Requests are checked as the real API checks them, with its messages:
an API key is required; unknown top-level arguments and unknown message
fields are refused; a ``tool`` message must answer a preceding assistant
call and every call must be answered; ``stream_options`` needs ``stream``;
``tool_choice`` needs ``tools``; reasoning models (o1, o3, o4, gpt-5)
refuse ``max_tokens``. Reasoning text is sent in the message's
``reasoning`` field, as OpenRouter and vLLM do.
"""

from __future__ import annotations

import re
import time
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

__all__ = ["OpenAIEmulator", "OpenAIProtocol"]

_PATH: Final = "/v1/chat/completions"

_DEFAULT_ERROR_TYPES: Final[Mapping[int, str]] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}

# Every argument the chat-completions endpoint accepts; anything else is refused.
_ARGUMENTS: Final = frozenset(
    {
        "audio",
        "frequency_penalty",
        "function_call",
        "functions",
        "logit_bias",
        "logprobs",
        "max_completion_tokens",
        "max_tokens",
        "messages",
        "metadata",
        "modalities",
        "model",
        "moderation",
        "n",
        "parallel_tool_calls",
        "prediction",
        "presence_penalty",
        "prompt_cache_key",
        "reasoning_effort",
        "response_format",
        "safety_identifier",
        "seed",
        "service_tier",
        "stop",
        "store",
        "stream",
        "stream_options",
        "temperature",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "user",
        "verbosity",
        "web_search_options",
    }
)
_MESSAGE_FIELDS: Final = frozenset(
    {"role", "content", "name", "tool_calls", "tool_call_id", "refusal", "audio", "function_call"}
)
_ROLES: Final = ("system", "developer", "user", "assistant", "tool", "function")
_PART_TYPES: Final = frozenset({"text", "image_url", "input_audio", "file", "refusal"})
_REASONING_MODEL: Final = re.compile(r"^(o1|o3|o4|gpt-5)")
_TOOL_NAME: Final = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def _refuse(message: str, param: str | None = None, code: str | None = None) -> Reply:
    return Reply.error(400, message=message, type="invalid_request_error", param=param, code=code)


def _text_of(content: Any) -> tuple[str, int]:
    """The text of a message's content and its number of image parts."""
    if isinstance(content, str):
        return content, 0
    if not isinstance(content, list):
        return "", 0
    texts = [p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
    images = sum(1 for p in content if isinstance(p, dict) and p.get("type") == "image_url")
    return "".join(texts), images


def _check_message(
    i: int,
    message: Any,
    fields: frozenset[str] = _MESSAGE_FIELDS,
    part_types: frozenset[str] = _PART_TYPES,
) -> Reply | None:
    where = f"messages[{i}]"
    if not isinstance(message, dict):
        return _refuse(f"Invalid type for '{where}': expected an object.", where, "invalid_type")
    role = message.get("role")
    if role not in _ROLES:
        return _refuse(
            f"Invalid value: {role!r}. Supported values are: 'system', 'assistant', 'user', "
            "'function', 'tool', and 'developer'.",
            f"{where}.role",
            "invalid_value",
        )
    for name in message:
        if name not in fields:
            return _refuse(
                f"Additional properties are not allowed ({name!r} was unexpected) - 'messages.{i}'",
                where,
            )
    content = message.get("content")
    if content is None and not (role == "assistant" and message.get("tool_calls")):
        return _refuse(f"Missing required parameter: '{where}.content'.", f"{where}.content")
    if content is not None and not isinstance(content, (str, list)):
        return _refuse(f"Invalid type for '{where}.content'.", f"{where}.content", "invalid_type")
    if isinstance(content, list):
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") not in part_types:
                return _refuse(
                    f"Invalid value: '{where}.content[{j}].type'.",
                    f"{where}.content[{j}].type",
                    "invalid_value",
                )
            if role != "user" and part.get("type") not in ("text", "refusal"):
                return _refuse(
                    f"Invalid '{where}'. Content blocks are expected to be either text or "
                    "image_url type.",
                    where,
                    "invalid_value",
                )
    if role == "tool" and not isinstance(message.get("tool_call_id"), str):
        return _refuse(
            f"Missing parameter 'tool_call_id': messages with role 'tool' must have a "
            f"'tool_call_id'. ({where})",
            f"{where}.tool_call_id",
        )
    calls = message.get("tool_calls")
    if calls is not None:
        if role != "assistant" or not isinstance(calls, list) or not calls:
            return _refuse(f"Invalid value for '{where}.tool_calls'.", f"{where}.tool_calls")
        for j, call in enumerate(calls):
            function = call.get("function") if isinstance(call, dict) else None
            if (
                not isinstance(call, dict)
                or not isinstance(call.get("id"), str)
                or call.get("type") != "function"
                or not isinstance(function, dict)
                or not isinstance(function.get("name"), str)
                or not isinstance(function.get("arguments"), str)
            ):
                return _refuse(
                    f"Invalid value for '{where}.tool_calls[{j}]': a tool call needs an id, "
                    "type 'function' and a function with a name and string arguments.",
                    f"{where}.tool_calls[{j}]",
                )
    return None


def _check_pairing(messages: list[Any]) -> Reply | None:
    """Every tool message answers an open call; every call is answered."""
    open_calls: list[str] = []
    for message in messages:
        role = message.get("role")
        if role == "tool":
            if message.get("tool_call_id") not in open_calls:
                return _refuse(
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    "messages",
                )
            open_calls.remove(message["tool_call_id"])
            continue
        if open_calls:
            return _refuse(
                "An assistant message with 'tool_calls' must be followed by tool messages "
                "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                f"response messages: {', '.join(open_calls)}",
                "messages",
            )
        if role == "assistant" and message.get("tool_calls"):
            open_calls = [call["id"] for call in message["tool_calls"]]
    if open_calls:
        return _refuse(
            "An assistant message with 'tool_calls' must be followed by tool messages "
            "responding to each 'tool_call_id'. The following tool_call_ids did not have "
            f"response messages: {', '.join(open_calls)}",
            "messages",
        )
    return None


def _check_tools(payload: dict[str, Any], server_tools: tuple[str, ...] = ()) -> Reply | None:
    tools = payload.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            return _refuse("Invalid type for 'tools': expected an array.", "tools", "invalid_type")
        if server_tools:
            # Tools the provider runs itself have no function to check.
            tools = [
                tool
                for tool in tools
                if not (isinstance(tool, dict) and str(tool.get("type")).startswith(server_tools))
            ]
        for i, tool in enumerate(tools):
            function = tool.get("function") if isinstance(tool, dict) else None
            if (
                not isinstance(tool, dict)
                or tool.get("type") != "function"
                or not isinstance(function, dict)
            ):
                return _refuse(f"Invalid value for 'tools[{i}]'.", f"tools[{i}]")
            name = function.get("name")
            if not isinstance(name, str) or not _TOOL_NAME.match(name):
                return _refuse(
                    f"Invalid 'tools[{i}].function.name': string does not match pattern. "
                    "Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
                    f"tools[{i}].function.name",
                    "invalid_value",
                )
            parameters = function.get("parameters")
            if parameters is not None and not isinstance(parameters, dict):
                return _refuse(
                    f"Invalid type for 'tools[{i}].function.parameters': expected an object.",
                    f"tools[{i}].function.parameters",
                    "invalid_type",
                )
    choice = payload.get("tool_choice")
    if choice is not None and not tools:
        return _refuse(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are "
            "specified.",
            "tool_choice",
        )
    if isinstance(choice, dict):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if choice.get("type") != "function" or not isinstance(name, str):
            return _refuse("Invalid value for 'tool_choice'.", "tool_choice")
        if tools and name not in {t["function"]["name"] for t in tools}:
            return _refuse(
                f"Invalid value for 'tool_choice': no function named {name!r} was specified in "
                "the 'tools' parameter.",
                "tool_choice",
            )
    elif choice is not None and choice not in ("none", "auto", "required"):
        return _refuse(
            f"Invalid value: {choice!r}. Supported values are: 'none', 'auto', and 'required'.",
            "tool_choice",
            "invalid_value",
        )
    return None


def _check_numbers(payload: dict[str, Any]) -> Reply | None:
    bounds = {"temperature": (0, 2), "top_p": (0, 1)}
    for name, (low, high) in bounds.items():
        value = payload.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return _refuse(f"Invalid type for '{name}': expected a number.", name, "invalid_type")
        if not low <= value <= high:
            return _refuse(
                f"Invalid '{name}': decimal out of range. Expected a value between {low} and "
                f"{high}, but got {value} instead.",
                name,
                "decimal_out_of_range",
            )
    for name in ("max_tokens", "max_completion_tokens", "n"):
        value = payload.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            return _refuse(
                f"Invalid '{name}': integer below minimum value. Expected a value >= 1, but got "
                f"{value!r} instead.",
                name,
                "integer_below_min_value",
            )
    return None


def _check_format(payload: dict[str, Any]) -> Reply | None:
    fmt = payload.get("response_format")
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind not in ("text", "json_object", "json_schema"):
        return _refuse(
            "Invalid value for 'response_format.type'. Supported values are: 'text', "
            "'json_object', and 'json_schema'.",
            "response_format.type",
            "invalid_value",
        )
    if kind == "json_schema":
        schema = fmt.get("json_schema")
        if not isinstance(schema, dict) or not isinstance(schema.get("name"), str):
            return _refuse(
                "Missing required parameter: 'response_format.json_schema.name'.",
                "response_format.json_schema.name",
                "missing_required_parameter",
            )
    return None


class OpenAIProtocol(WireProtocol):
    """OpenAI chat completions: ``/v1/chat/completions``, SSE chunks, ``[DONE]``.

    What an OpenAI-compatible API does otherwise is class data (and a few
    hooks) that a subclass overrides, as the compatible family's flavours
    in :mod:`llmkit_contracts.emulators.compatible` do.

    Class attributes:
        chat_path: the one path served.
        arguments: the top-level request fields accepted.
        message_fields: the message fields accepted.
        part_types: the content-part types accepted.
        reasoning_field: the message and delta field reasoning text is written in.
        max_tokens_refused: the models that refuse ``max_tokens``, or ``None``.
        server_tools: prefixes of the tool types the provider runs itself
            (they carry no function); OpenAI's own take none here.
    """

    name: ClassVar[str] = "openai"
    base_path: ClassVar[str] = "/v1"
    chat_path: ClassVar[str] = _PATH
    arguments: ClassVar[frozenset[str]] = _ARGUMENTS
    message_fields: ClassVar[frozenset[str]] = _MESSAGE_FIELDS
    part_types: ClassVar[frozenset[str]] = _PART_TYPES
    reasoning_field: ClassVar[str] = "reasoning"
    max_tokens_refused: ClassVar[re.Pattern[str] | None] = _REASONING_MODEL
    server_tools: ClassVar[tuple[str, ...]] = ()

    def route(self, method: str, path: str) -> Reply | None:
        """Serve ``POST`` on :attr:`chat_path` only (404, else 405)."""
        if path != self.chat_path:
            return Reply.error(
                404,
                message=f"Unknown request URL: {method} {path}.",
                type="invalid_request_error",
                code="unknown_url",
            )
        if method != "POST":
            return Reply.error(
                405,
                message=f"Method {method} not allowed on {path}.",
                type="invalid_request_error",
                headers={"allow": "POST"},
            )
        return None

    def auth_refusal(self, path: str, headers: Mapping[str, str]) -> Reply | None:
        """The error a request without a valid key gets: a Bearer token is required."""
        token = headers.get("authorization", "")
        if not token.startswith("Bearer ") or not token[7:].strip():
            return Reply.error(
                401,
                message="You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                type="invalid_request_error",
            )
        return None

    def check(self, path: str, headers: Mapping[str, str], payload: Any) -> Reply | None:
        """Refuse what OpenAI refuses, with its status and message."""
        refusal = self.auth_refusal(path, headers)
        if refusal is not None:
            return refusal
        for name in payload:
            if name not in self.arguments:
                return _refuse(f"Unrecognized request argument supplied: {name}")
        model = payload.get("model")
        if not isinstance(model, str) or not model:
            return _refuse("you must provide a model parameter", "model")
        messages = payload.get("messages")
        if not isinstance(messages, list) or not messages:
            return _refuse(
                "Invalid 'messages': empty array. Expected an array with minimum length 1, but "
                "got an empty array instead.",
                "messages",
                "empty_array",
            )
        for i, message in enumerate(messages):
            refusal = _check_message(i, message, self.message_fields, self.part_types)
            if refusal is not None:
                return refusal
        for check in (_check_pairing(messages), _check_tools(payload, self.server_tools)):
            if check is not None:
                return check
        refusal = _check_numbers(payload) or _check_format(payload)
        if refusal is not None:
            return refusal
        if payload.get("stream_options") is not None and payload.get("stream") is not True:
            return _refuse(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                "stream_options",
            )
        refused = self.max_tokens_refused
        if "max_tokens" in payload and refused is not None and refused.match(model):
            return _refuse(
                "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
                "'max_completion_tokens' instead.",
                "max_tokens",
                "unsupported_parameter",
            )
        return None

    def wants_stream(self, path: str, payload: Any) -> bool:
        """``"stream": true`` in the body."""
        return isinstance(payload, dict) and payload.get("stream") is True

    def model(self, path: str, payload: Any) -> str:
        """The body's ``model``."""
        model = payload.get("model") if isinstance(payload, dict) else None
        return model if isinstance(model, str) else "emulator"

    def body(self, reply: Reply, payload: Any, *, seq: int, model: str) -> bytes:
        """A ``chat.completion`` object."""
        message: dict[str, Any] = {"role": "assistant", "content": reply.content}
        if reply.reasoning is not None:
            message.update(self.reasoning_delta(reply.reasoning))
        if reply.calls:
            message["tool_calls"] = [
                {
                    "id": f"call_{index}",
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }
                for index, (name, arguments) in enumerate(reply.calls)
            ]
        choice = {"index": 0, "message": message, "finish_reason": reply.finish_reason}
        return json_encode(
            {
                "id": f"chatcmpl-emu-{seq}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [{**choice, **self.choice_extras(reply, finish=True)}],
                "usage": _usage(reply),
                **self.body_extras(reply),
            }
        )

    def events(self, reply: Reply, payload: Any, *, seq: int, model: str) -> list[bytes]:
        """Role chunk, reasoning, content, tool-call deltas, finish, usage if asked, ``[DONE]``."""
        head = {
            "id": f"chatcmpl-emu-{seq}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }

        def chunk(delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
            if finish_reason is not None:
                choice.update(self.choice_extras(reply, finish=True))
            return b"data: " + json_encode({**head, "choices": [choice], **extra}) + b"\n\n"

        size = reply.chunk_size
        events = [*self.stream_prelude(reply, head), chunk({"role": "assistant", "content": ""})]
        if reply.reasoning is not None:
            events.extend(chunk(self.reasoning_delta(p)) for p in split_text(reply.reasoning, size))
        events.extend(chunk({"content": p}) for p in split_text(reply.content or "", size))
        for index, (name, arguments) in enumerate(reply.calls):
            call = {
                "index": index,
                "id": f"call_{index}",
                "type": "function",
                "function": {"name": name, "arguments": ""},
            }
            events.append(chunk({"tool_calls": [call]}))
            events.extend(
                chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
                for piece in split_text(arguments, size)
            )
        options = payload.get("stream_options")
        asked = isinstance(options, dict) and options.get("include_usage") is True
        events.append(chunk({}, reply.finish_reason, **self.finish_extras(reply, asked)))
        if asked:
            usage = {**head, "choices": [], "usage": _usage(reply)}
            events.append(b"data: " + json_encode(usage) + b"\n\n")
        events.append(b"data: [DONE]\n\n")
        return events

    # --- hooks a flavour overrides (OpenAI's own add nothing) ---------------------------

    def reasoning_delta(self, text: str) -> dict[str, Any]:
        """The message or delta fields that carry reasoning ``text``."""
        return {self.reasoning_field: text}

    def choice_extras(self, reply: Reply, *, finish: bool) -> dict[str, Any]:
        """More fields of a choice (a body's, or a stream's finish chunk's)."""
        return {}

    def body_extras(self, reply: Reply) -> dict[str, Any]:
        """More top-level fields of a non-streamed body."""
        return {}

    def finish_extras(self, reply: Reply, usage_asked: bool) -> dict[str, Any]:
        """More top-level fields of the stream chunk that carries the finish reason."""
        return {}

    def stream_prelude(self, reply: Reply, head: dict[str, Any]) -> list[bytes]:
        """Events sent before the first chunk with a choice."""
        return []

    def error_body(self, reply: Reply) -> bytes:
        """OpenAI's error envelope; the type follows the status unless given."""
        kind = reply.error_type or _DEFAULT_ERROR_TYPES.get(
            reply.status, "server_error" if reply.status >= 500 else "invalid_request_error"
        )
        error = {"message": reply.message, "type": kind, "param": reply.param, "code": reply.code}
        return json_encode({"error": error})

    def error_event(self, reply: Reply) -> bytes:
        """A ``data:`` event holding an error envelope, as OpenAI sends mid-stream."""
        error = {
            "message": reply.message,
            "type": reply.error_type or "server_error",
            "param": None,
            "code": reply.code,
        }
        return b"data: " + json_encode({"error": error}) + b"\n\n"

    def received(self, path: str, payload: Any) -> Received:
        """System and developer messages become :attr:`Received.system`."""
        if not isinstance(payload, dict):
            return Received()
        system: list[str] = []
        turns: list[Turn] = []
        messages = payload.get("messages")
        for message in messages if isinstance(messages, list) else ():
            if not isinstance(message, dict):
                continue
            text, images = _text_of(message.get("content"))
            role = message.get("role")
            if role in ("system", "developer"):
                system.append(text)
                continue
            calls = tuple(
                (call["id"], call["function"]["name"], _arguments(call["function"]["arguments"]))
                for call in message.get("tool_calls") or ()
            )
            turns.append(
                Turn(
                    role=str(role),
                    text=text,
                    images=images,
                    calls=calls,
                    tool_call_id=message.get("tool_call_id"),
                )
            )
        stop = payload.get("stop")
        choice = payload.get("tool_choice")
        if isinstance(choice, dict):
            choice = f"function:{choice['function']['name']}"
        fmt = payload.get("response_format")
        return Received(
            model=payload.get("model"),
            system="\n".join(system) if system else None,
            turns=tuple(turns),
            stream=payload.get("stream") is True,
            max_tokens=payload.get("max_completion_tokens", payload.get("max_tokens")),
            stop=(stop,) if isinstance(stop, str) else tuple(stop or ()),
            tools=tuple(
                tool["function"]["name"]
                for tool in payload.get("tools") or ()
                if isinstance(tool.get("function"), dict)
            ),
            tool_choice=choice,
            response_format=fmt.get("type") if isinstance(fmt, dict) else None,
            temperature=payload.get("temperature"),
        )


def _arguments(text: str) -> Any:
    try:
        return json_decode(text)
    except ValueError:
        return text


def _usage(reply: Reply) -> dict[str, int]:
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
    }


class OpenAIEmulator(Emulator):
    """An :class:`~llmkit_contracts.emulator.Emulator` that speaks :class:`OpenAIProtocol`."""

    def __init__(self, *, default: Reply | None = None, strict: bool = True) -> None:
        super().__init__(OpenAIProtocol(), default=default, strict=strict)
