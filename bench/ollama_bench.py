"""The Ollama rows of ``run.py``: native ``/api/chat`` calls and NDJSON streams.

The server is llmkit's own Ollama emulator, run in a child process (so its
work is not in the measured process's CPU time) on 127.0.0.1: one emulator
answers calls with ``run.py``'s expected text, another streams N one-piece
content lines and the ``done`` line. The floor is a raw ``httpx.Client``
posting the body llmkit sends and decoding each line with msgspec into the
fields llmkit reads (content, thinking, tool calls, done, done reason,
counts).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import httpx
import msgspec

import llmkit.core

__all__ = ["MODEL", "OllamaServers", "make_call_contenders", "make_stream_contenders"]

MODEL = "qwen3"
_PIECE = "abcd"

# The child: two emulators, their ports on one line, until stdin closes.
_SERVE = f"""\
import sys
from llmkit_contracts.emulator import Reply
from llmkit_contracts.emulators.ollama import OllamaEmulator
text, chunks = sys.argv[1], int(sys.argv[2])
call = OllamaEmulator(default=Reply.text(text, prompt_tokens=20, completion_tokens=9))
stream = OllamaEmulator(default=Reply.text({_PIECE!r} * chunks, chunk_size={len(_PIECE)}))
with call, stream:
    print(call.port, stream.port, flush=True)
    sys.stdin.read()
"""


class _Call(msgspec.Struct):
    function: Any = None
    id: str | None = None


class _Message(msgspec.Struct):
    content: str = ""
    thinking: str | None = None
    tool_calls: list[_Call] | None = None


class _Line(msgspec.Struct):
    message: _Message | None = None
    done: bool = False
    done_reason: str | None = None
    prompt_eval_count: int | None = None
    eval_count: int | None = None


class OllamaServers:
    """The two emulators in a child process; ``call_url`` and ``stream_url`` once entered."""

    def __init__(self, text: str, chunks: int) -> None:
        self._args = [sys.executable, "-c", _SERVE, text, str(chunks)]
        self._proc: subprocess.Popen[str] | None = None
        self.call_url = self.stream_url = ""

    def __enter__(self) -> OllamaServers:
        proc = self._proc = subprocess.Popen(
            self._args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        ports = proc.stdout.readline().split()
        if len(ports) != 2:
            self.__exit__()
            raise RuntimeError(f"the Ollama emulators did not start (printed {ports!r})")
        self.call_url, self.stream_url = (f"http://127.0.0.1:{port}" for port in ports)
        return self

    def __exit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()  # the child stops its emulators and exits
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def make_call_contenders(
    base: str, client: httpx.Client, messages: list[dict[str, str]], expected: str
) -> dict[str, Callable[[], Any]]:
    """The floor and ``llmkit.core.completion("ollama", ...)``, one plain call each."""
    url = base + "/api/chat"
    encoder = msgspec.json.Encoder()
    decoder = msgspec.json.Decoder(_Line)
    # The same headers and body llmkit's Ollama codec sends.
    headers = {"content-type": "application/json", "accept": "application/json"}

    def floor() -> str:
        body = encoder.encode({"model": MODEL, "messages": messages, "stream": False})
        response = client.post(url, content=body, headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"floor got HTTP {response.status_code}")
        line = decoder.decode(response.content)
        assert line.done
        assert line.message is not None
        return line.message.content

    completion = llmkit.core.completion
    request = {"messages": messages}
    config = {"api_base": base}

    def llmkit_dict() -> str:
        return completion("ollama", MODEL, request, config).text

    assert floor() == expected
    assert llmkit_dict() == expected
    return {"floor": floor, "llmkit_dict": llmkit_dict}


def make_stream_contenders(
    base: str, client: httpx.Client, messages: list[dict[str, str]], chunks: int
) -> dict[str, Callable[[], int]]:
    """The floor and iterating ``llmkit.core.stream("ollama", ...)`` over ``chunks`` lines."""
    url = base + "/api/chat"
    encoder = msgspec.json.Encoder()
    decoder = msgspec.json.Decoder(_Line)
    headers = {"content-type": "application/json", "accept": "application/json"}

    def floor() -> int:
        body = encoder.encode({"model": MODEL, "messages": messages, "stream": True})
        n = 0
        decode = decoder.decode
        with client.stream("POST", url, content=body, headers=headers) as response:
            if response.status_code != 200:
                raise RuntimeError(f"floor got HTTP {response.status_code}")
            for raw in response.iter_lines():
                line = decode(raw)
                if line.message is not None and line.message.content:
                    n += 1
                if line.done:
                    break
        return n

    stream = llmkit.core.stream
    request = {"messages": messages}
    config = {"api_base": base}

    def llmkit_stream() -> int:
        n = 0
        for chunk in stream("ollama", MODEL, request, config):
            if chunk.text:
                n += 1
        return n

    got_floor, got_llmkit = floor(), llmkit_stream()
    if got_floor != chunks or got_llmkit != chunks:
        raise RuntimeError(f"ollama content lines: floor {got_floor}, llmkit {got_llmkit}")
    return {"floor": floor, "llmkit": llmkit_stream}
