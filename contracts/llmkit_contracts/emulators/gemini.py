"""Google's Gemini API (``generateContent``), as the emulator speaks it.

``POST /v1beta/models/<model>:generateContent`` answers with a
``GenerateContentResponse``; ``:streamGenerateContent?alt=sse`` with
server-sent events, each a whole ``GenerateContentResponse``, the last one
carrying ``finishReason`` and the final ``usageMetadata`` (there is no end
marker: the body just ends). Errors use Google's envelope
``{"error": {"code", "message", "status"}}``.

Requests are checked as the real API checks them, with its messages (taken
from recorded errors where one exists): an API key is required
(``x-goog-api-key`` or ``?key=``); fields unknown to the request types are
refused ("Invalid JSON payload received. Unknown name ..."), camelCase and
snake_case alike being known; ``contents`` must be given, every content
must have parts and every part data; roles are ``user`` and ``model``; a
function-call turn must follow a user turn, a function-response turn must
follow a function-call turn and answer each of its calls; Gemini 3 wants a
thought signature on the first function call of every step of the current
turn; function names, tool config, mime types, sampling values, stop
sequences and thinking settings are checked.

What the emulator answers follows the model named in the path, as the real
API does: Gemini 3 models (``gemini-3...``) give function calls ids
``call_0``, ``call_1``... and thought signatures (on the first call, and on
the answer's text when the model reasoned); older models give neither.
"""

from __future__ import annotations

import base64
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

__all__ = ["GeminiEmulator", "GeminiProtocol"]

_PATH: Final = re.compile(
    r"/v1beta/((?:models|tunedModels)/[^/:?]+):(generateContent|streamGenerateContent)"
)
_MODEL_FAMILIES: Final = ("gemini-", "gemma-", "learnlm-", "tunedModels/")
_FUNCTION_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}")
_GEMINI3: Final = re.compile(r"gemini-(\d+)")
_MIME_TYPES: Final = (
    "text/plain",
    "application/json",
    "application/xml",
    "application/yaml",
    "text/x.enum",
)
_MODES: Final = ("MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED")
_LEVELS: Final = ("THINKING_LEVEL_UNSPECIFIED", "MINIMAL", "LOW", "MEDIUM", "HIGH")
_DATA_FIELDS: Final = (
    "text",
    "inlineData",
    "functionCall",
    "functionResponse",
    "fileData",
    "executableCode",
    "codeExecutionResult",
    "toolCall",
    "toolResponse",
)
_STATUS_NAMES: Final[Mapping[int, str]] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_FINISH: Final[Mapping[str, str]] = {
    "stop": "STOP",
    "tool_calls": "STOP",
    "length": "MAX_TOKENS",
    "content_filter": "SAFETY",
}
_THOUGHTS_DOC: Final = "https://ai.google.dev/gemini-api/docs/thought-signatures"

# The request types, as field name -> kind: a type name, "[Type]" for a
# repeated message, "*" for free JSON (Struct, Value, schemas), or a scalar
# kind ("str", "int", "num", "bool", "[str]", "enum:<Type>").
_TYPES: Final[Mapping[str, Mapping[str, str]]] = {
    "GenerateContentRequest": {
        "model": "str",
        "contents": "[Content]",
        "systemInstruction": "Content",
        "tools": "[Tool]",
        "toolConfig": "ToolConfig",
        "safetySettings": "[SafetySetting]",
        "generationConfig": "GenerationConfig",
        "cachedContent": "str",
    },
    "Content": {"role": "str", "parts": "[Part]"},
    "Part": {
        "text": "str",
        "inlineData": "Blob",
        "functionCall": "FunctionCall",
        "functionResponse": "FunctionResponse",
        "fileData": "FileData",
        "executableCode": "*",
        "codeExecutionResult": "*",
        "toolCall": "*",
        "toolResponse": "*",
        "videoMetadata": "*",
        "thought": "bool",
        "thoughtSignature": "str",
        "partMetadata": "*",
        "mediaResolution": "*",
    },
    "Blob": {"mimeType": "str", "data": "str"},
    "FileData": {"mimeType": "str", "fileUri": "str"},
    "FunctionCall": {"id": "str", "name": "str", "args": "*"},
    "FunctionResponse": {
        "id": "str",
        "name": "str",
        "response": "*",
        "parts": "*",
        "willContinue": "bool",
        "scheduling": "str",
    },
    "Tool": {
        "functionDeclarations": "[FunctionDeclaration]",
        "googleSearchRetrieval": "*",
        "codeExecution": "*",
        "googleSearch": "*",
        "computerUse": "*",
        "urlContext": "*",
        "fileSearch": "*",
        "googleMaps": "*",
    },
    "FunctionDeclaration": {
        "name": "str",
        "description": "str",
        "parameters": "*",
        "parametersJsonSchema": "*",
        "response": "*",
        "responseJsonSchema": "*",
        "behavior": "str",
    },
    "ToolConfig": {
        "functionCallingConfig": "FunctionCallingConfig",
        "retrievalConfig": "*",
        "includeServerSideToolInvocations": "bool",
    },
    "FunctionCallingConfig": {"mode": "enum:Mode", "allowedFunctionNames": "[str]"},
    "SafetySetting": {"category": "str", "threshold": "str"},
    "GenerationConfig": {
        "candidateCount": "int",
        "stopSequences": "[str]",
        "maxOutputTokens": "int",
        "temperature": "num",
        "topP": "num",
        "topK": "int",
        "seed": "int",
        "responseMimeType": "str",
        "responseSchema": "*",
        "responseJsonSchema": "*",
        "presencePenalty": "num",
        "frequencyPenalty": "num",
        "responseLogprobs": "bool",
        "logprobs": "int",
        "enableEnhancedCivicAnswers": "bool",
        "responseModalities": "[str]",
        "speechConfig": "*",
        "thinkingConfig": "ThinkingConfig",
        "imageConfig": "*",
        "mediaResolution": "str",
    },
    "ThinkingConfig": {
        "includeThoughts": "bool",
        "thinkingBudget": "int",
        "thinkingLevel": "enum:ThinkingLevel",
    },
}
_ENUMS: Final[Mapping[str, tuple[str, ...]]] = {"Mode": _MODES, "ThinkingLevel": _LEVELS}
_PACKAGE: Final = "type.googleapis.com/google.ai.generativelanguage.v1beta."


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


# Both spellings of every field, to the camelCase one.
_FIELDS: Final[Mapping[str, Mapping[str, str]]] = {
    kind: {**{name: name for name in fields}, **{_snake(name): name for name in fields}}
    for kind, fields in _TYPES.items()
}


def _get(obj: Any, camel: str) -> Any:
    """A field of a request object under either spelling."""
    if not isinstance(obj, dict):
        return None
    value = obj.get(camel)
    return obj.get(_snake(camel)) if value is None else value


def _items(value: Any) -> list[Any]:
    # Google's JSON reader takes a lone object where a list is expected.
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _invalid(message: str, status: str = "INVALID_ARGUMENT") -> Reply:
    return Reply.error(400, message=message, type=status)


def _field_error(message: str) -> Reply:
    return _invalid(f"* GenerateContentRequest.{message}\n")


# --- structure: unknown names and wrong types ----------------------------------------


def _scalar_problem(kind: str, value: Any, path: str) -> str | None:
    shown = json_encode(value).decode()
    if kind == "str":
        ok = isinstance(value, str)
        proto = "TYPE_STRING"
    elif kind == "bool":
        ok = isinstance(value, bool)
        proto = "TYPE_BOOL"
    elif kind == "int":
        ok = (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, str) and value.lstrip("-").isdigit()
        )
        proto = "TYPE_INT32"
    elif kind == "num":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        proto = "TYPE_FLOAT"
    else:
        enum = kind.partition(":")[2]
        ok = value in _ENUMS[enum] or (isinstance(value, str) and value.upper() in _ENUMS[enum])
        proto = f"{_PACKAGE}{enum}"
    if ok:
        return None
    return f"Invalid JSON payload received. Invalid value at '{path}' ({proto}), {shown}"


def _structure_problem(kind: str, value: Any, path: str) -> str | None:
    """The first structural error in ``value`` as message type ``kind``, or ``None``."""
    if not isinstance(value, dict):
        return (
            f"Invalid JSON payload received. Invalid value at '{path or kind}' "
            f"({_PACKAGE}{kind}), {json_encode(value).decode()[:80]}"
        )
    fields = _FIELDS[kind]
    for name, item in value.items():
        camel = fields.get(name)
        if camel is None:
            at = f" at '{path}'" if path else ""
            return f'Invalid JSON payload received. Unknown name "{name}"{at}: Cannot find field.'
        child = _TYPES[kind][camel]
        where = f"{path}.{_snake(camel)}" if path else _snake(camel)
        problem = _child_problem(child, item, where)
        if problem is not None:
            return problem
    return None


def _child_problem(child: str, item: Any, where: str) -> str | None:
    if child == "*" or item is None:
        return None
    repeated = child.startswith("[")
    inner = child.strip("[]")
    if not repeated and isinstance(item, list):
        return (
            f'Invalid JSON payload received. Unknown name "{where.rsplit(".", 1)[-1]}" at '
            f"'{where.rpartition('.')[0]}': Proto field is not repeating, cannot start list."
        )
    for k, element in enumerate(_items(item) if repeated else [item]):
        at = f"{where}[{k}]" if repeated else where
        if inner in _TYPES:
            problem = _structure_problem(inner, element, at)
        else:
            problem = _scalar_problem(inner, element, at)
        if problem is not None:
            return problem
    return None


# --- meaning: what the API checks after parsing ---------------------------------------


def _part_kinds(content: Any) -> set[str]:
    return {
        field
        for part in _items(_get(content, "parts"))
        for field in _DATA_FIELDS
        if _get(part, field) is not None
    }


def _check_contents(contents: list[Any]) -> Reply | None:
    if not contents:
        return _field_error("contents: contents is not specified")
    for i, content in enumerate(contents):
        role = _get(content, "role")
        if role not in (None, "", "user", "model"):
            return _invalid("Please use a valid role: user, model.")
        parts = _items(_get(content, "parts"))
        if not parts:
            return _field_error(f"contents[{i}].parts: contents.parts must not be empty.")
        for j, part in enumerate(parts):
            if not any(_get(part, field) is not None for field in _DATA_FIELDS):
                return _field_error(
                    f"contents[{i}].parts[{j}].data: required oneof field 'data' must have one "
                    "initialized field"
                )
    return None


def _turns(contents: list[Any]) -> list[tuple[str, list[Any]]]:
    """Consecutive contents of one role joined, as the API reads them."""
    turns: list[tuple[str, list[Any]]] = []
    for content in contents:
        role = _get(content, "role") or "user"
        parts = _items(_get(content, "parts"))
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(parts)
        else:
            turns.append((role, list(parts)))
    return turns


def _check_function_turns(contents: list[Any]) -> Reply | None:
    turns = _turns(contents)
    calls = 0
    for k, (role, parts) in enumerate(turns):
        made = sum(1 for part in parts if _get(part, "functionCall") is not None)
        answered = sum(1 for part in parts if _get(part, "functionResponse") is not None)
        if role == "model" and made and (k == 0 or turns[k - 1][0] != "user"):
            return _invalid(
                "Please ensure that function call turn comes immediately after a user turn "
                "or after a function response turn."
            )
        if answered:
            if not calls:
                return _invalid(
                    "Please ensure that function response turn comes immediately after a "
                    "function call turn."
                )
            if answered != calls:
                return _invalid(
                    "Please ensure that the number of function response parts is equal to the "
                    "number of function call parts of the function call turn."
                )
        calls = made if role == "model" else 0
    return None


def _check_signatures(contents: list[Any]) -> Reply | None:
    """Gemini 3: the first call of every step of the current turn is signed."""
    start = 0
    for i, content in enumerate(contents):
        if (_get(content, "role") or "user") == "user" and "text" in _part_kinds(content):
            start = i
    for i in range(start, len(contents)):
        content = contents[i]
        if _get(content, "role") != "model":
            continue
        calls = [p for p in _items(_get(content, "parts")) if _get(p, "functionCall") is not None]
        if calls and not _get(calls[0], "thoughtSignature"):
            name = _get(_get(calls[0], "functionCall"), "name")
            return _invalid(
                "Function call is missing a thought_signature in functionCall parts. This is "
                "required for tools to work correctly, and missing thought_signature may lead to "
                f"degraded model performance. Additional data, function call `default_api:{name}` "
                f", position {i + 1}. Please refer to {_THOUGHTS_DOC} for more details."
            )
    return None


def _declared(payload: Any) -> list[str]:
    return [
        str(_get(declaration, "name"))
        for tool in _items(_get(payload, "tools"))
        for declaration in _items(_get(tool, "functionDeclarations"))
    ]


def _check_tools(payload: Any) -> Reply | None:
    for i, tool in enumerate(_items(_get(payload, "tools"))):
        for j, declaration in enumerate(_items(_get(tool, "functionDeclarations"))):
            name = _get(declaration, "name")
            if not isinstance(name, str) or _FUNCTION_NAME.fullmatch(name) is None:
                return _field_error(
                    f"tools[{i}].function_declarations[{j}].name: Invalid function name. Must "
                    "start with a letter or an underscore. Must be alphameric (a-z, A-Z, 0-9), "
                    "underscores (_), dots (.) or dashes (-), with a maximum length of 64."
                )
    calling = _get(_get(payload, "toolConfig"), "functionCallingConfig")
    if calling is None:
        return None
    mode = str(_get(calling, "mode") or "AUTO").upper()
    allowed = _items(_get(calling, "allowedFunctionNames"))
    if mode in ("ANY", "VALIDATED") and not _declared(payload):
        return _invalid("Function calling config is set without function_declarations.")
    if allowed and mode not in ("ANY", "VALIDATED"):
        return _field_error(
            "tool_config.function_calling_config.allowed_function_names: allowed_function_names "
            "may be set only when the mode is ANY or VALIDATED."
        )
    return None


def _check_numbers(config: Any) -> Reply | None:
    bounds = {"temperature": (0.0, 2.0), "topP": (0.0, 1.0), "candidateCount": (1, 8)}
    for name, (low, high) in bounds.items():
        value = _get(config, name)
        if value is not None and not low <= float(value) <= high:
            return _field_error(
                f"generation_config.{_snake(name)}: {_snake(name)} must be in the range "
                f"[{low}, {high}], got {value}."
            )
    limit = _get(config, "maxOutputTokens")
    if limit is not None and int(limit) < 1:
        return _field_error(
            f"generation_config.max_output_tokens: max_output_tokens must be positive, got {limit}."
        )
    stops = _items(_get(config, "stopSequences"))
    if len(stops) > 5:
        return _field_error(
            "generation_config.stop_sequences: the number of stop sequences must not exceed 5."
        )
    return None


def _check_output(config: Any) -> Reply | None:
    mime = _get(config, "responseMimeType")
    if mime is not None and mime not in _MIME_TYPES:
        return _field_error(
            "generation_config.response_mime_type: allowed mimetypes are `text/plain`, "
            "`application/json`, `application/xml`, `application/yaml` and `text/x.enum`."
        )
    schema, json_schema = _get(config, "responseSchema"), _get(config, "responseJsonSchema")
    if schema is not None and json_schema is not None:
        return _field_error(
            "generation_config.response_schema: response_schema and response_json_schema "
            "cannot both be set."
        )
    if (schema is not None or json_schema is not None) and mime not in (
        "application/json",
        "text/x.enum",
    ):
        return _field_error(
            "generation_config.response_mime_type: a response schema needs response_mime_type "
            "application/json (or text/x.enum)."
        )
    return None


def _check_thinking(model: str, config: Any) -> Reply | None:
    thinking = _get(config, "thinkingConfig")
    if thinking is None:
        return None
    budget, level = _get(thinking, "thinkingBudget"), _get(thinking, "thinkingLevel")
    if level is not None and not _is_gemini3(model):
        return _invalid("Thinking level is not supported for this model.")
    if budget is not None and level is not None:
        return _invalid("You can only set one of thinking budget and thinking level.")
    if budget is None:
        return None
    budget = int(budget)
    name = model.rsplit("/", 1)[-1]
    if budget == 0 and name.startswith("gemini-2.5-pro"):
        return _invalid("Budget 0 is invalid. This model only works in thinking mode.")
    if budget < -1 or budget > 32768:
        return _invalid(f"The thinking budget ({budget}) is invalid.")
    return None


def _is_gemini3(model: str) -> bool:
    match = _GEMINI3.match(model.rsplit("/", 1)[-1])
    return match is not None and int(match.group(1)) >= 3


def _model_of(path: str) -> str:
    match = _PATH.match(path.partition("?")[0])
    name = match.group(1) if match else ""
    return name.removeprefix("models/")


# --- answers -------------------------------------------------------------------------


def _signature(seq: int, where: str) -> str:
    return base64.b64encode(f"emulated signature {seq}/{where}".encode()).decode()


def _call_parts(reply: Reply, seq: int, gemini3: bool) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for index, (name, arguments) in enumerate(reply.calls):
        args = json_decode(arguments) if arguments.strip() else {}
        if not isinstance(args, dict):
            raise ValueError(f"Gemini function call arguments must be a JSON object: {arguments}")
        call: dict[str, Any] = {"name": name, "args": args}
        part: dict[str, Any] = {"functionCall": call}
        if gemini3:
            call["id"] = f"call_{index}"
            if index == 0:
                part["thoughtSignature"] = _signature(seq, "call")
        parts.append(part)
    return parts


def _usage(reply: Reply, final: bool = True) -> dict[str, Any]:
    prompt = reply.prompt_tokens
    if not final:
        return {"promptTokenCount": prompt, "totalTokenCount": prompt}
    # Thoughts are counted apart from the answer; llmkit adds them back.
    thoughts = min(len((reply.reasoning or "").split()), reply.completion_tokens)
    usage: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": reply.completion_tokens - thoughts,
        "totalTokenCount": prompt + reply.completion_tokens,
    }
    if reply.reasoning is not None:
        usage["thoughtsTokenCount"] = thoughts
    return usage


def _response(
    parts: list[dict[str, Any]], model: str, seq: int, usage: dict[str, Any], finish: str | None
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    return {
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": model,
        "responseId": f"emu-{seq}",
    }


def _event(data: dict[str, Any]) -> bytes:
    return b"data: " + json_encode(data) + b"\r\n\r\n"


def _response_text(response: Any) -> str:
    output = _get(response, "output")
    if isinstance(output, str) and len(response) == 1:
        return output
    return json_encode(response).decode()


def _tool_choice(config: Any) -> str | None:
    calling = _get(config, "functionCallingConfig")
    if calling is None:
        return None
    mode = str(_get(calling, "mode") or "AUTO").upper()
    allowed = _items(_get(calling, "allowedFunctionNames"))
    if mode == "ANY":
        return f"function:{allowed[0]}" if len(allowed) == 1 else "required"
    return {"AUTO": "auto", "NONE": "none"}.get(mode, mode.lower())


def _content_turns(content: Any) -> list[Turn]:
    role = "assistant" if _get(content, "role") == "model" else "user"
    texts: list[str] = []
    images = 0
    calls: list[tuple[str, str, Any]] = []
    answers: list[Turn] = []
    for part in _items(_get(content, "parts")):
        text = _get(part, "text")
        if isinstance(text, str) and not _get(part, "thought"):
            texts.append(text)
        media = _get(_get(part, "inlineData"), "mimeType") or _get(
            _get(part, "fileData"), "mimeType"
        )
        if isinstance(media, str) and media.startswith("image/"):
            images += 1
        call = _get(part, "functionCall")
        if call is not None:
            calls.append((str(_get(call, "id") or ""), str(_get(call, "name")), _get(call, "args")))
        response = _get(part, "functionResponse")
        if response is not None:
            answers.append(
                Turn(
                    role="tool",
                    text=_response_text(_get(response, "response") or {}),
                    tool_call_id=_get(response, "id"),
                )
            )
    if answers and not (texts or images):
        return answers
    turn = Turn(role=role, text="".join(texts), images=images, calls=tuple(calls))
    return [*answers, turn]


class GeminiProtocol(WireProtocol):
    """Gemini's generateContent API: model in the path, camelCase JSON, SSE without end marker."""

    name: ClassVar[str] = "gemini"
    base_path: ClassVar[str] = "/v1beta"
    stream_content_type: ClassVar[str] = "text/event-stream"

    def route(self, method: str, path: str) -> Reply | None:
        """Serve ``POST /v1beta/models/<model>:generateContent`` and ``:streamGenerateContent``."""
        if _PATH.fullmatch(path) is None:
            return Reply.error(
                404, message=f"Requested entity was not found: {path}.", type="NOT_FOUND"
            )
        if method != "POST":
            return Reply.error(
                405,
                message=f"Method {method} is not allowed on {path}.",
                type="INVALID_ARGUMENT",
                headers={"allow": "POST"},
            )
        return None

    def check(self, path: str, headers: Mapping[str, str], payload: Any) -> Reply | None:
        """Refuse what the Gemini API refuses, with its status and message."""
        route, _, query = path.partition("?")
        params = dict(pair.partition("=")[::2] for pair in query.split("&") if pair)
        if not headers.get("x-goog-api-key", "").strip() and not params.get("key"):
            return Reply.error(
                403,
                message="Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity to call "
                "this API.",
                type="PERMISSION_DENIED",
            )
        model = _model_of(route)
        if not model.startswith(_MODEL_FAMILIES):
            return Reply.error(
                404,
                message=f"models/{model} is not found for API version v1beta, or is not "
                "supported for generateContent. Call ModelService.ListModels to see the list of "
                "available models and their supported methods.",
                type="NOT_FOUND",
            )
        if route.endswith(":streamGenerateContent") and params.get("alt") != "sse":
            return _invalid(
                "This emulator streams server-sent events only: add ?alt=sse to "
                ":streamGenerateContent (the real API streams a JSON array without it)."
            )
        problem = _structure_problem("GenerateContentRequest", payload, "")
        if problem is not None:
            return _invalid(problem)
        return self._check_meaning(model, payload)

    def _check_meaning(self, model: str, payload: Any) -> Reply | None:
        contents = _items(_get(payload, "contents"))
        refusal = _check_contents(contents) or _check_function_turns(contents)
        if refusal is None and _is_gemini3(model):
            refusal = _check_signatures(contents)
        if refusal is None:
            refusal = _check_tools(payload)
        config = _get(payload, "generationConfig")
        if refusal is None and config is not None:
            refusal = (
                _check_numbers(config) or _check_output(config) or _check_thinking(model, config)
            )
        return refusal

    def wants_stream(self, path: str, payload: Any) -> bool:
        """``:streamGenerateContent`` in the path."""
        return ":streamGenerateContent" in path

    def model(self, path: str, payload: Any) -> str:
        """The model named in the path, without ``models/``."""
        return _model_of(path) or "emulator"

    def _parts(self, reply: Reply, seq: int, gemini3: bool) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        if reply.reasoning is not None:
            parts.append({"text": reply.reasoning, "thought": True})
        if reply.content or not reply.calls:
            text: dict[str, Any] = {"text": reply.content or ""}
            if gemini3 and reply.reasoning is not None:
                text["thoughtSignature"] = _signature(seq, "text")
            parts.append(text)
        parts.extend(_call_parts(reply, seq, gemini3))
        return parts

    def body(self, reply: Reply, payload: Any, *, seq: int, model: str) -> bytes:
        """A ``GenerateContentResponse``."""
        parts = self._parts(reply, seq, _is_gemini3(model))
        finish = _FINISH[reply.finish_reason]
        return json_encode(_response(parts, model, seq, _usage(reply), finish))

    def events(self, reply: Reply, payload: Any, *, seq: int, model: str) -> list[bytes]:
        """Thoughts, text, whole function calls, then the chunk with ``finishReason`` and usage."""
        gemini3 = _is_gemini3(model)
        running = _usage(reply, final=False)
        size = reply.chunk_size
        events = [
            _event(_response([{"text": piece, "thought": True}], model, seq, running, None))
            for piece in split_text(reply.reasoning or "", size)
        ]
        events.extend(
            _event(_response([{"text": piece}], model, seq, running, None))
            for piece in split_text(reply.content or "", size)
        )
        # Calls come whole, one per chunk.
        events.extend(
            _event(_response([part], model, seq, running, None))
            for part in _call_parts(reply, seq, gemini3)
        )
        last: dict[str, Any] = {"text": ""}
        if gemini3 and reply.reasoning is not None:
            last["thoughtSignature"] = _signature(seq, "text")
        final = _response([last], model, seq, _usage(reply), _FINISH[reply.finish_reason])
        events.append(_event(final))
        return events

    def error_body(self, reply: Reply) -> bytes:
        """Google's error envelope; the canonical status follows the HTTP status unless given."""
        return json_encode({"error": self._error(reply, reply.status)})

    def _error(self, reply: Reply, status: int) -> dict[str, Any]:
        name = reply.error_type or _STATUS_NAMES.get(
            status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT"
        )
        error: dict[str, Any] = {"code": status, "message": reply.message, "status": name}
        if reply.code is not None:
            error["details"] = [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": reply.code,
                    "domain": "googleapis.com",
                }
            ]
        return error

    def error_event(self, reply: Reply) -> bytes:
        """A ``data:`` event holding an error envelope, as Google sends one mid-stream."""
        status = 500 if reply.status == 200 else reply.status
        return _event({"error": self._error(reply, status)})

    def received(self, path: str, payload: Any) -> Received:
        """``systemInstruction`` becomes the system text; each function response a tool turn."""
        if not isinstance(payload, dict):
            return Received()
        system = _get(payload, "systemInstruction")
        texts = [_get(part, "text") for part in _items(_get(system, "parts"))]
        turns = [
            turn
            for content in _items(_get(payload, "contents"))
            for turn in _content_turns(content)
        ]
        config = _get(payload, "generationConfig") or {}
        if (
            _get(config, "responseJsonSchema") is not None
            or _get(config, "responseSchema") is not None
        ):
            fmt: str | None = "json_schema"
        elif _get(config, "responseMimeType") == "application/json":
            fmt = "json_object"
        else:
            fmt = None
        limit = _get(config, "maxOutputTokens")
        return Received(
            model=_model_of(path.partition("?")[0]) or None,
            system="\n".join(t for t in texts if isinstance(t, str)) if system else None,
            turns=tuple(turns),
            stream=self.wants_stream(path, payload),
            max_tokens=None if limit is None else int(limit),
            stop=tuple(_items(_get(config, "stopSequences"))),
            tools=tuple(_declared(payload)),
            tool_choice=_tool_choice(_get(payload, "toolConfig")),
            response_format=fmt,
            temperature=_get(config, "temperature"),
        )


class GeminiEmulator(Emulator):
    """An :class:`~llmkit_contracts.emulator.Emulator` that speaks :class:`GeminiProtocol`."""

    def __init__(self, *, default: Reply | None = None, strict: bool = True) -> None:
        super().__init__(GeminiProtocol(), default=default, strict=strict)
