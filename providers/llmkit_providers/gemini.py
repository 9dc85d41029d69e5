"""Google's Gemini API in its own format: ``models/{model}:generateContent``.

Not the OpenAI-compatible endpoint Google also serves: the native API is
the one that carries thinking summaries, thought signatures, cached
content and safety settings.

Wire facts this module rests on (from recorded traffic and the API reference):

* the model is in the path (``models/gemini-2.5-flash:generateContent``);
  a stream is ``:streamGenerateContent?alt=sse``, server-sent events each
  holding a whole ``GenerateContentResponse``, with no end marker: every
  recorded stream ends with the chunk that carries ``finishReason`` (and
  the final ``usageMetadata``), so that chunk marks a clean end and a body
  that stops before it raises :class:`~llmkit.provider.StreamInterruptedError`;
* bodies are camelCase JSON; requests may also use the proto's snake_case
  names, responses never do;
* function calls arrive whole (never as argument fragments), with an ``id``
  from Gemini 3 on and without one before; the API accepts ids chosen by
  the client on every model, so llmkit sends each tool call's id back on
  ``functionCall`` and ``functionResponse`` and synthesizes ids
  (``call_<responseId>_<n>``) where Gemini sent none;
* ``thoughtSignature`` sits on parts (the first function call of a turn, a
  text part, sometimes an empty text part at the end of a stream) and must
  come back on the same kind of part; Gemini 3 refuses a function call of
  the current turn without one, and accepts the documented placeholder
  ``skip_thought_signature_validator`` for calls made elsewhere;
* ``usageMetadata.totalTokenCount`` is prompt + candidates + thoughts +
  tool-use prompt tokens; ``candidatesTokenCount`` leaves thoughts out;
* errors use Google's ``{"error": {"code", "message", "status", "details"}}``
  envelope (wrapped in a list by some endpoints); a bad API key is a 400
  ``INVALID_ARGUMENT`` saying "API key not valid", a missing one a 403.

Usage is reported OpenAI's way: ``completion_tokens`` includes the thoughts
(also given as ``completion_tokens_details.reasoning_tokens``),
``prompt_tokens`` includes the tool-use prompt, and ``cached_tokens`` (part
of the prompt) is ``cachedContentTokenCount``.
"""

from __future__ import annotations

import re
from typing import Any, Final, Literal

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
    ContentFilterError,
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
    "SKIP_SIGNATURE",
    "Gemini",
    "GeminiOptions",
    "SafetySetting",
    "encode_gemini_request",
    "error_from_body",
]

#: The placeholder signature Google documents for function calls that no
#: Gemini model made (base64 of ``skip_thought_signature_validator``).
SKIP_SIGNATURE: Final = "c2tpcF90aG91Z2h0X3NpZ25hdHVyZV92YWxpZGF0b3I="


class SafetySetting(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One safety threshold: a ``HARM_CATEGORY_...`` and a ``BLOCK_...`` threshold."""

    category: str
    threshold: str


class GeminiOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Gemini's own settings, given as ``Config(options=...)``.

    Attributes:
        thinking_budget: tokens the model may think (``-1``: it decides,
            ``0``: no thinking where the model allows it); Gemini 2.5.
        include_thoughts: return thought summaries (``message.reasoning``).
        thinking_level: ``minimal``, ``low``, ``medium`` or ``high``; Gemini 3
            (which still takes ``thinking_budget``, but not both).
        top_k: sample from the k most likely tokens.
        safety_settings: thresholds per harm category.
        cached_content: the name of a cached content (``cachedContents/...``)
            made with the caching API, used as the prompt's prefix.
    """

    thinking_budget: int | None = None
    include_thoughts: bool | None = None
    thinking_level: Literal["minimal", "low", "medium", "high"] | None = None
    top_k: int | None = None
    safety_settings: list[SafetySetting] | None = None
    cached_content: str | None = None


class Gemini(ProviderKey):
    """Google's Gemini API; key from ``GEMINI_API_KEY`` (or ``GOOGLE_API_KEY``)."""

    __slots__ = ()
    name = "gemini"
    default_base_url = "https://generativelanguage.googleapis.com/v1beta"
    api_key_env = "GEMINI_API_KEY"
    api_key_env_fallbacks = ("GOOGLE_API_KEY",)
    auth_header = "x-goog-api-key"
    auth_prefix = ""
    options_type = GeminiOptions


# --- wire structs: only the fields the codec reads --------------------------------


class _FunctionCall(msgspec.Struct):
    name: str = ""
    # Kept as the JSON text Gemini sent: it becomes ``arguments`` unchanged.
    args: msgspec.Raw = msgspec.Raw(b"{}")
    id: str | None = None


class _Part(msgspec.Struct, rename="camel"):
    text: str | None = None
    thought: bool = False
    thought_signature: str | None = None
    function_call: _FunctionCall | None = None


class _Content(msgspec.Struct):
    parts: list[_Part] = msgspec.field(default_factory=list)


class _Candidate(msgspec.Struct, rename="camel"):
    content: _Content | None = None
    finish_reason: str | None = None
    index: int = 0


class _PromptFeedback(msgspec.Struct, rename="camel"):
    block_reason: str | None = None
    block_reason_message: str | None = None


class _Usage(msgspec.Struct, rename="camel"):
    prompt_token_count: int = 0
    candidates_token_count: int = 0
    total_token_count: int | None = None
    thoughts_token_count: int | None = None
    cached_content_token_count: int | None = None
    tool_use_prompt_token_count: int = 0


class _Status(msgspec.Struct):
    code: int | None = None
    message: str = ""
    status: str | None = None
    details: list[dict[str, Any]] | None = None


class _Response(msgspec.Struct, rename="camel"):
    candidates: list[_Candidate] = msgspec.field(default_factory=list)
    prompt_feedback: _PromptFeedback | None = None
    # Read only where it counts (a stream repeats it on every chunk).
    usage_metadata: msgspec.Raw = msgspec.Raw()
    model_version: str = ""
    response_id: str = ""
    error: _Status | None = None


class _Envelope(msgspec.Struct):
    error: _Status | None = None


_ENCODE = msgspec.json.Encoder()
_DECODE_RESPONSE = msgspec.json.Decoder(_Response)
_DECODE_USAGE = msgspec.json.Decoder(_Usage)
_DECODE_ENVELOPE = msgspec.json.Decoder(_Envelope | list[_Envelope])
_DECODE_JSON = msgspec.json.Decoder()

# --- requests ------------------------------------------------------------------------

_MODEL: Final = re.compile(r"(?:models/|tunedModels/)?[A-Za-z0-9][A-Za-z0-9._-]*")
_FUNCTION_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}")
_DATA_URL: Final = re.compile(r"data:([\w.+-]+/[\w.+-]+)?((?:;[\w.+-]+=[^;,]*)*);base64,(.*)", re.S)
_GEMINI_VERSION: Final = re.compile(r"gemini-(\d+)(?:\.(\d+))?")
_MAX_STOP: Final = 5
_JSON_TYPES: Final = frozenset(
    {"string", "number", "integer", "boolean", "array", "object", "null"}
)
# Media types by file extension, for URLs and file names (a table of our own:
# the stdlib's reads system files on first use).
_MEDIA: Final = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "heic": "image/heic",
    "heif": "image/heif",
    "pdf": "application/pdf",
    "txt": "text/plain",
    "md": "text/markdown",
    "html": "text/html",
    "csv": "text/csv",
    "mp3": "audio/mpeg",
    "wav": "audio/wav",
    "ogg": "audio/ogg",
    "flac": "audio/flac",
    "aac": "audio/aac",
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "webm": "video/webm",
}
_YOUTUBE: Final = (
    "https://www.youtube.com/",
    "https://youtube.com/",
    "https://youtu.be/",
    "https://m.youtube.com/",
)


def _bad(message: str, request: ChatRequest) -> InvalidRequestError:
    return InvalidRequestError(message, provider="gemini", model=request.model or None)


def _is_gemini3(model: str) -> bool:
    """Whether ``model`` is Gemini 3 or later (or a ``-latest`` alias of the newest)."""
    name = model.rsplit("/", 1)[-1]
    match = _GEMINI_VERSION.match(name)
    if match is None:
        return name.startswith("gemini-") and name.endswith("-latest")
    return int(match.group(1)) >= 3


def _model_path(request: ChatRequest) -> str:
    model = request.model
    if _MODEL.fullmatch(model) is None:
        raise _bad(
            f"model {model!r} cannot go into Gemini's URL (models/<model>:generateContent): "
            "use a model id such as 'gemini-2.5-flash' or 'models/gemini-2.5-flash', made of "
            "letters, digits, '.', '_' and '-'",
            request,
        )
    return model if "/" in model else "models/" + model


def _media_type(name: str) -> str | None:
    stem = name.partition("?")[0].partition("#")[0]
    _, dot, ext = stem.rpartition(".")
    return _MEDIA.get(ext.lower()) if dot and "/" not in ext else None


def _inline(url: str, where: str, request: ChatRequest) -> dict[str, Any]:
    match = _DATA_URL.fullmatch(url)
    if match is None or not match.group(1):
        raise _bad(
            f"{where} is a data: URL that is not base64 with a media type; Gemini takes "
            "inline data as data:<type>;base64,<data>",
            request,
        )
    return {"inlineData": {"mimeType": match.group(1), "data": match.group(3)}}


def _by_uri(uri: str, media: str | None) -> dict[str, Any]:
    data = {"fileUri": uri}
    if media is not None:
        data["mimeType"] = media
    return {"fileData": data}


def _image(url: str, where: str, request: ChatRequest) -> dict[str, Any]:
    if url.startswith("data:"):
        return _inline(url, where, request)
    if url.startswith(("https://", "gs://")):
        # Gemini fetches public https URLs, signed URLs, its Files API URIs
        # and registered gs:// objects itself.
        media = "video/mp4" if url.startswith(_YOUTUBE) else _media_type(url)
        return _by_uri(url, media)
    raise _bad(
        f"{where} has an image URL Gemini cannot fetch ({url[:40]!r}); pass a data: URL, "
        "an https:// URL, a gs:// URI or a Files API URI",
        request,
    )


def _text_of(content: Any, where: str, request: ChatRequest) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    texts = []
    for j, part in enumerate(content):
        if not isinstance(part, TextPart):
            raise _bad(
                f"{where}.content[{j}] is a {type(part).__name__}; Gemini takes only text here",
                request,
            )
        texts.append(part.text)
    return "".join(texts)


def _user_parts(content: Any, where: str, request: ChatRequest) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}]
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content or ()):
        at = f"{where}.content[{j}]"
        if isinstance(part, TextPart):
            parts.append({"text": part.text})
        elif isinstance(part, ImagePart):
            parts.append(_image(part.image_url.url, at, request))
        elif isinstance(part, AudioPart):
            audio = part.input_audio
            parts.append({"inlineData": {"mimeType": "audio/" + audio.format, "data": audio.data}})
        elif isinstance(part, FilePart):
            file = part.file
            if file.file_data:
                parts.append(_inline(file.file_data, at, request))
            elif file.file_id:
                parts.append(_by_uri(file.file_id, _media_type(file.filename or file.file_id)))
            else:
                raise _bad(f"{at} is a file part with neither file_data nor file_id", request)
    if not parts:
        raise _bad(f"{where} has no content parts; Gemini refuses an empty turn", request)
    return parts


def _signatures(message: Message, where: str, request: ChatRequest) -> dict[str, Any]:
    data = message.provider_data
    found = data.get("gemini") if data else None
    if found is None:
        return {}
    if not isinstance(found, dict):
        raise _bad(
            f"{where}.provider_data['gemini'] must be the dict llmkit returned, "
            f"not {type(found).__name__}",
            request,
        )
    return found


def _arguments(call: ToolCall, where: str, request: ChatRequest) -> Any:
    text = call.function.arguments
    if not text.strip():
        return {}
    try:
        args = _DECODE_JSON.decode(text)
    except (msgspec.DecodeError, RecursionError):
        args = None
    if not isinstance(args, dict):
        raise _bad(
            f"{where}.function.arguments is not a JSON object (or nests too deeply to read); "
            "Gemini takes a call's arguments as an object",
            request,
        )
    return args


def _model_parts(
    message: Message, where: str, request: ChatRequest, names: dict[str, str], gemini3: bool
) -> list[dict[str, Any]]:
    data = _signatures(message, where, request)
    parts: list[dict[str, Any]] = []
    thought = data.get("thought_signature")
    # Thought summaries carry no context for the model; only a signed one goes back.
    if message.reasoning and isinstance(thought, str):
        parts.append({"text": message.reasoning, "thought": True, "thoughtSignature": thought})
    text = _text_of(message.content, where, request)
    calls = message.tool_calls or ()
    signature = data.get("text_signature")
    if text or not calls:
        part: dict[str, Any] = {"text": text}
        if isinstance(signature, str):
            part["thoughtSignature"] = signature
        parts.append(part)
    signed = data.get("call_signatures")
    signed = signed if isinstance(signed, dict) else {}
    first = len(parts)
    for j, call in enumerate(calls):
        names[call.id] = call.function.name
        function: dict[str, Any] = {
            "name": call.function.name,
            "args": _arguments(call, f"{where}.tool_calls[{j}]", request),
        }
        if call.id:
            function["id"] = call.id
        part = {"functionCall": function}
        if isinstance(signed.get(call.id), str):
            part["thoughtSignature"] = signed[call.id]
        parts.append(part)
    if calls and gemini3 and not any("thoughtSignature" in p for p in parts[first:]):
        # Gemini 3 validates the first call of a turn; these calls came from
        # another provider (or were written by hand).
        parts[first]["thoughtSignature"] = SKIP_SIGNATURE
    if calls and not text and isinstance(signature, str):
        # A stream's signature can come on an empty text part after the calls.
        parts.append({"text": "", "thoughtSignature": signature})
    return parts


def _function_response(
    message: Message, where: str, request: ChatRequest, names: dict[str, str]
) -> dict[str, Any]:
    call_id = message.tool_call_id or ""
    name = names.get(call_id) or message.name
    if not name:
        raise _bad(
            f"{where} answers tool call {call_id!r}, which no earlier assistant message made; "
            "Gemini needs the function's name: keep that assistant message in the history "
            "(or set the tool message's name)",
            request,
        )
    text = _text_of(message.content, where, request)
    response: Any = None
    if text.startswith("{"):
        # A JSON object result is sent as the response object itself, which
        # Gemini reads as the function's output.
        try:
            response = _DECODE_JSON.decode(text)
        except (msgspec.DecodeError, RecursionError):
            response = None
    if not isinstance(response, dict):
        response = {"output": text}
    body: dict[str, Any] = {"name": name, "response": response}
    if call_id:
        body["id"] = call_id
    return {"functionResponse": body}


def _contents(
    request: ChatRequest, gemini3: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ``contents`` and the system instruction's parts of ``request``."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    # The parts of the content that holds the latest run of tool results:
    # Gemini wants every answer to one call turn in one content.
    answers: list[dict[str, Any]] | None = None
    for i, message in enumerate(request.messages):
        role = message.role
        text = message.content
        if type(text) is str and role == "user":
            # The commonest message of all, on a short path.
            answers = None
            contents.append({"role": "user", "parts": [{"text": text}]})
            continue
        where = f"messages[{i}]"
        if role == "tool":
            part = _function_response(message, where, request, names)
            if answers is None:
                answers = [part]
                contents.append({"role": "user", "parts": answers})
            else:
                answers.append(part)
            continue
        if role == "system" or role == "developer":
            system.append({"text": _text_of(message.content, where, request)})
            continue
        answers = None
        if role == "assistant":
            parts = _model_parts(message, where, request, names, gemini3)
            contents.append({"role": "model", "parts": parts})
        else:
            contents.append({"role": "user", "parts": _user_parts(message.content, where, request)})
    return system, contents


def _schema_problem(schema: Any, at: str) -> str | None:
    """What Gemini cannot take in a JSON Schema, or ``None``."""
    stack = [(schema, at)]
    while stack:
        node, path = stack.pop()
        if isinstance(node, list):
            stack.extend((item, f"{path}[{k}]") for k, item in enumerate(node))
            continue
        if not isinstance(node, dict):
            continue
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            return (
                f"{path} refers to {ref!r}; Gemini resolves only references inside the "
                "schema ('#/$defs/...'): inline the referenced schema"
            )
        kind = node.get("type")
        kinds = kind if isinstance(kind, list) else [kind] if kind is not None else []
        for value in kinds:
            if value not in _JSON_TYPES:
                return (
                    f"{path}.type is {value!r}, not a JSON Schema type "
                    f"({', '.join(sorted(_JSON_TYPES))})"
                )
        for name, value in node.items():
            if name not in ("enum", "const", "default", "examples"):
                stack.append((value, f"{path}.{name}"))
    return None


def _tools(request: ChatRequest) -> list[dict[str, Any]]:
    declarations = []
    for i, tool in enumerate(request.tools or ()):
        where = f"tools[{i}]"
        if tool.type != "function":
            raise _bad(f"{where} has type {tool.type!r}; Gemini takes function tools", request)
        function = tool.function
        if _FUNCTION_NAME.fullmatch(function.name) is None:
            raise _bad(
                f"{where}.function.name {function.name!r} is not a Gemini function name: it must "
                "start with a letter or '_' and hold at most 64 letters, digits, '_', '.' or '-'",
                request,
            )
        declaration: dict[str, Any] = {"name": function.name}
        if function.description is not None:
            declaration["description"] = function.description
        parameters = function.parameters
        if parameters is not None:
            problem = _schema_problem(parameters, f"{where}.function.parameters")
            if problem is None and parameters.get("type", "object") != "object":
                problem = (
                    f"{where}.function.parameters has type {parameters.get('type')!r}; Gemini "
                    "takes a function's arguments as an object (type 'object')"
                )
            if problem is not None:
                raise _bad(problem, request)
            declaration["parametersJsonSchema"] = parameters
        declarations.append(declaration)
    return [{"functionDeclarations": declarations}]


def _tool_config(choice: Any) -> dict[str, Any]:
    if isinstance(choice, ToolChoice):
        calling: dict[str, Any] = {"mode": "ANY", "allowedFunctionNames": [choice.function.name]}
    else:
        calling = {"mode": {"auto": "AUTO", "none": "NONE", "required": "ANY"}[choice]}
    return {"functionCallingConfig": calling}


def _generation_config(request: ChatRequest, options: GeminiOptions | None) -> dict[str, Any]:
    config: dict[str, Any] = {}
    limit = request.max_completion_tokens or request.max_tokens
    if limit is not None:
        config["maxOutputTokens"] = limit
    if request.temperature is not None:
        config["temperature"] = request.temperature
    if request.top_p is not None:
        config["topP"] = request.top_p
    if request.seed is not None:
        config["seed"] = request.seed
    if request.n is not None:
        config["candidateCount"] = request.n
    stop = request.stop
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else stop
        if len(stops) > _MAX_STOP:
            raise _bad(
                f"stop has {len(stops)} sequences; Gemini takes at most {_MAX_STOP}", request
            )
        config["stopSequences"] = stops
    fmt = request.response_format
    if fmt is not None and fmt.type != "text":
        config["responseMimeType"] = "application/json"
        if fmt.type == "json_schema" and fmt.json_schema is not None:
            schema = fmt.json_schema.schema
            problem = _schema_problem(schema, "response_format.json_schema.schema")
            if problem is not None:
                raise _bad(problem, request)
            config["responseJsonSchema"] = schema
    if options is not None:
        if options.top_k is not None:
            config["topK"] = options.top_k
        thinking = _thinking(options, request)
        if thinking:
            config["thinkingConfig"] = thinking
    return config


def _thinking(options: GeminiOptions, request: ChatRequest) -> dict[str, Any]:
    thinking: dict[str, Any] = {}
    if options.thinking_budget is not None:
        if options.thinking_level is not None:
            raise _bad(
                "options set both thinking_budget and thinking_level; Gemini takes one of them",
                request,
            )
        thinking["thinkingBudget"] = options.thinking_budget
    if options.thinking_level is not None:
        # The API's enum names are upper case.
        thinking["thinkingLevel"] = options.thinking_level.upper()
    if options.include_thoughts is not None:
        thinking["includeThoughts"] = options.include_thoughts
    return thinking


def _merge(into: dict[str, Any], extra: dict[str, Any]) -> None:
    # Gemini nests most settings (generationConfig, toolConfig): objects are
    # merged key by key, so extra_body={"generationConfig": {"topK": 3}}
    # keeps maxOutputTokens; anything else replaces.
    for name, value in extra.items():
        old = into.get(name)
        if isinstance(old, dict) and isinstance(value, dict):
            merged = dict(old)
            _merge(merged, value)
            into[name] = merged
        else:
            into[name] = value


def encode_gemini_request(key: ProviderKey, request: ChatRequest, config: Config) -> HttpCall:
    """Build the HTTP call for ``generateContent`` or ``streamGenerateContent``.

    ``key`` gives the auth header (a key derived from :class:`Gemini` may
    change it).

    Raises:
        InvalidRequestError: the request holds what Gemini cannot take (a model
            id that breaks the URL, a tool result for an unknown call,
            arguments that are no JSON object, an image URL Gemini cannot
            fetch, a schema it cannot read, several candidates streamed...).
    """
    path = _model_path(request)
    if request.stream and request.n is not None and request.n > 1:
        raise _bad(
            "n > 1 with stream: llmkit reads Gemini streams of one candidate; "
            "stream with n=1 or call without stream",
            request,
        )
    options = config.options if isinstance(config.options, GeminiOptions) else None
    system, contents = _contents(request, _is_gemini3(request.model))
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    if request.tools:
        body["tools"] = _tools(request)
    if request.tool_choice is not None:
        body["toolConfig"] = _tool_config(request.tool_choice)
    generation = _generation_config(request, options)
    if generation:
        body["generationConfig"] = generation
    if options is not None:
        if options.safety_settings is not None:
            body["safetySettings"] = [
                {"category": s.category, "threshold": s.threshold} for s in options.safety_settings
            ]
        if options.cached_content is not None:
            body["cachedContent"] = options.cached_content
    if request.extra_body:
        _merge(body, request.extra_body)
    headers = {"Content-Type": "application/json"}
    headers.update(auth_headers(key, config))
    if request.extra_headers:
        headers.update(request.extra_headers)
    method = ":streamGenerateContent?alt=sse" if request.stream else ":generateContent"
    base = config.api_base or ""
    return HttpCall(
        url=f"{base}/{path}{method}",
        body=_ENCODE.encode(body),
        headers=headers,
        stream=request.stream,
    )


@encode_request.dispatch
def _encode(key: Gemini, request: ChatRequest, config: Config) -> Any:
    return encode_gemini_request(key, request, config)


# --- responses -----------------------------------------------------------------------

_FINISH: Final = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
}


def _finish(native: str | None, called: bool) -> str | None:
    if native is None:
        return None
    if called and native == "STOP":
        return "tool_calls"
    # Unknown and other reasons (OTHER, MALFORMED_FUNCTION_CALL, LANGUAGE...)
    # end the turn without a better name; the raw value stays beside it.
    return _FINISH.get(native, "stop")


def _usage(raw: msgspec.Raw, model: str | None) -> Usage | None:
    if not raw or raw == b"null":
        return None
    try:
        wire = _DECODE_USAGE.decode(raw)
    except msgspec.DecodeError as exc:
        raise LLMError(
            f"gemini sent usageMetadata that is not token counts ({exc}); check api_base "
            "points at the Gemini API, or retry the call",
            provider="gemini",
            model=model,
        ) from None
    thoughts = wire.thoughts_token_count
    prompt = wire.prompt_token_count + wire.tool_use_prompt_token_count
    completion = wire.candidates_token_count + (thoughts or 0)
    cached = wire.cached_content_token_count
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=wire.total_token_count if wire.total_token_count else prompt + completion,
        prompt_tokens_details=None if cached is None else PromptTokensDetails(cached_tokens=cached),
        completion_tokens_details=(
            None if thoughts is None else CompletionTokensDetails(reasoning_tokens=thoughts)
        ),
    )


class _Parts:
    """What one candidate's parts say, read in one pass."""

    __slots__ = ("calls", "data", "reasoning", "text")

    def __init__(self) -> None:
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.calls: list[tuple[str, str, str]] = []
        self.data: dict[str, Any] = {}

    def read(self, parts: list[_Part], call_id: str, count: int) -> int:
        """Fold ``parts`` in; calls without an id get ``call_id + n`` from ``count`` on."""
        data = self.data
        for part in parts:
            call = part.function_call
            signature = part.thought_signature
            if call is not None:
                ident = call.id or f"{call_id}{count}"
                count += 1
                self.calls.append((ident, call.name, bytes(call.args).decode()))
                if signature is not None:
                    data.setdefault("call_signatures", {})[ident] = signature
            elif part.text is not None:
                if part.thought:
                    self.reasoning.append(part.text)
                    if signature is not None:
                        data["thought_signature"] = signature
                else:
                    self.text.append(part.text)
                    if signature is not None:
                        data["text_signature"] = signature
        return count


def _call_prefix(response_id: str, index: int) -> str:
    if not response_id:
        return f"call_{index}_" if index else "call_"
    return f"call_{response_id}_{index}_" if index else f"call_{response_id}_"


def _choice(candidate: _Candidate, response_id: str) -> Choice:
    native = candidate.finish_reason
    content = candidate.content
    if content is not None and len(content.parts) == 1:
        # The common answer, one plain text part, on a short path.
        part = content.parts[0]
        if (
            part.text is not None
            and part.function_call is None
            and part.thought_signature is None
            and not part.thought
        ):
            return Choice(
                index=candidate.index,
                message=Message(role="assistant", content=part.text),
                finish_reason=_finish(native, False),
                native_finish_reason=native,
            )
    parts = _Parts()
    if candidate.content is not None:
        parts.read(candidate.content.parts, _call_prefix(response_id, candidate.index), 0)
    text = "".join(parts.text)
    calls = [
        ToolCall(id=ident, function=FunctionCall(name=name, arguments=args))
        for ident, name, args in parts.calls
    ]
    message = Message(
        role="assistant",
        content=text if text or not calls else None,
        tool_calls=calls or None,
        reasoning="".join(parts.reasoning) or None,
        provider_data={"gemini": parts.data} if parts.data else None,
    )
    return Choice(
        index=candidate.index,
        message=message,
        finish_reason=_finish(native, bool(calls)),
        native_finish_reason=native,
    )


def _blocked(feedback: _PromptFeedback | None, model: str | None) -> LLMError | None:
    if feedback is None or feedback.block_reason is None:
        return None
    reason = feedback.block_reason
    said = f": {feedback.block_reason_message}" if feedback.block_reason_message else ""
    return ContentFilterError(
        f"Gemini blocked the prompt ({reason}){said}; rephrase it, or loosen "
        "options safety_settings where the category allows",
        provider="gemini",
        model=model,
        code=reason,
    )


@decode_response.dispatch
def _decode_response(key: Gemini, response: HttpResponse, request: ChatRequest) -> Any:
    try:
        wire = _DECODE_RESPONSE.decode(response.body)
    except msgspec.DecodeError as exc:
        raise LLMError(
            f"gemini answered {response.status} with a body that is not a "
            f"GenerateContentResponse ({exc}); check api_base points at the Gemini API "
            "(https://generativelanguage.googleapis.com/v1beta)",
            provider="gemini",
            model=request.model,
            status=response.status,
        ) from None
    if wire.error is not None:
        # An error inside a 200 body: its own code says what it is.
        raise _classify(None, wire.error, request.model)
    if not wire.candidates:
        blocked = _blocked(wire.prompt_feedback, request.model)
        if blocked is not None:
            raise blocked
        raise LLMError(
            "gemini answered without any candidate and without saying why; retry the call",
            provider="gemini",
            model=request.model,
            status=response.status,
        )
    return ChatResponse(
        id=wire.response_id,
        model=wire.model_version or request.model,
        choices=[_choice(candidate, wire.response_id) for candidate in wire.candidates],
        usage=_usage(wire.usage_metadata, request.model),
    )


# --- streams -------------------------------------------------------------------------


class _Stream:
    """Per-stream state: calls seen so far and the signatures to send whole."""

    __slots__ = ("calls", "data", "started")

    def __init__(self) -> None:
        self.started = False
        self.calls = 0
        self.data: dict[str, Any] = {}


def _stream_chunk(wire: _Response, state: StreamState, stream: _Stream) -> StreamChunk:
    candidate = wire.candidates[0]
    content = candidate.content
    if content is not None and candidate.finish_reason is None and stream.started:
        # The common chunk, a piece of answer text, on a short path.
        found = content.parts
        if len(found) == 1:
            part = found[0]
            if (
                part.text
                and part.function_call is None
                and part.thought_signature is None
                and not part.thought
            ):
                return StreamChunk(
                    id=wire.response_id,
                    model=wire.model_version or state.model,
                    choices=[ChunkChoice(index=candidate.index, delta=Delta(content=part.text))],
                )
    parts = _Parts()
    before = stream.calls
    if candidate.content is not None:
        prefix = _call_prefix(wire.response_id, candidate.index)
        stream.calls = parts.read(candidate.content.parts, prefix, before)
    tool_calls = [
        ToolCallDelta(
            index=before + n,
            id=ident,
            type="function",
            function=FunctionCallDelta(name=name, arguments=args),
        )
        for n, (ident, name, args) in enumerate(parts.calls)
    ] or None
    provider_data = None
    if parts.data:
        calls = parts.data.pop("call_signatures", None)
        merged = stream.data
        merged.update(parts.data)
        if calls:
            merged["call_signatures"] = {**merged.get("call_signatures", {}), **calls}
        # Deltas replace a provider's entry whole: send everything gathered so far.
        provider_data = {"gemini": dict(merged)}
    delta = Delta(
        role=None if stream.started else "assistant",
        content="".join(parts.text) or None,
        reasoning="".join(parts.reasoning) or None,
        tool_calls=tool_calls,
        provider_data=provider_data,
    )
    stream.started = True
    native = candidate.finish_reason
    usage = None
    if native is not None:
        state.done = True
        usage = _usage(wire.usage_metadata, state.model)
    return StreamChunk(
        id=wire.response_id,
        model=wire.model_version or state.model,
        choices=[
            ChunkChoice(
                index=candidate.index,
                delta=delta,
                finish_reason=_finish(native, stream.calls > 0),
                native_finish_reason=native,
            )
        ],
        usage=usage,
    )


@decode_event.dispatch
def _decode_event(key: Gemini, event: SSEEvent, state: StreamState) -> Any:
    try:
        wire = _DECODE_RESPONSE.decode(event.data)
    except msgspec.DecodeError as exc:
        return LLMError(
            f"gemini sent a stream event that is not a GenerateContentResponse ({exc})",
            provider="gemini",
            model=state.model,
        )
    stream = state.data.get("gemini")
    if stream is None:
        stream = state.data["gemini"] = _Stream()
    if wire.error is not None:
        return _classify(None, wire.error, state.model)
    if not wire.candidates:
        # A blocked prompt ends the stream with feedback and no candidate.
        return _blocked(wire.prompt_feedback, state.model)
    return _stream_chunk(wire, state, stream)


# --- errors --------------------------------------------------------------------------

# HTTP statuses of Google's canonical codes, for errors inside a 200 stream
# that carry no number.
_STATUS_OF: Final = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ABORTED": 409,
    "ALREADY_EXISTS": 409,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "INTERNAL": 500,
    "UNKNOWN": 500,
    "DATA_LOSS": 500,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}
_KEY_PROBLEMS: Final = ("API key not valid", "API key expired", "API_KEY_INVALID")
_NO_KEY: Final = "unregistered callers"
_DELAY: Final = re.compile(r"(\d+(?:\.\d+)?)s")


def _detail(details: list[dict[str, Any]] | None, kind: str, field: str) -> Any:
    for detail in details or ():
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith(kind):
            return detail.get(field)
    return None


def _retry_delay(details: list[dict[str, Any]] | None) -> float | None:
    delay = _detail(details, "google.rpc.RetryInfo", "retryDelay")
    match = _DELAY.fullmatch(delay) if isinstance(delay, str) else None
    return float(match.group(1)) if match else None


def _classify(status: int | None, wire: _Status, model: str | None) -> LLMError:
    if status is None:
        status = wire.code or _STATUS_OF.get(wire.status or "", 500)
    message = wire.message or f"HTTP {status} with no message"
    reason = _detail(wire.details, "google.rpc.ErrorInfo", "reason")
    code = reason if isinstance(reason, str) else wire.status
    common: dict[str, Any] = {"provider": "gemini", "model": model, "status": status, "code": code}
    keys = "Set GEMINI_API_KEY (or GOOGLE_API_KEY) or pass api_key="
    if any(text in message for text in _KEY_PROBLEMS) or code in (
        "API_KEY_INVALID",
        "API_KEY_EXPIRED",
    ):
        return AuthenticationError(f"{message} {keys} with a valid Gemini API key.", **common)
    if status == 401 or wire.status == "UNAUTHENTICATED" or _NO_KEY in message:
        return AuthenticationError(f"{message} {keys}.", **common)
    if status == 403:
        return PermissionDeniedError(
            f"{message} Check that the key's project may use this model and the "
            "Generative Language API is enabled for it.",
            **common,
        )
    if status == 404:
        return NotFoundError(f"{message} Check the model name and api_base.", **common)
    if status == 429:
        return RateLimitError(
            f"{message} Slow down, retry later or raise the project's quota.",
            retry_after=_retry_delay(wire.details),
            **common,
        )
    if "input token count" in message and "exceeds" in message:
        return ContextWindowError(f"{message} Shorten the messages.", **common)
    if status in (400, 413, 422):
        return InvalidRequestError(message, **common)
    if status in (408, 409, 499) or status >= 500:
        return ServiceUnavailableError(
            f"{message} Gemini failed or is overloaded; retry later.", **common
        )
    return LLMError(message, **common)


def error_from_body(status: int | None, body: bytes, model: str | None) -> LLMError:
    """Map a Gemini error body and HTTP status to the llmkit error.

    ``status`` is ``None`` for an error event inside a stream; the body's
    ``code`` (or its canonical ``status`` name) stands in for it.
    """
    try:
        envelope = _DECODE_ENVELOPE.decode(body)
    except msgspec.DecodeError:
        envelope = None
    if isinstance(envelope, list):
        envelope = envelope[0] if envelope else None
    wire = envelope.error if envelope is not None else None
    if wire is None:
        shown = body_text(body)
        wire = _Status(message=shown or f"HTTP {status} with an empty body")
    return _classify(status, wire, model)


@decode_error.dispatch
def _decode_error(key: Gemini, response: HttpResponse, request: ChatRequest) -> Any:
    error = error_from_body(response.status, response.body, request.model)
    if response.headers.get("retry-after") or response.headers.get("retry-after-ms"):
        # An HTTP header, where a proxy sent one, wins over the body's hint.
        error.retry_after = None
    return error


# --- capabilities --------------------------------------------------------------------


@capabilities.dispatch
def _capabilities(key: Gemini, model: str) -> Any:
    name = model.rsplit("/", 1)[-1].lower()
    if name.startswith("gemma"):
        # Gemma on the Gemini API takes no tools, system instruction or JSON mode.
        return Capabilities(streaming=True, vision=name.startswith("gemma-3"))
    match = _GEMINI_VERSION.match(name)
    if match is not None:
        version = (int(match.group(1)), int(match.group(2) or 0))
        reasoning = version >= (2, 5) or "thinking" in name
    else:
        # The provider as a whole, and -latest aliases of the newest models.
        reasoning = not name or name.endswith("-latest")
    return Capabilities(
        streaming=True,
        tools=True,
        parallel_tool_calls=True,
        vision=True,
        audio_input=True,
        file_input=True,
        json_mode=True,
        json_schema=True,
        reasoning=reasoning,
    )
