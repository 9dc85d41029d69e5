from __future__ import annotations

import pytest

from llmkit import cli


def test_cli_demo_runs_against_emulator(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "The capital of France is Paris." in out
    assert "Paris sits on the Seine, in the north of France." in out
    assert "finish_reason: stop" in out
    assert 'get_weather({"city": "Paris"})' in out
    assert "18 °C" in out


def test_cli_chat_without_key_names_variable(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["chat", "-p", "openai", "-m", "gpt-4o-mini", "hello"]) == 2
    err = capsys.readouterr().err
    assert "set OPENAI_API_KEY" in err
    assert "Traceback" not in err


def test_cli_chat_unknown_provider(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["chat", "-p", "opnai", "-m", "m", "hello"]) == 2
    assert "Did you mean 'openai'?" in capsys.readouterr().err


def test_cli_chat_streams_answer(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmkit_contracts import OpenAIEmulator, Reply

    monkeypatch.setenv("OPENAI_API_KEY", "sk-cli-test-000000")
    with OpenAIEmulator() as emulator:
        emulator.enqueue(Reply.text("streamed to the terminal", chunk_size=3))
        code = cli.main(
            [
                "chat",
                "-p",
                "openai",
                "-m",
                "gpt-4o-mini",
                "-s",
                "be brief",
                "--api-base",
                emulator.base_url,
                "hi",
            ]
        )
        sent = emulator.requests[-1].json
    assert code == 0
    assert capsys.readouterr().out == "streamed to the terminal\n"
    assert sent is not None
    assert sent["messages"][0] == {"role": "system", "content": "be brief"}


def test_cli_providers_lists_openai(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["providers"]) == 0
    lines = capsys.readouterr().out.splitlines()
    openai = next(line for line in lines if line.startswith("openai "))
    assert "set OPENAI_API_KEY" in openai
    assert "https://api.openai.com/v1" in openai
    assert "tools" in openai
