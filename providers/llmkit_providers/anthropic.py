"""Anthropic's Messages API (``POST /v1/messages``), as a native codec.

Wire facts this module rests on (from recorded traffic and the API reference):

* the base URL is the host alone and the path carries the version
  (``/v1/messages``), as the official SDKs and ``ANTHROPIC_BASE_URL`` have
  it, so a proxy base URL set for them works here unchanged;
* the key travels bare in ``x-api-key``, every request names the API
  version in ``anthropic-version``, and ``max_tokens`` is required;
* the system prompt is a top-level field (a string or text blocks), never a
  message; messages are ``user`` or ``assistant``, and consecutive turns of
  one role are combined by the API;
* tool results are ``tool_result`` blocks of the user turn that follows the
  assistant's ``tool_use`` blocks, so consecutive ``tool`` messages become
  one user turn;
* ``input_tokens`` leaves out the prompt tokens read from or written to the
  cache, which come apart as ``cache_read_input_tokens`` and
  ``cache_creation_input_tokens``;
* a stream is ``message_start`` (id, model, input usage), per content block
  ``content_block_start`` / ``content_block_delta`` / ``content_block_stop``,
  ``message_delta`` (stop reason and the cumulative output usage),
  ``message_stop`` (the end marker), with ``ping`` keep-alives and an
  ``error`` event when the stream fails midway.

Choices made where the two shapes differ:

* ``max_tokens`` defaults to 4,096 (``AnthropicOptions.max_tokens``), which
  every Claude model since Claude 3 can produce; with a thinking budget the
  budget comes on top, since Anthropic counts thinking inside ``max_tokens``;
* ``prompt_tokens`` is OpenAI's: every prompt token, so it adds the cache's
  reads (``cached_tokens``) and writes (``cache_write_tokens``) to
  ``input_tokens``;
* ``response_format`` ``json_schema`` becomes ``output_config.format`` (with
  every object closed, as Anthropic requires); ``json_object``, which
  Anthropic has no mode for, appends :data:`JSON_OBJECT_INSTRUCTION` to the
  system prompt;
* ``end_turn`` and ``stop_sequence`` finish with ``stop``, ``max_tokens``
  with ``length``, ``tool_use`` with ``tool_calls``, ``refusal`` with
  ``content_filter``; ``pause_turn`` (a server tool loop paused) and
  ``model_context_window_exceeded`` with ``length``, the answer being
  unfinished; the raw value stays in ``native_finish_reason``.

What llmkit's OpenAI-shaped types cannot hold rides in
``Message.provider_data["anthropic"]``: ``{"content": [...]}`` is the answer's
block layout, with thinking blocks (their signatures), redacted thinking and
server-tool blocks kept whole and ``{"type": "text"}`` / ``{"type":
"tool_use", "id": ...}`` markers where the message's own text and tool calls
stood. Sent back in the history, the assistant turn is rebuilt in that
order. On a user, system or tool message, ``{"cache_control": {...}}`` puts
a cache breakpoint on its last block, and ``{"is_error": true}`` marks a
tool result as a failure.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Any, Final

import msgspec

from llmkit.provider import (
    AuthenticationError,
    Capabilities,
    ChatRequest,
    ChatResponse,
    Choice,
    ChunkChoice,
    CompletionTokensDetails,
    Config,
    ContextWindowError,
    Delta,
    FilePart,
    FunctionCall,
    FunctionCallDelta,
    HttpCall,
    HttpResponse,
    ImagePart,
    InvalidRequestError,
    LLMError,
    Message,
    NotFoundError,
    PermissionDeniedError,
    PromptTokensDetails,
    ProviderKey,
    RateLimitError,
    ServiceUnavailableError,
    SSEEvent,
    StreamChunk,
    StreamState,
    TextPart,
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
)

__all__ = [
    "API_VERSION",
    "DEFAULT_MAX_TOKENS",
    "JSON_OBJECT_INSTRUCTION",
    "Anthropic",
    "AnthropicOptions",
    "encode_anthropic_request",
    "error_from_body",
]

API_VERSION: Final = "2023-06-01"
#: ``max_tokens`` when the request gives none: every Claude model since
#: Claude 3 can produce this many tokens, and the API refuses a call without it.
DEFAULT_MAX_TOKENS: Final = 4096
#: Anthropic has no JSON mode: ``response_format={"type": "json_object"}``
#: appends this to the system prompt (a JSON schema uses ``output_config``).
JSON_OBJECT_INSTRUCTION: Final = (
    "Respond with a single JSON object and nothing else: no prose and no Markdown code fences."
)
_PATH: Final = "/v1/messages"
_MIN_THINKING: Final = 1024


class AnthropicOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Anthropic settings for ``Config(options=...)``.

    Attributes:
        thinking_budget: turns extended thinking on with this many tokens
            (at least 1,024). The budget is a ceiling: a call whose
            ``max_tokens`` leaves less than 1,024 tokens for thinking, or
            that forces a tool (``tool_choice`` ``required`` or named, which
            Anthropic refuses with thinking), is sent without thinking.
            Thinking also wants no ``temperature`` but 1, which is left to
            the API to refuse.
        adaptive_thinking: ``thinking: {"type": "adaptive"}``, where the
            model decides how much to think (Opus 4.6 and later); not with
            ``thinking_budget``.
        effort: ``output_config.effort`` (``low``, ``medium``, ``high``,
            ``xhigh``, ``max``) on the models that take it.
        max_tokens: ``max_tokens`` for a request that gives none (thinking
            tokens come on top when ``thinking_budget`` is set).
        betas: sent in the ``anthropic-beta`` header, to enable beta features.
    """

    thinking_budget: Annotated[int, msgspec.Meta(ge=_MIN_THINKING)] | None = None
    adaptive_thinking: bool = False
    effort: str | None = None
    max_tokens: Annotated[int, msgspec.Meta(ge=1)] = DEFAULT_MAX_TOKENS
    betas: tuple[str, ...] = ()


class Anthropic(ProviderKey):
    """Anthropic's own API (``api.anthropic.com``); key from ``ANTHROPIC_API_KEY``."""

    __slots__ = ()
    name = "anthropic"
    default_base_url = "https://api.anthropic.com"
    api_key_env = "ANTHROPIC_API_KEY"
    base_url_env = "ANTHROPIC_BASE_URL"
    auth_header = "x-api-key"
    auth_prefix = ""
    request_id_headers = ("request-id", "x-request-id")
    options_type = AnthropicOptions


_NO_OPTIONS: Final = AnthropicOptions()
_ENCODE = msgspec.json.Encoder()
_ARGUMENTS = msgspec.json.Decoder(dict[str, Any])
_IMAGE_TYPES: Final = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_DATA_URL: Final = re.compile(r"data:([^;,]*)((?:;[^;,=]*=[^;,]*)*);base64,(.*)", re.DOTALL)

# --- requests --------------------------------------------------------------------------


def _bad(message: str, model: str) -> InvalidRequestError:
    return InvalidRequestError(message, provider="anthropic", model=model)


def _data_url(url: str, where: str, model: str) -> tuple[str, str]:
    match = _DATA_URL.fullmatch(url)
    if match is None:
        raise _bad(f"{where} is a data: URL that is not base64; encode it as base64", model)
    return match.group(1).lower(), match.group(3)


def _image(url: str, where: str, model: str) -> dict[str, Any]:
    if url.startswith("data:"):
        media, data = _data_url(url, where, model)
        if media not in _IMAGE_TYPES:
            raise _bad(
                f"{where} is {media or 'untyped'}; Anthropic takes JPEG, PNG, GIF and WebP images",
                model,
            )
        return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise _bad(f"{where} must be an http(s) URL or a base64 data: URL", model)


def _document(part: FilePart, where: str, model: str) -> dict[str, Any]:
    file = part.file
    if file.file_data is None:
        raise _bad(
            f"{where} names a file_id; Anthropic's Files API is a beta llmkit does not model: "
            "send the file as file_data (a base64 data: URL)",
            model,
        )
    media, data = _data_url(file.file_data, where, model)
    if media == "application/pdf":
        source: dict[str, Any] = {"type": "base64", "media_type": media, "data": data}
    elif media == "text/plain":
        try:
            text = base64.b64decode(data, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise _bad(f"{where} is not base64 UTF-8 text", model) from None
        source = {"type": "text", "media_type": media, "data": text}
    else:
        raise _bad(f"{where} is {media or 'untyped'}; Anthropic takes PDF and plain text", model)
    block: dict[str, Any] = {"type": "document", "source": source}
    if file.filename:
        block["title"] = file.filename
    return block


def _kind(part: Any) -> str:
    return str(type(part).__struct_config__.tag)


def _blocks(content: Any, where: str, model: str, *, text_only: bool = False) -> list[Any]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[Any] = []
    for j, part in enumerate(content or ()):
        at = f"{where}.content[{j}]"
        if isinstance(part, TextPart):
            if part.text:
                blocks.append({"type": "text", "text": part.text})
        elif text_only:
            raise _bad(f"{at} is of type {_kind(part)!r}; only text can go here", model)
        elif isinstance(part, ImagePart):
            blocks.append(_image(part.image_url.url, at, model))
        elif isinstance(part, FilePart):
            blocks.append(_document(part, at, model))
        else:
            raise _bad(
                f"{at} is of type {_kind(part)!r}; Anthropic takes text, images and documents",
                model,
            )
    return blocks


def _own(message: Message) -> dict[str, Any] | None:
    data = message.provider_data
    if not data:
        return None
    own = data.get("anthropic")
    return own if isinstance(own, dict) else None


def _with_cache(blocks: list[Any], own: dict[str, Any] | None) -> list[Any]:
    # A breakpoint caches the prompt up to the end of the message that asks for it.
    cache = own.get("cache_control") if own else None
    if cache is not None and blocks:
        blocks[-1] = {**blocks[-1], "cache_control": cache}
    return blocks


def _arguments(call: ToolCall, where: str, model: str) -> Any:
    text = call.function.arguments
    if not text:
        return {}
    try:
        return _ARGUMENTS.decode(text)
    except (msgspec.DecodeError, RecursionError):
        raise _bad(
            f"{where} has arguments that are not a JSON object (or nest too deeply to read); "
            "Anthropic stores tool input as an object",
            model,
        ) from None


def _tool_use(call: ToolCall, where: str, model: str) -> dict[str, Any]:
    return {
        "type": "tool_use",
        "id": call.id,
        "name": call.function.name,
        "input": _arguments(call, where, model),
    }


def _assistant(message: Message, where: str, model: str) -> dict[str, Any]:
    content = message.content
    own = _own(message)
    calls = message.tool_calls
    if own is None and not calls and isinstance(content, str):
        return {"role": "assistant", "content": content}
    text = (
        content
        if isinstance(content, str)
        else "".join(p.text for p in content or () if isinstance(p, TextPart))
    )
    layout = own.get("content") if own else None
    if isinstance(layout, list):
        blocks = _laid_out(layout, text, calls or [], where, model)
    else:
        blocks = [{"type": "text", "text": text}] if text else []
        blocks += [
            _tool_use(c, f"{where}.tool_calls[{i}]", model) for i, c in enumerate(calls or ())
        ]
    return {"role": "assistant", "content": _with_cache(blocks, own)}


def _laid_out(
    layout: list[Any], text: str, calls: list[ToolCall], where: str, model: str
) -> list[Any]:
    """Rebuild an answer's blocks in the order it had, from its layout and the message.

    The message's text goes where its first text block stood and its tool
    calls where their ids stood; what the layout does not place (the
    message was edited) follows, text first.
    """
    waiting = {call.id: i for i, call in enumerate(calls)}
    blocks: list[Any] = []
    placed = False
    for item in layout:
        kind = item.get("type") if isinstance(item, dict) else None
        if not isinstance(kind, str):
            raise _bad(
                f"{where}.provider_data['anthropic']['content'] holds {item!r}, not a content "
                "block; keep the provider data of a response as it came",
                model,
            )
        if kind == "text":
            if text and not placed:
                blocks.append({"type": "text", "text": text})
            placed = True
        elif kind == "tool_use":
            index = waiting.pop(item.get("id"), None)
            if index is not None:
                blocks.append(_tool_use(calls[index], f"{where}.tool_calls[{index}]", model))
        else:
            blocks.append(item)
    if text and not placed:
        blocks.append({"type": "text", "text": text})
    blocks += [_tool_use(calls[i], f"{where}.tool_calls[{i}]", model) for i in waiting.values()]
    return blocks


def _tool_result(message: Message, where: str, model: str) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id}
    content = message.content
    if isinstance(content, str):
        if content:
            block["content"] = content
    else:
        parts = _blocks(content, where, model)
        if parts:
            block["content"] = parts
    own = _own(message)
    if own is not None:
        if own.get("is_error") is True:
            block["is_error"] = True
        if own.get("cache_control") is not None:
            block["cache_control"] = own["cache_control"]
    return block


def _messages(request: ChatRequest) -> tuple[list[Any], list[Any]]:
    """The request's history as Anthropic messages, and its system blocks.

    System and developer messages, wherever they stand, join the top-level
    system prompt in order (the API has no system role). Tool messages in a
    row become one user turn of ``tool_result`` blocks; a user message right
    after them joins that turn, after the results.
    """
    model = request.model
    system: list[Any] = []
    out: list[Any] = []
    results: list[Any] | None = None  # the open turn of tool results, if any
    for i, message in enumerate(request.messages):
        role = message.role
        where = f"messages[{i}]"
        if role == "user":
            content = message.content
            if results is None and type(content) is str and message.provider_data is None:
                out.append({"role": "user", "content": content})
                continue
            blocks = _with_cache(_blocks(content, where, model), _own(message))
            if results is not None:
                results += blocks
            else:
                out.append({"role": "user", "content": blocks})
        elif role == "tool":
            block = _tool_result(message, where, model)
            if results is None:
                results = [block]
                out.append({"role": "user", "content": results})
            else:
                results.append(block)
        elif role == "assistant":
            results = None
            out.append(_assistant(message, where, model))
        else:
            system += _with_cache(
                _blocks(message.content, where, model, text_only=True), _own(message)
            )
    return system, out


def _tool_choice(request: ChatRequest) -> dict[str, Any] | None:
    choice = request.tool_choice
    if choice is None:
        wire: dict[str, Any] | None = None
    elif isinstance(choice, ToolChoice):
        wire = {"type": "tool", "name": choice.function.name}
    elif choice == "required":
        wire = {"type": "any"}
    else:
        wire = {"type": choice}  # auto and none are spelt alike
    if request.parallel_tool_calls is False and request.tools:
        if wire is None:
            wire = {"type": "auto"}
        if wire["type"] != "none":
            wire["disable_parallel_tool_use"] = True
    return wire


def _tools(request: ChatRequest) -> list[Any]:
    tools = []
    for i, tool in enumerate(request.tools or ()):
        function = tool.function
        if tool.type != "function":
            raise _bad(
                f"tools[{i}] is of type {tool.type!r}; only function tools are modelled, "
                "send Anthropic's server tools in extra_body",
                request.model,
            )
        schema = function.parameters
        if schema is None:
            schema = {"type": "object", "properties": {}}
        elif schema.get("type") != "object":
            raise _bad(
                f"tools[{i}].function.parameters must be a JSON schema of type 'object'",
                request.model,
            )
        wire: dict[str, Any] = {"name": function.name, "input_schema": schema}
        if function.description is not None:
            wire["description"] = function.description
        if function.strict is not None:
            wire["strict"] = function.strict
        tools.append(wire)
    return tools


_NESTED_LISTS: Final = ("anyOf", "allOf", "oneOf", "prefixItems")
_NESTED_MAPS: Final = ("properties", "$defs", "definitions")


def _closed(schema: Any, where: str, model: str) -> Any:
    """A copy of ``schema`` whose objects refuse unknown properties, as Anthropic requires.

    Raises:
        InvalidRequestError: an object schema allows additional properties.
    """
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if out.get("type") == "object" or "properties" in out:
        extra = out.get("additionalProperties", False)
        if extra is not False:
            raise _bad(
                f"{where} allows additionalProperties; Anthropic's structured output needs "
                "every object closed (additionalProperties: false)",
                model,
            )
        out["additionalProperties"] = False
    for name in _NESTED_MAPS:
        value = out.get(name)
        if isinstance(value, dict):
            out[name] = {k: _closed(v, f"{where}.{name}.{k}", model) for k, v in value.items()}
    for name in _NESTED_LISTS:
        value = out.get(name)
        if isinstance(value, list):
            out[name] = [_closed(v, f"{where}.{name}[{j}]", model) for j, v in enumerate(value)]
    if isinstance(out.get("items"), dict):
        out["items"] = _closed(out["items"], f"{where}.items", model)
    return out


def _forces_tool(request: ChatRequest) -> bool:
    return request.tool_choice == "required" or isinstance(request.tool_choice, ToolChoice)


def _limits(request: ChatRequest, options: AnthropicOptions) -> tuple[int, dict[str, Any] | None]:
    """``max_tokens`` and the ``thinking`` field of a call.

    Anthropic counts thinking inside ``max_tokens`` and wants it above the
    budget, so a request without ``max_tokens`` gets the default on top of
    the budget, and one with a small ``max_tokens`` thinks less or not at all.
    """
    given = request.max_completion_tokens or request.max_tokens
    if options.adaptive_thinking:
        if options.thinking_budget is not None:
            raise _bad("set thinking_budget or adaptive_thinking, not both", request.model)
        return given or options.max_tokens, {"type": "adaptive"}
    budget = options.thinking_budget
    if budget is None or _forces_tool(request):
        return given or options.max_tokens, None
    if given is None:
        return budget + options.max_tokens, {"type": "enabled", "budget_tokens": budget}
    budget = min(budget, given - 1)
    if budget < _MIN_THINKING:
        return given, None
    return given, {"type": "enabled", "budget_tokens": budget}


def _output_config(request: ChatRequest, options: AnthropicOptions) -> dict[str, Any] | None:
    config: dict[str, Any] = {}
    fmt = request.response_format
    if fmt is not None and fmt.type == "json_schema" and fmt.json_schema is not None:
        schema = fmt.json_schema.schema
        if schema is None:
            raise _bad(
                "response_format.json_schema has no schema; Anthropic needs one",
                request.model,
            )
        config["format"] = {
            "type": "json_schema",
            "schema": _closed(schema, "response_format.json_schema.schema", request.model),
        }
    if options.effort is not None:
        config["effort"] = options.effort
    return config or None


def _check_sampling(request: ChatRequest) -> None:
    model = request.model
    if request.temperature is not None and request.temperature > 1:
        raise _bad(
            f"temperature must be between 0 and 1 for Anthropic, not {request.temperature}", model
        )
    if request.n is not None and request.n > 1:
        raise _bad("Anthropic gives one answer per call; leave n out or set it to 1", model)
    if request.seed is not None:
        raise _bad("Anthropic takes no seed; leave seed out", model)


def encode_anthropic_request(key: ProviderKey, request: ChatRequest, config: Config) -> HttpCall:
    """Build the HTTP call of a Messages API request.

    Raises:
        InvalidRequestError: the request holds what Anthropic cannot take (an
            audio part, a temperature above 1, ``n`` above 1, a seed, an open
            JSON schema object, a tool call whose arguments are no object).
    """
    options = config.options if isinstance(config.options, AnthropicOptions) else _NO_OPTIONS
    _check_sampling(request)
    system, messages = _messages(request)
    max_tokens, thinking = _limits(request, options)
    payload: dict[str, Any] = {"model": request.model, "max_tokens": max_tokens}
    fmt = request.response_format
    if fmt is not None and fmt.type == "json_object":
        system.append({"type": "text", "text": JSON_OBJECT_INSTRUCTION})
    if system:
        plain = len(system) == 1 and "cache_control" not in system[0]
        payload["system"] = system[0]["text"] if plain else system
    payload["messages"] = messages
    if request.tools:
        payload["tools"] = _tools(request)
    choice = _tool_choice(request)
    if choice is not None:
        payload["tool_choice"] = choice
    if thinking is not None:
        payload["thinking"] = thinking
    output = _output_config(request, options)
    if output is not None:
        payload["output_config"] = output
    stop = request.stop
    if stop is not None:
        payload["stop_sequences"] = [stop] if isinstance(stop, str) else stop
    if request.temperature is not None:
        payload["temperature"] = request.temperature
    if request.top_p is not None:
        payload["top_p"] = request.top_p
    if request.user is not None:
        payload["metadata"] = {"user_id": request.user}
    if request.stream:
        payload["stream"] = True
    if request.extra_body:
        payload.update(request.extra_body)
    headers = {
        "content-type": "application/json",
        "accept": "application/json",
        "anthropic-version": API_VERSION,
    }
    if options.betas:
        headers["anthropic-beta"] = ",".join(options.betas)
    headers.update(auth_headers(key, config))
    if request.extra_headers:
        headers.update(request.extra_headers)
    return HttpCall(
        url=(config.api_base or "") + _PATH,
        body=_ENCODE.encode(payload),
        headers=headers,
        stream=request.stream,
    )


@encode_request.dispatch
def _encode(key: Anthropic, request: ChatRequest, config: Config) -> Any:
    return encode_anthropic_request(key, request, config)


# --- responses -------------------------------------------------------------------------


_NO_INPUT: Final = msgspec.Raw(b"{}")


class _Block(msgspec.Struct, gc=False):
    type: str = ""
    text: str | None = None
    id: str | None = None
    name: str | None = None
    input: msgspec.Raw = _NO_INPUT
    thinking: str | None = None
    signature: str | None = None
    data: str | None = None


class _OutputDetails(msgspec.Struct, gc=False):
    thinking_tokens: int | None = None


class _Usage(msgspec.Struct, gc=False):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    output_tokens_details: _OutputDetails | None = None


class _ErrorBody(msgspec.Struct):
    type: str = ""
    message: str = ""


class _Message(msgspec.Struct):
    type: str = ""
    id: str = ""
    model: str = ""
    content: list[_Block] = msgspec.field(default_factory=list)
    stop_reason: str | None = None
    usage: _Usage | None = None
    error: _ErrorBody | None = None
    request_id: str | None = None


class _Delta(msgspec.Struct, gc=False):
    type: str = ""
    text: str | None = None
    partial_json: str | None = None
    thinking: str | None = None
    signature: str | None = None
    stop_reason: str | None = None


class _Event(msgspec.Struct, gc=False):
    type: str = ""
    index: int = 0
    delta: _Delta | None = None
    content_block: _Block | None = None
    message: _Message | None = None
    usage: _Usage | None = None
    error: _ErrorBody | None = None


_DECODE_MESSAGE = msgspec.json.Decoder(_Message)
_DECODE_EVENT = msgspec.json.Decoder(_Event)

_FINISH: Final = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    # The answer is unfinished: a server tool loop paused (send the turn back
    # to go on) or the context window filled up.
    "pause_turn": "length",
    "model_context_window_exceeded": "length",
}
# Blocks llmkit's message fields hold; any other kind is kept whole in provider_data.
_MODELLED: Final = frozenset({"text", "tool_use"})


def _finish(reason: str | None) -> str | None:
    if reason is None:
        return None
    return _FINISH.get(reason, "stop")


def _merged(start: _Usage | None, end: _Usage | None) -> _Usage | None:
    # message_delta's counts are cumulative: each replaces message_start's.
    if end is None or start is None:
        return end or start
    return _Usage(
        input_tokens=start.input_tokens if end.input_tokens is None else end.input_tokens,
        output_tokens=start.output_tokens if end.output_tokens is None else end.output_tokens,
        cache_creation_input_tokens=start.cache_creation_input_tokens
        if end.cache_creation_input_tokens is None
        else end.cache_creation_input_tokens,
        cache_read_input_tokens=start.cache_read_input_tokens
        if end.cache_read_input_tokens is None
        else end.cache_read_input_tokens,
        output_tokens_details=end.output_tokens_details or start.output_tokens_details,
    )


def _usage(wire: _Usage | None) -> Usage | None:
    """OpenAI-style usage: the prompt count includes the cache's reads and writes."""
    if wire is None:
        return None
    read = wire.cache_read_input_tokens
    written = wire.cache_creation_input_tokens
    prompt = (wire.input_tokens or 0) + (read or 0) + (written or 0)
    completion = wire.output_tokens or 0
    details = wire.output_tokens_details
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        prompt_tokens_details=None
        if read is None and written is None
        else PromptTokensDetails(cached_tokens=read, cache_write_tokens=written),
        completion_tokens_details=None
        if details is None or details.thinking_tokens is None
        else CompletionTokensDetails(reasoning_tokens=details.thinking_tokens),
    )


def _raw_text(raw: msgspec.Raw) -> str:
    return bytes(raw).decode("utf-8")


def _kept(block: _Block, whole: Any) -> Any:
    """The layout entry of one block: a marker for what the message holds, else the block."""
    kind = block.type
    if kind == "text":
        return {"type": "text"}
    if kind == "tool_use":
        return {"type": "tool_use", "id": block.id}
    if kind == "thinking":
        return {"type": "thinking", "thinking": block.thinking or "", "signature": block.signature}
    if kind == "redacted_thinking":
        return {"type": "redacted_thinking", "data": block.data}
    return whole


def _answer(wire: _Message, body: bytes) -> ChatResponse:
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[ToolCall] = []
    special = False
    for block in wire.content:
        kind = block.type
        if kind == "text":
            texts.append(block.text or "")
        elif kind == "tool_use":
            calls.append(
                ToolCall(
                    id=block.id or "",
                    function=FunctionCall(name=block.name or "", arguments=_raw_text(block.input)),
                )
            )
        else:
            special = True
            if kind == "thinking" and block.thinking:
                thoughts.append(block.thinking)
    data = None
    if special:
        # Blocks llmkit does not model are kept whole: read the body once more, untyped.
        whole = msgspec.json.decode(body).get("content") or []
        layout = [_kept(block, whole[i]) for i, block in enumerate(wire.content)]
        data = {"anthropic": {"content": layout}}
    text = "".join(texts)
    message = Message(
        role="assistant",
        content=text if text or not calls else None,
        tool_calls=calls or None,
        reasoning="".join(thoughts) or None,
        provider_data=data,
    )
    reason = wire.stop_reason
    return ChatResponse(
        id=wire.id,
        model=wire.model,
        choices=[
            Choice(message=message, finish_reason=_finish(reason), native_finish_reason=reason)
        ],
        usage=_usage(wire.usage),
    )


@decode_response.dispatch
def _decode_response(key: Anthropic, response: HttpResponse, request: ChatRequest) -> Any:
    try:
        wire = _DECODE_MESSAGE.decode(response.body)
    except msgspec.DecodeError as exc:
        raise LLMError(
            f"anthropic answered {response.status} with a body that is not a message ({exc}); "
            "check api_base points at Anthropic's API (without /v1)",
            provider=key.name,
            model=request.model,
            status=response.status,
        ) from None
    if wire.type == "error" or wire.error is not None:
        raise error_from_body(key, None, response.body, request.model)
    if wire.type != "message":
        raise LLMError(
            f"anthropic answered {response.status} with a {wire.type or 'typeless'} object, "
            "not a message; check api_base points at Anthropic's API (without /v1)",
            provider=key.name,
            model=request.model,
            status=response.status,
        )
    return _answer(wire, response.body)


# --- streams ---------------------------------------------------------------------------


def _chunk(
    data: dict[str, Any],
    delta: Delta,
    finish: str | None = None,
    native: str | None = None,
    usage: Usage | None = None,
) -> StreamChunk:
    return StreamChunk(
        id=data["id"],
        model=data["model"],
        choices=[ChunkChoice(delta=delta, finish_reason=finish, native_finish_reason=native)],
        usage=usage,
    )


def _layout(data: dict[str, Any]) -> dict[str, Any]:
    return {"anthropic": {"content": list(data["layout"])}}


def _started(item: _Event, event: SSEEvent, data: dict[str, Any]) -> StreamChunk | None:
    block = item.content_block
    if block is None:
        return None
    kind = block.type
    if kind == "text":
        data["layout"].append({"type": "text"})
        return _chunk(data, Delta(content=block.text)) if block.text else None
    if kind == "tool_use":
        calls = data["calls"]
        index = calls[item.index] = len(calls)
        data["layout"].append({"type": "tool_use", "id": block.id})
        call = ToolCallDelta(
            index=index,
            id=block.id,
            type="function",
            function=FunctionCallDelta(name=block.name, arguments=""),
        )
        return _chunk(data, Delta(tool_calls=[call]))
    data["special"] = True
    if kind == "thinking":
        entry: dict[str, Any] = {"type": "thinking", "thinking": "", "signature": ""}
        data["thinking"][item.index] = [block.thinking] if block.thinking else []
    else:
        entry = msgspec.json.decode(event.data).get("content_block") or {"type": kind}
        if kind.endswith("tool_use"):
            data["inputs"][item.index] = []  # its input arrives as input_json_delta pieces
    data["open"][item.index] = entry
    data["layout"].append(entry)
    if block.thinking:
        return _chunk(data, Delta(reasoning=block.thinking))
    return None


def _piece(
    item: _Event, delta: _Delta, data: dict[str, Any], model: str | None
) -> StreamChunk | LLMError | None:
    kind = delta.type
    index = item.index
    if kind == "input_json_delta":
        call = data["calls"].get(index)
        if call is None:
            pieces = data["inputs"].get(index)
            if pieces is None:
                # Silently dropped, the call's arguments would come out cut short.
                return _stream_error(
                    f"a tool input delta for block {index}, which it never opened", model
                )
            if delta.partial_json:
                pieces.append(delta.partial_json)
            return None
        function = FunctionCallDelta(arguments=delta.partial_json or "")
        return _chunk(data, Delta(tool_calls=[ToolCallDelta(index=call, function=function)]))
    if kind == "thinking_delta":
        if not delta.thinking:
            return None
        data["thinking"].setdefault(index, []).append(delta.thinking)
        return _chunk(data, Delta(reasoning=delta.thinking))
    if kind == "signature_delta":
        entry = data["open"].get(index)
        if entry is None:
            return None
        entry["thinking"] = "".join(data["thinking"].get(index, ()))
        entry["signature"] = (entry.get("signature") or "") + (delta.signature or "")
        return _chunk(data, Delta(provider_data=_layout(data)))
    return None  # citations and kinds of delta llmkit does not model


def _stopped(
    item: _Event, data: dict[str, Any], model: str | None
) -> StreamChunk | LLMError | None:
    entry = data["open"].pop(item.index, None)
    if entry is None:
        return None
    if entry.get("type") == "thinking":
        entry["thinking"] = "".join(data["thinking"].pop(item.index, ()))
        if entry["signature"]:
            return None  # already sent with its signature
    pieces = data["inputs"].pop(item.index, None)
    if pieces:
        try:
            entry["input"] = _ARGUMENTS.decode("".join(pieces))
        except (msgspec.DecodeError, RecursionError):
            return _stream_error(
                f"block {item.index}'s tool input, which is not a JSON object", model
            )
    return _chunk(data, Delta(provider_data=_layout(data)))


def _stream_error(what: str, model: str | None) -> LLMError:
    return LLMError(
        f"anthropic sent {what}; the stream is corrupt, retry the call",
        provider="anthropic",
        model=model,
    )


def _begin(item: _Event, data: dict[str, Any]) -> StreamChunk:
    message = item.message or _Message()
    data.update(
        id=message.id,
        model=message.model,
        usage=message.usage,
        calls={},
        layout=[],
        open={},
        thinking={},
        inputs={},
        special=False,
    )
    return _chunk(data, Delta(role="assistant", content=""))


def _end(item: _Event, data: dict[str, Any]) -> StreamChunk:
    reason = item.delta.stop_reason if item.delta is not None else None
    usage = _usage(_merged(data.get("usage"), item.usage))
    extra = _layout(data) if data.get("special") else None
    return _chunk(data, Delta(provider_data=extra), _finish(reason), reason, usage)


@decode_event.dispatch
def _decode_event(key: Anthropic, event: SSEEvent, state: StreamState) -> Any:
    try:
        item = _DECODE_EVENT.decode(event.data)
    except msgspec.DecodeError as exc:
        return LLMError(
            f"anthropic sent a stream event that is not JSON ({exc})",
            provider=key.name,
            model=state.model,
        )
    kind = item.type
    data = state.data
    if kind == "content_block_delta":
        delta = item.delta
        if delta is None:
            return None
        if delta.type == "text_delta":
            # The commonest event of all: built here, without a call.
            if not delta.text:
                return None
            return StreamChunk(
                id=data["id"],
                model=data["model"],
                choices=[ChunkChoice(delta=Delta(content=delta.text))],
            )
        return _piece(item, delta, data, state.model)
    if "id" not in data and kind != "message_start" and kind != "error":
        if kind == "ping":
            return None
        return LLMError(
            f"anthropic sent {kind or 'an untyped'} event before message_start; "
            "the stream is not a Messages API stream",
            provider=key.name,
            model=state.model,
        )
    if kind == "content_block_start":
        return _started(item, event, data)
    if kind == "content_block_stop":
        return _stopped(item, data, state.model)
    if kind == "message_start":
        return _begin(item, data)
    if kind == "message_delta":
        return _end(item, data)
    if kind == "message_stop":
        state.done = True
        return None
    if kind == "error":
        return error_from_body(key, None, event.data, state.model)
    return None  # ping, and event kinds added later


# --- errors ----------------------------------------------------------------------------

# Errors inside a 200 stream have no status of their own; their type tells it.
_STATUS_OF_TYPE: Final = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
_DECODE_ERROR = msgspec.json.Decoder(_Message)
_CONTEXT: Final = ("prompt is too long", "exceed context limit", "context window")


def error_from_body(
    key: ProviderKey, status: int | None, body: bytes, model: str | None
) -> LLMError:
    """Map Anthropic's error envelope and the HTTP status to the llmkit error.

    ``{"type": "error", "error": {"type": ..., "message": ...}, "request_id": ...}``;
    ``status`` is ``None`` for an ``error`` event inside a stream, where the
    error type stands in for it.
    """
    kind = ""
    message = ""
    request_id = None
    try:
        envelope = _DECODE_ERROR.decode(body)
    except msgspec.DecodeError:
        envelope = None
    if envelope is not None and envelope.error is not None:
        kind = envelope.error.type
        message = envelope.error.message
        request_id = envelope.request_id
    if status is None:
        status = _STATUS_OF_TYPE.get(kind, 500)
    if not message:
        message = body_text(body) or f"HTTP {status}, no body"
    error = _classify(key, status, message, kind or None, model)
    error.request_id = request_id
    return error


def _classify(
    key: ProviderKey, status: int, message: str, kind: str | None, model: str | None
) -> LLMError:
    common: dict[str, Any] = {"provider": key.name, "model": model, "status": status, "code": kind}
    if status == 400 and any(text in message for text in _CONTEXT):
        return ContextWindowError(f"{message} Shorten the messages or lower max_tokens.", **common)
    if status == 401:
        return AuthenticationError(f"{message} Check ANTHROPIC_API_KEY or api_key=.", **common)
    if status == 402:
        return PermissionDeniedError(
            f"{message} The account is out of credits; add credits in Anthropic's console.",
            **common,
        )
    if status == 403:
        return PermissionDeniedError(
            f"{message} Check that the key's workspace may use this model.", **common
        )
    if status == 404:
        return NotFoundError(f"{message} Check the model name and api_base.", **common)
    if status == 413:
        return InvalidRequestError(
            f"{message} Make the request smaller (fewer or smaller images and documents).",
            **common,
        )
    if status == 429:
        return RateLimitError(f"{message} Slow down or retry later.", **common)
    if status in (400, 422):
        return InvalidRequestError(message, **common)
    if status in (408, 409) or status >= 500:
        return ServiceUnavailableError(
            f"{message} Anthropic failed or is overloaded; retry later.", **common
        )
    return LLMError(message, **common)


@decode_error.dispatch
def _decode_error(key: Anthropic, response: HttpResponse, request: ChatRequest) -> Any:
    return error_from_body(key, response.status, response.body, request.model)


# --- capabilities ----------------------------------------------------------------------

# claude-3-7-sonnet-20250219, claude-3-5-haiku-latest (old order) and
# claude-sonnet-4-5, claude-opus-4-20250514 (new order): the family's version.
_OLD_NAME: Final = re.compile(r"claude-(\d+)(?:-(\d))?-(?:opus|sonnet|haiku)")
_NEW_NAME: Final = re.compile(r"claude-(?:opus|sonnet|haiku)-(\d+)(?:-(\d)(?!\d))?")


def _version(model: str) -> tuple[int, int] | None:
    name = model.rsplit("/", 1)[-1].lower()
    match = _OLD_NAME.search(name) or _NEW_NAME.search(name)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2) or 0)


@capabilities.dispatch
def _capabilities(key: Anthropic, model: str) -> Any:
    version = _version(model)
    if version is None:
        # The provider as a whole (""), or a model named otherwise, is taken as
        # current, unless it is of the text-only Claude 2 generation.
        version = (2, 0) if model.startswith(("claude-2", "claude-instant")) else (99, 0)
    return Capabilities(
        streaming=True,
        tools=version >= (3, 0),
        parallel_tool_calls=version >= (3, 0),
        vision=version >= (3, 0),
        file_input=version >= (3, 5),
        json_mode=True,
        json_schema=version >= (4, 5),
        reasoning=version >= (3, 7),
    )
