"""Framings are looked up, not switched on: a package can add a binary format."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any, NamedTuple

import httpx
import msgspec
import pytest

import llmkit
from llmkit import core
from llmkit._framing import register_framing, unregister_framing
from llmkit.config import Config
from llmkit.generics import decode_event, encode_request
from llmkit.keys import ProviderKey
from llmkit.types import ChatRequest, ChunkChoice, Delta, HttpCall, StreamChunk, StreamState

HI = {"messages": [{"role": "user", "content": "Hi"}]}


class Frame(NamedTuple):
    """One length-prefixed binary frame: a type byte and a payload."""

    kind: int
    payload: bytes


class LengthPrefixed:
    """Frames of ``>I`` length, one type byte, then the payload."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[Frame]:
        self._buffer += chunk
        frames = []
        while len(self._buffer) >= 5:
            (size,) = struct.unpack(">I", self._buffer[:4])
            if len(self._buffer) < 5 + size:
                break
            frames.append(Frame(self._buffer[4], self._buffer[5 : 5 + size]))
            self._buffer = self._buffer[5 + size :]
        return frames

    def flush(self) -> list[Frame]:
        if self._buffer:
            raise ValueError("a frame was cut off")
        return []


def _frame(kind: int, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + bytes([kind]) + payload


class Binary(ProviderKey):
    __slots__ = ()
    name = "testbinary"
    default_base_url = "http://127.0.0.1:9/v1"


@pytest.fixture
def binary_framing() -> Iterator[None]:
    register_framing("test-length-prefixed", LengthPrefixed, Frame)

    def encode(key: Binary, request: ChatRequest, config: Config) -> Any:
        return HttpCall(
            url=f"{config.api_base}/chat",
            body=b"{}",
            headers={},
            stream=request.stream,
            framing="test-length-prefixed",
        )

    def event(key: Binary, frame: Frame, state: StreamState) -> Any:
        if frame.kind == 2:
            state.done = True
            return None
        text = msgspec.json.decode(frame.payload)["text"]
        return StreamChunk(choices=[ChunkChoice(delta=Delta(content=text))])

    encode.__annotations__ = {"key": Binary, "request": ChatRequest, "config": Config}
    event.__annotations__ = {"key": Binary, "frame": Frame, "state": StreamState}
    encode_request.dispatch(encode)
    decode_event.dispatch(event)
    try:
        yield
    finally:
        unregister_framing("test-length-prefixed")


def test_framing_registered_binary_format_streams(binary_framing: None) -> None:
    body = _frame(1, b'{"text": "He"}') + _frame(1, b'{"text": "llo"}') + _frame(2, b"")
    # Split mid-frame, as a network would.
    pieces = [body[:7], body[7:20], body[20:]]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=iter(pieces))

    client = httpx.Client(transport=httpx.MockTransport(handler))
    stream = core.stream(Binary(), "m", HI, {"http_client": client})
    assert stream.collect().text == "Hello"


def test_framing_unknown_name_refused_before_sending() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    class Unknown(ProviderKey):
        __slots__ = ()
        name = "testunknownframing"
        default_base_url = "http://127.0.0.1:9/v1"

    def encode(key: Unknown, request: ChatRequest, config: Config) -> Any:
        return HttpCall(
            url="http://127.0.0.1:9/x", body=b"", headers={}, stream=True, framing="nope"
        )

    encode.__annotations__ = {"key": Unknown, "request": ChatRequest, "config": Config}
    encode_request.dispatch(encode)
    client = httpx.Client(transport=httpx.MockTransport(handler))
    with pytest.raises(llmkit.InvalidRequestError, match="'nope', which is not registered"):
        core.stream(Unknown(), "m", HI, {"http_client": client})
    assert seen == []


@pytest.mark.parametrize("name", ["sse", "ndjson", ""])
def test_framing_built_ins_cannot_be_replaced(name: str) -> None:
    with pytest.raises(ValueError, match="framing"):
        register_framing(name, LengthPrefixed, Frame)
