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
* remote image URLs are refused (a codec does not fetch): send ``data:`` URLs,
  whose base64 is checked before the call;
* tool-call arguments the server sends must be an object (``null``, which
  Go writes for an empty map, is ``{}``; a string holding a JSON object is
  read as that object); anything else raises ``LLMError``;
* ``options`` entries Ollama knows (``num_ctx``, ``temperature``, ``stop``...)
  are checked for type and range before the call: the server answers a
  wrong type with a 500 that is no outage, so that 500 is not retried either;
* capabilities are per model family (:mod:`llmkit_providers._ollama_models`).

Provider options (``Config(options=...)``, :class:`OllamaOptions`): ``think``,
``keep_alive`` and ``model_options`` (more ``options`` entries, ``num_ctx``
the usual one).
"""

from __future__ import annotations

import binascii
import contextlib
import functools
import re
import secrets
import threading
from collections import OrderedDict
from typing import Any, Final, Literal

import msgspec

from llmkit.provider import (
    AuthenticationError,
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
    StreamInterruptedError,
    StreamState,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    Usage,
    auth_headers,
    body_text,
    capabilities,
    decode_error,
    decode_event,
    decode_response,
    encode_request,
    probe,
    register_framing,
    unregister_framing,
)
from llmkit_providers._ollama_host import CONNECT_HINT, DEFAULT_PORT, ollama_base_url
from llmkit_providers._ollama_models import model_capabilities
from llmkit_providers._ollama_options import (
    INTEGER_LIMIT,
    keep_alive_problem,
    options_problem,
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

_PATH: Final = "/api/chat"
# What the stream of a call that forces a tool is framed with: NDJSON, with
# a first event (the mark, never a JSON line) that tells the decoder to read
# the answer as a call: empty, or NUL and the JSON list of the names allowed.
_FORCED_FRAMING: Final = "ollama-forced-tool"
_MARK: Final = b"\x00"


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
    connect_hint = CONNECT_HINT

    @classmethod
    def base_url_from_env(cls, value: str) -> str:
        """``OLLAMA_HOST`` read as Ollama reads it (see :func:`ollama_base_url`).

        Raises:
            InvalidRequestError: the value holds credentials, a query, or an
                unclosed IPv6 bracket.
        """
        return ollama_base_url(value, provider=cls.name)


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
        try:
            # What Go's JSON decoding of the server's []byte takes: standard
            # alphabet, padded. Checked here, or the server answers 400.
            valid = bool(binascii.a2b_base64(data, strict_mode=True))
        except (binascii.Error, ValueError):
            valid = False
        if not valid:
            raise _bad(
                f"{where} is a data: URL whose data is empty or not valid base64 (the standard "
                "alphabet A-Z a-z 0-9 + /, padded with =); encode the image bytes with "
                "base64.b64encode",
                model,
            )
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
    given = options.model_options
    wire: dict[str, Any] = {}
    if given:
        # None leaves an option unset, as Ollama reads a null.
        wire = {name: value for name, value in given.items() if value is not None}
        _refuse_options(wire, request.model)
    # The request's own settings are checked by ChatRequest, but for the
    # size of its integers, which Ollama reads through a float64.
    limit = request.max_completion_tokens or request.max_tokens
    if limit is not None:
        if limit > INTEGER_LIMIT:
            _refuse_options({"num_predict": limit}, request.model)
        wire["num_predict"] = limit
    if request.temperature is not None:
        wire["temperature"] = request.temperature
    if request.top_p is not None:
        wire["top_p"] = request.top_p
    stop = request.stop
    if stop is not None:
        wire["stop"] = [stop] if isinstance(stop, str) else stop
    seed = request.seed
    if seed is not None:
        if not -INTEGER_LIMIT <= seed <= INTEGER_LIMIT:
            _refuse_options({"seed": seed}, request.model)
        wire["seed"] = seed
    return wire or None


def _refuse_options(wire: dict[str, Any], model: str) -> None:
    problem = options_problem(wire)
    if problem is not None:
        raise _bad(problem, model)


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
    problem = keep_alive_problem(options.keep_alive)
    if problem is not None:
        raise _bad(problem, model)


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
    framing = _forced_framing(forced) if forced is not None and request.stream else "ndjson"
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
_DECODE_STRING = msgspec.json.Decoder(str)
_DECODE_NAMES = msgspec.json.Decoder(list[str])


def _new_id() -> str:
    # Ollama's own form: servers before 0.12.10 send calls without ids.
    return "call_" + secrets.token_hex(4)


def _text(raw: msgspec.Raw) -> str:
    return bytes(raw).decode("utf-8")


def _call_arguments(raw: msgspec.Raw, model: str | None) -> str:
    """The JSON text of a call's arguments, which must be an object.

    Go writes an empty map as ``null``: that is ``{}``. A string that holds
    a JSON object (as OpenAI's shape has it) is read as that object.

    Raises:
        LLMError: the arguments are no object (they could not go back to
            the server on the next turn).
    """
    text = bytes(raw)
    head = text[:1]
    if head == b"{":
        return text.decode("utf-8")
    if text == b"null":
        return "{}"
    if head == b'"':
        with contextlib.suppress(msgspec.DecodeError, RecursionError):
            inner = _DECODE_STRING.decode(text)
            _ARGUMENTS.decode(inner)
            return inner
    shown = text[:60].decode("utf-8", "replace") + ("..." if len(text) > 60 else "")
    raise LLMError(
        f"ollama sent tool-call arguments that are not a JSON object ({shown}); the model's "
        "call is unusable: retry the call, or check the model's tool template",
        provider="ollama",
        model=model,
    )


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


def _answer(wire: _Answer, message: _Message, forced: list[str] | None, model: str) -> ChatResponse:
    calls = [
        ToolCall(
            id=call.id or _new_id(),
            function=FunctionCall(
                name=call.function.name,
                arguments=_call_arguments(call.function.arguments, model),
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


def _too_deep(what: str, model: str | None, status: int | None = None) -> LLMError:
    return LLMError(
        f"ollama sent {what} nested too deeply to read (JSON deeper than Python's recursion "
        "limit); the answer is unusable: retry the call, or ask for a flatter answer",
        provider="ollama",
        model=model,
        status=status,
    )


@decode_response.dispatch
def _decode_response(key: Ollama, response: HttpResponse, request: ChatRequest) -> Any:
    try:
        wire = _DECODE_ANSWER.decode(response.body)
    except msgspec.DecodeError:
        raise _not_an_answer(response.status, "a body that is not one JSON object") from None
    except RecursionError:
        raise _too_deep("an answer", request.model, response.status) from None
    if wire.error is not None:
        # A 200 that holds an error: the server failed after answering "OK".
        error = error_from_body(key, 500, response.body, request.model)
        error.status = response.status
        raise error
    if wire.message is None:
        raise _not_an_answer(response.status, "an object without a message")
    if not wire.done:
        # The last line of a stream holds the whole answer; one that is not
        # done is a piece of it.
        raise StreamInterruptedError(
            "ollama answered with a body that says done: false: the answer is incomplete "
            "(a proxy that cut a stream?); retry the call",
            provider="ollama",
            model=request.model,
            status=response.status,
        )
    return _answer(wire, wire.message, _forced_names(request), request.model)


# --- streams ---------------------------------------------------------------------------


class _ForcedToolFramer(NDJSONDecoder):
    """NDJSON lines, after one mark line that says the stream is a forced tool call."""

    __slots__ = ("_mark", "_marked")

    def __init__(self, mark: bytes = b"") -> None:
        super().__init__()
        self._mark = mark
        self._marked = False

    def feed(self, chunk: bytes) -> list[bytes]:
        """Return the lines ``chunk`` completes, the mark before the first."""
        lines = super().feed(chunk)
        if self._marked:
            return lines
        self._marked = True
        return [self._mark, *lines]

    def flush(self) -> list[bytes]:
        """Return the unterminated last line, if any (the mark if nothing came)."""
        lines = super().flush()
        if self._marked:
            return lines
        self._marked = True
        return [self._mark, *lines]


register_framing(_FORCED_FRAMING, _ForcedToolFramer, bytes)

# The stream decoder sees no request: a forced call's framing carries the
# names it allows, one framing per set of names, so that the streamed call
# is checked as the whole answer is. The few sets a program forces stay
# registered; past the limit the oldest goes.
_NAMED_FRAMINGS: OrderedDict[str, None] = OrderedDict()
_NAMED_LIMIT: Final = 64
_naming = threading.Lock()


def _forced_framing(names: list[str]) -> str:
    mark = _MARK + _ENCODE.encode(names)
    name = f"{_FORCED_FRAMING}:{mark[1:].decode()}"
    with _naming:
        # Registered on every call: a registry restored since (scoped_providers)
        # may have dropped it.
        register_framing(name, functools.partial(_ForcedToolFramer, mark), bytes)
        _NAMED_FRAMINGS[name] = None
        _NAMED_FRAMINGS.move_to_end(name)
        while len(_NAMED_FRAMINGS) > _NAMED_LIMIT:
            unregister_framing(_NAMED_FRAMINGS.popitem(last=False)[0])
    return name


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
        _call_delta(
            data,
            call.id or _new_id(),
            call.function.name,
            _call_arguments(call.function.arguments, state.model),
        )
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
            found = _forced_call(text, data.get("names")) if not data["calls"] else None
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
        if event[:1] == _MARK:
            # The mark with the names the call may take.
            state.data["held"] = []
            state.data["names"] = _DECODE_NAMES.decode(event[1:])
            return None
        return LLMError(
            f"ollama sent a stream line that is not a JSON object ({exc}); the stream is "
            "corrupt, retry the call",
            provider=key.name,
            model=state.model,
        )
    except RecursionError:
        return _too_deep("a stream line", state.model)
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
    message = _capped(message) or "the Ollama server reported an error without saying which"
    error = _classify(key, 500, message, model)
    error.status = None  # the stream's status was 200; this came after it
    error.message = f"{message}. The stream broke off: the answer is incomplete; retry the call"
    return error


# --- errors ----------------------------------------------------------------------------


class _ErrorBody(msgspec.Struct):
    error: str | None = None


_DECODE_ERROR = msgspec.json.Decoder(_ErrorBody)
_CONTEXT: Final = ("context length", "context limit", "context window")
# How much of a server's message an error quotes.
_MESSAGE_LIMIT: Final = 500
# Ollama's 500s for a request it cannot use, which no retry mends: an option
# of the wrong type ('option "temperature" must be of type float32') and a
# format that is neither "json" nor a schema.
_REQUEST_500: Final = re.compile(r'option "[^"]*" must be of|invalid format:')


def _capped(message: str) -> str:
    if len(message) <= _MESSAGE_LIMIT:
        return message
    # Cut before a word, as raw bodies are, so no fragment of an echoed key
    # survives too short for the scrubber to know it.
    return body_text(message.encode(), _MESSAGE_LIMIT)


def error_from_body(key: ProviderKey, status: int, body: bytes, model: str | None) -> LLMError:
    """Map Ollama's ``{"error": "..."}`` body and the HTTP status to the llmkit error.

    A body that is no such object (``404 page not found`` for a wrong path)
    is quoted as it is, its JSON escapes resolved (so that a key it echoes
    is scrubbed). Either is cut at 500 characters.
    """
    message = None
    with contextlib.suppress(msgspec.DecodeError, RecursionError):
        message = _DECODE_ERROR.decode(body).error
    if message:
        message = _capped(message)
    else:
        message = body_text(body, _MESSAGE_LIMIT) or f"HTTP {status}, no body"
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
    if status == 500 and _REQUEST_500.search(message):
        return InvalidRequestError(
            f"{message}. The server cannot use the request as sent (no retry mends it): fix "
            "the option's type in options={'model_options': {...}}, or the response_format",
            **common,
        )
    if status in (408, 409) or status >= 500:
        return ServiceUnavailableError(
            f"{message}. The Ollama server failed or is busy; retry later", **common
        )
    return LLMError(message, **common)


@decode_error.dispatch
def _decode_error(key: Ollama, response: HttpResponse, request: ChatRequest) -> Any:
    return error_from_body(key, response.status, response.body, request.model)


# --- capabilities and health ---------------------------------------------------------


@capabilities.dispatch
def _capabilities(key: Ollama, model: str) -> Any:
    # By the model's family, as Ollama's library tags it; "" (the provider as
    # a whole) and unknown families get what the server does for any model.
    return model_capabilities(model)


@probe.dispatch
def _probe(key: Ollama, config: Config) -> Any:
    # The default probe lists models at {api_base}/models in OpenAI's shape;
    # Ollama serves that list (the pulled models) under /v1.
    listing = probe.invoke(ProviderKey, Config)
    return listing(key, msgspec.structs.replace(config, api_base=(config.api_base or "") + "/v1"))
