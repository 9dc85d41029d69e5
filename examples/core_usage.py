"""Core façade usage, runnable with no key: it talks to the local OpenAI emulator.

    python examples/core_usage.py

Against the real API, drop the emulator and the ``config`` argument and set
OPENAI_API_KEY.
"""

from __future__ import annotations

import asyncio

import llmkit
from llmkit import core
from llmkit_contracts import OpenAIEmulator, Reply


def main() -> None:
    with OpenAIEmulator() as emulator:
        config = {"api_key": "sk-example-not-secret", "api_base": emulator.base_url}
        ask = {"messages": [{"role": "user", "content": "Capital of Japan?"}]}

        emulator.enqueue(Reply.text("Tokyo."))
        reply = core.completion("openai", "gpt-4o-mini", ask, config)
        print("completion:", reply.text, "| tokens:", reply.usage and reply.usage.total_tokens)

        emulator.enqueue(Reply.text("Tokyo, on Honshu.", chunk_size=3))
        with core.stream("openai", "gpt-4o-mini", ask, config) as stream:
            print("stream:    ", end="")
            for chunk in stream:
                print(chunk.text, end="", flush=True)
            print(" | finish:", stream.collect().choices[0].finish_reason)

        emulator.enqueue(Reply.text("Tokyo (async)."))
        print(
            "async:     ", asyncio.run(core.acompletion("openai", "gpt-4o-mini", ask, config)).text
        )

        emulator.enqueue(
            Reply.error(429, message="Rate limit reached", headers={"retry-after": "0"})
        )
        emulator.enqueue(Reply.text("Tokyo, after one retry."))
        print("retried:   ", core.completion("openai", "gpt-4o-mini", ask, config).text)

        try:
            core.completion(
                "openai", "gpt-4o-mini", {"messages": [{"role": "usr", "content": "x"}]}, config
            )
        except llmkit.InvalidRequestError as exc:
            print("bad input: ", exc)


if __name__ == "__main__":
    main()
