"""Throughput at 64 calls in flight: llmkit against raw httpx, async and threaded.

    python bench/concurrency.py [--calls 3000] [--rounds 2]

Starts bench/server.py in its own process and, per round, measures calls per
second for: raw ``httpx.AsyncClient`` (64 kept-alive connections) under
``asyncio.gather`` with 64 in flight, ``llmkit.core.acompletion`` the same
way, raw ``httpx.Client`` shared by 64 threads, and ``llmkit.core.completion``
from 64 threads. Information only: no budget is checked here.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import msgspec

from llmkit import core

IN_FLIGHT = 64
MODEL = "gpt-4o-mini"
REQUEST = {"messages": [{"role": "user", "content": "hi"}]}
HEADERS = {"authorization": "Bearer sk-bench", "content-type": "application/json"}
LIMITS = httpx.Limits(max_connections=256, max_keepalive_connections=64)


async def _gather(calls: int, one: Callable[[], Awaitable[object]]) -> float:
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def limited() -> None:
        async with gate:
            await one()

    start = time.perf_counter()
    await asyncio.gather(*(limited() for _ in range(calls)))
    return calls / (time.perf_counter() - start)


def _threads(calls: int, one: Callable[[], object]) -> float:
    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        start = time.perf_counter()
        list(pool.map(lambda _: one(), range(calls)))
        return calls / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    server = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("server.py")), "--watch-stdin"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        base = f"http://127.0.0.1:{int(server.stdout.readline())}/v1"
        url = base + "/chat/completions"
        config = {"api_key": "sk-bench", "api_base": base}
        body = msgspec.json.encode({"model": MODEL, **REQUEST})
        decoder = msgspec.json.Decoder()

        async def raw_async() -> float:
            async with httpx.AsyncClient(limits=LIMITS) as client:

                async def one() -> None:
                    decoder.decode((await client.post(url, content=body, headers=HEADERS)).content)

                return await _gather(args.calls, one)

        async def llmkit_async() -> float:
            return await _gather(
                args.calls, lambda: core.acompletion("openai", MODEL, REQUEST, config)
            )

        with httpx.Client(limits=LIMITS) as client:

            def raw_sync() -> None:
                decoder.decode(client.post(url, content=body, headers=HEADERS).content)

            for round_ in range(1, args.rounds + 1):
                rows = [
                    ("raw httpx.AsyncClient, gather", asyncio.run(raw_async())),
                    ("llmkit acompletion, gather", asyncio.run(llmkit_async())),
                    ("raw httpx.Client, 64 threads", _threads(args.calls, raw_sync)),
                    (
                        "llmkit completion, 64 threads",
                        _threads(
                            args.calls, lambda: core.completion("openai", MODEL, REQUEST, config)
                        ),
                    ),
                ]
                for name, rate in rows:
                    print(f"round {round_}  {name:<32} {rate:8.0f} calls/s")
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
