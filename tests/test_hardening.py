"""Hostile input, found in review: each case failed before its fix.

Every refused input must give an llmkit error before any request is sent,
so each case runs against a recording transport and checks it saw nothing.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import msgspec
import pytest

import llmkit
from llmkit import core, keys
from llmkit.config import Config
from llmkit.generics import decode_response, encode_request
from llmkit.keys import ProviderKey
from llmkit.types import ChatRequest, Function, HttpCall, Message, TextPart, Tool

SECRET = "sk-harden-0123456789abcdef"
HI = {"messages": [{"role": "user", "content": "Hi"}]}
OK_BODY = {
    "id": "c1",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}],
}


class Recorder:
    """A MockTransport handler that records requests and answers a canned reply."""

    def __init__(self, reply: Callable[[httpx.Request], httpx.Response] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self._reply = reply or (lambda request: httpx.Response(200, json=OK_BODY))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self._reply(request)

    def config(self, **extra: Any) -> dict[str, Any]:
        client = httpx.Client(transport=httpx.MockTransport(self))
        return {"api_key": SECRET, "http_client": client, "retries": 0, **extra}

    def async_config(self, **extra: Any) -> dict[str, Any]:
        client = httpx.AsyncClient(transport=httpx.MockTransport(self))
        return {"api_key": SECRET, "async_http_client": client, "retries": 0, **extra}


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def _deep_dict(depth: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(depth):
        node["a"] = {}
        node = node["a"]
    return root


def _deep_list(depth: int) -> list[Any]:
    root: list[Any] = []
    node = root
    for _ in range(depth):
        inner: list[Any] = []
        node.append(inner)
        node = inner
    return root


def _tool(parameters: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function", "function": {"name": "f", "parameters": parameters}}


UNSENDABLE = [
    pytest.param(
        {"messages": [{"role": "user", "content": "a\ud800b"}]},
        r"\$\.messages\[0\]\.content",
        id="surrogate-content",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "\udfff"}]}]},
        r"\$\.messages\[0\]\.content\[0\]\.text",
        id="surrogate-part",
    ),
    pytest.param({**HI, "model": "gpt\ud800"}, r"\$\.model", id="surrogate-model"),
    pytest.param(
        {**HI, "extra_body": {"x": ["\ud800"]}}, r"\$\.extra_body\.x\[0\]", id="surrogate-extra"
    ),
    pytest.param({**HI, "extra_body": {"x": object()}}, r"\$\.extra_body\.x", id="object-extra"),
    pytest.param(
        {**HI, "extra_body": {"x": {1, object()}}}, r"\$\.extra_body\.x", id="set-of-object"
    ),
    pytest.param(
        {**HI, "tools": [_tool({"type": "object", "default": object()})]},
        r"\$\.tools\[0\]\.function\.parameters\.default",
        id="object-tool",
    ),
    pytest.param(
        # Deeper than msgspec's encoder goes on any Python (3.13 takes 5,000).
        {**HI, "tools": [_tool(_deep_dict(50_000))]},
        r"\$\.tools\[0\]\.function\.parameters\.a\.a.*deeper than",
        id="deep-tool",
    ),
    pytest.param({**HI, "extra_body": {"x": _deep_list(100_000)}}, r"deeper than", id="deep-extra"),
    pytest.param(
        {**HI, "extra_body": {"t": math.nan}}, r"\$\.extra_body\.t is nan", id="nan-extra"
    ),
    pytest.param(
        {**HI, "tools": [_tool({"minimum": -math.inf})]},
        r"parameters\.minimum is -inf",
        id="inf-tool",
    ),
    pytest.param({**HI, "temperature": math.nan}, r"temperature", id="nan-temperature"),
]


@pytest.mark.parametrize(("request_", "where"), UNSENDABLE)
@pytest.mark.parametrize("entry", ["completion", "stream", "validate"])
def test_hardening_unsendable_request_named_before_sending(
    recorder: Recorder, request_: dict[str, Any], where: str, entry: str
) -> None:
    def call() -> object:
        if entry == "validate":
            return core.validate_request("openai", {"model": "m", **request_})
        send = core.stream if entry == "stream" else core.completion
        return send("openai", request_.get("model", "m"), request_, recorder.config())

    with pytest.raises(llmkit.InvalidRequestError, match=where) as info:
        call()
    assert recorder.requests == []
    assert info.value.__cause__ is None


@pytest.mark.parametrize(("request_", "where"), UNSENDABLE[:4])
def test_hardening_unsendable_request_refused_async(
    recorder: Recorder, request_: dict[str, Any], where: str
) -> None:
    async def call() -> None:
        await core.acompletion(
            "openai", request_.get("model", "m"), request_, recorder.async_config()
        )

    with pytest.raises(llmkit.InvalidRequestError, match=where):
        asyncio.run(call())
    assert recorder.requests == []


def test_hardening_chat_text_with_surrogate(recorder: Recorder) -> None:
    with pytest.raises(llmkit.InvalidRequestError, match=r"messages\[0\]\.content"):
        core.chat("openai", "m", "hi \ud800", **recorder.config())
    assert recorder.requests == []


def test_hardening_deep_but_finite_json_still_sent(recorder: Recorder) -> None:
    # A float pattern in a string must not trip the non-finite check.
    request = {**HI, "extra_body": {"blob": "\xcb\x7f\xf8", "n": 1.5, "nested": _deep_dict(20)}}
    assert core.completion("openai", "m", request, recorder.config()).text == "ok"
    assert len(recorder.requests) == 1


@pytest.mark.parametrize(
    "config",
    [
        {"timeout": math.nan},
        {"connect_timeout": math.nan},
        {"deadline": math.nan},
        {"timeout": math.inf},
        {"timeout": 1e300},
        {"deadline": 86_401},
        {"retries": 101},
        {"retries": 10**100},
        {"retries": 2.0},
    ],
    ids=lambda config: repr(config)[:30],
)
def test_hardening_config_refuses_non_finite_and_absurd(
    recorder: Recorder, config: dict[str, Any]
) -> None:
    with pytest.raises(llmkit.InvalidRequestError, match=next(iter(config))) as info:
        core.completion("openai", "m", HI, recorder.config(**config))
    assert len(str(info.value)) < 300
    with pytest.raises(llmkit.InvalidRequestError):
        Config(**config)
    assert recorder.requests == []


def test_hardening_config_maximum_is_accepted() -> None:
    assert Config(timeout=86_400, deadline=86_400.0, retries=100).retries == 100


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"api_key": 5}, "api_key must be a string"),
        ({"api_base": 5}, "api_base must be a string"),
        ({"api_base": "ftp://x"}, "http://"),
        ({"api_base": "http://x/\ud800"}, "surrogates"),
        ({"api_base": "http://x y"}, "spaces"),
        ({"headers": "x"}, "headers must be a dict"),
        ({"headers": {"x": 5}}, "must be a string"),
        ({"headers": {5: "x"}}, "not a valid header name"),
    ],
    ids=[
        "key-int",
        "base-int",
        "base-ftp",
        "base-surrogate",
        "base-space",
        "headers-str",
        "value-int",
        "name-int",
    ],
)
def test_hardening_config_types_checked_on_construction(
    kwargs: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(llmkit.InvalidRequestError, match=fragment):
        Config(**kwargs)


@pytest.mark.parametrize("config", ["api_key=sk", 5, ["x"]], ids=["str", "int", "list"])
def test_hardening_config_of_wrong_type(recorder: Recorder, config: Any) -> None:
    with pytest.raises(llmkit.InvalidRequestError, match="config must be a dict or a Config"):
        core.completion("openai", "m", HI, config)


def test_hardening_api_base_credentials_refused() -> None:
    with pytest.raises(llmkit.InvalidRequestError, match="holds credentials") as info:
        Config(api_base="http://user:pw-hidden-123@example.test/v1")
    assert "pw-hidden-123" not in str(info.value)


STRUCTS = [
    pytest.param(
        lambda: ChatRequest(
            model="m",
            messages=[Message(role="robot", content=5)],  # type: ignore[arg-type]
            stop=7,  # type: ignore[arg-type]
            seed="x",  # type: ignore[arg-type]
        ),
        r"\$\.stop",
        id="stop",
    ),
    pytest.param(
        lambda: ChatRequest(model="m", messages=[Message(role="robot", content="x")]),  # type: ignore[arg-type]
        r"\$\.messages\[0\]\.role",
        id="role",
    ),
    pytest.param(
        lambda: ChatRequest(model="m", messages=[Message(role="user", content=5)]),  # type: ignore[arg-type]
        r"\$\.messages\[0\]\.content",
        id="content",
    ),
    pytest.param(
        lambda: ChatRequest(model="m", messages=[Message(role="user", content=[TextPart(text=5)])]),  # type: ignore[arg-type]
        r"\$\.messages\[0\]\.content\[0\]\.text",
        id="part",
    ),
    pytest.param(
        lambda: ChatRequest(
            model="m",
            messages=[Message(role="user", content="x")],
            temperature="hot",  # type: ignore[arg-type]
        ),
        r"\$\.temperature",
        id="temperature",
    ),
    pytest.param(
        lambda: ChatRequest(model="m", messages=[Message(role="user", content="x")], seed="x"),  # type: ignore[arg-type]
        r"\$\.seed",
        id="seed",
    ),
    pytest.param(
        lambda: ChatRequest(model="m", messages=({"role": "user"},)),  # type: ignore[arg-type]
        r"messages must be a list",
        id="tuple",
    ),
    pytest.param(
        lambda: ChatRequest(
            model="m",
            messages=[Message(role="user", content="x")],
            tools=[Tool(function=Function(name=5))],  # type: ignore[arg-type]
        ),
        r"\$\.tools\[0\]\.function\.name",
        id="tool-name",
    ),
    pytest.param(
        lambda: ChatRequest(
            model="m", messages=[Message(role="user", content="x")], extra_body={"a": object()}
        ),
        r"\$\.extra_body\.a",
        id="extra-object",
    ),
]


@pytest.mark.parametrize(("build", "where"), STRUCTS)
def test_hardening_structs_validated_like_dicts(
    recorder: Recorder, build: Callable[[], ChatRequest], where: str
) -> None:
    with pytest.raises(llmkit.InvalidRequestError, match=where):
        core.completion("openai", "m", build(), recorder.config())
    with pytest.raises(llmkit.InvalidRequestError, match=where):
        core.validate_request("openai", build())
    assert recorder.requests == []


def test_hardening_valid_struct_history_passes(recorder: Recorder) -> None:
    history = [
        Message(role="system", content="be brief"),
        Message(role="user", content=[TextPart(text="hi")]),
        Message(
            role="assistant",
            tool_calls=[
                llmkit.types.ToolCall(id="c", function=llmkit.types.FunctionCall(name="f"))
            ],
        ),
        Message(role="tool", tool_call_id="c", content="42"),
    ]
    request = ChatRequest(model="m", messages=history, temperature=1, stop=["x"])
    assert core.completion("openai", "m", request, recorder.config()).text == "ok"


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda: core.chat("openai", "m", 12345), "text must be a string"),  # type: ignore[arg-type]
        (lambda: core.chat("openai", "m", "hi", system_prompt=5), "system_prompt"),  # type: ignore[arg-type]
        (lambda: core.completion([], "m", HI), "provider must be a name"),  # type: ignore[arg-type]
        (lambda: core.completion("openai", 5, HI), "model must be a string"),  # type: ignore[arg-type]
        (lambda: core.completion("openai", "m", "hi"), "request must be a ChatRequest or a dict"),  # type: ignore[arg-type]
        (lambda: core.provider_info([]), "provider must be a name"),  # type: ignore[arg-type]
        (lambda: core.provider_available({}), "provider must be a name"),  # type: ignore[arg-type]
        (lambda: core.validate_request(None, HI), "provider must be a name"),  # type: ignore[arg-type]
    ],
    ids=[
        "chat-int",
        "chat-system",
        "provider-list",
        "model-int",
        "request-str",
        "info",
        "available",
        "validate",
    ],
)
def test_hardening_entry_points_check_argument_types(
    call: Callable[[], object], fragment: str
) -> None:
    with pytest.raises(llmkit.InvalidRequestError, match=fragment):
        call()


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Length": "1"},
        {"content-length": "1"},
        {"Host": "evil.test"},
        {"Transfer-Encoding": "chunked"},
        {"": "x"},
        {"X-A\r\nX-B": "x"},
        {"X-A\n": "x"},
        {"X:A": "x"},
        {"X A": "x"},
        {"X-\xe9": "x"},
        {"X-A": "x\r\nInjected: 1"},
        {"X-A": "x\ny"},
        {"X-A": "\xe9"},
        {"X-A": "\ud800"},
        {"X-A": " v"},
        {"X-A": "v\t"},
    ],
    ids=lambda headers: repr(headers)[:24],
)
@pytest.mark.parametrize("where", ["extra_headers", "config"])
def test_hardening_bad_header_refused_before_sending(
    recorder: Recorder, headers: dict[str, str], where: str
) -> None:
    request: dict[str, Any]
    if where == "config":
        config, request = recorder.config(headers=headers), HI
    else:
        config, request = recorder.config(), {**HI, "extra_headers": headers}
    with pytest.raises(llmkit.InvalidRequestError, match="header") as info:
        core.completion("openai", "m", request, config)
    assert recorder.requests == []
    for value in headers.values():
        if len(value) > 2:
            assert value not in str(info.value)


def _echo(status: int, **fields: Any) -> Callable[[httpx.Request], httpx.Response]:
    def reply(request: httpx.Request) -> httpx.Response:
        auth = request.headers.get("authorization", "")
        body = {
            "error": {k: v.format(auth=auth, token=auth.split(" ")[-1]) for k, v in fields.items()}
        }
        headers = {"x-request-id": auth.split(" ")[-1]}
        return httpx.Response(status, json=body, headers=headers)

    return reply


@pytest.mark.parametrize(
    ("config_extra", "request_extra"),
    [
        ({}, {"extra_headers": {"Authorization": f"Bearer {SECRET}x"}}),
        ({"headers": {"Authorization": f"bearer {SECRET}y"}}, {}),
        ({"headers": {"authorization": f"BEARER {SECRET}z"}}, {}),
        ({}, {}),
    ],
    ids=["extra-headers", "lowercase-scheme", "upper-scheme", "api-key"],
)
def test_hardening_echoed_secret_scrubbed_from_every_field(
    config_extra: dict[str, Any], request_extra: dict[str, Any]
) -> None:
    recorder = Recorder(_echo(401, message="bad key {auth}", code="{token}", type="{token}"))
    with pytest.raises(llmkit.AuthenticationError) as info:
        core.completion("openai", "m", {**HI, **request_extra}, recorder.config(**config_extra))
    error = info.value
    sent = recorder.requests[0].headers["authorization"].split(" ")[-1]
    assert sent.startswith(SECRET)
    for text in (str(error), repr(error), error.message, error.code, error.request_id, *error.args):
        assert text is not None
        assert SECRET not in text


def test_hardening_ok_status_with_error_body_raises() -> None:
    body = {
        "error": {
            "message": "quota gone",
            "type": "insufficient_quota",
            "code": "insufficient_quota",
        }
    }
    recorder = Recorder(lambda request: httpx.Response(200, json=body))
    with pytest.raises(llmkit.RateLimitError, match="quota gone") as info:
        core.completion("openai", "m", HI, recorder.config())
    assert info.value.retryable is False


@pytest.mark.parametrize("body", [b"{}", b'{"choices": []}', b'{"object": "list", "data": []}'])
def test_hardening_ok_status_without_choices_raises(body: bytes) -> None:
    recorder = Recorder(lambda request: httpx.Response(200, content=body))
    with pytest.raises(llmkit.LLMError, match="not a chat completion"):
        core.completion("openai", "m", HI, recorder.config())


def test_hardening_dispatch_miss_names_method_not_request(recorder: Recorder) -> None:
    class HalfDone(ProviderKey):
        name = "testhalfdone"

    request = {**HI, "extra_body": {"private": "user-data-xyz"}}
    with pytest.raises(llmkit.LLMError, match="testhalfdone has no encode_request method") as info:
        core.completion(HalfDone(), "m", request, recorder.config())
    assert "user-data-xyz" not in str(info.value)

    @encode_request.dispatch
    def _(key: HalfDone, request: ChatRequest, config: Config) -> Any:
        return HttpCall(url="http://127.0.0.1:9/v1", body=b"{}", headers={})

    with pytest.raises(llmkit.LLMError, match="has no decode_response method") as info:
        core.completion(HalfDone(), "m", request, recorder.config())
    assert "user-data-xyz" not in str(info.value)


class _SlowEntryPoint:
    """An entry point whose module defines its key, then registers methods slowly."""

    name = "testslowload"
    value = "tests:slow"

    def __init__(self) -> None:
        self.defined = threading.Event()
        self.release = threading.Event()

    def load(self) -> type[ProviderKey]:
        class Slow(ProviderKey):
            name = "testslowload"
            api_key_env = None

        self.defined.set()
        assert self.release.wait(5)

        def encode(key: Slow, request: ChatRequest, config: Config) -> Any:
            return HttpCall(url="http://127.0.0.1:9/v1/chat", body=b"{}", headers={})

        def decode(key: Slow, response: Any, request: ChatRequest) -> Any:
            return msgspec.convert(OK_BODY, llmkit.ChatResponse)

        # Real classes, not the strings postponed annotations would leave here.
        encode.__annotations__ = {"key": Slow, "request": ChatRequest, "config": Config}
        decode.__annotations__ = {"key": Slow, "response": Any, "request": ChatRequest}
        encode_request.dispatch(encode)
        decode_response.dispatch(decode)
        return Slow


@pytest.fixture
def slow_entry_point(monkeypatch: pytest.MonkeyPatch) -> Iterator[_SlowEntryPoint]:
    ep = _SlowEntryPoint()
    monkeypatch.setattr(keys, "entry_points", lambda group: [ep])
    monkeypatch.setattr(keys, "_loaded", False)
    yield ep
    ep.release.set()


def test_hardening_entry_point_key_published_after_its_module_loads(
    slow_entry_point: _SlowEntryPoint, recorder: Recorder
) -> None:
    loader = threading.Thread(target=keys.load_entry_points)
    loader.start()
    assert slow_entry_point.defined.wait(5)
    # The class exists, its methods do not yet: the name must not resolve to it.
    assert "testslowload" not in keys._table
    results: list[object] = []

    def resolve_meanwhile() -> None:
        try:
            results.append(core.completion("testslowload", "m", HI, recorder.config()).text)
        except Exception as exc:
            results.append(exc)

    other = threading.Thread(target=resolve_meanwhile)
    other.start()
    other.join(0.2)
    assert other.is_alive()  # waiting on the load, not failing
    slow_entry_point.release.set()
    loader.join(5)
    other.join(5)
    assert results == ["ok"]


def test_hardening_key_defined_in_code_usable_at_once() -> None:
    class Scripted(ProviderKey):
        name = "testscripted"

    assert keys.resolve("testscripted") == Scripted()
