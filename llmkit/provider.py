"""The provider SDK: everything a provider package needs, in one import.

A provider is a key type plus methods on the generic functions::

    from llmkit.provider import ChatRequest, Config, HttpCall, ProviderKey, encode_request

    class Contoso(ProviderKey):
        name = "contoso"
        default_base_url = "https://api.contoso.example/v1"
        api_key_env = "CONTOSO_API_KEY"

    @encode_request.dispatch
    def _(key: Contoso, request: ChatRequest, config: Config) -> Any: ...

Built-in providers use exactly this module, and so should third-party ones:
the names here are the seam llmkit keeps stable. Codecs are sans-I/O: they
never import httpx, sleep or start threads; the transport sends the
:class:`HttpCall` they describe and hands back an :class:`HttpResponse` or
stream events cut by the call's framing.
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from llmkit._framing import (
    Framer,
    Framing,
    NDJSONDecoder,
    SSEDecoder,
    SSEEvent,
    register_framing,
    unregister_framing,
)
from llmkit._http import AttemptEvent, Transport
from llmkit.config import Config, auth_headers, secret_header_names
from llmkit.errors import (
    APIConnectionError,
    AuthenticationError,
    ContentFilterError,
    ContextWindowError,
    InvalidRequestError,
    LLMError,
    NotFoundError,
    PermissionDeniedError,
    ProviderNotFoundError,
    RateLimitError,
    ServiceUnavailableError,
    StreamInterruptedError,
    TimeoutError,
    body_text,
)
from llmkit.generics import (
    ProbeResult,
    acompletion,
    build_call,
    cached_dispatch,
    capabilities,
    completion,
    decode_error,
    decode_event,
    decode_response,
    encode_request,
    prepare,
    probe,
    scoped_providers,
)
from llmkit.keys import ENTRY_POINT_GROUP, ProviderKey
from llmkit.streaming import Accumulator, AsyncStream, EventPipeline, Stream, accumulate
from llmkit.types import (
    AudioPart,
    Capabilities,
    ChatRequest,
    ChatResponse,
    Choice,
    ChunkChoice,
    CompletionTokensDetails,
    ContentPart,
    Delta,
    FileData,
    FilePart,
    Function,
    FunctionCall,
    FunctionCallDelta,
    HttpCall,
    HttpResponse,
    ImagePart,
    ImageURL,
    InputAudio,
    JSONSchema,
    Message,
    PromptTokensDetails,
    ResponseFormat,
    Role,
    StreamChunk,
    StreamOptions,
    StreamState,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    ToolChoiceFunction,
    Usage,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "APIConnectionError",
    "Accumulator",
    "AsyncStream",
    "AttemptEvent",
    "AudioPart",
    "AuthenticationError",
    "Capabilities",
    "ChatRequest",
    "ChatResponse",
    "Choice",
    "ChunkChoice",
    "CompletionTokensDetails",
    "Config",
    "ContentFilterError",
    "ContentPart",
    "ContextWindowError",
    "Delta",
    "EventPipeline",
    "FileData",
    "FilePart",
    "Framer",
    "Framing",
    "Function",
    "FunctionCall",
    "FunctionCallDelta",
    "HttpCall",
    "HttpResponse",
    "ImagePart",
    "ImageURL",
    "InputAudio",
    "InvalidRequestError",
    "JSONSchema",
    "LLMError",
    "Message",
    "NDJSONDecoder",
    "NotFoundError",
    "PermissionDeniedError",
    "ProbeResult",
    "PromptTokensDetails",
    "ProviderKey",
    "ProviderNotFoundError",
    "RateLimitError",
    "ResponseFormat",
    "Role",
    "SSEDecoder",
    "SSEEvent",
    "ServiceUnavailableError",
    "Stream",
    "StreamChunk",
    "StreamInterruptedError",
    "StreamOptions",
    "StreamState",
    "TextPart",
    "TimeoutError",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "ToolChoice",
    "ToolChoiceFunction",
    "Transport",
    "Usage",
    "accumulate",
    "acompletion",
    "auth_headers",
    "body_text",
    "build_call",
    "cached_dispatch",
    "capabilities",
    "completion",
    "decode_error",
    "decode_event",
    "decode_response",
    "encode_request",
    "prepare",
    "probe",
    "register_framing",
    "register_openai_compatible",
    "scoped_providers",
    "secret_header_names",
    "unregister_framing",
]


if _TYPE_CHECKING:
    from llmkit_providers.compatible import register_openai_compatible


def __getattr__(name: str) -> _Any:
    # register_openai_compatible lives beside the OpenAI codec it derives
    # from; it is imported on first use, so importing the SDK imports no codec.
    if name == "register_openai_compatible":
        import importlib

        value = importlib.import_module("llmkit_providers.compatible").register_openai_compatible
        globals()[name] = value
        return value
    raise AttributeError(f"module 'llmkit.provider' has no attribute {name!r}")
