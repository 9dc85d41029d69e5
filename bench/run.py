"""llmkit's overhead benchmarks: llmkit against the raw-httpx floor, in one run.

Usage (from the repository root, with llmkit installed)::

    python bench/run.py [--quick] [--check] [--output PATH]

It starts ``bench/server.py`` in its own process (a local OpenAI-shaped
server on 127.0.0.1) and measures, interleaving the contenders round by
round after a warm-up:

a. CPU time (``time.process_time``) per sequential non-streamed call: a raw
   ``httpx.Client`` + ``msgspec`` floor against ``llmkit.core.completion``
   with dicts, and with a prebuilt ``ChatRequest`` and ``Config``;
b. CPU time per 5,000-chunk stream: raw ``client.stream`` + ``iter_lines`` +
   msgspec against iterating ``llmkit.core.stream`` (one SSE event per HTTP
   chunk, as OpenAI sends them; and, for information, 16 events per chunk);
c. wall time of ``import llmkit`` against ``import httpx, msgspec``, each in
   fresh interpreters; and, for information, the cold cost of the first call
   (plum, the provider codec, the HTTP client), with an import breakdown.

It prints a table (medians, spread, ratio to the floor, budget, result) and
writes every sample to ``bench/results/latest.json``. Budgets are ratios to
the floor on the same machine in the same run, never absolute times. The exit
status is 0 unless ``--check`` is given and a budget is missed.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_OUTPUT = BENCH_DIR / "results" / "latest.json"
PYCACHE_DIR = BENCH_DIR / "results" / "pycache"
sys.path.insert(0, str(BENCH_DIR))  # floor_types.py, whatever the working directory

# Loopback only: a proxy from the environment must never sit in the measured path.
for _var in ("NO_PROXY", "no_proxy"):
    _hosts = [h for h in os.environ.get(_var, "").split(",") if h]
    os.environ[_var] = ",".join([*_hosts, "127.0.0.1", "localhost"])

import httpx  # noqa: E402
import msgspec  # noqa: E402
import ollama_bench  # noqa: E402
from floor_types import AEvent, AMessage, FChunk, FResponse, FUsage  # noqa: E402
from report import print_table  # noqa: E402

import llmkit  # noqa: E402
import llmkit.core  # noqa: E402
from llmkit.config import Config  # noqa: E402
from llmkit.types import ChatRequest, Message  # noqa: E402

MODEL = "gpt-4o-mini"
API_KEY = "sk-bench"
MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Say hello."},
]
EXPECTED_TEXT = "Hello! How can I help you today?"


def prebuilt_messages() -> list[Message]:
    """``MESSAGES`` as llmkit ``Message`` structs."""
    return [
        Message(role="system", content=MESSAGES[0]["content"]),
        Message(role="user", content=MESSAGES[1]["content"]),
    ]


BUDGETS = {
    "call": 1.10,
    "system_call": 1.15,
    "registry_call": 1.15,
    "registry_over_core": 1.05,
    "stream": 1.30,
    "import": 1.50,
}


# --- the local server ---------------------------------------------------------


class BenchServer:
    """``bench/server.py`` in a child process; it exits when we close its stdin."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    def __enter__(self) -> BenchServer:
        self.proc = subprocess.Popen(
            [sys.executable, str(BENCH_DIR / "server.py"), "--watch-stdin"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.__exit__()
            raise RuntimeError(f"bench server did not start (printed {line!r})")
        self.port = int(line)
        return self

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __exit__(self, *exc: object) -> None:
        proc = self.proc
        if proc is None:
            return
        self.proc = None
        if proc.stdin is not None:
            proc.stdin.close()  # the server exits on EOF
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


# --- statistics -----------------------------------------------------------------


def summarize(values: list[float], rounds: list[float] | None = None) -> dict[str, Any]:
    """Median, quartiles and extremes of ``values``; ``samples`` keeps one value per round.

    ``rounds`` (default: ``values``) are what the ratio to the floor pairs up.
    """
    ordered = sorted(values)
    med = statistics.median(ordered)
    if len(ordered) >= 2:
        p25, _, p75 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        p25 = p75 = med
    return {
        "median": med,
        "p25": p25,
        "p75": p75,
        "min": ordered[0],
        "max": ordered[-1],
        "n": len(ordered),
        # Half the interquartile range, relative to the median.
        "spread_pct": 50.0 * (p75 - p25) / med if med else 0.0,
        "samples": list(values if rounds is None else rounds),
    }


def interleave(
    contenders: dict[str, Callable[[], Any]],
    rounds: int,
    batch: int,
    warmup: int,
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Run every contender ``batch`` times per round, rotating the order each round.

    Every call is timed on its own with ``time.process_time`` (0.4 µs a
    reading, the same for every contender), so a call slowed by a neighbour
    process or a GC pass moves the median little. Returns the CPU summary
    (over all calls; ``samples`` are the per-round medians) and the wall
    summary (per-round means) of each contender.
    """
    names = list(contenders)
    for name in names:
        fn = contenders[name]
        for _ in range(warmup):
            fn()
    calls: dict[str, list[float]] = {name: [] for name in names}
    medians: dict[str, list[float]] = {name: [] for name in names}
    walls: dict[str, list[float]] = {name: [] for name in names}
    process_time = time.process_time
    perf_counter = time.perf_counter
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            fn = contenders[name]
            times: list[float] = []
            append = times.append
            gc.collect()
            w0 = perf_counter()
            for _ in range(batch):
                c0 = process_time()
                fn()
                append(process_time() - c0)
            walls[name].append((perf_counter() - w0) / batch)
            calls[name].extend(times)
            medians[name].append(statistics.median(times))
    cpu = {name: summarize(calls[name], medians[name]) for name in names}
    wall = {name: summarize(walls[name]) for name in names}
    return cpu, wall


# --- a. sequential calls ----------------------------------------------------------------


# The floor's structs live in floor_types.py, shared with curves.py.
_FChunk, _FResponse, _FUsage = FChunk, FResponse, FUsage


def _headers(extra: dict[str, str] | None = None) -> dict[str, str]:
    # The same headers llmkit's OpenAI codec sends.
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "Authorization": f"Bearer {API_KEY}",
    }
    if extra:
        headers.update(extra)
    return headers


def make_call_contenders(base_url: str, client: httpx.Client) -> dict[str, Callable[[], Any]]:
    url = base_url + "/chat/completions"
    encoder = msgspec.json.Encoder()
    decoder = msgspec.json.Decoder(_FResponse)
    headers = _headers()

    def floor() -> Any:
        body = encoder.encode({"model": MODEL, "messages": MESSAGES})
        response = client.post(url, content=body, headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"floor got HTTP {response.status_code}")
        return decoder.decode(response.content)

    completion = llmkit.core.completion
    request = {"messages": MESSAGES}
    config = {"api_key": API_KEY, "api_base": base_url}

    def llmkit_dict() -> Any:
        return completion("openai", MODEL, request, config)

    prebuilt_request = ChatRequest(model=MODEL, messages=prebuilt_messages())
    prebuilt_config = Config(api_key=API_KEY, api_base=base_url)

    def llmkit_struct() -> Any:
        return completion("openai", MODEL, prebuilt_request, prebuilt_config)

    # llmkit.system: the same call through a long-lived system (its pool
    # slot, its own transport and metrics). Shut down when the run ends.
    from llmkit import system as llmkit_system

    bench_system = llmkit_system.create_system(
        {"providers": {"openai": {"api_key": API_KEY, "api_base": base_url}}}
    )
    atexit.register(llmkit_system.shutdown_system, bench_system)
    system_completion = bench_system.completion

    def llmkit_system_call() -> Any:
        return system_completion("openai", MODEL, request)

    # llmkit.registry: the same call by name (a fixed target, no fallbacks hit).
    from llmkit.registry import Registry

    bench_registry = Registry()
    bench_registry.register("bench", {"provider": "openai", "model": MODEL, "config": config})
    registry_completion = bench_registry.completion

    def llmkit_registry_call() -> Any:
        return registry_completion("bench", request)

    # Correctness first: every contender must get the same answer.
    assert floor().choices[0].message.content == EXPECTED_TEXT
    assert llmkit_dict().text == EXPECTED_TEXT
    assert llmkit_struct().text == EXPECTED_TEXT
    assert llmkit_system_call().text == EXPECTED_TEXT
    assert llmkit_registry_call().text == EXPECTED_TEXT
    return {
        "floor": floor,
        "llmkit_dict": llmkit_dict,
        "llmkit_struct": llmkit_struct,
        "llmkit_system": llmkit_system_call,
        "llmkit_registry": llmkit_registry_call,
    }


# --- b. one long stream ----------------------------------------------------------------


def make_stream_contenders(
    base_url: str, client: httpx.Client, chunks: int, per_http_chunk: int = 1
) -> dict[str, Callable[[], int]]:
    url = base_url + "/chat/completions"
    encoder = msgspec.json.Encoder()
    decoder = msgspec.json.Decoder(_FChunk)
    extra = {"x-bench-chunks": str(chunks), "x-bench-events-per-chunk": str(per_http_chunk)}
    headers = _headers(extra)

    def floor() -> int:
        body = encoder.encode(
            {
                "model": MODEL,
                "messages": MESSAGES,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        )
        n = 0
        decode = decoder.decode
        with client.stream("POST", url, content=body, headers=headers) as response:
            if response.status_code != 200:
                raise RuntimeError(f"floor got HTTP {response.status_code}")
            # Read to the end (no break on [DONE]) so the connection is reused,
            # as llmkit's stream does.
            for line in response.iter_lines():
                if line.startswith("data: "):
                    data = line[6:]
                    if data != "[DONE]":
                        decode(data)
                        n += 1
        return n

    stream = llmkit.core.stream
    request = {"messages": MESSAGES}
    config = {"api_key": API_KEY, "api_base": base_url, "headers": extra}

    def llmkit_stream() -> int:
        n = 0
        for _chunk in stream("openai", MODEL, request, config):
            n += 1
        return n

    expected = chunks + 3  # role chunk, content chunks, finish chunk, usage chunk
    got_floor, got_llmkit = floor(), llmkit_stream()
    if got_floor != expected or got_llmkit != expected:
        raise RuntimeError(f"stream chunk counts: floor {got_floor}, llmkit {got_llmkit}")
    text = "".join(c.text for c in stream("openai", MODEL, request, config))
    assert len(text) > chunks, "stream content missing"
    return {"floor": floor, "llmkit": llmkit_stream}


# --- the same, speaking Anthropic's Messages API -------------------------------------

ANTHROPIC_MODEL = "claude-sonnet-4-5"


def _anthropic_headers(extra: dict[str, str] | None = None) -> dict[str, str]:
    # The same headers llmkit's Anthropic codec sends.
    headers = {
        "content-type": "application/json",
        "accept": "application/json",
        "anthropic-version": "2023-06-01",
        "x-api-key": API_KEY,
    }
    if extra:
        headers.update(extra)
    return headers


def _anthropic_payload(stream: bool) -> dict[str, Any]:
    # What llmkit sends for MESSAGES: the system prompt on top, max_tokens' default.
    payload: dict[str, Any] = {
        "model": ANTHROPIC_MODEL,
        "max_tokens": 4096,
        "system": MESSAGES[0]["content"],
        "messages": [MESSAGES[1]],
    }
    if stream:
        payload["stream"] = True
    return payload


def make_anthropic_call_contenders(host: str, client: httpx.Client) -> dict[str, Callable[[], Any]]:
    url = host + "/v1/messages"
    encoder = msgspec.json.Encoder()
    decoder = msgspec.json.Decoder(AMessage)
    headers = _anthropic_headers()

    def floor() -> str:
        body = encoder.encode(_anthropic_payload(False))
        response = client.post(url, content=body, headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"floor got HTTP {response.status_code}")
        message = decoder.decode(response.content)
        return "".join(block.text for block in message.content if block.type == "text")

    completion = llmkit.core.completion
    request = {"messages": MESSAGES}
    config = {"api_key": API_KEY, "api_base": host}

    def llmkit_dict() -> str:
        return completion("anthropic", ANTHROPIC_MODEL, request, config).text

    assert floor() == EXPECTED_TEXT
    assert llmkit_dict() == EXPECTED_TEXT
    return {"floor": floor, "llmkit_dict": llmkit_dict}


def make_anthropic_stream_contenders(
    host: str, client: httpx.Client, chunks: int
) -> dict[str, Callable[[], int]]:
    url = host + "/v1/messages"
    encoder = msgspec.json.Encoder()
    decoder = msgspec.json.Decoder(AEvent)
    extra = {"x-bench-chunks": str(chunks)}
    headers = _anthropic_headers(extra)

    def floor() -> int:
        body = encoder.encode(_anthropic_payload(True))
        n = 0
        decode = decoder.decode
        with client.stream("POST", url, content=body, headers=headers) as response:
            if response.status_code != 200:
                raise RuntimeError(f"floor got HTTP {response.status_code}")
            for line in response.iter_lines():
                if line.startswith("data: "):
                    event = decode(line[6:])
                    if event.type == "content_block_delta":
                        n += 1
        return n

    stream = llmkit.core.stream
    request = {"messages": MESSAGES}
    config = {"api_key": API_KEY, "api_base": host, "headers": extra}

    def llmkit_stream() -> int:
        n = 0
        for chunk in stream("anthropic", ANTHROPIC_MODEL, request, config):
            if chunk.text:
                n += 1
        return n

    got_floor, got_llmkit = floor(), llmkit_stream()
    if got_floor != chunks or got_llmkit != chunks:
        raise RuntimeError(f"anthropic text deltas: floor {got_floor}, llmkit {got_llmkit}")
    return {"floor": floor, "llmkit": llmkit_stream}


# --- the same, speaking Mistral's chat completions -----------------------------------

MISTRAL_MODEL = "mistral-small-latest"


def make_mistral_call_contenders(
    base_url: str, client: httpx.Client
) -> dict[str, Callable[[], Any]]:
    # Mistral's wire is OpenAI-shaped: the floor sends what llmkit's Mistral
    # codec sends (no stream_options) and decodes with the same floor structs.
    url = base_url + "/chat/completions"
    encoder = msgspec.json.Encoder()
    decoder = msgspec.json.Decoder(_FResponse)
    headers = _headers()

    def floor() -> Any:
        body = encoder.encode({"model": MISTRAL_MODEL, "messages": MESSAGES})
        response = client.post(url, content=body, headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"floor got HTTP {response.status_code}")
        return decoder.decode(response.content)

    completion = llmkit.core.completion
    request = {"messages": MESSAGES}
    config = {"api_key": API_KEY, "api_base": base_url}

    def llmkit_dict() -> Any:
        return completion("mistral", MISTRAL_MODEL, request, config)

    assert floor().choices[0].message.content == EXPECTED_TEXT
    assert llmkit_dict().text == EXPECTED_TEXT
    return {"floor": floor, "llmkit_dict": llmkit_dict}


def make_mistral_stream_contenders(
    base_url: str, client: httpx.Client, chunks: int
) -> dict[str, Callable[[], int]]:
    url = base_url + "/chat/completions"
    encoder = msgspec.json.Encoder()
    decoder = msgspec.json.Decoder(_FChunk)
    extra = {"x-bench-chunks": str(chunks)}
    headers = _headers(extra)

    def floor() -> int:
        body = encoder.encode({"model": MISTRAL_MODEL, "messages": MESSAGES, "stream": True})
        n = 0
        decode = decoder.decode
        with client.stream("POST", url, content=body, headers=headers) as response:
            if response.status_code != 200:
                raise RuntimeError(f"floor got HTTP {response.status_code}")
            for line in response.iter_lines():
                if line.startswith("data: "):
                    data = line[6:]
                    if data != "[DONE]":
                        decode(data)
                        n += 1
        return n

    stream = llmkit.core.stream
    request = {"messages": MESSAGES}
    config = {"api_key": API_KEY, "api_base": base_url, "headers": extra}

    def llmkit_stream() -> int:
        n = 0
        for _chunk in stream("mistral", MISTRAL_MODEL, request, config):
            n += 1
        return n

    got_floor, got_llmkit = floor(), llmkit_stream()
    if got_floor != chunks + 3 or got_llmkit != chunks + 3:
        raise RuntimeError(f"mistral stream chunk counts: floor {got_floor}, llmkit {got_llmkit}")
    return {"floor": floor, "llmkit": llmkit_stream}


# --- c. imports and the first call -----------------------------------------------------

_IMPORT_CHILD = """\
import time
w0 = time.perf_counter(); c0 = time.process_time()
import {modules}
w1 = time.perf_counter(); c1 = time.process_time()
print(w1 - w0, c1 - c0)
"""

_COLD_LLMKIT = """\
import json, sys, time
pc, pt = time.perf_counter, time.process_time
base = sys.argv[1]
request = {"messages": [{"role": "user", "content": "Say hello."}]}
config = {"api_key": "sk-bench", "api_base": base}
w0, c0 = pc(), pt()
import llmkit
w1, c1 = pc(), pt()
sys.stderr.write("@@first-call\\n"); sys.stderr.flush()
assert llmkit.completion("openai", "gpt-4o-mini", request, config).text
w2, c2 = pc(), pt()
sys.stderr.write("@@second-call\\n"); sys.stderr.flush()
assert llmkit.completion("openai", "gpt-4o-mini", request, config).text
w3, c3 = pc(), pt()
print(json.dumps({"import": [w1 - w0, c1 - c0], "first": [w2 - w1, c2 - c1],
                  "second": [w3 - w2, c3 - c2]}))
"""

_COLD_FLOOR = """\
import json, sys, time
pc, pt = time.perf_counter, time.process_time
url = sys.argv[1] + "/chat/completions"
payload = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello."}]}
headers = {"Content-Type": "application/json", "Accept": "application/json",
           "Authorization": "Bearer sk-bench"}
w0, c0 = pc(), pt()
import httpx, msgspec
w1, c1 = pc(), pt()
sys.stderr.write("@@first-call\\n"); sys.stderr.flush()
class Msg(msgspec.Struct):
    content: str
class Choice(msgspec.Struct):
    message: Msg
class Resp(msgspec.Struct):
    choices: list[Choice]
client = httpx.Client(timeout=httpx.Timeout(600.0, connect=5.0))
encoder = msgspec.json.Encoder(); decoder = msgspec.json.Decoder(Resp)
def call():
    r = client.post(url, content=encoder.encode(payload), headers=headers)
    assert r.status_code == 200
    return decoder.decode(r.content).choices[0].message.content
assert call()
w2, c2 = pc(), pt()
sys.stderr.write("@@second-call\\n"); sys.stderr.flush()
assert call()
w3, c3 = pc(), pt()
print(json.dumps({"import": [w1 - w0, c1 - c0], "first": [w2 - w1, c2 - c1],
                  "second": [w3 - w2, c3 - c2]}))
"""


def _child(code: str, *args: str, importtime: bool = False) -> subprocess.CompletedProcess[str]:
    # -P: do not put the working directory on sys.path, so the installed llmkit
    # is imported (as users get it), not a source tree that happens to be there.
    cmd = [sys.executable, "-P"]
    if importtime:
        cmd += ["-X", "importtime"]
    cmd += ["-c", code, *args]
    env = dict(os.environ)
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    # Users import from compiled .pyc files; keep them under bench/results so
    # timing works where PYTHONDONTWRITEBYTECODE is set or a tree is read-only.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE_DIR)
    return subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)


def bench_imports(runs: int) -> dict[str, Any]:
    """Fresh interpreters, interleaved: the import statement and the whole process."""
    modules = {"floor": "httpx, msgspec", "llmkit": "llmkit"}
    import_wall: dict[str, list[float]] = {k: [] for k in modules}
    import_cpu: dict[str, list[float]] = {k: [] for k in modules}
    process_wall: dict[str, list[float]] = {k: [] for k in modules}
    names = list(modules)
    for name in names:  # warm the OS page cache and the .pyc files
        _child(_IMPORT_CHILD.format(modules=modules[name]))
    for r in range(runs):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            t0 = time.perf_counter()
            out = _child(_IMPORT_CHILD.format(modules=modules[name]))
            process_wall[name].append(time.perf_counter() - t0)
            wall, cpu = (float(x) for x in out.stdout.split())
            import_wall[name].append(wall)
            import_cpu[name].append(cpu)
    return {
        "import_wall": {k: summarize(v) for k, v in import_wall.items()},
        "import_cpu": {k: summarize(v) for k, v in import_cpu.items()},
        "process_wall": {k: summarize(v) for k, v in process_wall.items()},
    }


def _importtime_between(stderr: str, start: str, end: str) -> list[tuple[int, str, int]]:
    """Modules imported between two markers as (depth, name, cumulative µs), parents first.

    ``-X importtime`` lists a module after its children (post-order); this
    rebuilds the tree and returns it in import order with parents first.
    """
    out: list[tuple[int, str, int]] = []
    inside = False
    for line in stderr.splitlines():
        if line.startswith("@@"):
            if line == end:
                break
            inside = line == start
            continue
        if not inside or not line.startswith("import time:"):
            continue
        parts = line.split("|")
        if len(parts) != 3:
            continue
        try:
            cumulative = int(parts[1])
        except ValueError:
            continue
        name = parts[2].rstrip()
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
        out.append((depth, name.strip(), cumulative))
    # Rebuild the tree: a module's children are the deeper entries listed just before it.
    Node = tuple[int, str, int, list[Any]]
    pending: dict[int, list[Node]] = {}
    for depth, name, cumulative in out:
        pending.setdefault(depth, []).append((depth, name, cumulative, pending.pop(depth + 1, [])))
    ordered: list[tuple[int, str, int]] = []

    def walk(nodes: list[Node]) -> None:
        for depth, name, cumulative, children in nodes:
            ordered.append((depth, name, cumulative))
            walk(children)

    walk(pending.get(0, []))
    return ordered


def bench_cold(base_url: str, runs: int) -> dict[str, Any]:
    """The first call in a fresh process: import, client creation, first response."""
    scripts = {"floor": _COLD_FLOOR, "llmkit": _COLD_LLMKIT}
    phases: dict[str, dict[str, list[float]]] = {
        k: {"import": [], "first": [], "second": [], "first_cpu": []} for k in scripts
    }
    for script in scripts.values():  # compile the .pyc files first, untimed
        _child(script, base_url)
    for r in range(runs):
        order = list(scripts) if r % 2 == 0 else list(scripts)[::-1]
        for name in order:
            result = json.loads(_child(scripts[name], base_url).stdout)
            for phase in ("import", "first", "second"):
                phases[name][phase].append(result[phase][0])
            phases[name]["first_cpu"].append(result["first"][1])
    breakdown = {}
    for name, script in scripts.items():
        stderr = _child(script, base_url, importtime=True).stderr
        breakdown[name] = _importtime_between(stderr, "@@first-call", "@@second-call")
    return {
        "phases": {k: {p: summarize(v) for p, v in d.items()} for k, d in phases.items()},
        "first_call_imports_us": breakdown,
    }


# --- report ------------------------------------------------------------------------------


def _fmt(value: float, unit: str) -> str:
    scale = {"µs": 1e6, "ms": 1e3}[unit]
    v = value * scale
    return f"{v:,.1f} {unit}" if v < 1000 else f"{v:,.0f} {unit}"


def _row(
    metric: str, floor: dict[str, Any], ours: dict[str, Any], unit: str, budget: float | None
) -> dict[str, Any]:
    # Rounds are interleaved, so round i of the floor and of llmkit ran side by
    # side: the median of the per-round ratios cancels drift in machine speed.
    pairs = list(zip(ours["samples"], floor["samples"], strict=False))
    if len(ours["samples"]) == len(floor["samples"]):
        ratios = [a / b for a, b in pairs]
    else:
        ratios = [ours["median"] / floor["median"]]
    ratio = statistics.median(ratios)
    if len(ratios) >= 2:
        r25, _, r75 = statistics.quantiles(ratios, n=4, method="inclusive")
    else:
        r25 = r75 = ratio
    return {
        "metric": metric,
        "unit": unit,
        "floor": floor["median"],
        "floor_spread_pct": floor["spread_pct"],
        "llmkit": ours["median"],
        "llmkit_spread_pct": ours["spread_pct"],
        "ratio": ratio,
        "ratio_of_medians": ours["median"] / floor["median"],
        "ratio_p25": r25,
        "ratio_p75": r75,
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "budget": budget,
        "passed": None if budget is None else ratio <= budget,
    }


def print_results(rows: list[dict[str, Any]]) -> None:
    header = ("metric", "floor", "llmkit", "ratio", "ratio IQR", "budget", "result")
    lines = []
    for row in rows:
        unit = row["unit"]
        floor = f"{_fmt(row['floor'], unit)} ±{row['floor_spread_pct']:.1f}%"
        ours = f"{_fmt(row['llmkit'], unit)} ±{row['llmkit_spread_pct']:.1f}%"
        budget = "-" if row["budget"] is None else f"{row['budget']:.2f}x"
        result = "info" if row["passed"] is None else ("PASS" if row["passed"] else "FAIL")
        iqr = f"{row['ratio_p25']:.2f}-{row['ratio_p75']:.2f}"
        lines.append((row["metric"], floor, ours, f"{row['ratio']:.2f}x", iqr, budget, result))
    print_table(header, lines)


def _environment() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for dist in ("llmkit", "httpx", "httpcore", "h11", "msgspec", "plum-dispatch", "beartype"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    try:
        commit = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                cwd=BENCH_DIR,
                timeout=5,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {
        "python": sys.version,
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "versions": versions,
        "git_commit": commit,
        "llmkit_path": str(Path(llmkit.__file__).parent),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="llmkit overhead benchmarks (not tests)")
    parser.add_argument("--rounds", type=int, default=40, help="rounds of sequential calls")
    parser.add_argument("--batch", type=int, default=50, help="calls per contender per round")
    parser.add_argument("--stream-rounds", type=int, default=15, help="streams per contender")
    parser.add_argument("--chunks", type=int, default=5000, help="content chunks per stream")
    parser.add_argument(
        "--packed",
        type=int,
        default=16,
        help="also time the stream with this many SSE events per HTTP chunk (1: skip)",
    )
    parser.add_argument("--import-runs", type=int, default=15, help="fresh processes per import")
    parser.add_argument("--cold-runs", type=int, default=5, help="fresh processes per cold call")
    parser.add_argument("--quick", action="store_true", help="few rounds: a smoke run")
    parser.add_argument("--check", action="store_true", help="exit 1 when a budget is missed")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results path")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.batch, args.stream_rounds = 5, 20, 5
        args.import_runs, args.cold_runs = 3, 1

    started = time.time()
    results: dict[str, Any] = {"environment": _environment(), "settings": vars(args).copy()}
    results["settings"]["output"] = str(args.output)
    rows: list[dict[str, Any]] = []

    with BenchServer() as server, httpx.Client(timeout=httpx.Timeout(600.0, connect=5.0)) as client:
        base = server.base_url
        print(f"server: {base} (pid {server.proc.pid if server.proc else '?'})", flush=True)

        print(f"a. sequential calls: {args.rounds} rounds x {args.batch} calls ...", flush=True)
        cpu, wall = interleave(
            make_call_contenders(base, client), args.rounds, args.batch, warmup=200
        )
        calls = {"cpu": cpu, "wall": wall}
        results["calls"] = calls
        rows.append(
            _row(
                "call, dict args (CPU/call)",
                calls["cpu"]["floor"],
                calls["cpu"]["llmkit_dict"],
                "µs",
                BUDGETS["call"],
            )
        )
        rows.append(
            _row(
                "call, ChatRequest+Config (CPU/call)",
                calls["cpu"]["floor"],
                calls["cpu"]["llmkit_struct"],
                "µs",
                BUDGETS["call"],
            )
        )
        rows.append(
            _row(
                "call through llmkit.system (CPU/call)",
                calls["cpu"]["floor"],
                calls["cpu"]["llmkit_system"],
                "µs",
                BUDGETS["system_call"],
            )
        )
        rows.append(
            _row(
                "call through llmkit.registry (CPU/call)",
                calls["cpu"]["floor"],
                calls["cpu"]["llmkit_registry"],
                "µs",
                BUDGETS["registry_call"],
            )
        )
        rows.append(
            _row(
                "registry routing over core (CPU/call; floor = core)",
                calls["cpu"]["llmkit_dict"],
                calls["cpu"]["llmkit_registry"],
                "µs",
                BUDGETS["registry_over_core"],
            )
        )
        rows.append(
            _row(
                "call, dict args (wall/call)",
                calls["wall"]["floor"],
                calls["wall"]["llmkit_dict"],
                "µs",
                None,
            )
        )

        print(f"b. streams: {args.stream_rounds} rounds x {args.chunks} chunks ...", flush=True)
        cpu, wall = interleave(
            make_stream_contenders(base, client, args.chunks), args.stream_rounds, 1, warmup=2
        )
        streams = {"cpu": cpu, "wall": wall}
        results["streams"] = streams
        rows.append(
            _row(
                f"stream, {args.chunks} chunks (CPU/stream)",
                streams["cpu"]["floor"],
                streams["cpu"]["llmkit"],
                "ms",
                BUDGETS["stream"],
            )
        )

        packed = args.packed
        if packed > 1:
            print(f"   the same stream, {packed} events per HTTP chunk ...", flush=True)
            cpu, wall = interleave(
                make_stream_contenders(base, client, args.chunks, packed),
                args.stream_rounds,
                1,
                warmup=2,
            )
            results["streams_packed"] = {"events_per_http_chunk": packed, "cpu": cpu, "wall": wall}
            rows.append(
                _row(
                    f"stream, {packed} events/HTTP chunk (CPU/stream)",
                    cpu["floor"],
                    cpu["llmkit"],
                    "ms",
                    None,
                )
            )

        host = base.removesuffix("/v1")
        print(f"d. Anthropic: {args.rounds} rounds x {args.batch} calls ...", flush=True)
        cpu, wall = interleave(
            make_anthropic_call_contenders(host, client), args.rounds, args.batch, warmup=200
        )
        results["anthropic_calls"] = {"cpu": cpu, "wall": wall}
        rows.append(
            _row(
                "Anthropic call, dict args (CPU/call)",
                cpu["floor"],
                cpu["llmkit_dict"],
                "µs",
                BUDGETS["call"],
            )
        )
        print(f"   Anthropic streams: {args.stream_rounds} x {args.chunks} deltas ...", flush=True)
        cpu, wall = interleave(
            make_anthropic_stream_contenders(host, client, args.chunks),
            args.stream_rounds,
            1,
            warmup=2,
        )
        results["anthropic_streams"] = {"cpu": cpu, "wall": wall}
        rows.append(
            _row(
                f"Anthropic stream, {args.chunks} deltas (CPU/stream)",
                cpu["floor"],
                cpu["llmkit"],
                "ms",
                BUDGETS["stream"],
            )
        )

        print(f"e. Mistral: {args.rounds} rounds x {args.batch} calls ...", flush=True)
        cpu, wall = interleave(
            make_mistral_call_contenders(base, client), args.rounds, args.batch, warmup=200
        )
        results["mistral_calls"] = {"cpu": cpu, "wall": wall}
        rows.append(
            _row(
                "Mistral call, dict args (CPU/call)",
                cpu["floor"],
                cpu["llmkit_dict"],
                "µs",
                BUDGETS["call"],
            )
        )
        print(f"   Mistral streams: {args.stream_rounds} x {args.chunks} chunks ...", flush=True)
        cpu, wall = interleave(
            make_mistral_stream_contenders(base, client, args.chunks),
            args.stream_rounds,
            1,
            warmup=2,
        )
        results["mistral_streams"] = {"cpu": cpu, "wall": wall}
        rows.append(
            _row(
                f"Mistral stream, {args.chunks} chunks (CPU/stream)",
                cpu["floor"],
                cpu["llmkit"],
                "ms",
                BUDGETS["stream"],
            )
        )

        print(f"f. Ollama: {args.rounds} rounds x {args.batch} calls ...", flush=True)
        with ollama_bench.OllamaServers(EXPECTED_TEXT, args.chunks) as ollama:
            cpu, wall = interleave(
                ollama_bench.make_call_contenders(ollama.call_url, client, MESSAGES, EXPECTED_TEXT),
                args.rounds,
                args.batch,
                warmup=200,
            )
            results["ollama_calls"] = {"cpu": cpu, "wall": wall}
            rows.append(
                _row(
                    "Ollama call, dict args (CPU/call)",
                    cpu["floor"],
                    cpu["llmkit_dict"],
                    "µs",
                    BUDGETS["call"],
                )
            )
            print(f"   Ollama streams: {args.stream_rounds} x {args.chunks} lines ...", flush=True)
            cpu, wall = interleave(
                ollama_bench.make_stream_contenders(
                    ollama.stream_url, client, MESSAGES, args.chunks
                ),
                args.stream_rounds,
                1,
                warmup=2,
            )
            results["ollama_streams"] = {"cpu": cpu, "wall": wall}
            rows.append(
                _row(
                    f"Ollama stream, {args.chunks} lines (CPU/stream)",
                    cpu["floor"],
                    cpu["llmkit"],
                    "ms",
                    BUDGETS["stream"],
                )
            )

        print(f"c. imports: {args.import_runs} fresh processes each ...", flush=True)
        imports = bench_imports(args.import_runs)
        results["imports"] = imports
        rows.append(
            _row(
                "import (wall, fresh process)",
                imports["import_wall"]["floor"],
                imports["import_wall"]["llmkit"],
                "ms",
                BUDGETS["import"],
            )
        )
        rows.append(
            _row(
                "python -c 'import ...' (process wall)",
                imports["process_wall"]["floor"],
                imports["process_wall"]["llmkit"],
                "ms",
                None,
            )
        )

        print(f"   first call in a fresh process: {args.cold_runs} runs each ...", flush=True)
        cold = bench_cold(base, args.cold_runs)
        results["cold"] = cold
        ph = cold["phases"]
        rows.append(
            _row(
                "first call after import (wall)",
                ph["floor"]["first"],
                ph["llmkit"]["first"],
                "ms",
                None,
            )
        )
        cold_total = {
            name: summarize(
                [
                    i + f
                    for i, f in zip(
                        ph[name]["import"]["samples"], ph[name]["first"]["samples"], strict=True
                    )
                ]
            )
            for name in ("floor", "llmkit")
        }
        results["cold"]["import_plus_first"] = cold_total
        rows.append(
            _row(
                "import + first call (wall)", cold_total["floor"], cold_total["llmkit"], "ms", None
            )
        )

    results["rows"] = rows
    results["elapsed_s"] = time.time() - started

    print()
    print_results(rows)
    print()
    print("Values are medians; ±x% is half their interquartile range, relative to the median.")
    print("ratio is the median of the per-round llmkit/floor ratios (rounds run side by side);")
    print("ratio IQR is the interquartile range of those per-round ratios.")
    steady = ph["llmkit"]["second"]["median"]
    first = ph["llmkit"]["first"]["median"]
    print(
        f"llmkit first call: {_fmt(first, 'ms')} wall, {_fmt(steady, 'µs')} for the next one "
        "(in the same fresh process)."
    )
    print("Imports during llmkit's first call (one -X importtime run; cumulative, >= 2 ms):")
    for depth, name, us in cold["first_call_imports_us"]["llmkit"]:
        if depth <= 2 and us >= 2000:
            print(f"    {'  ' * depth + name:<36} {us / 1000:8.1f} ms")

    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(f"\nwrote {args.output}")
    failed = [row["metric"] for row in rows if row["passed"] is False]
    if failed:
        print("budget missed: " + "; ".join(failed))
    return 1 if failed and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
