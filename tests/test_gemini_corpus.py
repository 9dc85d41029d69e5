"""Replay real Gemini API traffic through llmkit's Gemini codec.

The recordings in ``tests/fixtures/gemini`` (see its ATTRIBUTION.md) are the
wire-format specification: ``generateContent`` bodies Gemini accepted,
responses and ``alt=sse`` streams as they came back, error envelopes with
their statuses. Every expectation below is computed from a recording with
plain ``json`` and never through llmkit.

The recorded bytes are served by :class:`llmkit_contracts.Replay` from the
strict Gemini emulator on 127.0.0.1, so every request llmkit sends is also
checked as the real API checks it. Each recorded request is turned back
into an llmkit request (:func:`_convert`), and what llmkit sends must equal
the recorded body. What llmkit has no field for travels through
``extra_body`` (deep-merged by the codec) and is listed per recording in
:data:`EXPECTED_EXTRAS`; the request comparison then still covers every
other key of the body.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import corpus
import msgspec
import pytest

import llmkit
import llmkit_providers.gemini  # noqa: F401  registers "gemini" before the per-test snapshot
from llmkit.config import Config, resolve_config
from llmkit.generics import encode_request
from llmkit.types import ChatResponse, HttpCall
from llmkit_contracts import Replay, recorded_body, split_anywhere, truncations
from llmkit_contracts.emulators.gemini import GeminiProtocol
from llmkit_providers.gemini import SKIP_SIGNATURE, Gemini, GeminiOptions

API_KEY = "AIzaSy-test-0000000000000000000000"
CHATS = corpus.load("gemini", "chat")
STREAMS = corpus.load("gemini", "chat_stream")
ERRORS = corpus.load("gemini", "error")
REQUESTS = CHATS + STREAMS


def _ids(records: list[dict[str, Any]]) -> list[str]:
    return [record["id"].removeprefix("gemini-") for record in records]


def _model(record: dict[str, Any]) -> str:
    return str(record["request"]["path"].split("/models/")[1].split(":")[0])


# --- canonical bodies: one spelling of every field ------------------------------------

# Keys whose values are free JSON (arguments, results, schemas, server-side
# tool data): their own keys are names, never converted.
_FREE = frozenset(
    {
        "args",
        "response",
        "parameters",
        "parametersJsonSchema",
        "responseJsonSchema",
        "responseSchema",
        "executableCode",
        "codeExecutionResult",
        "toolCall",
        "toolResponse",
    }
)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def _canonical(value: Any, free: bool = False) -> Any:
    """The body with the proto's snake_case field names spelled in camelCase."""
    if isinstance(value, dict):
        out = {}
        for name, item in value.items():
            key = name if free else _camel(name)
            out[key] = _canonical(item, free or key in _FREE)
        return out
    if isinstance(value, list):
        return [_canonical(item, free) for item in value]
    return value


def _comparable(body: dict[str, Any]) -> dict[str, Any]:
    body = _canonical(copy.deepcopy(body))
    system = body.get("systemInstruction")
    if isinstance(system, dict):
        # pydantic-ai sends the system instruction with "role": "user"; the
        # API ignores its role and llmkit sends none.
        system.pop("role", None)
    return body


# --- recorded request -> llmkit request ------------------------------------------------

_EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "application/pdf": "pdf",
    "audio/mpeg": "mp3",
    "audio/wav": "wav",
    "video/mp4": "mp4",
    "text/plain": "txt",
}


class _Inexpressible(Exception):
    """A recorded content llmkit's messages cannot say exactly."""


@dataclass
class Converted:
    """A recorded request as llmkit's: the request, its provider options, and what went through extra_body."""

    request: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)
    extras: list[str] = field(default_factory=list)


def _user_part(part: dict[str, Any]) -> dict[str, Any]:
    if set(part) == {"text"}:
        return {"type": "text", "text": part["text"]}
    if set(part) == {"inlineData"}:
        blob = part["inlineData"]
        url = f"data:{blob['mimeType']};base64,{blob['data']}"
        if blob["mimeType"].startswith("image/"):
            return {"type": "image_url", "image_url": {"url": url}}
        return {"type": "file", "file": {"file_data": url}}
    if set(part) == {"fileData"} and part["fileData"]["mimeType"] in _EXTENSIONS:
        data = part["fileData"]
        name = "file." + _EXTENSIONS[data["mimeType"]]
        return {"type": "file", "file": {"file_id": data["fileUri"], "filename": name}}
    raise _Inexpressible(f"user part {sorted(part)}")


def _tool_message(part: dict[str, Any]) -> dict[str, Any]:
    response = part["functionResponse"]
    if set(response) != {"id", "name", "response"}:
        raise _Inexpressible(f"function response with {sorted(response)}")
    result = response["response"]
    output = result.get("output")
    content = (
        output if set(result) == {"output"} and isinstance(output, str) else json.dumps(result)
    )
    return {"role": "tool", "tool_call_id": response["id"], "content": content}


def _assistant(parts: list[dict[str, Any]], gemini3: bool) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant"}
    data: dict[str, Any] = {}
    texts = [p for p in parts if "text" in p and not p.get("thought")]
    calls = [p for p in parts if "functionCall" in p]
    if len(texts) + len(calls) != len(parts):
        other = sorted(
            {key for p in parts for key in p} - {"text", "functionCall", "thoughtSignature"}
        )
        raise _Inexpressible(f"model parts with {other[0]}")
    if len(texts) > 1:
        raise _Inexpressible("several text parts in a model turn")
    if texts and calls and parts.index(texts[0]) > parts.index(calls[0]):
        raise _Inexpressible("text after function calls")
    if texts:
        message["content"] = texts[0]["text"]
        if "thoughtSignature" in texts[0]:
            data["text_signature"] = texts[0]["thoughtSignature"]
    signed: dict[str, str] = {}
    tool_calls = []
    for k, part in enumerate(calls):
        call = part["functionCall"]
        tool_calls.append(
            {
                "id": call["id"],
                "type": "function",
                "function": {"name": call["name"], "arguments": json.dumps(call.get("args", {}))},
            }
        )
        signature = part.get("thoughtSignature")
        # On Gemini 3 llmkit puts the placeholder on an unsigned first call itself.
        if signature is not None and not (gemini3 and k == 0 and signature == SKIP_SIGNATURE):
            signed[call["id"]] = signature
    if tool_calls:
        message["tool_calls"] = tool_calls
    if signed:
        data["call_signatures"] = signed
    if data:
        message["provider_data"] = {"gemini": data}
    return message


def _messages(contents: list[dict[str, Any]], gemini3: bool) -> list[dict[str, Any]]:
    messages = []
    for content in contents:
        parts = content["parts"]
        if content.get("role") == "model":
            messages.append(_assistant(parts, gemini3))
        elif all("functionResponse" in part for part in parts):
            messages.extend(_tool_message(part) for part in parts)
        else:
            messages.append({"role": "user", "content": [_user_part(p) for p in parts]})
    return messages


def _tools(body: dict[str, Any], request: dict[str, Any], extra: dict[str, Any]) -> None:
    tools = body.pop("tools", None)
    if tools is None:
        return
    expressible = (
        isinstance(tools, list)
        and len(tools) == 1
        and set(tools[0]) == {"functionDeclarations"}
        and all(
            set(d) <= {"name", "description", "parametersJsonSchema"}
            for d in tools[0]["functionDeclarations"]
        )
    )
    if not expressible:
        extra["tools"] = tools
        return
    request["tools"] = [
        {
            "type": "function",
            "function": {
                key: value
                for key, value in (
                    ("name", d["name"]),
                    ("description", d.get("description")),
                    ("parameters", d.get("parametersJsonSchema")),
                )
                if value is not None
            },
        }
        for d in tools[0]["functionDeclarations"]
    ]


def _tool_choice(body: dict[str, Any], request: dict[str, Any], extra: dict[str, Any]) -> None:
    config = body.pop("toolConfig", None)
    if config is None:
        return
    rest = {key: value for key, value in config.items() if key != "functionCallingConfig"}
    calling = config.get("functionCallingConfig")
    choice: Any = None
    if calling is not None and "tools" in request:
        mode, names = calling.get("mode"), calling.get("allowedFunctionNames")
        if mode in ("AUTO", "NONE", "ANY") and not names:
            choice = {"AUTO": "auto", "NONE": "none", "ANY": "required"}[mode]
        elif mode == "ANY" and len(names) == 1:
            choice = {"type": "function", "function": {"name": names[0]}}
    if choice is not None:
        request["tool_choice"] = choice
    elif calling is not None:
        rest["functionCallingConfig"] = calling
    if rest:
        extra["toolConfig"] = rest


def _generation(
    body: dict[str, Any], request: dict[str, Any], options: dict[str, Any], extra: dict[str, Any]
) -> None:
    given = "generationConfig" in body
    config = dict(body.pop("generationConfig", None) or {})
    names = {
        "maxOutputTokens": "max_tokens",
        "temperature": "temperature",
        "topP": "top_p",
        "seed": "seed",
        "stopSequences": "stop",
    }
    for wire, ours in names.items():
        if wire in config:
            request[ours] = config.pop(wire)
    if "topK" in config:
        # pydantic-ai sends the integer as 10.0; JSON numbers compare equal.
        options["top_k"] = int(config.pop("topK"))
    if config.get("responseMimeType") == "application/json" and "responseSchema" not in config:
        config.pop("responseMimeType")
        schema = config.pop("responseJsonSchema", None)
        if schema is None:
            request["response_format"] = {"type": "json_object"}
        else:
            request["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "response", "schema": schema},
            }
    thinking = config.pop("thinkingConfig", None) or {}
    for wire, ours in (
        ("includeThoughts", "include_thoughts"),
        ("thinkingBudget", "thinking_budget"),
        ("thinkingLevel", "thinking_level"),
    ):
        if wire in thinking:
            value = thinking[wire]
            options[ours] = value.lower() if wire == "thinkingLevel" else value
    if config or (given and not _generation_keys(request, options)):
        extra["generationConfig"] = config


def _generation_keys(request: dict[str, Any], options: dict[str, Any]) -> bool:
    # Whether llmkit writes a generationConfig of its own for this request.
    built = {"max_tokens", "temperature", "top_p", "seed", "stop", "response_format"}
    return bool(
        built & set(request)
        or {"top_k", "include_thoughts", "thinking_budget", "thinking_level"} & set(options)
    )


def _convert(record: dict[str, Any]) -> Converted:
    """The llmkit request, options and extra_body that make llmkit send ``record``'s body."""
    body = _comparable(record["request"]["body"])
    model = _model(record)
    extra: dict[str, Any] = {}
    options: dict[str, Any] = {}
    messages = [
        {"role": "system", "content": part["text"]}
        for part in body.pop("systemInstruction", {}).get("parts", [])
    ]
    contents = body.pop("contents")
    try:
        messages += _messages(contents, model.startswith("gemini-3"))
    except _Inexpressible:
        extra["contents"] = contents
        messages.append({"role": "user", "content": "(the recorded contents, in extra_body)"})
    request: dict[str, Any] = {"model": model, "messages": messages}
    _tools(body, request, extra)
    _tool_choice(body, request, extra)
    _generation(body, request, options, extra)
    if "cachedContent" in body:
        options["cached_content"] = body.pop("cachedContent")
    extra.update(body)
    if extra:
        request["extra_body"] = extra
    return Converted(request, options, sorted(extra))


# What llmkit cannot say and sends through extra_body instead, per recording
# (every other key of each body is built by the codec and compared):
# - generationConfig: responseModalities (pydantic-ai always sends ["TEXT"]);
#   also an empty generationConfig object, which llmkit leaves out;
# - tools: server-side tools (googleSearch, codeExecution, urlContext,
#   fileSearch) and legacy OpenAPI "parameters" schemas (llmkit sends JSON
#   Schema as parametersJsonSchema);
# - toolConfig: mode VALIDATED, ANY over several functions, and
#   includeServerSideToolInvocations;
# - contents: parts llmkit does not model (code execution, server-side tool
#   calls and results, thought summaries without a signature, which llmkit
#   does not send back, video metadata, several text parts in one model turn,
#   multimodal function responses).
def _extras_by_kind() -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in REQUESTS:
        for key in _convert(record).extras:
            counts[key] = counts.get(key, 0) + 1
    return counts


EXPECTED_EXTRAS = {"generationConfig": 154, "tools": 33, "toolConfig": 33, "contents": 10}
# Why the 10 recordings' contents are not llmkit messages, by recording count.
EXPECTED_CONTENTS = {
    "function response with ['id', 'name', 'parts', 'response']": 4,
    "model parts with codeExecutionResult": 1,
    "model parts with toolCall": 2,
    "model parts with thought": 1,
    "several text parts in a model turn": 1,
    "user part ['fileData', 'videoMetadata']": 1,
}


def _contents_reasons() -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in REQUESTS:
        contents = _comparable(record["request"]["body"])["contents"]
        try:
            _messages(contents, _model(record).startswith("gemini-3"))
        except _Inexpressible as exc:
            counts[str(exc)] = counts.get(str(exc), 0) + 1
    return counts


# --- replays ---------------------------------------------------------------------------


def _finishes(event: bytes) -> bool:
    """Whether a recorded event carries a finishReason (the last event of every stream)."""
    [payload] = corpus.sse_data(event.decode("utf-8"))
    data = json.loads(payload)
    return any("finishReason" in c for c in data.get("candidates") or [])


class Replays:
    """One strict emulator per set of provider options a recording needs, started on first use."""

    def __init__(self) -> None:
        self._open: dict[str, Replay] = {}

    def __call__(self, record: dict[str, Any]) -> Replay:
        options = _convert(record).options
        label = json.dumps(options, sort_keys=True)
        replay = self._open.get(label)
        if replay is None:
            config: dict[str, Any] = {"api_key": API_KEY}
            if options:
                config["options"] = options
            replay = Replay(
                "gemini",
                GeminiProtocol(),
                lambda r: _convert(dict(r)).request,
                finish=_finishes,
                config=config,
            ).start()
            self._open[label] = replay
        return replay

    def close(self) -> None:
        for replay in self._open.values():
            replay.stop()


@pytest.fixture(scope="module")
def replays() -> Iterator[Replays]:
    opened = Replays()
    try:
        yield opened
    finally:
        opened.close()


def _check_sent(replay: Replay, record: dict[str, Any], *, stream: bool) -> dict[str, Any]:
    """The one request the client sent: the recorded endpoint and the key; its body."""
    [sent] = replay.sent
    assert sent.method == "POST"
    path, _, query = sent.path.partition("?")
    assert path == record["request"]["path"]
    assert query == ("alt=sse" if stream else "")
    assert sent.headers["x-goog-api-key"] == API_KEY
    assert sent.headers["content-type"].startswith("application/json")
    assert isinstance(sent.json, dict)
    return sent.json


# --- expectations from raw JSON ----------------------------------------------------------

_FILTERED = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"}


def _finish(native: str | None, called: bool) -> str | None:
    if native is None:
        return None
    if native == "STOP":
        return "tool_calls" if called else "stop"
    if native == "MAX_TOKENS":
        return "length"
    return "content_filter" if native in _FILTERED else "stop"


def _usage(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    thoughts = usage.get("thoughtsTokenCount")
    out: dict[str, Any] = {
        "prompt_tokens": usage.get("promptTokenCount", 0) + usage.get("toolUsePromptTokenCount", 0),
        "completion_tokens": usage.get("candidatesTokenCount", 0) + (thoughts or 0),
        "total_tokens": usage["totalTokenCount"],
    }
    if "cachedContentTokenCount" in usage:
        out["cached"] = usage["cachedContentTokenCount"]
    if thoughts is not None:
        out["reasoning"] = thoughts
    return out


def _call_id(call: dict[str, Any], response_id: str, n: int) -> str:
    # Gemini 3 names its calls; for older models llmkit numbers them within the response.
    return call.get("id") or (f"call_{response_id}_{n}" if response_id else f"call_{n}")


@dataclass
class _Answer:
    text: list[str] = field(default_factory=list)
    thoughts: list[str] = field(default_factory=list)
    calls: list[tuple[str, str, Any]] = field(default_factory=list)
    signatures: dict[str, Any] = field(default_factory=dict)
    finish: str | None = None

    def read(self, parts: list[dict[str, Any]], response_id: str) -> None:
        for part in parts:
            signature = part.get("thoughtSignature")
            if "functionCall" in part:
                call = part["functionCall"]
                ident = _call_id(call, response_id, len(self.calls))
                self.calls.append((ident, call["name"], call.get("args", {})))
                if signature:
                    self.signatures.setdefault("call_signatures", {})[ident] = signature
            elif "text" in part:
                into, name = (
                    (self.thoughts, "thought_signature")
                    if part.get("thought")
                    else (self.text, "text_signature")
                )
                into.append(part["text"])
                if signature:
                    self.signatures[name] = signature

    def outline(self, model: str, usage: dict[str, Any] | None) -> dict[str, Any]:
        text = "".join(self.text)
        return {
            "model": model,
            "content": text if text or not self.calls else None,
            "reasoning": "".join(self.thoughts) or None,
            "tool_calls": self.calls,
            "signatures": self.signatures or None,
            "finish_reason": _finish(self.finish, bool(self.calls)),
            "native_finish_reason": self.finish,
            "usage": _usage(usage),
        }


def _expected_response(body_text: str) -> dict[str, Any]:
    data = json.loads(body_text)
    [candidate] = data["candidates"]
    answer = _Answer(finish=candidate.get("finishReason"))
    answer.read((candidate.get("content") or {}).get("parts", []), data.get("responseId", ""))
    return answer.outline(data["modelVersion"], data.get("usageMetadata"))


def _expected_stream(body_text: str) -> dict[str, Any]:
    answer = _Answer()
    model = ""
    usage = None
    for payload in corpus.sse_data(body_text):
        chunk = json.loads(payload)
        model = model or chunk.get("modelVersion", "")
        [candidate] = chunk["candidates"]
        answer.read((candidate.get("content") or {}).get("parts", []), chunk.get("responseId", ""))
        if candidate.get("finishReason"):
            answer.finish = candidate["finishReason"]
            usage = chunk.get("usageMetadata")
    return answer.outline(model, usage)


def _outline(response: ChatResponse) -> dict[str, Any]:
    [choice] = response.choices
    message = choice.message
    usage = response.usage
    flat: dict[str, Any] | None = None
    if usage is not None:
        flat = {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
        }
        if usage.prompt_tokens_details is not None:
            flat["cached"] = usage.prompt_tokens_details.cached_tokens
        if usage.completion_tokens_details is not None:
            flat["reasoning"] = usage.completion_tokens_details.reasoning_tokens
    return {
        "model": response.model,
        "content": message.content,
        "reasoning": message.reasoning,
        "tool_calls": [
            (call.id, call.function.name, json.loads(call.function.arguments))
            for call in message.tool_calls or []
        ],
        "signatures": (message.provider_data or {}).get("gemini"),
        "finish_reason": choice.finish_reason,
        "native_finish_reason": choice.native_finish_reason,
        "usage": flat,
    }


# --- 0. the corpus itself ----------------------------------------------------------------


def test_gemini_corpus_is_complete() -> None:
    # Every native Gemini chat, stream and error recording of the corpus is here.
    assert (len(CHATS), len(STREAMS), len(ERRORS)) == (144, 17, 3)
    files = sorted(p.name for p in (corpus.FIXTURES / "gemini").glob("*.json"))
    assert files == sorted(f"{r['id']}.json" for r in CHATS + STREAMS + ERRORS)
    hosts = {r["request"]["host"] for r in CHATS + STREAMS + ERRORS}
    assert hosts == {"generativelanguage.googleapis.com"}


def test_gemini_default_endpoint_is_the_recorded_one() -> None:
    key = Gemini()
    config = resolve_config(key, Config(api_key=API_KEY))
    for record in REQUESTS:
        request = llmkit.validate_request("gemini", _convert(record).request)
        if record["kind"] == "chat_stream":
            request = msgspec.structs.replace(request, stream=True)
        call = cast(HttpCall, encode_request(key, request, config))
        query = record["request"].get("query")
        recorded = f"https://{record['request']['host']}{record['request']['path']}"
        assert call.url == recorded + (f"?{query}" if query else "")


# --- 1. responses --------------------------------------------------------------------------


@pytest.mark.parametrize("record", CHATS, ids=_ids(CHATS))
def test_gemini_response_decoding(replays: Replays, record: dict[str, Any]) -> None:
    replay = replays(record)
    response = replay.complete(record)
    _check_sent(replay, record, stream=False)
    assert _outline(response) == _expected_response(record["response"]["body_text"])


# --- 2. requests ---------------------------------------------------------------------------


def _sent_body(replays: Replays, record: dict[str, Any]) -> dict[str, Any]:
    replay = replays(record)
    stream = record["kind"] == "chat_stream"
    if stream:
        replay.stream(record)
    else:
        replay.complete(record)
    return _check_sent(replay, record, stream=stream)


@pytest.mark.parametrize("record", REQUESTS, ids=_ids(REQUESTS))
def test_gemini_request_encoding(replays: Replays, record: dict[str, Any]) -> None:
    # What llmkit puts on the wire is the recorded body (the strict emulator
    # accepting it, or the replay raises RefusedReplayError).
    sent = _sent_body(replays, record)
    assert _comparable(sent) == _comparable(record["request"]["body"])


def test_gemini_request_extras_are_the_known_ones() -> None:
    assert _extras_by_kind() == EXPECTED_EXTRAS
    assert _contents_reasons() == EXPECTED_CONTENTS


# --- 3. streams ----------------------------------------------------------------------------


@pytest.mark.parametrize("record", STREAMS, ids=_ids(STREAMS))
def test_gemini_stream_accumulation(replays: Replays, record: dict[str, Any]) -> None:
    replay = replays(record)
    streamed = replay.stream(record)
    _check_sent(replay, record, stream=True)
    assert streamed.chunks
    assert streamed.chunks[0].choices[0].delta.role == "assistant"
    finishes = [c for c in streamed.chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [streamed.chunks[-1]]
    assert streamed.chunks[-1].usage is not None
    assert _outline(streamed.response) == _expected_stream(record["response"]["body_text"])


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("record", STREAMS, ids=_ids(STREAMS))
def test_gemini_stream_split_anywhere(replays: Replays, record: dict[str, Any], seed: int) -> None:
    replay = replays(record)
    whole = replay.stream(record)
    body = recorded_body(record)
    pieces = split_anywhere(body, seed)
    assert b"".join(pieces) == body
    split = replay.stream(record, seed=seed)
    assert split.chunks == whole.chunks
    assert split.response == whole.response


def _cuts(record: dict[str, Any]) -> dict[str, bytes]:
    body = recorded_body(record)
    try:
        return truncations(body, _finishes)
    except ValueError:
        # A stream of one event: it is the finish event.
        return {"empty-body": b"", "inside-finish-event": body[: len(body) // 2]}


_CUT_CASES = [
    (record, cut)
    for record in STREAMS
    for cut in (
        "empty-body",
        "after-first-event",
        "before-finish-event",
        "before-finish-unterminated",
        "inside-finish-event",
    )
    if cut in _cuts(record)
]


@pytest.mark.parametrize("ending", ["ended", "dropped"])
@pytest.mark.parametrize(
    ("record", "cut"), _CUT_CASES, ids=[f"{r['id'][7:]}-{c}" for r, c in _CUT_CASES]
)
def test_gemini_stream_truncated_raises(
    replays: Replays, record: dict[str, Any], cut: str, ending: str
) -> None:
    # Gemini has no end marker: only the finishReason chunk ends a stream
    # cleanly, so every cut before (or inside) it must raise.
    replay = replays(record)
    body = _cuts(record)[cut]
    with pytest.raises(llmkit.StreamInterruptedError) as info:
        replay.stream(record, pieces=[body], disconnect=ending == "dropped")
    assert info.value.provider == "gemini"


# --- 4. errors -----------------------------------------------------------------------------


@pytest.mark.parametrize("record", ERRORS, ids=_ids(ERRORS))
def test_gemini_error_mapping(replays: Replays, record: dict[str, Any]) -> None:
    # The recorded error bodies are served to a generateContent call (two of
    # them answered countTokens and batchEmbedContents: the envelope is the same).
    recorded = record["response"]
    status = recorded["status"]
    envelope = json.loads(recorded["body_text"])["error"]
    # The strict emulator itself answers 404 for a model outside Gemini's
    # families ("nonexistent-model"); the recorded body is served to a Gemini name.
    model = _model(record) if _model(record).startswith("gemini-") else "gemini-2.5-flash"
    request = {"model": model, "messages": [{"role": "user", "content": "hello"}]}
    replay = replays(CHATS[0])
    with pytest.raises(llmkit.LLMError) as info:
        replay.complete(record, request=request)
    error = info.value
    assert status == 404
    assert type(error) is llmkit.NotFoundError
    assert error.status == status
    assert error.provider == "gemini"
    assert error.model == model
    assert error.code == envelope["status"]
    assert envelope["message"] in error.message
    assert error.retryable is False
    assert API_KEY not in str(error)


# --- async parity --------------------------------------------------------------------------


def _sample(records: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    step = max(len(records) // count, 1)
    return records[::step][:count]


ASYNC_CHATS = _sample(CHATS, 6)
ASYNC_STREAMS = _sample(STREAMS, 5)


@pytest.mark.anyio
@pytest.mark.parametrize("record", ASYNC_CHATS, ids=_ids(ASYNC_CHATS))
async def test_gemini_async_response_parity(replays: Replays, record: dict[str, Any]) -> None:
    replay = replays(record)
    response = await replay.acomplete(record)
    _check_sent(replay, record, stream=False)
    assert response == replay.complete(record)
    assert _outline(response) == _expected_response(record["response"]["body_text"])


@pytest.mark.anyio
@pytest.mark.parametrize("split", [False, True], ids=["whole", "pieces"])
@pytest.mark.parametrize("record", ASYNC_STREAMS, ids=_ids(ASYNC_STREAMS))
async def test_gemini_async_stream_parity(
    replays: Replays, record: dict[str, Any], split: bool
) -> None:
    replay = replays(record)
    streamed = await replay.astream(record, seed=7 if split else None)
    _check_sent(replay, record, stream=True)
    sync = replay.stream(record)
    assert streamed.chunks == sync.chunks
    assert streamed.response == sync.response


@pytest.mark.anyio
@pytest.mark.parametrize("record", ASYNC_STREAMS, ids=_ids(ASYNC_STREAMS))
async def test_gemini_async_stream_truncated_raises(
    replays: Replays, record: dict[str, Any]
) -> None:
    cut = _cuts(record)["inside-finish-event"]
    with pytest.raises(llmkit.StreamInterruptedError):
        await replays(record).astream(record, pieces=[cut])


def test_gemini_options_are_typed() -> None:
    # The options the recordings need all fit the provider's options struct.
    for record in REQUESTS:
        options = _convert(record).options
        if options:
            GeminiOptions(**options)
