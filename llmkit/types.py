"""Typed requests, responses and stream chunks, in OpenAI's chat-completions shape.

Every type is a frozen, keyword-only ``msgspec.Struct``. Field names equal
OpenAI's wire names, so ``response.choices[0].message.content`` and
``chunk.choices[0].delta.content`` read as users expect, and a response
message can be appended to the next request's history as it is.

``None`` is the default of every optional field and means "not given": with
``omit_defaults`` it never reaches the wire. Dicts from users become structs
once, through :func:`to_request`, which raises :class:`llmkit.InvalidRequestError`
naming the path of the bad value (``$.messages[0].role``) before any network call.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, get_args

import msgspec

from llmkit._checks import MAX_JSON_DEPTH, free_form_problem, header_problem, json_problem
from llmkit.errors import InvalidRequestError

__all__ = [
    "AudioPart",
    "Capabilities",
    "ChatRequest",
    "ChatResponse",
    "Choice",
    "ChunkChoice",
    "CompletionTokensDetails",
    "ContentPart",
    "Delta",
    "FileData",
    "FilePart",
    "Function",
    "FunctionCall",
    "FunctionCallDelta",
    "HttpCall",
    "HttpResponse",
    "ImagePart",
    "ImageURL",
    "InputAudio",
    "JSONSchema",
    "Message",
    "PromptTokensDetails",
    "ProviderInfo",
    "ResponseFormat",
    "Role",
    "RoutedResponse",
    "ServedBy",
    "StreamChunk",
    "StreamOptions",
    "StreamState",
    "TextPart",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "ToolChoice",
    "ToolChoiceFunction",
    "Usage",
    "check_request",
    "to_request",
]

Role = Literal["system", "developer", "user", "assistant", "tool"]


class _Base(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Common options: immutable, keyword-only, defaults left off the wire."""


# --- content parts: a tagged union on "type", as OpenAI sends them ----------


class TextPart(_Base, frozen=True, kw_only=True, tag="text", tag_field="type"):
    """A piece of text inside a multi-part message."""

    text: str


class ImageURL(_Base, frozen=True, kw_only=True):
    """An image by URL or ``data:`` URL; ``detail`` is ``low``, ``high`` or ``auto``."""

    url: str
    detail: str | None = None


class ImagePart(_Base, frozen=True, kw_only=True, tag="image_url", tag_field="type"):
    """An image inside a user message."""

    image_url: ImageURL


class InputAudio(_Base, frozen=True, kw_only=True):
    """Base64 audio data and its format (``wav``, ``mp3``)."""

    data: str
    format: str


class AudioPart(_Base, frozen=True, kw_only=True, tag="input_audio", tag_field="type"):
    """Audio inside a user message."""

    input_audio: InputAudio


class FileData(_Base, frozen=True, kw_only=True):
    """A file as a ``data:`` URL (``file_data``) or an uploaded ``file_id``."""

    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None


class FilePart(_Base, frozen=True, kw_only=True, tag="file", tag_field="type"):
    """A document (PDF, text) inside a user message."""

    file: FileData


ContentPart = TextPart | ImagePart | AudioPart | FilePart

# --- tools ---------------------------------------------------------------------


class FunctionCall(_Base, frozen=True, kw_only=True, omit_defaults=False):
    """The function a model asked to call; ``arguments`` is a JSON string.

    Some compatible providers leave ``arguments`` out of a call that takes
    none; it decodes as ``""`` and is always sent.
    """

    name: str
    arguments: str = ""


class ToolCall(_Base, frozen=True, kw_only=True, omit_defaults=False):
    """One tool call made by the assistant.

    ``type`` is always sent (the API refuses a tool call without it), so
    this struct keeps its defaults on the wire.
    """

    id: str
    function: FunctionCall
    type: str = "function"


class Function(_Base, frozen=True, kw_only=True):
    """A function the model may call; ``parameters`` is a JSON Schema object."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Base, frozen=True, kw_only=True, omit_defaults=False):
    """A tool offered to the model."""

    function: Function
    type: str = "function"


class ToolChoiceFunction(_Base, frozen=True, kw_only=True):
    """Names the one function the model must call."""

    name: str


class ToolChoice(_Base, frozen=True, kw_only=True, omit_defaults=False):
    """Forces one named function; the strings ``auto``, ``none``, ``required`` also work."""

    function: ToolChoiceFunction
    type: str = "function"


# --- messages ---------------------------------------------------------------


class Message(_Base, frozen=True, kw_only=True):
    """One chat message, in requests and in responses.

    ``content`` is a string, a list of parts, or ``None`` (an assistant turn
    that only calls tools). ``tool_call_id`` ties a ``tool`` message to the
    call it answers.

    ``reasoning`` is the model's visible reasoning text, where the provider
    returns it. ``provider_data`` holds what a provider needs back on the
    next turn and llmkit cannot model (Anthropic thinking signatures and
    redacted thinking, Gemini thought signatures, OpenRouter reasoning
    details), keyed by provider name so a history that crosses providers
    keeps each one's data apart. Both survive a round trip through history;
    each codec sends them only where its provider accepts them.
    """

    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    refusal: str | None = None
    reasoning: str | None = None
    provider_data: dict[str, Any] | None = None


class JSONSchema(_Base, frozen=True, kw_only=True):
    """A named JSON Schema for structured output."""

    name: str
    schema: dict[str, Any] | None = None
    description: str | None = None
    strict: bool | None = None


class ResponseFormat(_Base, frozen=True, kw_only=True):
    """``text``, ``json_object`` or ``json_schema`` (with ``json_schema`` set)."""

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchema | None = None


class StreamOptions(_Base, frozen=True, kw_only=True):
    """Streaming options; llmkit always asks for usage on the last chunk."""

    include_usage: bool | None = None


class ChatRequest(_Base, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A chat-completion request in OpenAI's shape.

    ``extra_body`` is merged into the provider's JSON body last, and
    ``extra_headers`` into the HTTP headers: the escape hatches for options
    llmkit does not model.
    """

    model: str
    messages: list[Message]
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: str | list[str] | None = None
    n: int | None = None
    seed: int | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["auto", "none", "required"] | ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    extra_body: dict[str, Any] | None = None
    extra_headers: dict[str, str] | None = None


# --- responses --------------------------------------------------------------


class PromptTokensDetails(_Base, frozen=True, kw_only=True):
    """Where known: prompt tokens read from the provider's cache, and written to it."""

    cached_tokens: int | None = None
    audio_tokens: int | None = None
    cache_write_tokens: int | None = None


class CompletionTokensDetails(_Base, frozen=True, kw_only=True):
    """Where known: hidden reasoning tokens inside the completion count."""

    reasoning_tokens: int | None = None
    audio_tokens: int | None = None


class Usage(_Base, frozen=True, kw_only=True):
    """Token counts of one call."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: PromptTokensDetails | None = None
    completion_tokens_details: CompletionTokensDetails | None = None


class Choice(_Base, frozen=True, kw_only=True):
    """One alternative of a response.

    ``finish_reason`` is ``stop``, ``length``, ``tool_calls`` or
    ``content_filter`` for every provider; it stays a plain string so a new
    reason from a provider never breaks decoding. ``native_finish_reason``
    keeps the provider's own value where it differs (Anthropic's
    ``end_turn``, Gemini's ``SAFETY``).
    """

    index: int = 0
    message: Message
    finish_reason: str | None = None
    native_finish_reason: str | None = None


class ChatResponse(_Base, frozen=True, kw_only=True):
    """A complete chat-completion response."""

    id: str = ""
    model: str = ""
    created: int = 0
    choices: list[Choice] = msgspec.field(default_factory=list)
    usage: Usage | None = None
    object: str = "chat.completion"

    @property
    def text(self) -> str:
        """The first choice's text, or ``""`` when it holds none."""
        if not self.choices:
            return ""
        content = self.choices[0].message.content
        if isinstance(content, str):
            return content
        if content is None:
            return ""
        return "".join(p.text for p in content if isinstance(p, TextPart))

    @property
    def tool_calls(self) -> list[ToolCall]:
        """The first choice's tool calls (empty when the model called none)."""
        if not self.choices:
            return []
        return self.choices[0].message.tool_calls or []


class ServedBy(_Base, frozen=True, kw_only=True):
    """Who actually answered a routed call.

    Attributes:
        provider: the provider's name (``"openai"``).
        model: the model the request was sent to.
        name: the registry config the call was made through, if any.
        attempts: how many tries it took, retries and fallbacks included
            (0 for an answer from the cache).
        fallback: whether a fallback, not the config's own target, answered.
        deployment: the id of the deployment that answered, for a
            load-balanced name.
        cached: whether the answer came from the registry's response cache.
    """

    provider: str
    model: str
    name: str | None = None
    attempts: int = 1
    fallback: bool = False
    deployment: str | None = None
    cached: bool = False


class RoutedResponse(ChatResponse, frozen=True, kw_only=True):
    """A :class:`ChatResponse` from ``llmkit.registry``, with who served it in ``served_by``."""

    served_by: ServedBy

    @classmethod
    def of(cls, response: ChatResponse, served_by: ServedBy) -> RoutedResponse:
        """``response`` with ``served_by`` attached (the other fields are shared, not copied)."""
        return cls(
            id=response.id,
            model=response.model,
            created=response.created,
            choices=response.choices,
            usage=response.usage,
            object=response.object,
            served_by=served_by,
        )


# --- stream chunks ------------------------------------------------------------
# gc=False: chunks cannot form reference cycles, and a 5,000-chunk stream would
# otherwise trigger dozens of garbage-collector passes.


class FunctionCallDelta(_Base, frozen=True, kw_only=True, gc=False):
    """A fragment of a streamed function call."""

    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(_Base, frozen=True, kw_only=True, gc=False):
    """A fragment of a streamed tool call, assembled by ``index`` and ``id``."""

    index: int = 0
    id: str | None = None
    type: str | None = None
    function: FunctionCallDelta | None = None


class Delta(_Base, frozen=True, kw_only=True, gc=False):
    """What one chunk adds to a choice.

    ``reasoning`` pieces are concatenated like ``content``; ``provider_data``
    entries are merged by provider name (a later entry replaces an earlier
    one), so a codec sends each provider's opaque data whole.
    """

    role: str | None = None
    content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None
    refusal: str | None = None
    reasoning: str | None = None
    provider_data: dict[str, Any] | None = None


class ChunkChoice(_Base, frozen=True, kw_only=True, gc=False):
    """One choice's part of a chunk."""

    index: int = 0
    delta: Delta = msgspec.field(default_factory=Delta)
    finish_reason: str | None = None
    native_finish_reason: str | None = None


class StreamChunk(_Base, frozen=True, kw_only=True, gc=False):
    """One streamed chunk; the last one carries ``usage`` where the provider sends it."""

    id: str = ""
    model: str = ""
    created: int = 0
    choices: list[ChunkChoice] = msgspec.field(default_factory=list)
    usage: Usage | None = None
    object: str = "chat.completion.chunk"

    @property
    def text(self) -> str:
        """The first choice's content delta, or ``""``."""
        if not self.choices:
            return ""
        return self.choices[0].delta.content or ""


# --- the codec contract: what a provider exchanges with the transport ----------


class HttpCall(msgspec.Struct, kw_only=True):
    """An HTTP request described by a provider codec; the transport sends it.

    ``framing`` names how a streamed body is cut into events: ``"sse"``
    (server-sent events), ``"ndjson"`` (one JSON object a line), or a
    format a package registered with ``llmkit.provider.register_framing``.
    """

    url: str
    body: bytes
    headers: dict[str, str]
    method: str = "POST"
    stream: bool = False
    framing: str = "sse"


class HttpResponse(msgspec.Struct, kw_only=True):
    """What the transport hands a codec: status, headers (case-insensitive) and body."""

    status: int
    headers: Mapping[str, str]
    body: bytes = b""


@dataclass(slots=True)
class StreamState:
    """Mutable state a codec keeps across the events of one stream.

    ``done`` is set by the codec when it sees the provider's end marker; a
    stream whose bytes run out before that raises
    :class:`llmkit.StreamInterruptedError`. ``data`` is the codec's own.
    """

    provider: str = ""
    model: str = ""
    done: bool = False
    data: dict[str, Any] = field(default_factory=dict)


class Capabilities(_Base, frozen=True, kw_only=True):
    """What a provider (or one of its models) supports; everything is off by default.

    Each flag is one case of the contract suite: a provider that claims it
    is tested on it.

    Attributes:
        streaming: ``stream`` / ``astream`` work.
        tools: function tools and tool results in history.
        parallel_tool_calls: several tool calls in one answer.
        vision: image parts in user messages.
        audio_input: ``input_audio`` parts.
        file_input: ``file`` parts (PDF and other documents).
        json_mode: ``response_format={"type": "json_object"}``.
        json_schema: ``response_format`` with a JSON schema.
        reasoning: the model reasons before answering (reasoning tokens or text).
        embeddings: llmkit can ask it for embeddings.
    """

    streaming: bool = False
    tools: bool = False
    parallel_tool_calls: bool = False
    vision: bool = False
    audio_input: bool = False
    file_input: bool = False
    json_mode: bool = False
    json_schema: bool = False
    reasoning: bool = False
    embeddings: bool = False


class ProviderInfo(_Base, frozen=True, kw_only=True):
    """What :func:`llmkit.core.provider_info` tells about a provider."""

    name: str
    capabilities: Capabilities
    default_base_url: str
    api_key_env: str | None = None


def _message_problem(message: Message) -> str | None:
    if message.role == "tool" and not message.tool_call_id:
        return "has role 'tool' but no tool_call_id; set it to the id of the tool call it answers"
    if message.content is None and not (message.role == "assistant" and message.tool_calls):
        return (
            f"({message.role}) has no content; only an assistant message that makes "
            "tool_calls may leave it out"
        )
    return None


def _bad(message: str, model: str | None) -> InvalidRequestError:
    return InvalidRequestError(message, model=model or None)


def check_request(request: ChatRequest) -> ChatRequest:
    """Check what types alone cannot, so bad input fails before any network call.

    Returns the request unchanged.

    Raises:
        InvalidRequestError: the message names the field and the fix.
    """
    model = request.model
    if not model:
        raise _bad("model is empty; pass a model name such as 'gpt-4o-mini'", model)
    if not request.messages:
        raise _bad("messages is empty; pass at least one message", model)
    # The common message passes three attribute tests; anything else is looked
    # at closely (the loop runs for every message of a long history).
    for message in request.messages:
        if (
            type(message) is not Message
            or message.provider_data is not None
            or ((message.content is None or message.role == "tool") and _message_problem(message))
        ):
            break
    else:
        message = None
    closely = message is not None
    if closely:
        for i, message in enumerate(request.messages):
            if not isinstance(message, Message):
                raise _bad(
                    f"messages[{i}] is a {type(message).__name__}, not a Message; build it "
                    "with Message(...) or pass the whole request as a dict",
                    model,
                )
            problem = _message_problem(message)
            if problem:
                raise _bad(f"messages[{i}] {problem}", model)
    if request.temperature is not None and not 0.0 <= request.temperature <= 2.0:
        raise _bad(f"temperature must be between 0 and 2, not {request.temperature}", model)
    if request.top_p is not None and not 0.0 <= request.top_p <= 1.0:
        raise _bad(f"top_p must be between 0 and 1, not {request.top_p}", model)
    if request.n is not None and request.n < 1:
        raise _bad(f"n must be at least 1, not {request.n}", model)
    for name in ("max_tokens", "max_completion_tokens"):
        value = getattr(request, name)
        if value is not None and value < 1:
            raise _bad(f"{name} must be at least 1, not {value}", model)
    fmt = request.response_format
    if fmt is not None and fmt.type == "json_schema" and fmt.json_schema is None:
        raise _bad(
            "response_format type 'json_schema' needs json_schema={'name': ..., 'schema': {...}}",
            model,
        )
    headers = request.extra_headers
    if headers:
        for name, value in headers.items():
            problem = header_problem(name, value, "extra_headers")
            if problem is not None:
                raise _bad(problem, model)
    free = _free_form(request, closely)
    if free:
        problem = free_form_problem(free)
        if problem is not None:
            raise _bad(f"invalid request: {problem}", model)
    if request.tool_choice not in (None, "auto", "none") and not request.tools:
        raise _bad("tool_choice asks for a tool call but tools is empty; pass tools=", model)
    if isinstance(request.tool_choice, ToolChoice) and request.tools:
        wanted = request.tool_choice.function.name
        if all(tool.function.name != wanted for tool in request.tools):
            raise _bad(f"tool_choice names {wanted!r}, which is not among tools", model)
    return request


def _free_form(request: ChatRequest, messages: bool) -> list[tuple[str, Any]]:
    # The fields typed Any: nothing but free_form_problem looks inside them.
    # ``messages``: some message may hold provider_data (round-tripped opaque
    # data, which must not carry NaN or a lone surrogate either).
    found: list[tuple[str, Any]] = []
    if messages:
        for i, message in enumerate(request.messages):
            if message.provider_data is not None:
                found.append((f"$.messages[{i}].provider_data", message.provider_data))
    if request.extra_body is not None:
        found.append(("$.extra_body", request.extra_body))
    if request.tools:
        for i, tool in enumerate(request.tools):
            if tool.function.parameters is not None:
                found.append((f"$.tools[{i}].function.parameters", tool.function.parameters))
    fmt = request.response_format
    if fmt is not None and fmt.json_schema is not None and fmt.json_schema.schema is not None:
        found.append(("$.response_format.json_schema.schema", fmt.json_schema.schema))
    return found


_ROLES = frozenset(get_args(Role))
_Checked = TypeVar("_Checked", bound=msgspec.Struct)
_NO_MESSAGES: list[Message] = []


def _checked_struct(request: ChatRequest) -> ChatRequest:
    """Give a ``ChatRequest`` built in code the checks a converted dict gets.

    msgspec checks types when it converts or decodes, not when a struct is
    constructed, so ``ChatRequest(temperature="hot")`` is accepted as it is.
    Converting the builtins form validates everything, with paths, and what
    comes back is used: a dict where a struct belongs (``tools=[{...}]``,
    a dict message) becomes that struct, as in a dict request. The
    messages, which dominate long histories, take a fast path when they are
    plain text messages and are converted one by one otherwise.

    Raises:
        InvalidRequestError: a field of the wrong type; the path is named.
    """
    messages = request.messages
    if type(messages) is not list:
        raise InvalidRequestError(
            f"invalid request: messages must be a list, not {type(messages).__name__}",
            model=request.model if type(request.model) is str else None,
        )
    # Tools built as structs with the right types skip the conversion, which
    # would copy their (often large) parameter schemas.
    tools = request.tools
    plain_tools = tools is None or (type(tools) is list and all(map(_plain_tool, tools)))
    rest = msgspec.structs.replace(
        request, messages=_NO_MESSAGES, tools=None if plain_tools else tools
    )
    top = _convert(rest, ChatRequest, "$")
    if plain_tools and tools is not None:
        top = msgspec.structs.replace(top, tools=tools)
    checked: list[Message] | None = None
    for i, message in enumerate(messages):
        if (
            type(message) is Message
            and type(message.content) is str
            and message.role in _ROLES
            and message.name is None
            and message.tool_calls is None
            and message.tool_call_id is None
            and message.refusal is None
            and message.reasoning is None
            and message.provider_data is None
        ):
            continue
        converted = _convert(message, Message, f"$.messages[{i}]")
        if checked is None:
            checked = list(messages)
        checked[i] = converted
    if checked is None and _same_structs(request, top):
        return request  # the common case: nothing was a dict, keep the caller's object
    return msgspec.structs.replace(top, messages=messages if checked is None else checked)


_PLAIN = frozenset((str, int, float, bool, dict, type(None)))
_STR_OR_NONE = frozenset((str, type(None)))


def _plain_tool(tool: Any) -> bool:
    if type(tool) is not Tool or type(tool.type) is not str:
        return False
    function = tool.function
    return (
        type(function) is Function
        and type(function.name) is str
        and type(function.description) in _STR_OR_NONE
        and (function.parameters is None or type(function.parameters) is dict)
        and (function.strict is None or type(function.strict) is bool)
    )


# The request fields that hold structs (messages are checked one by one).
_STRUCT_FIELDS = ("tools", "tool_choice", "response_format", "stream_options")


def _same_structs(mine: ChatRequest, checked: ChatRequest) -> bool:
    # Whether every struct in the converted request stood as that struct in
    # the original too (not as a dict); free-form values are not entered.
    stack: list[tuple[Any, Any]] = []
    for name in _STRUCT_FIELDS:
        value, original = getattr(checked, name), getattr(mine, name)
        if value is not None and type(value) is not str and value is not original:
            stack.append((original, value))
    while stack:
        a, b = stack.pop()
        if type(b) in _PLAIN:
            continue
        fields = getattr(type(b), "__struct_fields__", None)
        if fields is not None:
            if type(a) is not type(b):
                return False
            stack.extend([(getattr(a, f), getattr(b, f)) for f in fields])
        elif type(b) is list:
            if type(a) is not list or len(a) != len(b):
                return False
            stack.extend(zip(a, b, strict=True))
    return True


def _convert(value: Any, kind: type[_Checked], path: str) -> _Checked:
    try:
        return msgspec.convert(msgspec.to_builtins(value), kind)
    except msgspec.ValidationError as exc:
        # msgspec names paths from the converted value's root ("$.content").
        raise InvalidRequestError(
            f"invalid request: {str(exc).replace('`$', '`' + path)}"
        ) from None
    except (TypeError, ValueError, UnicodeError, RecursionError, OverflowError) as exc:
        problem = json_problem(value, path, max_depth=MAX_JSON_DEPTH)
        raise InvalidRequestError(
            f"invalid request: {problem or type(exc).__name__ + ' while reading it'}"
        ) from None


def to_request(value: ChatRequest | Mapping[str, Any], *, model: str | None = None) -> ChatRequest:
    """Return ``value`` as a validated :class:`ChatRequest`.

    Args:
        value: a ``ChatRequest`` or a dict in OpenAI's request shape.
        model: when given, it replaces (or supplies) the request's model.

    Raises:
        InvalidRequestError: the dict does not fit; the message names the path
            of the bad value and what was expected.
    """
    if model is not None and type(model) is not str:
        raise InvalidRequestError(f"model must be a string, not {type(model).__name__}")
    if isinstance(value, ChatRequest):
        if model is not None and value.model != model:
            value = msgspec.structs.replace(value, model=model)
        return _checked_struct(value)
    if not isinstance(value, Mapping):
        raise InvalidRequestError(
            f"request must be a ChatRequest or a dict, not {type(value).__name__}; "
            'pass e.g. {"messages": [{"role": "user", "content": "Hi"}]}'
        )
    try:
        data = dict(value)
    except Exception as exc:
        raise InvalidRequestError(
            f"request could not be read as a dict ({type(exc).__name__}); pass a plain dict"
        ) from None
    if model is not None:
        data["model"] = model
    try:
        request = msgspec.convert(data, ChatRequest)
    except msgspec.ValidationError as exc:
        raise InvalidRequestError(f"invalid request: {exc}", model=model) from None
    except UnicodeError:
        # msgspec fails to quote a bad value holding a lone surrogate in its message.
        problem = json_problem(data, "$") or "a string holds a lone surrogate"
        raise InvalidRequestError(f"invalid request: {problem}", model=model) from None
    _check_message_fields(request.messages and data["messages"], model)
    return request


_MESSAGE_FIELDS = frozenset(Message.__struct_fields__)
_chain = itertools.chain.from_iterable


def _check_message_fields(messages: Any, model: str | None) -> None:
    # Message tolerates unknown fields (responses carry many), so a typo in a
    # request dict ("contnet") would silently drop the content: catch it here.
    # One C-level pass over every key of every message dict, no set built;
    # the loop that names the culprit runs only when something is wrong.
    try:
        if _MESSAGE_FIELDS.issuperset(_chain(messages)):
            return
    except TypeError:
        pass  # an item that is no dict (a Message struct): looked at one by one
    for i, message in enumerate(messages):
        if isinstance(message, Mapping) and not _MESSAGE_FIELDS.issuperset(message):
            unknown = message.keys() - _MESSAGE_FIELDS
            if unknown:
                raise InvalidRequestError(
                    f"invalid request: messages[{i}] has unknown field "
                    f"{sorted(map(str, unknown))[0]!a}; message fields are "
                    + ", ".join(Message.__struct_fields__),
                    model=model,
                )
