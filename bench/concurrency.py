"""Throughput at 64 calls in flight: llmkit against raw httpx, httpx2 and the official SDKs.

    python bench/concurrency.py [--calls 2000] [--rounds 5] [--check] [--no-sdk]

Starts bench/server.py in its own process and, per round, measures calls per
second of each row below against the same server, every row after a warm-up
of 64 calls. The rows a budget compares run next to each other, in an order
that rotates from round to round, so a change in machine speed hits them
alike; each ratio is the median of the per-round ratios.

Rows, 64 calls in flight each:

* floors: raw ``httpx.Client`` and ``httpx2.Client`` shared by 64 threads,
  raw ``httpx.AsyncClient`` and ``httpx2.AsyncClient`` under
  ``asyncio.gather`` (64 kept-alive connections), each POST decoded by a
  reused msgspec decoder;
* llmkit on each backend: ``core.completion`` from 64 threads,
  ``core.acompletion`` under gather, ``system.submit`` (every call queued
  at once on an ``api_calls`` pool of 64 threads) and
  ``system.acompletion`` under gather;
* the official SDKs (the ``bench`` extra installs them): ``AsyncOpenAI`` and
  ``AsyncAnthropic`` under gather, and their sync clients from 64 threads.
  An SDK's figure is the faster of its two forms.

Budgets (``--check`` exits 1 when one is missed):

* ``system.submit`` and ``system.acompletion`` on httpx reach 0.9x raw
  ``httpx.Client`` on 64 threads;
* on httpx2, ``system.submit`` and ``system.acompletion`` reach 1.0x the
  faster official SDK in either form, and ``core.acompletion`` 1.0x the
  faster official async SDK, its own form (the aim is 1.5x). Its ratio to
  the SDKs' sync clients on 64 threads is shown too, for information.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import msgspec

from llmkit import core, system

IN_FLIGHT = 64
MODEL = "gpt-4o-mini"
ANTHROPIC_MODEL = "claude-bench"
MESSAGES = [{"role": "user", "content": "hi"}]
REQUEST = {"messages": MESSAGES}
HEADERS = {"authorization": "Bearer sk-bench", "content-type": "application/json"}
SYSTEM_BUDGET = 0.9
SDK_BUDGET = 1.0
SDK_AIM = 1.5

Rate = Callable[[int], float]


async def _gather(calls: int, one: Callable[[], Awaitable[object]]) -> float:
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def limited() -> None:
        async with gate:
            await one()

    # The warm-up opens the connections; only what follows is timed.
    await asyncio.gather(*(limited() for _ in range(IN_FLIGHT)))
    start = time.perf_counter()
    await asyncio.gather(*(limited() for _ in range(calls)))
    return calls / (time.perf_counter() - start)


def _threads(calls: int, one: Callable[[], object]) -> float:
    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        list(pool.map(lambda _: one(), range(IN_FLIGHT)))
        start = time.perf_counter()
        list(pool.map(lambda _: one(), range(calls)))
        return calls / (time.perf_counter() - start)


class Rows:
    """Every row's measurement, as a function of the number of calls."""

    def __init__(self, base: str, sdks: bool) -> None:
        self.base = base
        self.url = base + "/chat/completions"
        self.body = msgspec.json.encode({"model": MODEL, **REQUEST})
        self.decoder = msgspec.json.Decoder()
        self.config = {"api_key": "sk-bench", "api_base": base}
        # Groups of rows measured next to each other: the httpx budget's,
        # the httpx2 budget's, and the rest (information only).
        self.groups: list[dict[str, Rate]] = [
            {
                "raw httpx.Client, 64 threads": self.raw_sync(httpx),
                "system.submit, 64 in flight [httpx]": self.system_submit("httpx"),
                "system.acompletion, gather [httpx]": self.system_async("httpx"),
                "llmkit completion, 64 threads [httpx]": self.core_sync("httpx"),
            },
            {},
            {
                "raw httpx.AsyncClient, gather": self.raw_async(httpx),
                "llmkit acompletion, gather [httpx]": self.core_async("httpx"),
            },
        ]
        try:
            import httpx2
        except ImportError:
            return
        self.groups[1] = {
            "system.submit, 64 in flight [httpx2]": self.system_submit("httpx2"),
            "system.acompletion, gather [httpx2]": self.system_async("httpx2"),
            "llmkit acompletion, gather [httpx2]": self.core_async("httpx2"),
        }
        if sdks:
            self.groups[1].update(self.sdks())
        self.groups[2].update(
            {
                "raw httpx2.Client, 64 threads": self.raw_sync(httpx2),
                "raw httpx2.AsyncClient, gather": self.raw_async(httpx2),
                "llmkit completion, 64 threads [httpx2]": self.core_sync("httpx2"),
            }
        )

    @property
    def rows(self) -> dict[str, Rate]:
        return {name: rate for group in self.groups for name, rate in group.items()}

    def order(self, round_: int) -> list[str]:
        """The rows of one round: group by group, each rotated by the round."""
        names = []
        for group in self.groups:
            keys = list(group)
            shift = round_ % len(keys) if keys else 0
            names += keys[shift:] + keys[:shift]
        return names

    # --- floors ---------------------------------------------------------------------------

    def raw_sync(self, http: Any) -> Rate:
        def rate(calls: int) -> float:
            limits = http.Limits(max_connections=256, max_keepalive_connections=IN_FLIGHT)
            with http.Client(limits=limits) as client:

                def one() -> None:
                    self.decoder.decode(
                        client.post(self.url, content=self.body, headers=HEADERS).content
                    )

                return _threads(calls, one)

        return rate

    def raw_async(self, http: Any) -> Rate:
        async def run(calls: int) -> float:
            limits = http.Limits(max_connections=256, max_keepalive_connections=IN_FLIGHT)
            async with http.AsyncClient(limits=limits) as client:

                async def one() -> None:
                    response = await client.post(self.url, content=self.body, headers=HEADERS)
                    self.decoder.decode(response.content)

                return await _gather(calls, one)

        return lambda calls: asyncio.run(run(calls))

    # --- llmkit ---------------------------------------------------------------------------

    def core_sync(self, backend: str) -> Rate:
        config = {**self.config, "http_backend": backend}
        return lambda calls: _threads(
            calls, lambda: core.completion("openai", MODEL, REQUEST, config)
        )

    def core_async(self, backend: str) -> Rate:
        config = {**self.config, "http_backend": backend}

        async def run(calls: int) -> float:
            return await _gather(calls, lambda: core.acompletion("openai", MODEL, REQUEST, config))

        return lambda calls: asyncio.run(run(calls))

    def _system(self, backend: str, calls: int) -> system.System:
        return system.create_system(
            {
                "providers": {"openai": self.config},
                "thread_pools": {
                    "api_calls": {"pool_size": IN_FLIGHT, "queue_size": calls + IN_FLIGHT}
                },
                "defaults": {"http_backend": backend},
            }
        )

    def system_submit(self, backend: str) -> Rate:
        def rate(calls: int) -> float:
            with self._system(backend, calls) as made:
                for future in [made.submit("openai", MODEL, REQUEST) for _ in range(IN_FLIGHT)]:
                    future.result()
                start = time.perf_counter()
                futures = [made.submit("openai", MODEL, REQUEST) for _ in range(calls)]
                for future in futures:
                    future.result()
                return calls / (time.perf_counter() - start)

        return rate

    def system_async(self, backend: str) -> Rate:
        async def run(made: system.System, calls: int) -> float:
            return await _gather(calls, lambda: made.acompletion("openai", MODEL, REQUEST))

        def rate(calls: int) -> float:
            with self._system(backend, calls) as made:
                return asyncio.run(run(made, calls))

        return rate

    # --- the official SDKs ------------------------------------------------------------------

    def sdks(self) -> dict[str, Rate]:
        try:
            import anthropic
            import openai
        except ImportError:
            sys.exit("the official SDKs are missing: pip install 'llmkit[bench]' (or --no-sdk)")
        base = self.base

        def openai_async(calls: int) -> float:
            async def run() -> float:
                async with openai.AsyncOpenAI(api_key="sk-bench", base_url=base) as client:
                    return await _gather(
                        calls,
                        lambda: client.chat.completions.create(model=MODEL, messages=MESSAGES),  # type: ignore[arg-type]
                    )

            return asyncio.run(run())

        def openai_sync(calls: int) -> float:
            with openai.OpenAI(api_key="sk-bench", base_url=base) as client:
                return _threads(
                    calls,
                    lambda: client.chat.completions.create(model=MODEL, messages=MESSAGES),  # type: ignore[arg-type]
                )

        # The bench server answers Anthropic's Messages API at /v1/messages.
        root = base.removesuffix("/v1")

        def anthropic_async(calls: int) -> float:
            async def run() -> float:
                async with anthropic.AsyncAnthropic(api_key="sk-bench", base_url=root) as client:
                    return await _gather(
                        calls,
                        lambda: client.messages.create(
                            model=ANTHROPIC_MODEL,
                            max_tokens=16,
                            messages=MESSAGES,  # type: ignore[arg-type]
                        ),
                    )

            return asyncio.run(run())

        def anthropic_sync(calls: int) -> float:
            with anthropic.Anthropic(api_key="sk-bench", base_url=root) as client:
                return _threads(
                    calls,
                    lambda: client.messages.create(
                        model=ANTHROPIC_MODEL,
                        max_tokens=16,
                        messages=MESSAGES,  # type: ignore[arg-type]
                    ),
                )

        return {
            "OpenAI SDK AsyncOpenAI, gather": openai_async,
            "Anthropic SDK AsyncAnthropic, gather": anthropic_async,
            "OpenAI SDK OpenAI, 64 threads": openai_sync,
            "Anthropic SDK Anthropic, 64 threads": anthropic_sync,
        }


ASYNC_SDKS = ("OpenAI SDK AsyncOpenAI, gather", "Anthropic SDK AsyncAnthropic, gather")
SYNC_SDKS = ("OpenAI SDK OpenAI, 64 threads", "Anthropic SDK Anthropic, 64 threads")


def _budgets(rates: dict[str, float]) -> list[tuple[str, float, float | None]]:
    """(what, ratio, budget or None for information) of one round."""
    checks: list[tuple[str, float, float | None]] = []
    floor = rates["raw httpx.Client, 64 threads"]
    for row in ("system.submit, 64 in flight [httpx]", "system.acompletion, gather [httpx]"):
        checks.append((f"{row} / raw httpx.Client", rates[row] / floor, SYSTEM_BUDGET))
    if ASYNC_SDKS[0] not in rates:
        return checks
    best_async = max(rates[name] for name in ASYNC_SDKS)
    best = max(best_async, *(rates[name] for name in SYNC_SDKS))
    for row in ("system.submit, 64 in flight [httpx2]", "system.acompletion, gather [httpx2]"):
        checks.append((f"{row} / faster SDK, either form", rates[row] / best, SDK_BUDGET))
    row = "llmkit acompletion, gather [httpx2]"
    checks.append((f"{row} / faster async SDK", rates[row] / best_async, SDK_BUDGET))
    best_sync = max(rates[name] for name in SYNC_SDKS)
    checks.append((f"{row} / faster sync SDK on 64 threads", rates[row] / best_sync, None))
    return checks


def _versions() -> dict[str, str]:
    from importlib import metadata

    found = {"python": platform.python_version()}
    for name in ("llmkit", "httpx", "httpx2", "openai", "anthropic"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per row and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--check", action="store_true", help="exit 1 when a budget is missed")
    parser.add_argument("--no-sdk", action="store_true", help="skip the official SDKs' rows")
    parser.add_argument("--output", type=Path, help="write every sample as JSON here")
    args = parser.parse_args()

    server = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("server.py")), "--watch-stdin"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        rows = Rows(f"http://127.0.0.1:{int(server.stdout.readline())}/v1", not args.no_sdk)
        every = rows.rows
        names = list(every)
        samples: dict[str, list[float]] = {name: [] for name in names}
        ratios: dict[str, list[float]] = {}
        budgets: dict[str, float | None] = {}
        for round_ in range(args.rounds):
            rates = {}
            for name in rows.order(round_):
                rates[name] = every[name](args.calls)
                samples[name].append(rates[name])
                print(f"round {round_ + 1}  {name:<40} {rates[name]:8.0f} calls/s", flush=True)
            for what, ratio, budget in _budgets(rates):
                ratios.setdefault(what, []).append(ratio)
                budgets[what] = budget
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=10)

    print(f"\n{args.rounds} rounds of {args.calls} calls, {IN_FLIGHT} in flight; medians\n")
    print("| row | calls/s |\n| --- | ---: |")
    for name in names:
        print(f"| {name} | {statistics.median(samples[name]):,.0f} |")
    print("\n| ratio (median of rounds) | value | budget |\n| --- | ---: | ---: |")
    missed = []
    for what, values in ratios.items():
        ratio = statistics.median(values)
        budget = budgets[what]
        if budget is None:
            print(f"| {what} | {ratio:.3f}x | info |")
            continue
        aim = f" (aim {SDK_AIM}x)" if budget == SDK_BUDGET else ""
        mark = "" if ratio >= budget else " **missed**"
        print(f"| {what} | {ratio:.3f}x | {budget}x{aim}{mark} |")
        if ratio < budget:
            missed.append(what)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(
            json.dumps(
                {
                    "calls": args.calls,
                    "rounds": args.rounds,
                    "in_flight": IN_FLIGHT,
                    "versions": _versions(),
                    "samples": samples,
                    "ratios": ratios,
                },
                indent=2,
            )
        )
    if args.check and missed:
        sys.exit(f"missed: {', '.join(missed)}")


if __name__ == "__main__":
    main()
