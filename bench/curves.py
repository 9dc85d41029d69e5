"""Scaling curves: llmkit's client CPU against the raw httpx + msgspec floor, point by point.

Usage (from the repository root, with llmkit installed)::

    python bench/curves.py [--quick] [--rounds N] [--check] [--no-plots] [--output PATH]

Every request goes to an in-process ``httpx.MockTransport`` that hands back
pre-rendered OpenAI bodies (from ``bench/server.py``), so no socket is opened
and only client CPU counts. Each point runs three contenders interleaved,
round by round, in a rotating order after a warm-up:

* ``floor``: raw ``httpx.Client`` + ``msgspec`` doing the same work;
* ``llmkit``: ``llmkit.core.completion`` / ``llmkit.core.stream`` with the
  mock client passed as ``http_client``;
* ``A/A``: a second, identical floor. Its ratio to the floor shows how much
  of a ratio is noise (it should be ~1.00x).

A round times a batch of calls per contender with ``time.process_time`` and
keeps CPU per call; a point's ratio is the median of the per-round ratios
``llmkit / floor``. The curves:

1. messages per request (1 to 1,000), with llmkit's extra CPU per message;
2. request size (one message of 1 KiB to 1 MiB);
3. registered provider keys (1 to 1,000 extra keys, defined inside
   ``llmkit.provider.scoped_providers()``; calls go to ``"openai"``);
4. stream length (100 to 100,000 chunks, one SSE event per body piece),
   with llmkit's extra CPU per chunk;
5. response size (1 KiB to 1 MiB of content, not streamed);
6. calls in flight: 1, 8 and 64 sync threads sharing one client (the mock
   transport, not bench/server.py: CPU per call under thread contention).

Then the peak memory (``tracemalloc``) of a 100,000-chunk stream read to the
end and collected. It prints a table per curve, writes every sample to
``bench/results/curves.json`` and draws ``bench/results/curves/*.png`` with
matplotlib (imported only for the plots: ``pip install -e .[bench]``, or
``--no-plots``). The exit status is 0 unless ``--check`` is given and a
budget is missed (or a curve could not run).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import traceback
import tracemalloc
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_OUTPUT = BENCH_DIR / "results" / "curves.json"
sys.path.insert(0, str(BENCH_DIR))

import httpx  # noqa: E402
import msgspec  # noqa: E402
import server  # noqa: E402  bench/server.py: the pre-rendered OpenAI bodies
from floor_types import FChunk, FResponse, FUsage  # noqa: E402
from report import print_table  # noqa: E402

import llmkit  # noqa: E402
import llmkit.core  # noqa: E402

MODEL = "gpt-4o-mini"
API_KEY = "sk-bench"
BASE = "http://llmkit-bench.invalid/v1"
URL = BASE + "/chat/completions"
HEADERS = {
    # The headers llmkit's OpenAI codec sends.
    "Content-Type": "application/json",
    "Accept": "application/json",
    "Authorization": f"Bearer {API_KEY}",
}
RESPONSE_HEADERS = {"content-type": "application/json", "x-request-id": server.REQUEST_ID}
SSE_HEADERS = {
    "content-type": "text/event-stream; charset=utf-8",
    "x-request-id": server.REQUEST_ID,
}
EXPECTED_TEXT = "Hello! How can I help you today?"
KIB = 1024

POINTS: dict[str, list[int]] = {
    "messages": [1, 10, 100, 1000],
    "request_size": [1, 16, 256, 1024],  # KiB
    "providers": [1, 10, 100, 1000],
    "stream": [100, 1000, 10_000, 100_000],
    "response_size": [1, 16, 256, 1024],  # KiB
    "threads": [1, 8, 64],
}
CALLS_PER_THREAD = 64  # per invocation, split over the threads (at least 4 each)
MEMORY_CHUNKS = 100_000

BUDGETS = {
    "messages_extra_us_per_message": 0.10,
    "stream_ratio_1k": 1.20,
    "stream_drift_100k_vs_1k": 0.05,
    "memory_ratio": 1.20,
}

CONTENDERS = ("floor", "llmkit", "aa")


# --- the floor's structs: only the fields it reads ---------------------------------------


# The floor's structs live in floor_types.py, shared with run.py.
_FChunk, _FResponse, _FUsage = FChunk, FResponse, FUsage


# --- mock transports ----------------------------------------------------------------------


def json_client(body: bytes) -> httpx.Client:
    """A client whose every POST gets ``body`` as a ``chat.completion`` (no socket)."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=RESPONSE_HEADERS, content=body)

    return httpx.Client(transport=httpx.MockTransport(handler))


def sse_client(events: list[bytes]) -> httpx.Client:
    """A client whose every POST gets ``events`` as a stream body, one event per piece."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=SSE_HEADERS, content=iter(events))

    return httpx.Client(transport=httpx.MockTransport(handler))


def completion_body(content: str = EXPECTED_TEXT) -> bytes:
    """``server.COMPLETION_BODY`` with another (JSON-safe) content string."""
    old = msgspec.json.encode(EXPECTED_TEXT)
    assert old in server.COMPLETION_BODY
    return server.COMPLETION_BODY.replace(old, msgspec.json.encode(content))


def filler(size: int) -> str:
    """``size`` characters of ASCII prose."""
    text = "The quick brown fox jumps over the lazy dog. "
    return (text * (size // len(text) + 1))[:size]


def conversation(n: int) -> list[dict[str, str]]:
    """``n`` short messages, alternating user and assistant, in OpenAI's dict shape."""
    roles = ("user", "assistant")
    return [{"role": roles[i % 2], "content": f"Message number {i}."} for i in range(n)]


# --- contenders -------------------------------------------------------------------------------


def floor_call(client: httpx.Client, messages: list[dict[str, Any]]) -> Callable[[], str]:
    """Raw httpx + msgspec: encode the dict payload, POST it, decode a small Struct."""
    encoder = msgspec.json.Encoder()
    decoder = msgspec.json.Decoder(_FResponse)
    post = client.post

    def floor() -> str:
        body = encoder.encode({"model": MODEL, "messages": messages})
        response = post(URL, content=body, headers=HEADERS)
        if response.status_code != 200:
            raise RuntimeError(f"floor got HTTP {response.status_code}")
        content = decoder.decode(response.content).choices[0].message.content
        return content or ""

    return floor


def llmkit_call(
    client: httpx.Client, messages: list[dict[str, Any]], provider: str = "openai"
) -> Callable[[], str]:
    """``llmkit.core.completion`` with dicts, on the mock client."""
    completion = llmkit.core.completion
    request = {"messages": messages}
    config = {"api_key": API_KEY, "api_base": BASE, "http_client": client}

    def call() -> str:
        return completion(provider, MODEL, request, config).text

    return call


def floor_stream(client: httpx.Client, messages: list[dict[str, Any]]) -> Callable[[], str]:
    """``client.stream`` + ``iter_lines``, each ``data:`` line decoded into a small Struct."""
    encoder = msgspec.json.Encoder()
    decode = msgspec.json.Decoder(_FChunk).decode

    def floor() -> str:
        body = encoder.encode(
            {
                "model": MODEL,
                "messages": messages,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        )
        parts: list[str] = []
        finish: str | None = None
        usage: _FUsage | None = None
        with client.stream("POST", URL, content=body, headers=HEADERS) as response:
            if response.status_code != 200:
                raise RuntimeError(f"floor got HTTP {response.status_code}")
            for line in response.iter_lines():
                if line.startswith("data: "):
                    data = line[6:]
                    if data == "[DONE]":
                        break
                    chunk = decode(data)
                    for choice in chunk.choices:
                        if choice.delta.content:
                            parts.append(choice.delta.content)
                        if choice.finish_reason is not None:
                            finish = choice.finish_reason
                    if chunk.usage is not None:
                        usage = chunk.usage
        if finish is None or usage is None:
            raise RuntimeError("floor stream ended without a finish reason or usage")
        return "".join(parts)

    return floor


def llmkit_stream(client: httpx.Client, messages: list[dict[str, Any]]) -> Callable[[], str]:
    """Iterate ``llmkit.core.stream`` to the end, then ``collect()``."""
    stream = llmkit.core.stream
    request = {"messages": messages}
    config = {"api_key": API_KEY, "api_base": BASE, "http_client": client}

    def call() -> str:
        s = stream("openai", MODEL, request, config)
        for _chunk in s:
            pass
        return s.collect().text

    return call


def per_thread(threads: int) -> int:
    return max(4, CALLS_PER_THREAD // threads)


def threaded(call: Callable[[], object], threads: int) -> tuple[Callable[[], None], Any]:
    """One invocation = ``threads`` pool threads, started together, ``per_thread()`` calls each."""
    each = per_thread(threads)
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="bench")
    barrier = threading.Barrier(threads)

    def worker() -> None:
        barrier.wait(timeout=60)
        for _ in range(each):
            call()

    def invoke() -> None:
        for future in [pool.submit(worker) for _ in range(threads)]:
            future.result()

    return invoke, pool


# --- measurement ------------------------------------------------------------------------------


def quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    p25, _, p75 = statistics.quantiles(values, n=4, method="inclusive")
    return p25, statistics.median(values), p75


def measure(
    contenders: dict[str, Callable[[], object]],
    rounds: int,
    target: float,
    units: int = 1,
    slices: int = 8,
) -> dict[str, Any]:
    """Interleave the contenders for ``rounds`` rounds of one batch each.

    The batch (same for every contender) is sized so the slowest contender's
    batch takes about ``target`` seconds of CPU. Within a round the batches
    are cut into up to ``slices`` slices that take turns (A B C, B C A, ...),
    so the contenders of a round run side by side even when the machine's
    speed changes within it. Returns per-round CPU and wall seconds per unit
    (a call; ``units`` calls per invocation for the threads).
    """
    pt, pc = time.process_time, time.perf_counter
    names = list(contenders)
    single: dict[str, float] = {}
    for name, fn in contenders.items():
        fn()  # warm caches (plum, msgspec, httpx) before calibrating
        times = []
        for _ in range(3):
            c0 = pt()
            fn()
            times.append(pt() - c0)
        single[name] = statistics.median(times)
    batch = max(1, min(100_000, round(target / max(max(single.values()), 1e-7))))
    for fn in contenders.values():
        for _ in range(batch // 4):
            fn()
    slices = max(1, min(slices, batch))
    sizes = [batch // slices + (1 if i < batch % slices else 0) for i in range(slices)]
    cpu: dict[str, list[float]] = {name: [] for name in names}
    wall: dict[str, list[float]] = {name: [] for name in names}
    turn = 0
    for _ in range(rounds):
        spent = dict.fromkeys(names, 0.0)
        waited = dict.fromkeys(names, 0.0)
        for size in sizes:
            shift = turn % len(names)
            turn += 1
            for name in names[shift:] + names[:shift]:
                fn = contenders[name]
                gc.collect()
                c0, w0 = pt(), pc()
                for _ in range(size):
                    fn()
                c1, w1 = pt(), pc()
                spent[name] += c1 - c0
                waited[name] += w1 - w0
        for name in names:
            cpu[name].append(spent[name] / (batch * units))
            wall[name].append(waited[name] / (batch * units))
    return {"batch": batch, "slices": slices, "units": units, "cpu": cpu, "wall": wall}


def point(x: int, m: dict[str, Any], label: str | None = None) -> dict[str, Any]:
    """Summarize one point: medians, the per-round ratios and the A/A ratio."""
    cpu = m["cpu"]
    ratios = [a / b for a, b in zip(cpu["llmkit"], cpu["floor"], strict=True)]
    aa = [a / b for a, b in zip(cpu["aa"], cpu["floor"], strict=True)]
    out: dict[str, Any] = {"x": x, "label": label or f"{x:,}", "batch": m["batch"]}
    out["slices"] = m["slices"]
    for name in CONTENDERS:
        p25, med, p75 = quartiles(cpu[name])
        out[name] = med
        out[name + "_p25"], out[name + "_p75"] = p25, p75
        out[name + "_wall"] = statistics.median(m["wall"][name])
    r25, ratio, r75 = quartiles(ratios)
    out.update(ratio=ratio, ratio_p25=r25, ratio_p75=r75, aa_ratio=statistics.median(aa))
    out["samples"] = {"cpu": cpu, "wall": m["wall"], "ratios": ratios, "aa_ratios": aa}
    return out


def extra_per_unit(points: list[dict[str, Any]], lo: int, hi: int) -> float:
    """llmkit's extra CPU per unit (seconds) between points ``lo`` and ``hi``: slope difference."""
    a, b = points[lo], points[hi]
    return ((b["llmkit"] - a["llmkit"]) - (b["floor"] - a["floor"])) / (b["x"] - a["x"])


def checked(contenders: dict[str, Callable[[], str]], expected: str) -> None:
    """Every contender must give the expected text before anything is timed."""
    for name, fn in contenders.items():
        got = fn()
        if got != expected:
            raise RuntimeError(
                f"{name} returned {len(got)} characters ({got[:40]!r}...), "
                f"expected {len(expected)} ({expected[:40]!r}...)"
            )


# --- the curves -----------------------------------------------------------------------------


def plain_contenders(body: bytes, messages: list[dict[str, Any]]) -> dict[str, Callable[[], str]]:
    """The floor, llmkit and the A/A floor, each on its own mock client answering ``body``."""
    return {
        "floor": floor_call(json_client(body), messages),
        "llmkit": llmkit_call(json_client(body), messages),
        "aa": floor_call(json_client(body), messages),
    }


def curve_messages(args: argparse.Namespace) -> list[dict[str, Any]]:
    body = completion_body()
    out = []
    for n in args.points["messages"]:
        messages = conversation(n)
        contenders = plain_contenders(body, messages)
        checked(contenders, EXPECTED_TEXT)
        out.append(point(n, measure(contenders, args.rounds, args.target)))
        progress(out[-1])
    return out


def curve_request_size(args: argparse.Namespace) -> list[dict[str, Any]]:
    body = completion_body()
    out = []
    for kib in args.points["request_size"]:
        messages = [{"role": "user", "content": filler(kib * KIB)}]
        contenders = plain_contenders(body, messages)
        checked(contenders, EXPECTED_TEXT)
        out.append(point(kib, measure(contenders, args.rounds, args.target), _kib(kib)))
        progress(out[-1])
    return out


def curve_providers(args: argparse.Namespace) -> list[dict[str, Any]]:
    from llmkit.provider import scoped_providers
    from llmkit_providers.openai import OpenAICompatible

    llmkit.core.list_providers()  # load the entry points first: the scope keeps them
    body = completion_body()
    messages = conversation(1)
    out = []
    for n in args.points["providers"]:
        with scoped_providers():
            for i in range(n):
                type(
                    f"BenchKey{i}",
                    (OpenAICompatible,),
                    {
                        "__slots__": (),
                        "name": f"bench-key-{i}",
                        "default_base_url": BASE,
                        "api_key_env": None,
                    },
                )
            registered = len(llmkit.core.list_providers())
            contenders = plain_contenders(body, messages)
            checked(contenders, EXPECTED_TEXT)
            # One of the new keys answers too: they are real providers.
            last = llmkit_call(json_client(body), messages, f"bench-key-{n - 1}")
            checked({"last key": last}, EXPECTED_TEXT)
            measured = measure(contenders, args.rounds, args.target)
        out.append(point(n, measured, f"{n:,} (+{registered - n} built in)"))
        progress(out[-1])
    return out


def curve_stream(args: argparse.Namespace) -> list[dict[str, Any]]:
    messages = conversation(1)
    out = []
    for n in args.points["stream"]:
        events = server.render_stream_events(n)
        expected = "".join(server._PIECES[i % len(server._PIECES)] for i in range(n))
        contenders = {
            "floor": floor_stream(sse_client(events), messages),
            "llmkit": llmkit_stream(sse_client(events), messages),
            "aa": floor_stream(sse_client(events), messages),
        }
        checked(contenders, expected)
        rounds = args.rounds
        if n >= 100_000 and args.big_rounds is not None:
            rounds = min(rounds, args.big_rounds)
        out.append(point(n, measure(contenders, rounds, args.target)))
        progress(out[-1])
    return out


def curve_response_size(args: argparse.Namespace) -> list[dict[str, Any]]:
    messages = conversation(1)
    out = []
    for kib in args.points["response_size"]:
        content = filler(kib * KIB)
        body = completion_body(content)
        contenders = plain_contenders(body, messages)
        checked(contenders, content)
        out.append(point(kib, measure(contenders, args.rounds, args.target), _kib(kib)))
        progress(out[-1])
    return out


def curve_threads(args: argparse.Namespace) -> list[dict[str, Any]]:
    body = completion_body()
    messages = conversation(1)
    out = []
    for n in args.points["threads"]:
        calls = plain_contenders(body, messages)
        checked(calls, EXPECTED_TEXT)
        pools = []
        contenders: dict[str, Callable[[], object]] = {}
        try:
            for name, call in calls.items():
                contenders[name], pool = threaded(call, n)
                pools.append(pool)
            measured = measure(contenders, args.rounds, args.target, units=n * per_thread(n))
        finally:
            for pool in pools:
                pool.shutdown(wait=True)
        out.append(point(n, measured))
        progress(out[-1])
    return out


def peak_memory(args: argparse.Namespace) -> dict[str, Any]:
    """tracemalloc's peak while one long stream is read to the end and collected."""
    n = args.memory_chunks
    events = server.render_stream_events(n)
    messages = conversation(1)
    contenders = {
        "floor": floor_stream(sse_client(events), messages),
        "llmkit": llmkit_stream(sse_client(events), messages),
    }
    expected = "".join(server._PIECES[i % len(server._PIECES)] for i in range(n))
    checked(contenders, expected)
    peaks: dict[str, list[int]] = {name: [] for name in contenders}
    for r in range(args.memory_runs):
        names = list(contenders) if r % 2 == 0 else list(contenders)[::-1]
        for name in names:
            gc.collect()
            tracemalloc.start()
            try:
                result = contenders[name]()
                peaks[name].append(tracemalloc.get_traced_memory()[1])
            finally:
                tracemalloc.stop()
            del result
    floor = statistics.median(peaks["floor"])
    ours = statistics.median(peaks["llmkit"])
    return {
        "chunks": n,
        "text_bytes": len(expected),
        "floor": floor,
        "llmkit": ours,
        "ratio": ours / floor,
        "extra_bytes_per_chunk": (ours - floor) / n,
        "samples": peaks,
    }


CURVES: dict[str, tuple[str, str, Callable[[argparse.Namespace], list[dict[str, Any]]]]] = {
    # key: (title, x axis label, function)
    "messages": ("messages per request", "messages in the request", curve_messages),
    "request_size": ("request size", "content of the one message (KiB)", curve_request_size),
    "providers": ("registered provider keys", "extra provider keys registered", curve_providers),
    "stream": ("stream length", "chunks in the stream", curve_stream),
    "response_size": ("response size", "content of the response (KiB)", curve_response_size),
    "threads": ("calls in flight (sync threads)", "threads sharing one client", curve_threads),
}

# What the extra-CPU-per-unit column divides by (None: no such column).
UNITS = {
    "messages": "message",
    "request_size": "KiB",
    "providers": "key",
    "stream": "chunk",
    "response_size": "KiB",
    "threads": None,
}


def _kib(kib: int) -> str:
    return f"{kib} KiB" if kib < 1024 else f"{kib // 1024} MiB"


def progress(p: dict[str, Any]) -> None:
    print(
        f"    {p['label']:>22}: floor {_fmt(p['floor'])}, llmkit {_fmt(p['llmkit'])}, "
        f"{p['ratio']:.2f}x (A/A {p['aa_ratio']:.2f}x, batch {p['batch']})",
        flush=True,
    )


# --- budgets ------------------------------------------------------------------------------------


def budgets_for(key: str, points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The curve's budget checks (value, limit, passed)."""
    by_x = {p["x"]: p for p in points}
    out: list[dict[str, Any]] = []
    if key == "messages" and 1 in by_x and 1000 in by_x:
        xs = [p["x"] for p in points]
        extra = extra_per_unit(points, xs.index(1), xs.index(1000)) * 1e6
        limit = BUDGETS["messages_extra_us_per_message"]
        out.append(
            {
                "name": "messages: extra CPU per message, 1 -> 1,000 (µs)",
                "value": extra,
                "limit": limit,
                "passed": extra <= limit,
                "shown": f"{extra:.3f} µs <= {limit:.2f} µs",
            }
        )
    if key == "stream" and 1000 in by_x:
        r1k = by_x[1000]["ratio"]
        limit = BUDGETS["stream_ratio_1k"]
        out.append(
            {
                "name": "stream: ratio at 1k chunks",
                "value": r1k,
                "limit": limit,
                "passed": r1k <= limit,
                "shown": f"{r1k:.3f}x <= {limit:.2f}x",
            }
        )
        if 100_000 in by_x:
            drift = by_x[100_000]["ratio"] - r1k
            limit = BUDGETS["stream_drift_100k_vs_1k"]
            out.append(
                {
                    "name": "stream: ratio at 100k minus ratio at 1k",
                    "value": drift,
                    "limit": limit,
                    "passed": drift <= limit,
                    "shown": f"{drift:+.3f} <= +{limit:.2f}",
                }
            )
    return out


# --- report ------------------------------------------------------------------------------------


def _fmt(seconds: float) -> str:
    if seconds >= 1e-3:
        return f"{seconds * 1e3:,.2f} ms"
    return f"{seconds * 1e6:,.1f} µs"


def print_curve(key: str, curve: dict[str, Any]) -> None:
    title = CURVES[key][0]
    unit = UNITS[key]
    points = curve["points"]
    print(f"\n{title} (CPU per call; ratio = median of per-round llmkit/floor)")
    header = ["point", "floor", "llmkit", "ratio", "ratio IQR", "A/A"]
    if unit:
        header.append(f"extra/{unit} vs first")
    if key == "threads":
        header += ["floor calls/s", "llmkit calls/s"]
    header += ["budget", "result"]
    budget_cells = _budget_cells(key, curve)
    rows = []
    for i, p in enumerate(points):
        row = [
            p["label"],
            _fmt(p["floor"]),
            _fmt(p["llmkit"]),
            f"{p['ratio']:.2f}x",
            f"{p['ratio_p25']:.2f}-{p['ratio_p75']:.2f}",
            f"{p['aa_ratio']:.2f}x",
        ]
        if unit:
            row.append("-" if i == 0 else f"{extra_per_unit(points, 0, i) * 1e6:+.3f} µs")
        if key == "threads":
            row += [f"{1 / p['floor_wall']:,.0f}", f"{1 / p['llmkit_wall']:,.0f}"]
        row += list(budget_cells.get(p["x"], ("-", "info")))
        rows.append(tuple(row))
    print_table(tuple(header), rows)
    for check in curve["budgets"]:
        verdict = "PASS" if check["passed"] else "FAIL"
        print(f"  budget {check['name']}: {check['shown']}  {verdict}")


def _budget_cells(key: str, curve: dict[str, Any]) -> dict[int, tuple[str, str]]:
    cells: dict[int, tuple[str, str]] = {}
    for check in curve["budgets"]:
        verdict = "PASS" if check["passed"] else "FAIL"
        if key == "messages":
            cells[1000] = (f"<= {check['limit']:.2f} µs/msg", verdict)
        elif "1k chunks" in check["name"]:
            cells[1000] = (f"<= {check['limit']:.2f}x", verdict)
        elif "100k" in check["name"]:
            cells[100_000] = (f"<= r(1k)+{check['limit']:.2f}", verdict)
    return cells


def _environment() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for dist in ("llmkit", "httpx", "httpcore", "msgspec", "plum-dispatch", "matplotlib"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    git: dict[str, Any] = {}
    try:
        run = {"capture_output": True, "text": True, "cwd": BENCH_DIR, "timeout": 5}
        git["commit"] = subprocess.run(["git", "rev-parse", "HEAD"], **run).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain"], **run).stdout
        git["dirty_files"] = len(status.splitlines())
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "python": sys.version,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "versions": versions,
        "git": git,
        "llmkit_path": str(Path(llmkit.__file__).parent),
    }


# --- plots --------------------------------------------------------------------------------------


def plot(results: dict[str, Any], directory: Path) -> list[Path]:
    """One PNG per curve: CPU per call (llmkit beside the floor) above the ratio."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullLocator

    env = results["environment"]
    machine = f"{env['platform']}, {env['cpus']} CPUs"
    stamp = env["date"][:16].replace("T", " ")
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for number, (key, curve) in enumerate(results["curves"].items(), 1):
        points = curve.get("points")
        if not points:
            continue
        title, xlabel, _ = CURVES[key]
        xs = [p["x"] for p in points]
        fig, (top, bottom) = plt.subplots(
            2, 1, sharex=True, figsize=(8, 6.5), gridspec_kw={"height_ratios": [2, 1]}
        )
        for name, label, style in (
            ("floor", "floor (raw httpx + msgspec)", "s--"),
            ("llmkit", "llmkit", "o-"),
        ):
            ys = [p[name] * 1e6 for p in points]
            errs = [
                [max(y - p[name + "_p25"] * 1e6, 0) for y, p in zip(ys, points, strict=True)],
                [max(p[name + "_p75"] * 1e6 - y, 0) for y, p in zip(ys, points, strict=True)],
            ]
            top.errorbar(xs, ys, yerr=errs, fmt=style, capsize=3, label=label)
        top.set_ylabel("CPU per call (µs)")
        all_y = [p[n] for p in points for n in ("floor", "llmkit")]
        if max(all_y) / min(all_y) > 20:
            top.set_yscale("log")
        top.grid(True, which="both", alpha=0.3)
        top.legend()
        ratio = [p["ratio"] for p in points]
        rerr = [
            [r - p["ratio_p25"] for r, p in zip(ratio, points, strict=True)],
            [p["ratio_p75"] - r for r, p in zip(ratio, points, strict=True)],
        ]
        bottom.errorbar(xs, ratio, yerr=rerr, fmt="o-", capsize=3, label="llmkit / floor")
        bottom.plot(xs, [p["aa_ratio"] for p in points], "x:", color="gray", label="A/A")
        bottom.axhline(1.0, color="black", linewidth=0.8)
        for check in curve.get("budgets", []):
            if "1k chunks" in check["name"]:
                bottom.axhline(check["limit"], color="red", linestyle="--", label="budget at 1k")
        bottom.set_ylabel("ratio")
        bottom.set_xlabel(xlabel)
        bottom.grid(True, alpha=0.3)
        bottom.legend(fontsize="small")
        if max(xs) / min(xs) >= 10:
            bottom.set_xscale("log")
        bottom.xaxis.set_major_locator(FixedLocator(xs))
        bottom.xaxis.set_minor_locator(NullLocator())
        bottom.set_xticklabels([p["label"].split(" (")[0] for p in points])
        fig.suptitle(f"llmkit scaling: {title}\n{stamp} · {machine}", fontsize=10)
        fig.tight_layout()
        path = directory / f"{number}-{key.replace('_', '-')}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


# --- main -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="llmkit scaling curves against the floor")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per point (default 5)")
    parser.add_argument(
        "--target",
        type=float,
        default=None,
        help="CPU seconds per batch of the slowest contender (default 0.25)",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run of well under a minute")
    parser.add_argument("--check", action="store_true", help="exit 1 when a budget is missed")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNGs (no matplotlib)")
    parser.add_argument(
        "--only", default="", help="comma-separated curves: " + ",".join([*CURVES, "memory"])
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results path")
    args = parser.parse_args(argv)
    args.points = {k: list(v) for k, v in POINTS.items()}
    args.big_rounds = None
    args.memory_chunks, args.memory_runs = MEMORY_CHUNKS, 3
    if args.quick:
        args.rounds = args.rounds or 3
        args.target = args.target or 0.02
        args.big_rounds = 1
        args.memory_chunks, args.memory_runs = 10_000, 1
        args.points.update(
            messages=[1, 100, 1000],
            request_size=[1, 1024],
            providers=[1, 1000],
            response_size=[1, 1024],
            threads=[1, 64],
        )
    args.rounds = args.rounds or 5
    args.target = args.target or 0.25
    wanted = [k for k in args.only.split(",") if k] or [*CURVES, "memory"]
    unknown = set(wanted) - {*CURVES, "memory"}
    if unknown:
        parser.error(f"unknown curve(s): {', '.join(sorted(unknown))}")

    started = time.time()
    results: dict[str, Any] = {
        "environment": _environment(),
        "settings": {
            "rounds": args.rounds,
            "target_cpu_s_per_batch": args.target,
            "quick": args.quick,
            "points": args.points,
            "rounds_at_100k_chunks": min(args.rounds, args.big_rounds or args.rounds),
            "calls_per_thread": {n: per_thread(n) for n in args.points["threads"]},
            "memory_chunks": args.memory_chunks,
            "budgets": BUDGETS,
        },
        "curves": {},
    }
    env = results["environment"]
    print(f"llmkit {env['versions']['llmkit']} from {env['llmkit_path']}")
    print(f"{env['platform']}, {env['cpus']} CPUs, Python {platform.python_version()}")
    print(
        f"{args.rounds} rounds per point, batches of ~{args.target:g} s CPU; "
        "the 100k-chunk stream point runs "
        f"{min(args.rounds, args.big_rounds or args.rounds)} round(s)"
    )
    errors: list[str] = []
    checks: list[dict[str, Any]] = []
    for key in wanted:
        if key == "memory":
            continue
        title = CURVES[key][0]
        print(f"\n{title} ...", flush=True)
        t0 = time.time()
        try:
            points = CURVES[key][2](args)
        except Exception:
            errors.append(key)
            print(f"  {title} failed:\n" + traceback.format_exc(), flush=True)
            results["curves"][key] = {"error": traceback.format_exc()}
            continue
        curve = {"points": points, "budgets": budgets_for(key, points)}
        curve["elapsed_s"] = time.time() - t0
        if UNITS[key] and len(points) >= 2:
            curve[f"extra_us_per_{UNITS[key]}"] = extra_per_unit(points, 0, len(points) - 1) * 1e6
        results["curves"][key] = curve
        checks += curve["budgets"]

    if "memory" in wanted:
        print(f"\npeak memory of a {args.memory_chunks:,}-chunk stream ...", flush=True)
        try:
            memory = peak_memory(args)
            limit = BUDGETS["memory_ratio"]
            memory["budget"] = {
                "name": f"memory: peak of a {args.memory_chunks:,}-chunk stream, llmkit/floor",
                "value": memory["ratio"],
                "limit": limit,
                "passed": memory["ratio"] <= limit,
                "shown": f"{memory['ratio']:.2f}x <= {limit:.2f}x",
            }
            results["memory"] = memory
            checks.append(memory["budget"])
        except Exception:
            errors.append("memory")
            print("  memory failed:\n" + traceback.format_exc(), flush=True)
            results["memory"] = {"error": traceback.format_exc()}

    results["elapsed_s"] = time.time() - started
    for key, curve in results["curves"].items():
        if "points" in curve:
            print_curve(key, curve)
    memory = results.get("memory")
    if memory and "floor" in memory:
        print(f"\npeak memory, {memory['chunks']:,}-chunk stream read and collected (tracemalloc)")
        print_table(
            ("", "floor", "llmkit", "ratio", "extra/chunk", "budget", "result"),
            [
                (
                    f"median of {len(memory['samples']['floor'])}",
                    f"{memory['floor'] / 2**20:,.1f} MiB",
                    f"{memory['llmkit'] / 2**20:,.1f} MiB",
                    f"{memory['ratio']:.2f}x",
                    f"{memory['extra_bytes_per_chunk']:+,.1f} B",
                    f"<= {memory['budget']['limit']:.2f}x",
                    "PASS" if memory["budget"]["passed"] else "FAIL",
                )
            ],
        )
    print("\nA/A is a second floor against the first: how far a ratio moves by noise alone.")
    print("'extra/unit vs first' is llmkit's extra CPU per unit from the first point to that one:")
    print("((llmkit(x) - llmkit(x0)) - (floor(x) - floor(x0))) / (x - x0).")
    if args.quick:
        print("--quick: too few rounds to judge a budget.")

    results["budgets"] = checks
    results["errors"] = errors
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    print(f"\nwrote {args.output}")
    if not args.no_plots:
        try:
            written = plot(results, args.output.with_suffix(""))
        except ImportError as exc:
            print(f"no plots ({exc}); pip install -e '.[bench]' or pass --no-plots")
        else:
            if written:
                print(f"wrote {len(written)} plots to {written[0].parent}/")
    print(f"total {time.time() - started:.0f} s")
    failed = [c["name"] for c in checks if not c["passed"]]
    print("\nbudgets: " + (f"{len(checks) - len(failed)}/{len(checks)} pass" if checks else "none"))
    for name in failed:
        print(f"  missed: {name}")
    if errors:
        print("curves that failed to run: " + ", ".join(errors))
    return 1 if args.check and (failed or errors) else 0


if __name__ == "__main__":
    sys.exit(main())
