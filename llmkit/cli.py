"""The ``llmkit`` command: a no-key demo, a streaming chat, and provider discovery.

``llmkit demo`` runs a completion, a stream and a tool call against the
OpenAI emulator that ships in ``llmkit_contracts``, so it needs no key and
no network. ``llmkit chat -p openai -m gpt-4o-mini "Hi"`` streams a real
answer when the provider's key variable is set.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TextIO

from llmkit import core
from llmkit.errors import LLMError

__all__ = ["main"]

_WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def _demo(out: TextIO) -> int:
    from llmkit_contracts import OpenAIEmulator, Reply

    with OpenAIEmulator() as emulator:
        config = {"api_key": "demo-key-not-secret", "api_base": emulator.base_url}
        question = {"role": "user", "content": "What is the capital of France?"}

        emulator.enqueue(Reply.text("The capital of France is Paris."))
        reply = core.completion("openai", "gpt-4o-mini", {"messages": [question]}, config)
        usage = reply.usage
        out.write("1. completion\n")
        out.write(f"   {reply.text}\n")
        if usage is not None:
            out.write(
                f"   usage: {usage.prompt_tokens} prompt + {usage.completion_tokens} "
                f"completion = {usage.total_tokens} tokens\n"
            )

        emulator.enqueue(
            Reply.text("Paris sits on the Seine, in the north of France.").with_(chunk_size=6)
        )
        out.write("2. stream\n   ")
        with core.stream("openai", "gpt-4o-mini", {"messages": [question]}, config) as stream:
            for chunk in stream:
                out.write(chunk.text)
                out.flush()
            final = stream.collect()
        out.write(f"\n   finish_reason: {final.choices[0].finish_reason}\n")

        emulator.enqueue(Reply.tool_calls([("get_weather", json.dumps({"city": "Paris"}))]))
        ask = {"role": "user", "content": "What is the weather in Paris?"}
        first = core.completion(
            "openai", "gpt-4o-mini", {"messages": [ask], "tools": [_WEATHER_TOOL]}, config
        )
        call = first.tool_calls[0]
        out.write("3. tool call\n")
        out.write(f"   model asked for {call.function.name}({call.function.arguments})\n")
        emulator.enqueue(Reply.text("It is 18 °C and sunny in Paris."))
        second = core.completion(
            "openai",
            "gpt-4o-mini",
            {
                "messages": [
                    ask,
                    first.choices[0].message,
                    {"role": "tool", "tool_call_id": call.id, "content": '{"celsius": 18}'},
                ],
                "tools": [_WEATHER_TOOL],
            },
            config,
        )
        out.write(f"   answer after the tool result: {second.text}\n")
    out.write("Demo done: every call went to the local emulator, no key or network used.\n")
    return 0


def _chat(args: argparse.Namespace, out: TextIO) -> int:
    config: dict[str, object] = {}
    if args.api_base:
        config["api_base"] = args.api_base
    messages: list[dict[str, str]] = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    messages.append({"role": "user", "content": args.prompt})
    with core.stream(args.provider, args.model, {"messages": messages}, config or None) as stream:
        for chunk in stream:
            out.write(chunk.text)
            out.flush()
    out.write("\n")
    return 0


def _providers(out: TextIO) -> int:
    for name in core.list_providers():
        info = core.provider_info(name)
        caps = info.capabilities
        flags = ", ".join(
            flag
            for flag, on in ((name, getattr(caps, name)) for name in caps.__struct_fields__)
            if on
        )
        key = "key set" if core.provider_available(name) else f"set {info.api_key_env}"
        out.write(f"{name:<12} {info.default_base_url:<36} {key:<24} {flags}\n")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmkit", description="One interface to many LLMs.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "demo", help="run a completion, a stream and a tool call on a local emulator"
    )
    chat = commands.add_parser("chat", help="stream one answer from a real provider")
    chat.add_argument("-p", "--provider", required=True, help="provider name, e.g. openai")
    chat.add_argument("-m", "--model", required=True, help="model name, e.g. gpt-4o-mini")
    chat.add_argument("-s", "--system", help="system prompt")
    chat.add_argument("--api-base", help="base URL instead of the provider's default")
    chat.add_argument("prompt", help="what to ask")
    commands.add_parser("providers", help="list installed providers and their capabilities")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``llmkit`` command line; return the exit status.

    Errors from llmkit print as one line on stderr (exit status 2), never
    as a traceback; messages never hold the API key.
    """
    args = _parser().parse_args(argv)
    out = sys.stdout
    try:
        if args.command == "demo":
            return _demo(out)
        if args.command == "chat":
            return _chat(args, out)
        return _providers(out)
    except LLMError as exc:
        sys.stderr.write(f"llmkit: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
