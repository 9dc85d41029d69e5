"""Find where llmkit's overhead goes (a helper next to bench/run.py; stdlib only).

Usage (from the repository root)::

    python bench/profiling.py stages              # µs per step of llmkit's call path
    python bench/profiling.py call [-n 2000]      # cProfile of llmkit.core.completion
    python bench/profiling.py call-struct         # ... with a prebuilt ChatRequest/Config
    python bench/profiling.py stream [-n 10]      # cProfile of a 5,000-chunk llmkit stream
    python bench/profiling.py stream --packed 16  # ... 16 SSE events per HTTP chunk
    python bench/profiling.py floor-call          # the raw httpx floors, for comparison
    python bench/profiling.py floor-stream

``stages`` times each step llmkit adds to a call in isolation (no network),
next to the floor's equivalent, with ``timeit`` (median of 15 repeats), then
the whole ``llmkit.core`` call and stream with the default transport's ``send`` replaced,
in this process only, by canned bytes. It reaches into llmkit's private
helpers (``_prepare``, ``_pipeline``, plum's method cache), so a row may say
``n/a`` after a refactor. The cProfile targets run against ``bench/server.py``
and print the functions with the most own time, per call, in µs. cProfile
inflates small Python functions (and cannot see into plum's compiled
dispatch, which shows up as its caller's own time): read its numbers as
shares, and ``stages`` as the cost.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # bench/run.py: server, contenders, constants


def _time(fn: Callable[[], Any], number: int = 2000, repeat: int = 15) -> float:
    """Median seconds per call over ``repeat`` runs of ``number`` calls."""
    timer = timeit.Timer(fn)
    timer.timeit(number)  # warm-up
    return statistics.median(t / number for t in timer.repeat(repeat=repeat, number=number))


def stages() -> None:
    import msgspec
    from httpx._decoders import LineDecoder, TextDecoder

    from llmkit import _http, generics
    from llmkit._framing import SSEDecoder
    from llmkit.config import Config, resolve_config, to_config
    from llmkit.core import _prepare
    from llmkit.keys import resolve
    from llmkit.types import ChatRequest, HttpResponse, check_request, to_request
    from llmkit_providers import openai as codec

    base = "http://127.0.0.1:9/v1"
    request_dict = {"messages": run.MESSAGES}
    config_dict = {"api_key": run.API_KEY, "api_base": base}
    key = resolve("openai")
    req = to_request(request_dict, model=run.MODEL)
    cfg = resolve_config(key, to_config(config_dict))
    prebuilt = ChatRequest(model=run.MODEL, messages=run.prebuilt_messages())
    prebuilt_cfg = Config(api_key=run.API_KEY, api_base=base)
    call = codec.encode_openai_request(key, req, cfg)
    response = HttpResponse(status=200, headers={}, body=run_body())
    floor_encoder = msgspec.json.Encoder()
    floor_decoder = msgspec.json.Decoder(run._FResponse)
    event = _sse_event()
    pipeline = generics._pipeline(key, req, "sse", generics._Context(key, req, cfg))
    state = pipeline.state
    raw_event = _raw_event()
    framer = SSEDecoder()
    floor_chunk_decoder = msgspec.json.Decoder(run._FChunk)
    text_decoder = TextDecoder()
    line_decoder = LineDecoder()

    def method(generic: Any, *args: Any) -> Callable[..., Any]:
        # ``@generic.dispatch`` returns the generic itself: fetch the raw method.
        return generic._resolve_method_with_cache(args=args)[0]  # type: ignore[no-any-return]

    raw_decode_response = method(generics.decode_response, key, response, req)
    raw_capabilities = method(generics.capabilities, key, run.MODEL)
    raw_decode_event = method(generics.decode_event, key, event, state)

    rows: list[tuple[str, Callable[[], Any]]] = [
        (
            "_prepare(dict request, dict config) total",
            lambda: _prepare("openai", run.MODEL, request_dict, config_dict, False),
        ),
        (
            "_prepare(ChatRequest, Config) total",
            lambda: _prepare("openai", run.MODEL, prebuilt, prebuilt_cfg, False),
        ),
        ("  keys.resolve('openai')", lambda: resolve("openai")),
        (
            "  types.to_request(dict)  [msgspec.convert]",
            lambda: to_request(request_dict, model=run.MODEL),
        ),
        ("  types.to_request(ChatRequest)", lambda: to_request(prebuilt, model=run.MODEL)),
        ("  types.check_request", lambda: check_request(req)),
        ("  config.to_config(dict)  [msgspec.convert]", lambda: to_config(config_dict)),
        ("  config.resolve_config", lambda: resolve_config(key, prebuilt_cfg)),
        ("generics.encode_request (plum + codec)", lambda: generics.encode_request(key, req, cfg)),
        (
            "  codec encode_openai_request (no dispatch)",
            lambda: codec.encode_openai_request(key, req, cfg),
        ),
        ("    msgspec encode of ChatRequest", lambda: codec._ENCODE.encode(req)),
        ("    build_headers", lambda: codec.build_headers(key, req, cfg)),
        (
            "  floor: msgspec encode of the dict",
            lambda: floor_encoder.encode({"model": run.MODEL, "messages": run.MESSAGES}),
        ),
        ("generics._Context(...)", lambda: generics._Context(key, req, cfg)),
        (
            "_http._Retry(config, client) + .timeout()",
            lambda: _http._Retry(cfg, _http.default_transport.sync_client(cfg)).timeout(),
        ),
        ("transport.sync_client(config)", lambda: _http.default_transport.sync_client(cfg)),
        ("HttpResponse(...) construction", lambda: HttpResponse(status=200, headers={}, body=b"")),
        (
            "generics.decode_response (plum + decode)",
            lambda: generics.decode_response(key, response, req),
        ),
        ("  codec _decode_response (no dispatch)", lambda: raw_decode_response(key, response, req)),
        ("    ChatResponse decode", lambda: codec._DECODE_RESPONSE.decode(response.body)),
        ("  floor: small-Struct decode", lambda: floor_decoder.decode(response.body)),
        (
            "plum dispatch: generics.capabilities(key, model)",
            lambda: generics.capabilities(key, run.MODEL),
        ),
        ("  the method it dispatches to", lambda: raw_capabilities(key, run.MODEL)),
        (
            "per stream event: generics.decode_event (plum)",
            lambda: generics.decode_event(key, event, state),
        ),
        ("  codec _decode_event (no dispatch)", lambda: raw_decode_event(key, event, state)),
        ("    StreamChunk decode", lambda: codec._DECODE_CHUNK.decode(event.data)),
        ("  floor: small chunk Struct decode", lambda: floor_chunk_decoder.decode(event.data)),
        ("per stream event: SSEDecoder.feed(one event)", lambda: framer.feed(raw_event)),
        ("per stream event: EventPipeline.feed (framing+decode)", lambda: pipeline.feed(raw_event)),
        (
            "  floor: httpx text + line decoders",
            lambda: line_decoder.decode(text_decoder.decode(raw_event)),
        ),
    ]
    del call
    rows += _stubbed_transport_rows(request_dict, config_dict, prebuilt, prebuilt_cfg)
    width = max(len(name) for name, _ in rows)
    print(f"{'step':<{width}}  µs/call (median of 15 x 2000)")
    for name, fn in rows:
        if name.startswith("#"):
            print(name[1:])
            continue
        number = 2000 if "whole stream" not in name else 5
        try:
            print(f"{name:<{width}}  {_time(fn, number=number) * 1e6:8.2f}")
        except Exception as exc:  # llmkit's internals moved: say so, keep going
            print(f"{name:<{width}}  n/a ({type(exc).__name__}: {exc})")


class _FakeBody:
    """Stands in for ``_http.ByteStream``: canned body pieces, no socket."""

    def __init__(self, pieces: list[bytes]) -> None:
        self._pieces = pieces
        self.status = 200
        self.headers: dict[str, str] = {}

    def __iter__(self) -> Any:
        return iter(self._pieces)

    def close(self) -> None:
        pass

    def drain(self) -> None:
        pass


def _stubbed_transport_rows(
    request_dict: Any, config_dict: Any, prebuilt: Any, prebuilt_cfg: Any
) -> list[tuple[str, Callable[[], Any]]]:
    """llmkit's whole call with the transport's ``send`` replaced by canned bytes (this process)."""
    import msgspec
    from httpx._decoders import LineDecoder, TextDecoder

    import llmkit.core
    from llmkit import _http
    from llmkit.types import HttpResponse

    body = run_body()
    canned = HttpResponse(status=200, headers={}, body=body)
    events = _raw_events(1000)

    def fake_send(call: Any, config: Any, context: Any) -> Any:
        return _FakeBody(events) if call.stream else canned

    # The profiler's process only; llmkit's code is untouched.
    _http.default_transport.send = fake_send  # type: ignore[method-assign]
    encoder = msgspec.json.Encoder()
    decoder = msgspec.json.Decoder(run._FResponse)
    chunk_decoder = msgspec.json.Decoder(run._FChunk)
    stream_dict = {"messages": run.MESSAGES}

    def floor_no_http() -> Any:
        encoder.encode({"model": run.MODEL, "messages": run.MESSAGES})
        return decoder.decode(body)

    def llmkit_stream() -> None:
        for _ in llmkit.core.stream("openai", run.MODEL, stream_dict, config_dict):
            pass

    def floor_stream() -> None:
        text, lines = TextDecoder(), LineDecoder()
        decode = chunk_decoder.decode
        for piece in events:
            for line in lines.decode(text.decode(piece)):
                if line.startswith("data: ") and line != "data: [DONE]":
                    decode(line[6:])

    rows: list[tuple[str, Callable[[], Any]]] = [
        ("#-- whole call path, HTTP transport stubbed out (canned bytes) --", lambda: None),
        (
            "core.completion(dict, dict), no HTTP",
            lambda: llmkit.core.completion("openai", run.MODEL, request_dict, config_dict),
        ),
        (
            "core.completion(ChatRequest, Config), no HTTP",
            lambda: llmkit.core.completion("openai", run.MODEL, prebuilt, prebuilt_cfg),
        ),
        ("floor: encode dict + small-Struct decode", floor_no_http),
        ("core.stream, 1000 events one per piece (whole stream)", llmkit_stream),
        ("floor: text+line decoders+decode, 1000 events (whole stream)", floor_stream),
    ]
    return rows


def run_body() -> bytes:
    import server

    return server.COMPLETION_BODY


def _raw_events(n: int) -> list[bytes]:
    import server

    return server.render_stream_events(n)


def _raw_event() -> bytes:
    import server

    return server.render_stream_events(3)[1]


def _sse_event() -> Any:
    import server

    from llmkit._framing import SSEDecoder

    events = SSEDecoder().feed(server.render_stream_events(3)[1])
    return events[0]


def profile(target: str, n: int, sort: str, limit: int, chunks: int, packed: int) -> None:
    with (
        run.BenchServer() as srv,
        httpx.Client(timeout=httpx.Timeout(600.0, connect=5.0)) as client,
    ):
        if target.endswith("stream"):
            contenders: dict[str, Callable[[], Any]] = dict(
                run.make_stream_contenders(srv.base_url, client, chunks, packed)
            )
            fn = contenders["floor" if target.startswith("floor") else "llmkit"]
            unit = "stream"
        else:
            contenders = run.make_call_contenders(srv.base_url, client)
            fn = contenders[
                {"call": "llmkit_dict", "call-struct": "llmkit_struct", "floor-call": "floor"}[
                    target
                ]
            ]
            unit = "call"
        for _ in range(max(n // 10, 2)):
            fn()
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(n):
            fn()
        profiler.disable()
    stats = pstats.Stats(profiler)
    total = stats.total_tt  # type: ignore[attr-defined]
    print(f"{target}: {n} x {unit}, {total / n * 1e6:,.1f} µs profiled time per {unit}\n")
    root = str(Path(__file__).resolve().parent.parent) + "/"
    entries: list[tuple[float, float, int, str]] = []
    for (filename, line, func), (_cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        short = filename.removeprefix(root)
        for marker in ("site-packages/", "lib/python3."):
            if marker in short:
                short = short.split(marker, 1)[1]
                break
        entries.append((tt, ct, nc, f"{short}:{line}({func})"))
    if sort == "tottime":
        entries.sort(key=lambda e: -e[0])
    else:
        entries.sort(key=lambda e: -e[1])
    print(f"{'own µs/' + unit:>14} {'cum µs/' + unit:>14} {'calls/' + unit:>12}  function")
    for tt, ct, nc, name in entries[:limit]:
        print(f"{tt / n * 1e6:14.2f} {ct / n * 1e6:14.2f} {nc / n:12.1f}  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "target", choices=["stages", "call", "call-struct", "stream", "floor-call", "floor-stream"]
    )
    parser.add_argument("-n", type=int, default=None, help="calls or streams to profile")
    parser.add_argument("--sort", choices=["tottime", "cumtime"], default="tottime")
    parser.add_argument("--limit", type=int, default=30)
    parser.add_argument("--chunks", type=int, default=5000)
    parser.add_argument("--packed", type=int, default=1, help="SSE events per HTTP chunk")
    args = parser.parse_args()
    if args.target == "stages":
        stages()
        return
    n = args.n or (10 if args.target.endswith("stream") else 2000)
    profile(args.target, n, args.sort, args.limit, args.chunks, args.packed)


if __name__ == "__main__":
    main()
