"""Ollama's native chat API (``POST /api/chat``), as the emulator speaks it.

Built from Ollama's API reference (``docs/api.md``) and its server (the
recorded corpus holds only ``/v1`` traffic). The request streams unless it
says ``"stream": false``; a stream is NDJSON (``application/x-ndjson``),
one ``ChatResponse`` a line: ``thinking`` pieces, then ``content`` pieces,
each tool call whole on a line of its own, and a last line with ``"done":
true``, ``done_reason`` and the counts (``prompt_eval_count``,
``eval_count``, left out when 0, as Go's ``omitempty`` leaves them). A plain
answer is that last line with the whole message. Errors are ``{"error":
"..."}`` with the status; a failure after the stream began is an
``{"error": ...}`` line, and the body ends there.

Requests are checked as the server checks them, in its order and with its
messages: Go's JSON decoding first (400 ``json: cannot unmarshal ...`` for
a field of the wrong type, an image that is not base64, a ``think`` other
than a boolean or ``low``/``medium``/``high``/``max``, a ``keep_alive`` that
is no duration); unknown fields are ignored, as Go ignores them; then 400
``model is required``, 404 ``model 'x' not found`` for a model that is not
pulled, 400 for ``think`` on a model that cannot think and for tools on a
model without tool support, 500 for an option of the wrong type or a
``format`` that is neither ``"json"`` nor a schema object. Which models are
pulled, and what each can do, is the protocol's ``models`` (by default every
model is pulled and can do everything). A request without messages loads
the model (``done_reason`` ``load``).

What a scripted reply becomes: its reasoning is ``thinking`` unless the
request says ``"think": false`` (a thinking model thinks by default); tool
calls get ids ``call_0``, ``call_1``... as servers since 0.12.10 give them,
or none with ``tool_call_ids=False`` (older servers); a call constrained by
``format`` to llmkit's one-call schema (``{"name": ..., "arguments":
...}``, how llmkit forces a tool, which Ollama has no ``tool_choice`` for)
comes as that JSON in ``content``, which is what such a grammar makes a
model write. :meth:`OllamaProtocol.received` reads that schema back as
``tool_choice`` ``required`` (every tool) or ``function:<name>`` (one of
several); with tools offered freely it reads ``auto``, with none ``none``:
the choice the model actually had.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
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

__all__ = ["CAPABILITIES", "OllamaEmulator", "OllamaProtocol"]

_PATH: Final = "/api/chat"
#: What a model may be able to do, as ``ollama show`` lists it (completion is implied).
CAPABILITIES: Final = frozenset({"tools", "thinking", "vision"})
_CREATED: Final = "2025-07-07T20:22:19.184789Z"
_THINK_LEVELS: Final = ("high", "medium", "low", "max")
# Go's time.ParseDuration.
_DURATION: Final = re.compile(r"-?(0|((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+)")
# The options Ollama knows, by the kind its Options struct gives them;
# others are ignored with a warning in the server's log.
_OPTION_KINDS: Final[Mapping[str, str]] = {
    **dict.fromkeys(
        (
            "num_keep",
            "seed",
            "num_predict",
            "top_k",
            "repeat_last_n",
            "num_ctx",
            "num_batch",
            "num_gpu",
            "main_gpu",
            "num_thread",
        ),
        "integer",
    ),
    **dict.fromkeys(
        (
            "top_p",
            "min_p",
            "typical_p",
            "temperature",
            "repeat_penalty",
            "presence_penalty",
            "frequency_penalty",
        ),
        "float32",
    ),
    "use_mmap": "boolean",
    "stop": "array",
}


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _refuse(message: str, status: int = 400) -> Reply:
    return Reply.error(status, message=message)


def _mistyped(value: Any, where: str, go_type: str) -> Reply:
    return _refuse(
        f"json: cannot unmarshal {_json_kind(value)} into Go struct field ChatRequest.{where} "
        f"of type {go_type}"
    )


def _typed(value: Any, kind: type | tuple[type, ...], where: str, go_type: str) -> Reply | None:
    # null decodes as the zero value: Go accepts it for every field.
    if value is None or (isinstance(value, kind) and not isinstance(value, bool)):
        return None
    if kind is bool and isinstance(value, bool):
        return None
    return _mistyped(value, where, go_type)


def _base(name: str) -> str:
    """A model name with its tag: ``llama3.2`` is ``llama3.2:latest``."""
    return name if ":" in name.rsplit("/", 1)[-1] else name + ":latest"


# --- request checks --------------------------------------------------------------------


def _check_image(image: Any, where: str) -> Reply | None:
    if not isinstance(image, str):
        return _mistyped(image, where, "api.ImageData")
    try:
        base64.b64decode(image, validate=True)
    except (binascii.Error, ValueError):
        bad = next((i for i, c in enumerate(image) if not (c.isalnum() or c in "+/=")), 0)
        return _refuse(f"illegal base64 data at input byte {bad}")
    return None


def _check_call(call: Any, where: str) -> Reply | None:
    if not isinstance(call, dict):
        return _mistyped(call, where, "api.ToolCall")
    function = call.get("function")
    if function is not None and not isinstance(function, dict):
        return _mistyped(function, f"{where}.function", "api.ToolCallFunction")
    function = function or {}
    arguments = function.get("arguments")
    return (
        _typed(call.get("id"), str, f"{where}.id", "string")
        or _typed(function.get("name"), str, f"{where}.function.name", "string")
        or _typed(function.get("index"), int, f"{where}.function.index", "int")
        or (
            None
            if arguments is None or isinstance(arguments, dict)
            else _refuse(
                f"json: cannot unmarshal {_json_kind(arguments)} into Go value of type "
                "map[string]interface {}"
            )
        )
    )


def _check_message(message: Any, where: str) -> Reply | None:
    if not isinstance(message, dict):
        return _mistyped(message, where, "api.Message")
    for name in ("role", "content", "thinking", "tool_name", "tool_call_id"):
        refusal = _typed(message.get(name), str, f"{where}.{name}", "string")
        if refusal is not None:
            return refusal
    images = message.get("images")
    if images is not None:
        if not isinstance(images, list):
            return _mistyped(images, f"{where}.images", "[]api.ImageData")
        for image in images:
            refusal = _check_image(image, f"{where}.images")
            if refusal is not None:
                return refusal
    calls = message.get("tool_calls")
    if calls is not None:
        if not isinstance(calls, list):
            return _mistyped(calls, f"{where}.tool_calls", "[]api.ToolCall")
        for call in calls:
            refusal = _check_call(call, f"{where}.tool_calls")
            if refusal is not None:
                return refusal
    return None


def _check_property(schema: Any, where: str) -> Reply | None:
    if schema is None:
        return None
    if not isinstance(schema, dict):
        return _mistyped(schema, where, "api.ToolProperty")
    kind = schema.get("type")
    if kind is not None and not (
        isinstance(kind, str)
        or (isinstance(kind, list) and all(isinstance(item, str) for item in kind))
    ):
        return _refuse(f"json: cannot unmarshal {_json_kind(kind)} into Go value of type []string")
    refusal = _typed(schema.get("description"), str, f"{where}.description", "string") or _typed(
        schema.get("enum"), list, f"{where}.enum", "[]interface {}"
    )
    if refusal is not None:
        return refusal
    options = schema.get("anyOf")
    if options is not None:
        if not isinstance(options, list):
            return _mistyped(options, f"{where}.anyOf", "[]api.ToolProperty")
        for option in options:
            refusal = _check_property(option, f"{where}.anyOf")
            if refusal is not None:
                return refusal
    properties = schema.get("properties")
    if properties is not None:
        if not isinstance(properties, dict):
            return _mistyped(properties, f"{where}.properties", "api.ToolPropertiesMap")
        for value in properties.values():
            refusal = _check_property(value, f"{where}.properties")
            if refusal is not None:
                return refusal
    return None


def _check_tool(tool: Any, where: str) -> Reply | None:
    if not isinstance(tool, dict):
        return _mistyped(tool, where, "api.Tool")
    function = tool.get("function")
    refusal = _typed(tool.get("type"), str, f"{where}.type", "string")
    if refusal is not None or function is None:
        return refusal
    if not isinstance(function, dict):
        return _mistyped(function, f"{where}.function", "api.ToolFunction")
    refusal = _typed(function.get("name"), str, f"{where}.function.name", "string") or _typed(
        function.get("description"), str, f"{where}.function.description", "string"
    )
    if refusal is not None:
        return refusal
    parameters = function.get("parameters")
    if parameters is None:
        return None
    if not isinstance(parameters, dict):
        return _mistyped(parameters, f"{where}.function.parameters", "api.ToolFunctionParameters")
    at = f"{where}.function.parameters"
    required = parameters.get("required")
    if required is not None and not (
        isinstance(required, list) and all(isinstance(item, str) for item in required)
    ):
        return _mistyped(required, f"{at}.required", "[]string")
    properties = parameters.get("properties")
    return _typed(parameters.get("type"), str, f"{at}.type", "string") or _check_property(
        {"properties": properties}, at
    )


def _check_think(think: Any) -> Reply | None:
    if think is None or isinstance(think, bool):
        return None
    if isinstance(think, str):
        if think in _THINK_LEVELS:
            return None
        return _refuse(
            f'invalid think value: "{think}" (must be "high", "medium", "low", "max", true, '
            "or false)"
        )
    return _refuse(
        'think must be a boolean or string ("high", "medium", "low", "max", true, or false)'
    )


def _check_keep_alive(keep: Any) -> Reply | None:
    if keep is None or (isinstance(keep, int | float) and not isinstance(keep, bool)):
        return None
    if isinstance(keep, str):
        return None if _DURATION.fullmatch(keep) else _refuse(f'time: invalid duration "{keep}"')
    kind = {"bool": "bool", "array": "[]interface {}", "object": "map[string]interface {}"}
    return _refuse(f"Unsupported type: '{kind[_json_kind(keep)]}'")


def _check_decoding(payload: dict[str, Any]) -> Reply | None:
    """What Go's JSON decoding of a ``ChatRequest`` refuses (400)."""
    refusal = (
        _typed(payload.get("model"), str, "model", "string")
        or _typed(payload.get("stream"), bool, "stream", "bool")
        or _typed(payload.get("truncate"), bool, "truncate", "bool")
        or _typed(payload.get("shift"), bool, "shift", "bool")
        or _typed(payload.get("logprobs"), bool, "logprobs", "bool")
        or _typed(payload.get("top_logprobs"), int, "top_logprobs", "int")
        or _check_think(payload.get("think"))
        or _check_keep_alive(payload.get("keep_alive"))
    )
    if refusal is not None:
        return refusal
    options = payload.get("options")
    if options is not None and not isinstance(options, dict):
        return _mistyped(options, "options", "map[string]interface {}")
    for name, kind in (("messages", "[]api.Message"), ("tools", "api.Tools")):
        items = payload.get(name)
        if items is None:
            continue
        if not isinstance(items, list):
            return _mistyped(items, name, kind)
        check = _check_message if name == "messages" else _check_tool
        for item in items:
            refusal = check(item, name)
            if refusal is not None:
                return refusal
    return None


def _check_options(options: Any) -> Reply | None:
    """What Ollama's ``Options.FromMap`` refuses (500, through the scheduler)."""
    for name, value in (options or {}).items():
        kind = _OPTION_KINDS.get(name)
        if kind is None or value is None:
            continue
        if kind in ("integer", "float32"):
            # JSON numbers are float64 to Go: an integer option takes 1.0, and cuts 1.5.
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        elif kind == "boolean":
            ok = isinstance(value, bool)
        else:
            if not isinstance(value, list):
                return _refuse(f'option "{name}" must be of type array', 500)
            ok = True
            if not all(isinstance(item, str) for item in value):
                return _refuse(f'option "{name}" must be of an array of strings', 500)
        if not ok:
            return _refuse(f'option "{name}" must be of type {kind}', 500)
    return None


def _check_format(fmt: Any) -> Reply | None:
    if fmt is None or fmt in ("", "json") or isinstance(fmt, dict):
        return None
    # Go's %q of the raw JSON bytes.
    quoted = json_encode(json_encode(fmt).decode()).decode()
    return _refuse(f'invalid format: {quoted}; expected "json" or a valid JSON Schema object', 500)


# --- what a request asked for ------------------------------------------------------------


def _forced_names(fmt: Any) -> tuple[str, ...] | None:
    """The functions llmkit's one-call ``format`` schema forces, or ``None`` for another format."""
    if not isinstance(fmt, dict):
        return None
    shapes = fmt.get("anyOf") if "anyOf" in fmt else [fmt]
    if not isinstance(shapes, list) or not shapes:
        return None
    names = []
    for shape in shapes:
        properties = shape.get("properties") if isinstance(shape, dict) else None
        if not isinstance(properties, dict) or set(properties) != {"name", "arguments"}:
            return None
        name = properties["name"].get("enum") if isinstance(properties["name"], dict) else None
        if not (isinstance(name, list) and len(name) == 1 and isinstance(name[0], str)):
            return None
        names.append(name[0])
    return tuple(names)


def _tool_names(payload: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(
        str((tool.get("function") or {}).get("name"))
        for tool in payload.get("tools") or ()
        if isinstance(tool, dict)
    )


def _choice(payload: Mapping[str, Any]) -> str:
    tools = _tool_names(payload)
    forced = _forced_names(payload.get("format"))
    if not tools:
        return "none"
    if forced is None:
        return "auto"
    if len(forced) == 1 and len(tools) > 1:
        return f"function:{forced[0]}"
    return "required"


def _thinks(payload: Mapping[str, Any]) -> bool:
    return payload.get("think") is not False


def _arguments(arguments: str) -> Any:
    try:
        return json_decode(arguments)
    except Exception:
        return {}


class OllamaProtocol(WireProtocol):
    """``/api/chat`` on an Ollama server, with a set of pulled models.

    Args:
        models: the pulled models (``"qwen3"`` is ``"qwen3:latest"``) and
            what each can do, from :data:`CAPABILITIES`; ``None`` (the
            default): every model is pulled and can do everything.
        tool_call_ids: give tool calls ids, as servers since 0.12.10 do;
            ``False`` sends calls without, as older servers did.
    """

    name: ClassVar[str] = "ollama"
    base_path: ClassVar[str] = ""
    stream_content_type: ClassVar[str] = "application/x-ndjson"

    def __init__(
        self,
        models: Mapping[str, Iterable[str]] | None = None,
        *,
        tool_call_ids: bool = True,
    ) -> None:
        if models is not None:
            for model, abilities in models.items():
                unknown = set(abilities) - CAPABILITIES
                if unknown:
                    raise ValueError(f"{model}: unknown capabilities {sorted(unknown)}")
        self.models = (
            None
            if models is None
            else {_base(model): frozenset(abilities) for model, abilities in models.items()}
        )
        self.tool_call_ids = tool_call_ids

    def route(self, method: str, path: str) -> Reply | None:
        """Serve ``POST /api/chat`` only; anything else is Go's plain-text 404."""
        if path == _PATH and method == "POST":
            return None
        return Reply.error(404, body=b"404 page not found", headers={"content-type": "text/plain"})

    def _abilities(self, model: str) -> frozenset[str] | None:
        if self.models is None:
            return CAPABILITIES
        return self.models.get(_base(model))

    def check(self, path: str, headers: Mapping[str, str], payload: Any) -> Reply | None:
        """Refuse what Ollama refuses, in its order, with its status and message."""
        refusal = _check_decoding(payload)
        if refusal is not None:
            return refusal
        top = payload.get("top_logprobs")
        if isinstance(top, int) and not 0 <= top <= 20:
            return _refuse("top_logprobs must be between 0 and 20")
        model = payload.get("model")
        if not model:
            return _refuse("model is required")
        abilities = self._abilities(model)
        if abilities is None:
            return _refuse(f"model '{model}' not found", 404)
        think = payload.get("think")
        if "thinking" not in abilities and think is not None and think is not False:
            return _refuse(f'"{model}" does not support thinking')
        if payload.get("tools") and "tools" not in abilities:
            return _refuse(f"registry.ollama.ai/library/{_base(model)} does not support tools")
        refusal = _check_options(payload.get("options"))
        if refusal is not None:
            return refusal
        if not payload.get("messages"):
            reason = "unload" if payload.get("keep_alive") == 0 else "load"
            body = {
                "model": model,
                "created_at": _CREATED,
                "message": {"role": "assistant", "content": ""},
                "done_reason": reason,
                "done": True,
            }
            return Reply.error(200, body=json_encode(body))
        return _check_format(payload.get("format"))

    def wants_stream(self, path: str, payload: Any) -> bool:
        """Ollama streams unless the body says ``"stream": false``."""
        return not (isinstance(payload, dict) and payload.get("stream") is False)

    def model(self, path: str, payload: Any) -> str:
        """The body's ``model``, as sent."""
        model = payload.get("model") if isinstance(payload, dict) else None
        return model if isinstance(model, str) else "emulator"

    def _calls(self, reply: Reply) -> list[dict[str, Any]]:
        calls = []
        for index, (name, arguments) in enumerate(reply.calls):
            call: dict[str, Any] = {
                "function": {"index": index, "name": name, "arguments": _arguments(arguments)}
            }
            if self.tool_call_ids:
                call = {"id": f"call_{index}", **call}
            calls.append(call)
        return calls

    def _written(self, reply: Reply, payload: Any) -> tuple[str, str, list[dict[str, Any]]]:
        """The reply's thinking, content and calls, as the request lets the model write them."""
        thinking = (reply.reasoning or "") if _thinks(payload) else ""
        content = reply.content or ""
        calls = self._calls(reply)
        if calls and _forced_names(payload.get("format")) is not None:
            # The grammar lets the model write one call object and nothing else.
            first = calls[0]["function"]
            call = {"name": first["name"], "arguments": first["arguments"]}
            content = json_encode(call).decode()
            calls = []
        return thinking, content, calls

    def _done(self, reply: Reply, model: str, message: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "model": model,
            "created_at": _CREATED,
            "message": message,
            "done_reason": "length" if reply.finish_reason == "length" else "stop",
            "done": True,
            "total_duration": 182242375,
            "load_duration": 41295167,
        }
        # Go's omitempty: a count of 0 is left out.
        if reply.prompt_tokens:
            answer["prompt_eval_count"] = reply.prompt_tokens
        answer["prompt_eval_duration"] = 24573166
        if reply.completion_tokens:
            answer["eval_count"] = reply.completion_tokens
        answer["eval_duration"] = 115959084
        return answer

    def body(self, reply: Reply, payload: Any, *, seq: int, model: str) -> bytes:
        """The last line of a stream, holding the whole message."""
        thinking, content, calls = self._written(reply, payload)
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if thinking:
            message["thinking"] = thinking
        if calls:
            message["tool_calls"] = calls
        return json_encode(self._done(reply, model, message))

    def events(self, reply: Reply, payload: Any, *, seq: int, model: str) -> list[bytes]:
        """Thinking pieces, content pieces, one line per call, then the ``done`` line."""
        thinking, content, calls = self._written(reply, payload)
        size = reply.chunk_size
        messages: list[dict[str, Any]] = [
            {"role": "assistant", "content": "", "thinking": piece}
            for piece in split_text(thinking, size)
        ]
        messages += [{"role": "assistant", "content": piece} for piece in split_text(content, size)]
        messages += [{"role": "assistant", "content": "", "tool_calls": [call]} for call in calls]
        lines = [
            json_encode({"model": model, "created_at": _CREATED, "message": message, "done": False})
            + b"\n"
            for message in messages
        ]
        done = self._done(reply, model, {"role": "assistant", "content": ""})
        lines.append(json_encode(done) + b"\n")
        return lines

    def error_body(self, reply: Reply) -> bytes:
        """``{"error": "<message>"}``."""
        return json_encode({"error": reply.message})

    def error_event(self, reply: Reply) -> bytes:
        """The ``{"error": ...}`` line Ollama writes when a stream fails midway."""
        return json_encode({"error": reply.message}) + b"\n"

    def received(self, path: str, payload: Any) -> Received:
        """System messages become ``system``; ``tool_choice`` is the choice the model had."""
        if not isinstance(payload, dict):
            return Received()
        system: list[str] = []
        turns: list[Turn] = []
        for message in payload.get("messages") or ():
            role = message.get("role")
            text = message.get("content") or ""
            if role == "system":
                system.append(text)
                continue
            calls = tuple(
                (
                    str(call.get("id", "")),
                    str((call.get("function") or {}).get("name")),
                    (call.get("function") or {}).get("arguments") or {},
                )
                for call in message.get("tool_calls") or ()
            )
            turns.append(
                Turn(
                    role=str(role),
                    text=text,
                    images=len(message.get("images") or ()),
                    calls=calls,
                    tool_call_id=message.get("tool_call_id"),
                )
            )
        options = payload.get("options") or {}
        fmt = payload.get("format")
        response_format = None
        if fmt == "json":
            response_format = "json_object"
        elif isinstance(fmt, dict) and _forced_names(fmt) is None:
            response_format = "json_schema"
        return Received(
            model=payload.get("model"),
            system="\n".join(system) if system else None,
            turns=tuple(turns),
            stream=payload.get("stream") is not False,
            max_tokens=options.get("num_predict"),
            stop=tuple(options.get("stop") or ()),
            tools=_tool_names(payload),
            tool_choice=_choice(payload),
            response_format=response_format,
            temperature=options.get("temperature"),
        )


class OllamaEmulator(Emulator):
    """An :class:`~llmkit_contracts.emulator.Emulator` that speaks :class:`OllamaProtocol`."""

    def __init__(
        self,
        models: Mapping[str, Iterable[str]] | None = None,
        *,
        tool_call_ids: bool = True,
        default: Reply | None = None,
        strict: bool = True,
    ) -> None:
        super().__init__(
            OllamaProtocol(models, tool_call_ids=tool_call_ids), default=default, strict=strict
        )
