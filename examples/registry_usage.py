"""Registry façade usage, runnable with no key: it talks to local OpenAI and Anthropic emulators.

    python examples/registry_usage.py

Configs get names; calls by name route, retry and fall back, and each
response says who served it. Against the real APIs, drop the emulators and
the api_base settings, and set OPENAI_API_KEY and ANTHROPIC_API_KEY (or
call registry.quick_setup()).
"""

from __future__ import annotations

from typing import Any

from llmkit import registry
from llmkit.errors import AllAttemptsFailedError, InvalidRequestError
from llmkit_contracts import AnthropicEmulator, OpenAIEmulator, Reply


def main() -> None:
    with OpenAIEmulator() as openai, AnthropicEmulator() as anthropic:
        openai_config = {"api_key": "sk-example-not-secret", "api_base": openai.base_url}
        anthropic_config = {"api_key": "sk-ant-example-not-secret", "api_base": anthropic.base_url}
        ask: dict[str, Any] = {"messages": [{"role": "user", "content": "Capital of Japan?"}]}

        # A fixed target, with a fallback on another provider. Short waits for the demo.
        registry.register(
            "claude",
            {"provider": "anthropic", "model": "claude-haiku-4-5", "config": anthropic_config},
        )
        registry.register(
            "fast",
            {
                "provider": "openai",
                "model": "gpt-4o-mini",
                "config": openai_config,
                "retries": 1,
                "retry_delay": 0.01,
                "fallbacks": ["claude"],
            },
        )
        openai.enqueue(Reply.text("Tokyo."))
        reply = registry.completion("fast", ask)
        print("by name:   ", reply.text, "| served by", reply.served_by.provider)

        # The primary fails twice (its retry included): the fallback answers.
        openai.enqueue(Reply.error(503), Reply.error(503))
        anthropic.enqueue(Reply.text("Tokyo, from Claude."))
        reply = registry.completion("fast", ask)
        served = reply.served_by
        print(
            "fallback:  ",
            reply.text,
            f"| {served.provider}/{served.model},",
            f"{served.attempts} attempts",
        )

        # A stream: the first chunk is read before it is handed over.
        openai.enqueue(Reply.text("Tokyo, on Honshu.", chunk_size=3))
        with registry.stream("fast", ask) as stream:
            print("stream:     ", end="")
            for chunk in stream:
                print(chunk.text, end="", flush=True)
            print()

        # A router: a custom key picks the model, and never reaches the provider.
        def by_priority(request: Any) -> dict[str, str]:
            if request.get("priority") == "high":
                return {"provider": "anthropic", "model": "claude-sonnet-4-5"}
            return {"provider": "openai", "model": "gpt-4o-mini"}

        registry.register(
            "smart",
            registry.create_router(
                by_priority,
                {"openai": openai_config, "anthropic": anthropic_config},
                keys=["priority"],
            ),
        )
        anthropic.enqueue(Reply.text("Tokyo, carefully."))
        reply = registry.completion("smart", {**ask, "priority": "high"})
        print("routed:    ", reply.text, "| model", reply.served_by.model)
        openai.enqueue(Reply.text("Tokyo!"))
        print("chat:      ", registry.chat("smart", "Capital of Japan?", priority="low"))

        # When every attempt fails, the error lists them all.
        openai.enqueue(Reply.error(503), Reply.error(500))
        anthropic.enqueue(Reply.error(529), Reply.error(529))
        try:
            registry.completion("fast", ask)
            raise SystemExit("expected every attempt to fail")
        except AllAttemptsFailedError as exc:
            print("all failed:", [f"{a.provider}/{a.model}" for a in exc.attempts])

        # Bad configs fail at register time, with the path of the bad value.
        try:
            registry.register("typo", {"provider": "openai", "modle": "gpt-4o-mini"})
        except InvalidRequestError as exc:
            print("refused:   ", exc.message)

        print("configs:   ", registry.list_configs())


if __name__ == "__main__":
    main()
