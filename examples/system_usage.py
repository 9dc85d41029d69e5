"""System façade usage, runnable with no key: it talks to the local OpenAI emulator.

    python examples/system_usage.py

A system is a long-lived llmkit: providers by name, bounded thread pools,
its own HTTP clients, stream handles, futures, health checks and metrics.
Against the real API, drop the emulator, the api_base and the probe_model
(the default probe is GET /models), and set OPENAI_API_KEY.
"""

from __future__ import annotations

import asyncio
from typing import Any

import llmkit
from llmkit import system
from llmkit_contracts import OpenAIEmulator, Reply


def main() -> None:
    with OpenAIEmulator() as emulator:
        config = {
            "providers": {
                "openai": {
                    "api_key": "sk-example-not-secret",
                    "api_base": emulator.base_url,
                    # The emulator has no /models endpoint: probe with a tiny completion.
                    "probe_model": "gpt-4o-mini",
                },
            },
            "thread_pools": {
                "api_calls": {"pool_size": 8, "queue_size": 100, "when_full": "raise"},
                "health_checks": {"pool_size": 2},
            },
            "defaults": {"provider": "openai", "model": "gpt-4o-mini", "timeout": 30},
        }
        ask: dict[str, Any] = {"messages": [{"role": "user", "content": "Capital of Japan?"}]}

        with system.create_system(config) as sys_:
            # Three shapes of the same call; the module function or the method.
            emulator.enqueue(Reply.text("Tokyo."))
            reply = system.completion(sys_, "openai", "gpt-4o-mini", ask)
            print("positional:", reply.text)
            emulator.enqueue(Reply.text("Tokyo, again."))
            # The one-dict shape may stream (the dict decides), so it is typed as either.
            answer = sys_.make_request({"provider": "openai", "model": "gpt-4o-mini", **ask})
            assert isinstance(answer, llmkit.ChatResponse)
            print("request:   ", answer.text)
            emulator.enqueue(Reply.text("Tokyo, with defaults."))
            print("keywords:  ", sys_.completion(messages=ask["messages"]).text)

            # A stream: a pool thread feeds the handle through a bounded buffer.
            emulator.enqueue(Reply.text("Tokyo, on Honshu.", chunk_size=3))
            with sys_.completion(**ask, stream=True) as stream:
                print("stream:     ", end="")
                for chunk in stream:
                    print(chunk.text, end="", flush=True)
                print(" | finish:", stream.collect().choices[0].finish_reason)

            # Futures, and asyncio without blocking the loop.
            futures = [sys_.submit(**ask) for _ in range(3)]
            print("futures:   ", [future.result().text for future in futures])

            async def ask_async() -> str:
                reply = await sys_.acompletion(**ask, stream=False)
                handle = await sys_.acompletion(**ask, stream=True)
                streamed = "".join([chunk.text async for chunk in handle])
                return f"{reply.text} / {streamed}"

            print("async:     ", asyncio.run(ask_async()))

            # Providers at run time: a second endpoint of the same API.
            sys_.add_provider(
                "openai-backup",
                {
                    "provider": "openai",
                    "api_key": "sk-example-not-secret",
                    "api_base": emulator.base_url,
                },
            )
            print("providers: ", system.list_providers(sys_))
            print("backup:    ", sys_.completion("openai-backup", "gpt-4o-mini", ask).text)
            system.remove_provider(sys_, "openai-backup")

            # Health: a real probe per provider, on the health pool.
            for name, health in system.health_check(sys_).items():
                print(f"health:     {name} {health.status} via {health.probe}")

            # Metrics, per provider and model, as a plain dict.
            counters = system.metrics(sys_)["providers"]["openai"]["gpt-4o-mini"]
            print(
                "metrics:   ",
                f"requests={counters['requests']} successes={counters['successes']}",
                f"tokens_in={counters['tokens_in']} tokens_out={counters['tokens_out']}",
                f"ttft_count={counters['time_to_first_token']['count']}",
            )

            try:
                sys_.completion("opnai", "gpt-4o-mini", ask)
            except llmkit.ProviderNotFoundError as exc:
                print("bad input: ", exc.message)

        try:
            sys_.completion(**ask)
        except llmkit.LLMError as exc:
            print("after:     ", exc.message)

        # The global system, for code that does not pass one around.
        with system.with_config(config):
            emulator.enqueue(Reply.text("Tokyo, globally."))
            global_system = system.get_global_system()
            assert global_system is not None
            print("global:    ", global_system.completion(**ask).text)


if __name__ == "__main__":
    main()
