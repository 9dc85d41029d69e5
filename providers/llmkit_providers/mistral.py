"""Mistral's chat completions (``POST /v1/chat/completions``), derived from the OpenAI codec.

:class:`Mistral` is an :class:`~llmkit_providers.openai.OpenAICompatible`
key: base URL, key variable, capabilities by model, provider options and
the fields Mistral names otherwise are class data, as for the rest of the
family. It registers its own request encoder and response, event and error
decoders because Mistral's wire differs where class data cannot say it.

Wire facts this module rests on (from recorded traffic and Mistral's API
reference):

* the API refuses every field it does not know with a 422
  (``extra_forbidden``): no ``stream_options``, ``user``, ``seed`` (it is
  ``random_seed``) or ``max_completion_tokens`` (it is ``max_tokens``); a
  ``name`` only on tool messages; ``parameters`` is required on a function;
* a stream always carries usage, on the chunk with the finish reason, and
  ends with ``data: [DONE]``;
* tool-call ids are exactly nine ASCII letters or digits; the API refuses
  any other id in the history (``Tool call id was ... but must be a-z,
  A-Z, 0-9, with a length of 9``, code 3280);
* reasoning models (``magistral-*`` always; ``mistral-small-latest`` and
  Mistral Medium 3.5 with ``reasoning_effort``) answer with a content list:
  ``{"type": "thinking", "thinking": [{"type": "text", "text": ...}]}``
  chunks (with ``signature`` or ``closed`` at times) and ``text`` chunks; a
  stream sends each thinking piece as such a list;
* usage reports cached prompt tokens as ``prompt_tokens_details.cached_tokens``
  or, in older answers, as ``num_cached_tokens``;
* finish reasons are ``stop``, ``length``, ``model_length``, ``tool_calls``
  and ``error``;
* errors come as ``{"object": "error", "message", "type", "param", "code"}``
  (``code`` a numeric string such as ``"1300"`` for a rate limit), the
  message of a 422 being ``{"detail": [...]}`` (pydantic's validation
  errors), or as a bare ``{"detail": ...}`` or ``{"message": ...}``.

Choices made where the two shapes differ:

* a tool-call id that breaks Mistral's rule (one from another provider's
  history: ``call_...``, ``toolu_...``) is sent as a stable nine-character
  digest of it (:func:`mistral_tool_call_id`), on the assistant's call and
  on the tool message that answers it alike, so the pairing holds; ids that
  keep the rule go as they are;
* thinking chunks are read into ``message.reasoning`` (their text pieces
  joined) and kept whole in ``provider_data["mistral"]["thinking"]``, which
  goes back, before the message's text, when the message returns in the
  history. Reasoning text without that data (from another provider) is not
  sent: Mistral takes only its own thinking back. Other non-text parts of
  an answer (references) are not kept;
* ``max_completion_tokens`` is sent as ``max_tokens`` (and wins over it);
  ``developer`` messages go as ``system``; ``user`` and the ``name`` of
  non-tool messages are left out; a streamed call sends no ``stream_options``;
* ``model_length`` finishes with ``length``, a reason not listed above with
  ``stop`` (``tool_calls`` after calls), the raw value kept in
  ``native_finish_reason``; an ``error`` finish raises
  :class:`~llmkit.provider.ServiceUnavailableError`, since the answer is
  broken, not finished;
* an error object wins over choices beside it; in a stream, an event that
  holds one (or a bare ``message``), and an ``event: error`` whose data is
  no chunk, raise; messages are cut to about 500 characters;
* a tool call that comes without an id gets a fresh valid one;
* file parts become ``document_url`` chunks (a ``data:`` or ``https:`` URL)
  or ``file`` chunks (an uploaded ``file_id``); audio parts ``input_audio``.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import string
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from types import MappingProxyType
from typing import Any, Final

import msgspec

from llmkit.provider import (
    AudioPart,
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
    RateLimitError,
    ServiceUnavailableError,
    SSEEvent,
    StreamChunk,
    StreamState,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
    decode_error,
    decode_event,
    decode_response,
    encode_request,
)
from llmkit_providers.openai import OpenAICompatible, build_headers, shown_body

__all__ = [
    "Mistral",
    "MistralOptions",
    "encode_mistral_request",
    "error_from_body",
    "mistral_tool_call_id",
]

_NAME: Final = "mistral"
# Every chat model takes tools, parallel calls, JSON mode and JSON schemas;
# images, documents and reasoning depend on the model (``model_flags``).
_BASE = Capabilities(
    streaming=True, tools=True, parallel_tool_calls=True, json_mode=True, json_schema=True
)


class MistralOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Mistral's provider options (``Config(options=...)``), each sent as the field of its name.

    Attributes:
        reasoning_effort: ``"high"`` shows the thinking of the models with
            adjustable reasoning (``mistral-small-latest``, Mistral Medium
            3.5), ``"none"`` turns it off.
        prompt_mode: ``"reasoning"`` gives the Magistral models their
            reasoning system prompt; ``None`` leaves it to the API.
        safe_prompt: put Mistral's safety prompt before the conversation.
    """

    reasoning_effort: str | None = None
    prompt_mode: str | None = None
    safe_prompt: bool | None = None


class Mistral(OpenAICompatible):
    """Mistral AI's API (``api.mistral.ai``); key from ``MISTRAL_API_KEY``."""

    __slots__ = ()
    name = _NAME
    default_base_url = "https://api.mistral.ai/v1"
    api_key_env = "MISTRAL_API_KEY"
    request_id_headers = ("mistral-correlation-id", "x-kong-request-id", "x-request-id")
    options_type = MistralOptions
    option_fields = ("reasoning_effort", "prompt_mode", "safe_prompt")
    drop_fields = frozenset({"stream_options", "user"})
    rename_fields = MappingProxyType({"seed": "random_seed", "max_completion_tokens": "max_tokens"})
    base_capabilities = _BASE
    model_flags = MappingProxyType(
        {
            # Mistral Medium 3 onwards reads images and documents; the first
            # Mistral Medium (``mistral-medium``, ``mistral-medium-2312``) does not.
            "vision": (
                "pixtral",
                "mistral-medium-latest",
                "mistral-medium-2505",
                "mistral-medium-2508",
                "mistral-medium-3",
                "mistral-small-latest",
                "mistral-small-2503",
                "mistral-small-2506",
                "mistral-small-2603",
                "mistral-large-latest",
                "mistral-large-2512",
                "magistral-medium-latest",
                "magistral-small-latest",
                "magistral-medium-2509",
                "magistral-small-2509",
                "ministral-3b-2512",
                "ministral-8b-2512",
                "ministral-14b",
            ),
            "file_input": (
                "mistral-medium-latest",
                "mistral-medium-2505",
                "mistral-medium-2508",
                "mistral-medium-3",
                "mistral-small-latest",
                "mistral-large-latest",
            ),
            "reasoning": (
                "magistral",
                "mistral-small-latest",
                "mistral-small-2603",
                "mistral-medium-3-5",
                "mistral-medium-3.5",
            ),
        }
    )


_ENCODE = msgspec.json.Encoder()
_DECODE_CHUNK = msgspec.json.Decoder(StreamChunk)
_DECODE_RESPONSE = msgspec.json.Decoder(ChatResponse)
_DONE: Final = b"[DONE]"
_ERROR_MARK: Final = b'"error"'
# Finish reasons that need no normalizing.
_USUAL: Final = frozenset({None, "stop", "length", "tool_calls", "content_filter"})
_ROLES: Final = frozenset({"system", "user", "assistant", "tool"})
_PLAIN_PARTS: Final = (TextPart, ImagePart)
_EMPTY_PARAMETERS: Final[Mapping[str, Any]] = MappingProxyType({"type": "object", "properties": {}})

# --- tool-call ids ------------------------------------------------------------------------

_ALPHABET: Final = string.digits + string.ascii_letters


def _valid_id(value: str) -> bool:
    return len(value) == 9 and value.isascii() and value.isalnum()


def mistral_tool_call_id(value: str) -> str:
    """Return the tool-call id Mistral accepts for ``value``.

    An id of nine ASCII letters or digits is returned as it is; any other
    becomes nine such characters drawn from a hash of it, the same for the
    same id, so an assistant's call and the tool message answering it still
    match.
    """
    if _valid_id(value):
        return value
    digest = hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    number = int.from_bytes(digest, "big")
    out = []
    for _ in range(9):
        number, rest = divmod(number, 62)
        out.append(_ALPHABET[rest])
    return "".join(out)


# --- requests -----------------------------------------------------------------------------


def _bad(message: str, model: str) -> InvalidRequestError:
    return InvalidRequestError(message, provider=_NAME, model=model)


def _plain(message: Message) -> bool:
    """Whether ``message`` goes on the wire exactly as llmkit encodes it."""
    if message.role not in _ROLES or message.refusal is not None:
        return False
    if message.reasoning is not None or message.provider_data is not None:
        return False
    if message.name is not None and message.role != "tool":
        return False
    if message.tool_call_id is not None and not _valid_id(message.tool_call_id):
        return False
    if message.tool_calls and not all(_valid_id(call.id) for call in message.tool_calls):
        return False
    content = message.content
    return type(content) is not list or all(isinstance(p, _PLAIN_PARTS) for p in content)


def _part(part: Any, where: str, model: str) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if isinstance(part, ImagePart):
        image: dict[str, Any] = {"url": part.image_url.url}
        if part.image_url.detail is not None:
            image["detail"] = part.image_url.detail
        return {"type": "image_url", "image_url": image}
    if isinstance(part, AudioPart):
        return {"type": "input_audio", "input_audio": part.input_audio.data}
    if isinstance(part, FilePart):
        file = part.file
        if file.file_data is not None:
            chunk = {"type": "document_url", "document_url": file.file_data}
            if file.filename:
                chunk["document_name"] = file.filename
            return chunk
        if file.file_id is not None:
            return {"type": "file", "file_id": file.file_id}
        raise _bad(f"{where} has neither file_data nor file_id; give one of them", model)
    raise _bad(f"{where} is a {type(part).__name__}, which Mistral cannot take", model)


def _content(content: Any, where: str, model: str) -> Any:
    if content is None or isinstance(content, str):
        return content
    return [_part(part, f"{where}.content[{j}]", model) for j, part in enumerate(content)]


def _thinking(message: Message, where: str, model: str) -> list[Any] | None:
    """The thinking chunks kept from Mistral's answer, checked, or ``None``.

    Raises:
        InvalidRequestError: ``provider_data["mistral"]`` is not in the shape
            llmkit keeps it in.
    """
    data = message.provider_data.get(_NAME) if message.provider_data else None
    if data is None:
        return None
    chunks = data.get("thinking") if isinstance(data, dict) else None
    if not isinstance(chunks, list) or not all(
        isinstance(c, dict) and c.get("type") == "thinking" and isinstance(c.get("thinking"), list)
        for c in chunks
    ):
        raise _bad(
            f"{where}.provider_data['mistral'] must be {{'thinking': [...]}}, the thinking "
            "chunks of a Mistral answer; pass the answer's provider_data back unchanged",
            model,
        )
    return chunks


def _message(message: Message, where: str, model: str) -> dict[str, Any]:
    role = "system" if message.role == "developer" else message.role
    out: dict[str, Any] = {"role": role}
    content = _content(message.content, where, model)
    if role == "assistant":
        thinking = _thinking(message, where, model)
        if thinking:
            if isinstance(content, str):
                content = [{"type": "text", "text": content}] if content else []
            content = [*thinking, *(content or ())]
    if content is not None:
        out["content"] = content
    if message.tool_calls:
        out["tool_calls"] = [
            {
                "id": mistral_tool_call_id(call.id),
                "type": call.type,
                "function": {"name": call.function.name, "arguments": call.function.arguments},
            }
            for call in message.tool_calls
        ]
    if role == "tool":
        if message.tool_call_id is not None:
            out["tool_call_id"] = mistral_tool_call_id(message.tool_call_id)
        if message.name is not None:
            out["name"] = message.name
    return out


def _messages(messages: list[Message], model: str) -> list[Any] | None:
    """The messages as Mistral takes them, or ``None`` when all go as they are."""
    out: list[Any] | None = None
    for i, message in enumerate(messages):
        if (
            # The common message, in a few attribute tests; the rest closely.
            type(message.content) is str
            and message.name is None
            and message.tool_calls is None
            and message.tool_call_id is None
            and message.provider_data is None
            and message.reasoning is None
            and message.refusal is None
            and message.role in _ROLES
        ) or _plain(message):
            continue
        if out is None:
            out = list(messages)
        out[i] = _message(message, f"messages[{i}]", model)
    return out


def _tools(tools: list[Tool] | None) -> list[Tool] | None:
    # Mistral requires parameters; a function that takes none gets an empty object.
    if not tools or all(tool.function.parameters is not None for tool in tools):
        return None
    return [
        msgspec.structs.replace(
            tool,
            function=msgspec.structs.replace(tool.function, parameters=dict(_EMPTY_PARAMETERS)),
        )
        if tool.function.parameters is None
        else tool
        for tool in tools
    ]


def encode_mistral_request(key: Mistral, request: ChatRequest, config: Config) -> HttpCall:
    """Build the HTTP call of a Mistral chat completion.

    What Mistral names otherwise is renamed (``rename_fields``), what it
    refuses is left out (``drop_fields``), the history is reshaped where it
    must be (see the module docstring), and the provider options go as
    fields of their names; ``extra_body`` is merged last.

    Raises:
        InvalidRequestError: a content part Mistral cannot take, a file part
            with no file, or ``provider_data["mistral"]`` in a shape llmkit
            did not give it.
        AuthenticationError: as :func:`~llmkit_providers.openai.build_headers`.
    """
    changes: dict[str, Any] = {}
    top: dict[str, Any] = {}
    for name in key.drop_fields:
        if getattr(request, name) is not None:
            changes[name] = None
    for old, new in key.rename_fields.items():
        value = getattr(request, old)
        if value is not None:
            changes[old] = None
            top[new] = value
    extra = request.extra_body
    if extra is not None:
        changes["extra_body"] = None
    if request.extra_headers is not None:
        changes["extra_headers"] = None
    messages = _messages(request.messages, request.model)
    if messages is not None:
        changes["messages"] = messages
    tools = _tools(request.tools)
    if tools is not None:
        changes["tools"] = tools
    options = config.options
    if options is not None:
        for name in key.option_fields:
            value = getattr(options, name, None)
            if value is not None:
                top[name] = value
    wire = msgspec.structs.replace(request, **changes) if changes else request
    if top or extra:
        payload = msgspec.to_builtins(wire)
        payload.update(top)
        if extra:
            payload.update(extra)
        body = _ENCODE.encode(payload)
    else:
        body = _ENCODE.encode(wire)
    base = config.api_base
    return HttpCall(
        url=base + key.chat_path if base else key.chat_path,
        body=body,
        headers=build_headers(key, request, config),
        stream=request.stream,
    )


@encode_request.dispatch
def _encode(key: Mistral, request: ChatRequest, config: Config) -> Any:
    return encode_mistral_request(key, request, config)


# --- responses: wire structs for what the shared types cannot hold -------------------------


class _Function(msgspec.Struct):
    name: str | None = None
    # Mistral's schema lets arguments be an object as well as a JSON string.
    arguments: str | dict[str, Any] | None = None


class _Call(msgspec.Struct):
    function: _Function | None = None
    id: str | None = None
    type: str | None = None
    index: int = 0


class _Message(msgspec.Struct):
    role: str | None = None
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[_Call] | None = None


class _Choice(msgspec.Struct):
    index: int = 0
    message: _Message | None = None
    delta: _Message | None = None
    finish_reason: str | None = None


class _Details(msgspec.Struct):
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None


class _Usage(msgspec.Struct):
    # Mistral's schema lets the counts be null.
    prompt_tokens: int | None = 0
    completion_tokens: int | None = 0
    total_tokens: int | None = 0
    prompt_tokens_details: _Details | None = None
    completion_tokens_details: _Details | None = None
    num_cached_tokens: int | None = None


class _Body(msgspec.Struct):
    id: str = ""
    model: str = ""
    created: int = 0
    choices: list[_Choice] = msgspec.field(default_factory=list)
    usage: _Usage | None = None


class _UsageOnly(msgspec.Struct):
    usage: _Usage | None = None


_DECODE_BODY = msgspec.json.Decoder(_Body)
_DECODE_USAGE = msgspec.json.Decoder(_UsageOnly)


def _usage(wire: _Usage | None) -> Usage | None:
    if wire is None:
        return None
    prompt = wire.prompt_tokens_details
    cached = prompt.cached_tokens if prompt is not None else None
    if cached is None:
        cached = wire.num_cached_tokens
    completion = wire.completion_tokens_details
    reasoning = completion.reasoning_tokens if completion is not None else None
    return Usage(
        prompt_tokens=wire.prompt_tokens or 0,
        completion_tokens=wire.completion_tokens or 0,
        total_tokens=wire.total_tokens or 0,
        prompt_tokens_details=None if cached is None else PromptTokensDetails(cached_tokens=cached),
        completion_tokens_details=None
        if reasoning is None
        else CompletionTokensDetails(reasoning_tokens=reasoning),
    )


_FINISH: Final[Mapping[str, str]] = MappingProxyType({"model_length": "length"})


def _finish(raw: str | None, model: str, called: bool) -> tuple[str | None, str | None]:
    """The normalized finish reason and the raw one where they differ.

    A reason Mistral may add later ends the turn as ``stop`` (``tool_calls``
    when the choice made calls), as the other codecs read unknown reasons.

    Raises:
        ServiceUnavailableError: Mistral finished with ``error``.
    """
    if raw is None or raw in _USUAL:
        return raw, None
    if raw == "error":
        raise ServiceUnavailableError(
            "mistral stopped the answer with finish_reason 'error' (the generation failed "
            "midway); retry the call",
            provider=_NAME,
            model=model,
        )
    normal = _FINISH.get(raw) or ("tool_calls" if called else "stop")
    return normal, raw


def _texts(items: Any) -> str:
    return "".join(
        item["text"]
        for item in items
        if isinstance(item, dict)
        and item.get("type") == "text"
        and isinstance(item.get("text"), str)
    )


def _parts(content: Any) -> tuple[str | None, str | None, list[dict[str, Any]]]:
    """Content as (text, reasoning text, thinking chunks)."""
    if content is None or isinstance(content, str):
        return content, None, []
    text: list[str] = []
    reasoning: list[str] = []
    thinking: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type")
        if kind == "text" and isinstance(part.get("text"), str):
            text.append(part["text"])
        elif kind == "thinking" and isinstance(part.get("thinking"), list):
            thinking.append(part)
            reasoning.append(_texts(part["thinking"]))
    return "".join(text), "".join(reasoning) or None, thinking


def _arguments(value: str | dict[str, Any] | None) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else _ENCODE.encode(value).decode()


def _fresh_id() -> str:
    # A call the server sent without an id still needs one its tool result can
    # name, and one Mistral takes back in the history.
    return "".join(secrets.choice(_ALPHABET) for _ in range(9))


def _tool_calls(calls: list[_Call] | None) -> list[ToolCall] | None:
    if not calls:
        return None
    return [
        ToolCall(
            id=call.id or _fresh_id(),
            type=call.type or "function",
            function=FunctionCall(
                name=(call.function.name if call.function else None) or "",
                arguments=_arguments(call.function.arguments if call.function else None),
            ),
        )
        for call in calls
    ]


def _choice(choice: _Choice, model: str) -> Choice:
    wire = choice.message or _Message()
    text, reasoning, thinking = _parts(wire.content)
    calls = _tool_calls(wire.tool_calls)
    finish, native = _finish(choice.finish_reason, model, bool(calls))
    message = Message(
        role="assistant",
        content=text if text is not None or not calls else None,
        tool_calls=calls,
        reasoning=reasoning,
        provider_data={_NAME: {"thinking": thinking}} if thinking else None,
    )
    return Choice(
        index=choice.index, message=message, finish_reason=finish, native_finish_reason=native
    )


def _not_a_completion(response: HttpResponse, model: str, why: str) -> LLMError:
    return LLMError(
        f"mistral answered {response.status} with a body that is not a chat completion ({why}); "
        "check api_base points at Mistral's /v1",
        provider=_NAME,
        model=model,
        status=response.status,
    )


def _shared(data: bytes) -> ChatResponse | None:
    """``data`` decoded straight into the shared types, when Mistral's shapes are absent.

    Thinking chunks (an unknown content-part tag), object arguments, null
    counts and missing ids fail this decode; content lists, unusual finish
    reasons and the older cached-token count are looked for. ``None`` sends
    the body down Mistral's own path.
    """
    try:
        decoded = _DECODE_RESPONSE.decode(data)
    except msgspec.DecodeError:
        return None
    if not decoded.choices:
        return None
    for choice in decoded.choices:
        if choice.finish_reason not in _USUAL or type(choice.message.content) is list:
            return None
    usage = decoded.usage
    if usage is not None and usage.prompt_tokens_details is None and b'"num_cached' in data:
        return None
    return decoded


@decode_response.dispatch
def _decode_response(key: Mistral, response: HttpResponse, request: ChatRequest) -> Any:
    try:
        return _read_response(response, request)
    except RecursionError:
        raise _not_a_completion(
            response, request.model, "its JSON is nested too deeply to read"
        ) from None


def _read_response(response: HttpResponse, request: ChatRequest) -> ChatResponse:
    # An error envelope wins over choices beside it (quoted "error" is only
    # ever a key or a value, never text, which JSON escapes as \"error\").
    if _ERROR_MARK in response.body:
        error = _error_in(response.body, request.model, marked=True)
        if error is not None:
            raise error
    decoded = _shared(response.body)
    if decoded is not None:
        return decoded
    try:
        body = _DECODE_BODY.decode(response.body)
    except msgspec.DecodeError as exc:
        raise _not_a_completion(response, request.model, str(exc)) from None
    if not body.choices:
        error = _error_in(response.body, request.model)
        if error is not None:
            raise error
        raise _not_a_completion(response, request.model, "it has no choices")
    return ChatResponse(
        id=body.id,
        model=body.model,
        created=body.created,
        choices=[_choice(choice, request.model) for choice in body.choices],
        usage=_usage(body.usage),
    )


# --- streams --------------------------------------------------------------------------------


class _Thinking:
    """The thinking chunks one choice of a stream has sent so far.

    Pieces of one thinking run are joined into one chunk (text onto text);
    the whole list rides in ``provider_data`` of the first delta after the
    run, since the accumulator keeps the last provider data it sees whole.
    """

    __slots__ = ("chunks", "pending")

    def __init__(self) -> None:
        self.chunks: list[dict[str, Any]] = []
        self.pending = False

    def add(self, piece: dict[str, Any]) -> None:
        items = [dict(item) for item in piece["thinking"] if isinstance(item, dict)]
        if not self.pending or not self.chunks:
            self.chunks.append({**piece, "thinking": items})
            self.pending = True
            return
        chunk = self.chunks[-1]
        joined: list[dict[str, Any]] = chunk["thinking"]
        for item in items:
            last = joined[-1] if joined else None
            if (
                last is not None
                and last.get("type") == "text" == item.get("type")
                and isinstance(last.get("text"), str)
                and isinstance(item.get("text"), str)
            ):
                last["text"] += item["text"]
            else:
                joined.append(item)
        chunk.update({name: value for name, value in piece.items() if name != "thinking"})

    def data(self) -> dict[str, Any]:
        """The provider data of the chunks so far (a copy), ending the run."""
        self.pending = False
        chunks = [
            {**chunk, "thinking": [dict(item) for item in chunk["thinking"]]}
            for chunk in self.chunks
        ]
        return {_NAME: {"thinking": chunks}}


def _thinking_of(state: StreamState, index: int) -> _Thinking:
    runs: dict[int, _Thinking] = state.data.setdefault(_NAME, {})
    run = runs.get(index)
    if run is None:
        run = runs[index] = _Thinking()
    return run


def _wire_chunk(data: bytes, state: StreamState) -> tuple[StreamChunk, set[int]] | LLMError:
    """Decode a chunk the shared types cannot: content lists (thinking), object arguments.

    Returns the chunk and the indexes of its choices that carried thinking.
    """
    try:
        wire = _DECODE_BODY.decode(data)
    except msgspec.DecodeError as exc:
        return _error_in(data, state.model) or LLMError(
            f"mistral sent a stream event that is not a chunk ({exc})",
            provider=_NAME,
            model=state.model,
        )
    choices = []
    thinking_at: set[int] = set()
    for choice in wire.choices:
        delta = choice.delta or _Message()
        text, reasoning, thinking = _parts(delta.content)
        if thinking:
            thinking_at.add(choice.index)
            run = _thinking_of(state, choice.index)
            for piece in thinking:
                run.add(piece)
        calls = None
        if delta.tool_calls:
            calls = [
                ToolCallDelta(
                    index=call.index,
                    id=call.id,
                    type=call.type,
                    function=FunctionCallDelta(
                        name=call.function.name if call.function else None,
                        arguments=_arguments(call.function.arguments if call.function else None),
                    ),
                )
                for call in delta.tool_calls
            ]
        choices.append(
            ChunkChoice(
                index=choice.index,
                delta=Delta(role=delta.role, content=text, tool_calls=calls, reasoning=reasoning),
                finish_reason=choice.finish_reason,
            )
        )
    chunk = StreamChunk(
        id=wire.id,
        model=wire.model,
        created=wire.created,
        choices=choices,
        usage=_usage(wire.usage),
    )
    return chunk, thinking_at


def _settled(
    chunk: StreamChunk, data: bytes, state: StreamState, thinking_at: AbstractSet[int]
) -> StreamChunk | LLMError:
    """``chunk`` with normalized finish reasons, kept thinking and cached tokens.

    The thinking a choice has sent rides on its first delta after the
    thinking run, or on its finish.
    """
    runs: dict[int, _Thinking] | None = state.data.get(_NAME)
    changed = False
    out = []
    opened: set[tuple[int, int]] | None = state.data.get(_CALLS)
    for choice in chunk.choices:
        delta = choice.delta
        if delta.tool_calls:
            if opened is None:
                opened = state.data[_CALLS] = set()
            calls = _opened_calls(choice.index, delta.tool_calls, opened)
            if calls is None:
                return LLMError(
                    "mistral sent a tool call delta for an index it never opened (no id or "
                    "name came first); the stream is corrupt, retry the call",
                    provider=_NAME,
                    model=state.model,
                )
            if calls is not delta.tool_calls:
                delta = msgspec.structs.replace(delta, tool_calls=calls)
        finish, native = choice.finish_reason, None
        if finish is not None:
            called = opened is not None and any(slot[0] == choice.index for slot in opened)
            try:
                finish, native = _finish(finish, state.model, called)
            except LLMError as error:
                return error
        run = runs.get(choice.index) if runs else None
        if (
            run is not None
            and run.pending
            and (choice.index not in thinking_at or finish is not None)
        ):
            delta = msgspec.structs.replace(delta, provider_data=run.data())
        if delta is not choice.delta or native is not None or finish != choice.finish_reason:
            choice = msgspec.structs.replace(
                choice, delta=delta, finish_reason=finish, native_finish_reason=native
            )
            changed = True
        out.append(choice)
    usage = chunk.usage
    if usage is not None and usage.prompt_tokens_details is None and b'"num_cached' in data:
        usage = _usage(_DECODE_USAGE.decode(data).usage)
        changed = True
    return msgspec.structs.replace(chunk, choices=out, usage=usage) if changed else chunk


def _opened_calls(
    index: int, calls: list[ToolCallDelta], opened: set[tuple[int, int]]
) -> list[ToolCallDelta] | None:
    """``calls`` with an id on each call they open, recorded in ``opened``.

    ``None`` when one continues a call never opened.
    """
    out = calls
    for i, call in enumerate(calls):
        slot = (index, call.index)
        if slot in opened:
            continue
        if not call.id and not (call.function is not None and call.function.name):
            return None
        opened.add(slot)
        if not call.id:
            if out is calls:
                out = list(calls)
            out[i] = msgspec.structs.replace(call, id=_fresh_id())
    return out


_NO_THINKING: Final[frozenset[int]] = frozenset()
# State key of the (choice, call) slots a stream has opened.
_CALLS: Final = "mistral_calls"


@decode_event.dispatch
def _decode_event(key: Mistral, event: SSEEvent, state: StreamState) -> Any:
    data = event.data
    if data == _DONE:
        state.done = True
        return None
    thinking_at: AbstractSet[int] = _NO_THINKING
    # An ``event: error`` is told by its name once its data proved no chunk,
    # which keeps the test off the path of every chunk.
    try:
        try:
            chunk = _DECODE_CHUNK.decode(data)
        except msgspec.DecodeError:
            if event.event == "error":
                return error_from_body(None, data, state.model)
            # Thinking pieces (content lists) and object arguments: Mistral's own shapes.
            decoded = _wire_chunk(data, state)
            if isinstance(decoded, LLMError):
                return decoded
            chunk, thinking_at = decoded
        if not chunk.choices and chunk.usage is None and not chunk.id:
            if event.event == "error":
                return error_from_body(None, data, state.model)
            return _error_in(data, state.model)
        if chunk.object == "error":
            # An error object wins over choices beside it.
            return error_from_body(None, data, state.model)
        if not state.data:
            # The common chunk: text, a usual finish, no cached-token count to read.
            for choice in chunk.choices:
                if choice.delta.tool_calls or choice.finish_reason not in _USUAL:
                    break
            else:
                if chunk.usage is None or b'"num_cached' not in data:
                    return chunk
        return _settled(chunk, data, state, thinking_at)
    except RecursionError:
        return LLMError(
            "mistral sent a stream event whose JSON is nested too deeply to read; the "
            "stream is corrupt, retry the call",
            provider=_NAME,
            model=state.model,
        )


# --- errors ---------------------------------------------------------------------------------


class _ErrorBody(msgspec.Struct):
    # Loosely typed: an error body of an unexpected shape must still be read.
    object: Any = None
    message: Any = None
    type: Any = None
    code: Any = None
    detail: Any = None
    error: Any = None


_DECODE_ERROR = msgspec.json.Decoder(_ErrorBody)
_DECODE_ANY = msgspec.json.Decoder()

# Errors inside a 200 stream have no status; their type tells it.
_STATUS_OF_TYPE: Final[Mapping[str, int]] = MappingProxyType(
    {
        "invalid_request_error": 400,
        "invalid_function_call": 400,
        "invalid_request_message_order": 400,
        "invalid_model": 400,
        "unauthorized": 401,
        "forbidden": 403,
        "not_found": 404,
        "rate_limited": 429,
        "service_tier_capacity_exceeded": 429,
    }
)


def _detail(detail: Any) -> str:
    """Pydantic's validation errors as ``field: problem; ...``."""
    if isinstance(detail, str):
        return detail
    if not isinstance(detail, list):
        return ""
    shown = []
    for item in detail[:5]:
        if not isinstance(item, dict):
            continue
        loc = [str(part) for part in item.get("loc") or () if part != "body"]
        problem = item.get("msg")
        if isinstance(problem, list):
            problem = "; ".join(map(str, problem))
        shown.append(f"{'.'.join(loc) or 'request'}: {problem}")
    if len(detail) > 5:
        shown.append(f"and {len(detail) - 5} more")
    return "; ".join(shown)


def _message_of(found: _ErrorBody) -> str:
    message = found.message
    if isinstance(message, str) and message.startswith('{"detail"'):
        # Some answers hold the validation errors as a JSON string.
        with contextlib.suppress(msgspec.DecodeError, RecursionError):
            message = _DECODE_ANY.decode(message)
    if isinstance(message, dict):
        return _detail(message.get("detail")) or _ENCODE.encode(message).decode()
    if isinstance(message, str) and message:
        return message
    if found.detail is not None:
        return _detail(found.detail)
    error = found.error
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    if isinstance(error, str):
        return error
    return ""


_SHOWN: Final = 500
_WORD: Final = frozenset(string.ascii_letters + string.digits + "-_")


def _capped(message: str) -> str:
    """``message`` cut to about 500 characters, saying how much was left out."""
    if len(message) <= _SHOWN:
        return message
    cut = _SHOWN
    if message[cut - 1] in _WORD and message[cut] in _WORD:
        # The scrubber replaces a key only from its first 12 characters on, so
        # a cut must not leave a shorter start of one: end before the word.
        start = cut - 1
        while start > _SHOWN - 64 and message[start - 1] in _WORD:
            start -= 1
        if start > _SHOWN - 64:
            cut = start
    return f"{message[:cut].rstrip()} ... ({len(message) - cut} more characters)"


def _said(value: Any) -> bool:
    return isinstance(value, (str, dict, list)) and bool(value)


def _error_in(data: bytes, model: str | None, *, marked: bool = False) -> LLMError | None:
    """The error a 200 body or a stream event holds, or ``None`` when it holds none.

    With ``marked``, only a body that says it is an error (``"object":
    "error"`` or an ``error`` field) counts; otherwise a bare ``message`` or
    ``detail`` does too, since nothing else comes without choices or an id.
    """
    try:
        found = _DECODE_ERROR.decode(data)
    except (msgspec.DecodeError, RecursionError):
        return None
    if found.object == "error" or found.error is not None:
        return error_from_body(None, data, model)
    if not marked and (found.detail is not None or _said(found.message)):
        return error_from_body(None, data, model)
    return None


def error_from_body(status: int | None, body: bytes, model: str | None) -> LLMError:
    """Map a Mistral error body and HTTP status to the llmkit error.

    ``status`` is ``None`` for an error inside a stream; the error type then
    stands in for it (500 when it says nothing).
    """
    message = ""
    code: str | None = None
    kind: str | None = None
    try:
        found = _DECODE_ERROR.decode(body)
    except (msgspec.DecodeError, RecursionError):
        found = None
    if found is not None:
        message = _message_of(found)
        kind = found.type if isinstance(found.type, str) else None
        raw = found.code
        code = str(raw) if isinstance(raw, (str, int)) and not isinstance(raw, bool) else None
        error = found.error
        if isinstance(error, dict):
            kind = kind or (error.get("type") if isinstance(error.get("type"), str) else None)
    if status is None:
        # A list of validation errors is what a 422 holds.
        listed = found is not None and kind is None and isinstance(found.detail, list)
        status = 422 if listed else _STATUS_OF_TYPE.get(kind or "", 500)
    if not message:
        message = shown_body(body, 4096) or f"HTTP {status} with an empty body"
    return _classify(status, message, code or kind, kind, model)


def _classify(
    status: int, message: str, code: str | None, kind: str | None, model: str | None
) -> LLMError:
    common: dict[str, Any] = {"provider": _NAME, "model": model, "status": status, "code": code}
    # The whole message is read to classify; only its start is shown.
    whole, message = message, _capped(message)
    if "maximum context length" in whole or "too large for model" in whole:
        return ContextWindowError(f"{message} Shorten the messages or lower max_tokens.", **common)
    if status == 401:
        return AuthenticationError(f"{message} Check MISTRAL_API_KEY or api_key=.", **common)
    if status == 403:
        return PermissionDeniedError(
            f"{message} Check that the key's workspace may use this model.", **common
        )
    if status == 404 or kind == "invalid_model":
        return NotFoundError(
            f"{message} Check the model name (client.models.list() on Mistral) and api_base.",
            **common,
        )
    if status == 429:
        return RateLimitError(
            f"{message} Slow down or retry later (or raise the workspace's limits).", **common
        )
    if status in (400, 413, 422):
        return InvalidRequestError(message, **common)
    if status in (408, 409) or status >= 500:
        return ServiceUnavailableError(
            f"{message} Mistral failed or is overloaded; retry later.", **common
        )
    return LLMError(message, **common)


@decode_error.dispatch
def _decode_error(key: Mistral, response: HttpResponse, request: ChatRequest) -> Any:
    return error_from_body(response.status, response.body, request.model)
