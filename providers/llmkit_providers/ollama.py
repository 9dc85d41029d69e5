"""Ollama's native chat API (``POST /api/chat``), as a codec.

Wire facts this module rests on (from Ollama's API reference and server):

* the base URL is the server's root (``http://localhost:11434``); no key is
  needed, and ``OLLAMA_HOST`` moves it, in the forms Ollama's own clients
  read (``127.0.0.1:11434``, ``gpu-box``, ``:8080``, ``https://host``);
* the API streams unless the body says ``"stream": false``; a stream is
  NDJSON, one ``ChatResponse`` object a line, the last with ``"done":
  true``, ``done_reason`` (``stop``, ``length``, ``load``, ``unload``) and
  the counts ``prompt_eval_count`` and ``eval_count`` (left out when 0);
* ``content`` is a string; images go beside it as a list of base64 strings
  (``images``), no data-URL prefix; sampling settings go in ``options``
  (``num_predict``, ``temperature``, ``top_p``, ``stop``, ``seed``...);
  ``format`` is ``"json"`` or a JSON schema object;
* tool-call arguments are JSON objects, not strings; servers since 0.12.10
  give calls an ``id`` and take ``tool_call_id`` back on tool results,
  older ones have no ids and pair a result with its call by ``tool_name``;
* ``think`` (a boolean, or ``low``/``medium``/``high``/``max``) switches a
  thinking model's reasoning on or off; it arrives as ``thinking`` and is
  taken back on assistant messages; a thinking model thinks by default;
* errors are ``{"error": "..."}`` with the HTTP status (404 ``model 'x' not
  found`` for a model that has not been pulled); a failure after the stream
  began is an ``{"error": ...}`` line.

Choices made where the two shapes differ:

* tool-call ids: the server's where it sends one, else llmkit makes one
  (``call_`` and 8 hex digits, as Ollama's own); both ``tool_call_id`` and
  ``tool_name`` (looked up from the assistant call with that id) go back on
  tool results, so old and new servers pair them;
* ``tool_choice``: Ollama has none. ``auto`` is its only behaviour; ``none``
  sends no tools; ``required`` and a named function send the tools and
  constrain the answer with ``format`` to one ``{"name": ..., "arguments":
  {...}}`` object (:func:`forced_call_format`): the server's grammar then
  forces exactly one call, which the codec turns back into a tool call (a
  server that parses it as a native call is read as one too). So forcing
  cannot be combined with ``response_format``, and yields one call;
  ``parallel_tool_calls=False`` is refused without it (Ollama cannot limit
  an ``auto`` turn to one call);
* ``finish_reason`` is ``tool_calls`` when the answer holds calls (Ollama
  says ``stop``), ``length`` for ``length``, else ``stop``; the raw value
  stays in ``native_finish_reason``;
* remote image URLs are refused (a codec does not fetch): send ``data:`` URLs.

Provider options (``Config(options=...)``, :class:`OllamaOptions`): ``think``,
``keep_alive`` and ``model_options`` (more ``options`` entries, ``num_ctx``
the usual one).
"""

from __future__ import annotations

import contextlib
import re
import secrets
from typing import Any, Final, Literal

import msgspec

from llmkit.provider import (
    AuthenticationError,
    Capabilities,
    ChatRequest,
    ChatResponse,
    Choice,
    ChunkChoice,
    Config,
    ContextWindowError,
    Delta,
    FunctionCall,
    FunctionCallDelta,
    HttpCall,
    HttpResponse,
    ImagePart,
    InvalidRequestError,
    LLMError,
    Message,
    NDJSONDecoder,
    NotFoundError,
    PermissionDeniedError,
    ProviderKey,
    RateLimitError,
    ServiceUnavailableError,
    StreamChunk,
    StreamState,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    Usage,
    auth_headers,
    capabilities,
    decode_error,
    decode_event,
    decode_response,
    encode_request,
    probe,
    register_framing,
)

__all__ = [
    "DEFAULT_PORT",
    "Ollama",
    "OllamaOptions",
    "encode_ollama_request",
    "error_from_body",
    "forced_call_format",
    "ollama_base_url",
]

#: The port a scheme-less ``OLLAMA_HOST`` (``gpu-box``) means, as ``ollama serve`` uses.
DEFAULT_PORT: Final = 11434
_PATH: Final = "/api/chat"
# What the stream of a call that forces a tool is framed with: NDJSON, with
# an empty first event that tells the decoder to read the answer as a call.
_FORCED_FRAMING: Final = "ollama-forced-tool"
_HINT: Final = (
    "Is Ollama running there? Start it with `ollama serve`, or point OLLAMA_HOST "
    "(or api_base) at the server"
)
# Go's time.ParseDuration: "5m", "1h30m", "-1s", "0".
_DURATION: Final = re.compile(r"-?(0|((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+)")


class OllamaOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Ollama settings for ``Config(options=...)``.

    Attributes:
        think: ``think`` of the request: ``True``/``False`` switch a thinking
            model's reasoning on or off (Ollama thinks by default on models
            that can), ``"low"``, ``"medium"``, ``"high"``, ``"max"`` set its
            level where the model has levels (gpt-oss). The reasoning text
            arrives in ``message.reasoning``.
        keep_alive: how long the model stays loaded after the call: seconds
            (negative: for ever) or a duration such as ``"10m"``.
        model_options: more entries of Ollama's ``options`` (``num_ctx``,
            ``top_k``, ``repeat_penalty``...); the request's own settings
            (``max_tokens``, ``temperature``, ``top_p``, ``stop``, ``seed``) win.
    """

    think: bool | Literal["low", "medium", "high", "max"] | None = None
    keep_alive: int | float | str | None = None
    model_options: dict[str, Any] | None = None


def ollama_base_url(value: str) -> str:
    """The base URL an ``OLLAMA_HOST`` value names, read as Ollama's own clients read it.

    A value without a scheme is ``http`` on port 11434 (``gpu-box`` is
    ``http://gpu-box:11434``, ``:8080`` is ``http://127.0.0.1:8080``); with a
    scheme and no port the scheme's port. ``0.0.0.0`` and ``::`` are the
    addresses a server listens on to be reached from anywhere, not ones to
    connect to (Windows refuses them): they stand for this machine, as
    ``127.0.0.1`` and ``::1``.
    """
    scheme, sep, rest = value.strip().partition("://")
    if sep:
        scheme = scheme.lower()
        port = "443" if scheme == "https" else "80"
    else:
        scheme, rest, port = "http", value.strip(), str(DEFAULT_PORT)
    authority, _, path = rest.partition("/")
    if authority.startswith("["):
        host, _, tail = authority[1:].partition("]")
        if tail.startswith(":") and tail[1:]:
            port = tail[1:]
    elif authority.count(":") == 1:
        host, _, given = authority.partition(":")
        port = given or port
    else:
        host = authority  # a name, an IPv4 address, or a bare IPv6 one
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host) or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    path = path.strip("/")
    return f"{scheme}://{host}:{port}" + (f"/{path}" if path else "")


class Ollama(ProviderKey):
    """Ollama's native API (``/api/chat``); no key; ``OLLAMA_HOST`` moves it.

    ``api_key=`` is sent as a bearer token when given (ollama.com, or a proxy
    in front of a server).
    """

    __slots__ = ()
    name = "ollama"
    default_base_url = f"http://localhost:{DEFAULT_PORT}"
    base_url_env = "OLLAMA_HOST"
    options_type = OllamaOptions
    connect_hint = _HINT

    @classmethod
    def base_url_from_env(cls, value: str) -> str:
        """``OLLAMA_HOST`` read as Ollama reads it (see :func:`ollama_base_url`)."""
        return ollama_base_url(value)


_NO_OPTIONS: Final = OllamaOptions()
_ENCODE = msgspec.json.Encoder()
_ARGUMENTS = msgspec.json.Decoder(dict[str, Any])
_NO_PARAMETERS: Final[dict[str, Any]] = {"type": "object", "properties": {}}
_ROLES: Final = {"developer": "system"}

# --- requests --------------------------------------------------------------------------


def _bad(message: str, model: str) -> InvalidRequestError:
    return InvalidRequestError(message, provider="ollama", model=model)


def _kind(part: Any) -> str:
    return str(type(part).__struct_config__.tag)


def _image(url: str, where: str, model: str) -> str:
    if url.startswith("data:"):
        head, sep, data = url.partition(",")
        if not sep or not head.lower().endswith(";base64"):
            raise _bad(f"{where} is a data: URL that is not base64; encode it as base64", model)
        return data
    if url.startswith(("https://", "http://")):
        raise _bad(
            f"{where} is a URL; Ollama takes images as base64 data only: fetch the image and "
            "pass it as a data: URL (data:image/png;base64,...)",
            model,
        )
    raise _bad(f"{where} must be a base64 data: URL (data:image/png;base64,...)", model)


def _content(content: Any, where: str, model: str, *, images: bool) -> tuple[str, list[str] | None]:
    """The text of a message's content and, where ``images`` is allowed, its images."""
    if isinstance(content, str):
        return content, None
    texts: list[str] = []
    found: list[str] = []
    for j, part in enumerate(content or ()):
        at = f"{where}.content[{j}]"
        if isinstance(part, TextPart):
            texts.append(part.text)
        elif isinstance(part, ImagePart) and images:
            found.append(_image(part.image_url.url, at, model))
        else:
            allowed = "text and images" if images else "text only"
            raise _bad(f"{at} is of type {_kind(part)!r}; Ollama takes {allowed} here", model)
    # Ollama's content is one string: the parts are read as lines.
    return "\n".join(texts), found or None


def _arguments(call: ToolCall, where: str, model: str) -> Any:
    text = call.function.arguments
    if not text:
        return {}
    try:
        return _ARGUMENTS.decode(text)
    except (msgspec.DecodeError, RecursionError):
        raise _bad(
            f"{where} has arguments that are not a JSON object (or nest too deeply to read); "
            "Ollama takes tool arguments as an object",
            model,
        ) from None


def _assistant(message: Message, where: str, model: str, names: dict[str, str]) -> Any:
    text, _ = _content(message.content, where, model, images=False)
    wire: dict[str, Any] = {"role": "assistant", "content": text}
    if message.reasoning:
        wire["thinking"] = message.reasoning
    calls = []
    for i, call in enumerate(message.tool_calls or ()):
        function = {
            "name": call.function.name,
            "arguments": _arguments(call, f"{where}.tool_calls[{i}]", model),
        }
        if call.id:
            names[call.id] = call.function.name
            calls.append({"id": call.id, "function": function})
        else:
            calls.append({"function": function})
    if calls:
        wire["tool_calls"] = calls
    return wire


def _messages(request: ChatRequest) -> list[Any]:
    model = request.model
    out: list[Any] = []
    # Tool-call id -> function name, from the assistant turns so far: older
    # servers pair a tool result with its call by name only.
    names: dict[str, str] = {}
    for i, message in enumerate(request.messages):
        role = message.role
        content = message.content
        where = f"messages[{i}]"
        if role == "assistant":
            out.append(_assistant(message, where, model, names))
            continue
        if type(content) is str and role != "tool":
            out.append({"role": _ROLES.get(role, role), "content": content})
            continue
        text, images = _content(content, where, model, images=role in ("user", "tool"))
        wire: dict[str, Any] = {"role": _ROLES.get(role, role), "content": text}
        if images:
            wire["images"] = images
        if role == "tool":
            ident = message.tool_call_id or ""
            name = names.get(ident) or message.name
            if name:
                wire["tool_name"] = name
            if ident:
                wire["tool_call_id"] = ident
        out.append(wire)
    return out


def _tools(request: ChatRequest) -> list[Any]:
    tools = []
    for i, tool in enumerate(request.tools or ()):
        if tool.type != "function":
            raise _bad(
                f"tools[{i}] is of type {tool.type!r}; Ollama takes function tools only",
                request.model,
            )
        function = tool.function
        wire: dict[str, Any] = {"name": function.name}
        if function.description is not None:
            wire["description"] = function.description
        wire["parameters"] = _NO_PARAMETERS if function.parameters is None else function.parameters
        tools.append({"type": "function", "function": wire})
    return tools


def forced_call_format(tools: list[Tool], names: list[str]) -> dict[str, Any]:
    """The ``format`` schema that makes the model call one of ``names``, once.

    One object ``{"name": <one of names>, "arguments": <its parameters>}``,
    closed; for several names, ``anyOf`` those objects. Ollama's grammar
    then lets the model write nothing else.
    """
    parameters = {tool.function.name: tool.function.parameters for tool in tools}
    shapes = [
        {
            "type": "object",
            "properties": {
                "name": {"type": "string", "enum": [name]},
                "arguments": parameters.get(name) or _NO_PARAMETERS,
            },
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for name in names
    ]
    return shapes[0] if len(shapes) == 1 else {"anyOf": shapes}


def _forced_names(request: ChatRequest) -> list[str] | None:
    """The functions the request forces a call to, or ``None`` when it forces none."""
    choice = request.tool_choice
    if not request.tools:
        return None
    if isinstance(choice, ToolChoice):
        return [choice.function.name]
    if choice == "required":
        return [tool.function.name for tool in request.tools]
    return None


def _format(request: ChatRequest, forced: list[str] | None) -> Any:
    fmt = request.response_format
    if forced is not None:
        if fmt is not None and fmt.type != "text":
            raise _bad(
                "Ollama forces a tool call through its format field, which response_format "
                "needs too: leave one of tool_choice ('required' or a function) and "
                "response_format out",
                request.model,
            )
        return forced_call_format(request.tools or [], forced)
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return "json"
    schema = fmt.json_schema.schema if fmt.json_schema is not None else None
    if schema is None:
        raise _bad("response_format.json_schema has no schema; Ollama needs one", request.model)
    return schema


def _model_options(request: ChatRequest, options: OllamaOptions) -> dict[str, Any] | None:
    wire = dict(options.model_options) if options.model_options else {}
    limit = request.max_completion_tokens or request.max_tokens
    if limit is not None:
        wire["num_predict"] = limit
    if request.temperature is not None:
        wire["temperature"] = request.temperature
    if request.top_p is not None:
        wire["top_p"] = request.top_p
    stop = request.stop
    if stop is not None:
        wire["stop"] = [stop] if isinstance(stop, str) else stop
    if request.seed is not None:
        wire["seed"] = request.seed
    return wire or None


def _check(request: ChatRequest, options: OllamaOptions, forced: list[str] | None) -> None:
    model = request.model
    if request.n is not None and request.n > 1:
        raise _bad("Ollama gives one answer per call; leave n out or set it to 1", model)
    offered = request.tools and request.tool_choice != "none"
    if request.parallel_tool_calls is False and offered and forced is None:
        raise _bad(
            "Ollama cannot limit a turn to one tool call; leave parallel_tool_calls out, or "
            "force one call with tool_choice='required' (or a named function)",
            model,
        )
    keep = options.keep_alive
    if isinstance(keep, str) and not _DURATION.fullmatch(keep):
        raise _bad(
            f"option keep_alive {keep!r} is not a duration; pass seconds or a string such as "
            "'10m' or '1h30m'",
            model,
        )


def encode_ollama_request(key: ProviderKey, request: ChatRequest, config: Config) -> HttpCall:
    """Build the HTTP call of an ``/api/chat`` request.

    Raises:
        InvalidRequestError: the request holds what Ollama cannot take (an
            image URL that is not base64 data, audio or file parts, ``n``
            above 1, a forced tool call together with ``response_format``,
            ``parallel_tool_calls=False`` without a forced call, tool
            arguments that are no object, a keep_alive that is no duration).
    """
    options = config.options if isinstance(config.options, OllamaOptions) else _NO_OPTIONS
    forced = _forced_names(request)
    _check(request, options, forced)
    payload: dict[str, Any] = {"model": request.model, "messages": _messages(request)}
    if request.tools and request.tool_choice != "none":
        # "none": a model that is offered no tool cannot call one.
        payload["tools"] = _tools(request)
    fmt = _format(request, forced)
    if fmt is not None:
        payload["format"] = fmt
    wire_options = _model_options(request, options)
    if wire_options is not None:
        payload["options"] = wire_options
    if options.think is not None:
        payload["think"] = options.think
    if options.keep_alive is not None:
        payload["keep_alive"] = options.keep_alive
    # Ollama streams unless told not to.
    payload["stream"] = request.stream
    if request.extra_body:
        payload.update(request.extra_body)
    headers = {"content-type": "application/json", "accept": "application/json"}
    headers.update(auth_headers(key, config))
    if request.extra_headers:
        headers.update(request.extra_headers)
    framing = _FORCED_FRAMING if forced is not None else "ndjson"
    return HttpCall(
        url=(config.api_base or "") + _PATH,
        body=_ENCODE.encode(payload),
        headers=headers,
        stream=request.stream,
        framing=framing,
    )


@encode_request.dispatch
def _encode(key: Ollama, request: ChatRequest, config: Config) -> Any:
    return encode_ollama_request(key, request, config)


# --- responses -------------------------------------------------------------------------

_NO_ARGUMENTS: Final = msgspec.Raw(b"{}")


class _Function(msgspec.Struct, gc=False):
    name: str = ""
    arguments: msgspec.Raw = _NO_ARGUMENTS


class _Call(msgspec.Struct, gc=False):
    function: _Function
    id: str | None = None


class _Message(msgspec.Struct, gc=False):
    content: str = ""
    thinking: str | None = None
    tool_calls: list[_Call] | None = None


class _Answer(msgspec.Struct, gc=False):
    model: str = ""
    message: _Message | None = None
    done: bool = False
    done_reason: str | None = None
    prompt_eval_count: int | None = None
    eval_count: int | None = None
    error: str | None = None


class _Forced(msgspec.Struct):
    name: str
    arguments: msgspec.Raw = _NO_ARGUMENTS


_DECODE_ANSWER = msgspec.json.Decoder(_Answer)
_EMPTY: Final = _Message()
_DECODE_FORCED = msgspec.json.Decoder(_Forced)


def _new_id() -> str:
    # Ollama's own form: servers before 0.12.10 send calls without ids.
    return "call_" + secrets.token_hex(4)


def _text(raw: msgspec.Raw) -> str:
    return bytes(raw).decode("utf-8")


def _finish(reason: str | None, calls: bool) -> str:
    # Ollama says "stop" after tool calls too.
    if calls:
        return "tool_calls"
    return "length" if reason == "length" else "stop"


def _usage(wire: _Answer) -> Usage:
    prompt = wire.prompt_eval_count or 0
    completion = wire.eval_count or 0
    return Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


def _forced_call(content: str, names: list[str] | None) -> tuple[str, str] | None:
    """The ``(name, arguments)`` a forced answer's content holds, or ``None``."""
    try:
        call = _DECODE_FORCED.decode(content)
    except (msgspec.DecodeError, RecursionError):
        return None  # cut short (done_reason "length") or not a call after all
    arguments = _text(call.arguments)
    if not call.name or not arguments.startswith("{") or (names and call.name not in names):
        return None
    return call.name, arguments


def _answer(wire: _Answer, message: _Message, forced: list[str] | None) -> ChatResponse:
    calls = [
        ToolCall(
            id=call.id or _new_id(),
            function=FunctionCall(
                name=call.function.name, arguments=_text(call.function.arguments)
            ),
        )
        for call in message.tool_calls or ()
    ]
    content = message.content
    if forced is not None and not calls:
        found = _forced_call(content, forced)
        if found is not None:
            name, arguments = found
            calls.append(
                ToolCall(id=_new_id(), function=FunctionCall(name=name, arguments=arguments))
            )
            content = ""
    reason = wire.done_reason
    return ChatResponse(
        model=wire.model,
        choices=[
            Choice(
                message=Message(
                    role="assistant",
                    content=content if content or not calls else None,
                    tool_calls=calls or None,
                    reasoning=message.thinking or None,
                ),
                finish_reason=_finish(reason, bool(calls)),
                native_finish_reason=reason,
            )
        ],
        usage=_usage(wire),
    )


def _not_an_answer(status: int, what: str) -> LLMError:
    return LLMError(
        f"ollama answered {status} with {what}, not a chat response; check api_base is the "
        f"Ollama server's root (http://localhost:{DEFAULT_PORT}, without /api or /v1)",
        provider="ollama",
        status=status,
    )


@decode_response.dispatch
def _decode_response(key: Ollama, response: HttpResponse, request: ChatRequest) -> Any:
    try:
        wire = _DECODE_ANSWER.decode(response.body)
    except msgspec.DecodeError:
        raise _not_an_answer(response.status, "a body that is not one JSON object") from None
    if wire.error is not None:
        # A 200 that holds an error: the server failed after answering "OK".
        error = error_from_body(key, 500, response.body, request.model)
        error.status = response.status
        raise error
    if wire.message is None:
        raise _not_an_answer(response.status, "an object without a message")
    return _answer(wire, wire.message, _forced_names(request))


# --- streams ---------------------------------------------------------------------------


class _ForcedToolFramer(NDJSONDecoder):
    """NDJSON lines, after one empty line that marks the stream as a forced tool call."""

    __slots__ = ("_marked",)

    def __init__(self) -> None:
        super().__init__()
        self._marked = False

    def feed(self, chunk: bytes) -> list[bytes]:
        """Return the lines ``chunk`` completes, the mark before the first."""
        lines = super().feed(chunk)
        if self._marked:
            return lines
        self._marked = True
        return [b"", *lines]

    def flush(self) -> list[bytes]:
        """Return the unterminated last line, if any (the mark if nothing came)."""
        lines = super().flush()
        if self._marked:
            return lines
        self._marked = True
        return [b"", *lines]


register_framing(_FORCED_FRAMING, _ForcedToolFramer, bytes)


def _piece(item: _Answer, message: _Message | None, state: StreamState) -> StreamChunk | None:
    """The chunk of a line off the fast path: the first, thinking, calls, a forced call, the end."""
    data = state.data
    role = None
    if "model" not in data:
        data.update(model=item.model, calls=0)
        role = "assistant"
    if message is None:
        message = _EMPTY
    content = message.content
    thinking = message.thinking
    deltas = [
        _call_delta(data, call.id or _new_id(), call.function.name, _text(call.function.arguments))
        for call in message.tool_calls or ()
    ]
    held = data.get("held")
    if held is not None and content:
        held.append(content)  # a forced call: read whole at the end
        content = ""
    finish = native = usage = None
    if item.done:
        state.done = True
        if held:
            text = "".join(held)
            found = _forced_call(text, None) if not data["calls"] else None
            if found is not None:
                deltas.append(_call_delta(data, _new_id(), *found))
            else:
                content += text
        native = item.done_reason
        finish = _finish(native, bool(data["calls"]))
        usage = _usage(item)
    if not (role or content or thinking or deltas or item.done):
        return None
    return StreamChunk(
        model=data["model"],
        choices=[
            ChunkChoice(
                delta=Delta(
                    role=role,
                    content=content or None,
                    reasoning=thinking or None,
                    tool_calls=deltas or None,
                ),
                finish_reason=finish,
                native_finish_reason=native,
            )
        ],
        usage=usage,
    )


def _call_delta(data: dict[str, Any], ident: str, name: str, arguments: str) -> ToolCallDelta:
    # Ollama sends each call whole: one delta per call, indexed in stream order.
    index = data["calls"]
    data["calls"] = index + 1
    return ToolCallDelta(
        index=index,
        id=ident,
        type="function",
        function=FunctionCallDelta(name=name, arguments=arguments),
    )


@decode_event.dispatch
def _decode_event(key: Ollama, event: bytes, state: StreamState) -> Any:
    try:
        item = _DECODE_ANSWER.decode(event)
    except msgspec.DecodeError as exc:
        if not event:
            # The mark of a forced tool call (NDJSON lines are never empty).
            state.data["held"] = []
            return None
        return LLMError(
            f"ollama sent a stream line that is not a JSON object ({exc}); the stream is "
            "corrupt, retry the call",
            provider=key.name,
            model=state.model,
        )
    if item.error is not None:
        return _stream_error(key, item.error, state.model)
    message = item.message
    data = state.data
    if (
        not item.done
        and message is not None
        and not message.thinking
        and message.tool_calls is None
        and "model" in data
        and "held" not in data
    ):
        # The commonest line of all, a piece of text: built here, without a call.
        if not message.content:
            return None
        return StreamChunk(
            model=data["model"], choices=[ChunkChoice(delta=Delta(content=message.content))]
        )
    return _piece(item, message, state)


def _stream_error(key: ProviderKey, message: str, model: str | None) -> LLMError:
    error = _classify(key, 500, message, model)
    error.status = None  # the stream's status was 200; this came after it
    error.message = f"{message}. The stream broke off: the answer is incomplete; retry the call"
    return error


# --- errors ----------------------------------------------------------------------------


class _ErrorBody(msgspec.Struct):
    error: str | None = None


_DECODE_ERROR = msgspec.json.Decoder(_ErrorBody)
_CONTEXT: Final = ("context length", "context limit", "context window")


def error_from_body(key: ProviderKey, status: int, body: bytes, model: str | None) -> LLMError:
    """Map Ollama's ``{"error": "..."}`` body and the HTTP status to the llmkit error.

    A body that is no such object (``404 page not found`` for a wrong path)
    is quoted as it is.
    """
    message = None
    with contextlib.suppress(msgspec.DecodeError):
        message = _DECODE_ERROR.decode(body).error
    if not message:
        message = body[:500].decode("utf-8", "replace").strip() or f"HTTP {status}, no body"
    return _classify(key, status, message, model)


def _classify(key: ProviderKey, status: int, message: str, model: str | None) -> LLMError:
    common: dict[str, Any] = {"provider": key.name, "model": model, "status": status}
    lowered = message.lower()
    if status == 404:
        if "model" in lowered:
            pull = f"`ollama pull {model}`" if model else "`ollama pull <model>`"
            return NotFoundError(
                f"{message}. The model has not been pulled on this server: run {pull} (or "
                "check the name with `ollama list`)",
                **common,
            )
        return NotFoundError(
            f"{message}. Check api_base: it is the Ollama server's root "
            f"(http://localhost:{DEFAULT_PORT}), without /api or /v1",
            **common,
        )
    if any(text in lowered for text in _CONTEXT):
        return ContextWindowError(
            f"{message}. Shorten the messages, or raise the context with "
            "options={'model_options': {'num_ctx': ...}}",
            **common,
        )
    if status == 400 and "does not support" in lowered:
        return InvalidRequestError(
            f"{message}. Pick a model that can (see `ollama show {model or '<model>'}`), or "
            "leave out what it cannot do (tools, images, the think option)",
            **common,
        )
    if status == 401:
        return AuthenticationError(
            f"{message}. Pass api_key= (an ollama.com key, or what the proxy in front of the "
            "server expects)",
            **common,
        )
    if status == 403:
        return PermissionDeniedError(message, **common)
    if status == 429:
        return RateLimitError(f"{message}. Slow down or retry later.", **common)
    if status in (400, 413, 422):
        return InvalidRequestError(message, **common)
    if status in (408, 409) or status >= 500:
        return ServiceUnavailableError(
            f"{message}. The Ollama server failed or is busy; retry later", **common
        )
    return LLMError(message, **common)


@decode_error.dispatch
def _decode_error(key: Ollama, response: HttpResponse, request: ChatRequest) -> Any:
    return error_from_body(key, response.status, response.body, request.model)


# --- capabilities and health ---------------------------------------------------------

# A local server runs whatever model it was given: what it supports is the
# model's business, so every flag the API can carry is on.
_CAPABILITIES: Final = Capabilities(
    streaming=True,
    tools=True,
    parallel_tool_calls=True,
    vision=True,
    json_mode=True,
    json_schema=True,
    reasoning=True,
)


@capabilities.dispatch
def _capabilities(key: Ollama, model: str) -> Any:
    return _CAPABILITIES


@probe.dispatch
def _probe(key: Ollama, config: Config) -> Any:
    # The default probe lists models at {api_base}/models in OpenAI's shape;
    # Ollama serves that list (the pulled models) under /v1.
    listing = probe.invoke(ProviderKey, Config)
    return listing(key, msgspec.structs.replace(config, api_base=(config.api_base or "") + "/v1"))
