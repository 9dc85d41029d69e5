from __future__ import annotations

import msgspec
import pytest

import llmkit
from llmkit.types import (
    ChatRequest,
    ChatResponse,
    Choice,
    ImagePart,
    Message,
    TextPart,
    check_request,
    to_request,
)

HI = [{"role": "user", "content": "Hi"}]


def test_to_request_converts_dict_with_parts() -> None:
    request = to_request(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                    ],
                }
            ],
            "temperature": 0.2,
        },
        model="gpt-4o",
    )
    assert request.model == "gpt-4o"
    content = request.messages[0].content
    assert isinstance(content, list)
    assert isinstance(content[0], TextPart)
    assert isinstance(content[1], ImagePart)
    assert content[1].image_url.url == "https://x/y.png"


@pytest.mark.parametrize(
    ("payload", "path"),
    [
        ({"messages": [{"role": "usr", "content": "x"}]}, "$.messages[0].role"),
        ({"messages": [{"role": "user", "content": 3}]}, "$.messages[0].content"),
        ({"messages": HI, "temperature": "hot"}, "$.temperature"),
        ({"messages": HI, "tempreature": 1}, "tempreature"),
        (
            {"messages": [{"role": "user", "content": [{"type": "video", "url": "x"}]}]},
            "$.messages[0].content[0]",
        ),
    ],
    ids=["bad-role", "bad-content", "bad-temperature", "unknown-field", "unknown-part"],
)
def test_to_request_error_names_path(payload: dict[str, object], path: str) -> None:
    with pytest.raises(llmkit.InvalidRequestError) as info:
        to_request(payload, model="m")
    assert path in str(info.value)


def test_to_request_rejects_non_mapping() -> None:
    with pytest.raises(llmkit.InvalidRequestError, match="must be a ChatRequest or a dict"):
        to_request(["not", "a", "dict"], model="m")  # type: ignore[arg-type]


def test_to_request_replaces_model_of_struct() -> None:
    original = ChatRequest(model="a", messages=[Message(role="user", content="x")])
    assert to_request(original) is original
    assert to_request(original, model="b").model == "b"


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"messages": []}, "messages is empty"),
        ({"model": ""}, "model is empty"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "tool_call_id"),
        ({"temperature": 3}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"n": 0}, "n must be"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"response_format": {"type": "json_schema"}}, "json_schema"),
        ({"tool_choice": "required"}, "tools is empty"),
        (
            {
                "tools": [{"type": "function", "function": {"name": "a"}}],
                "tool_choice": {"type": "function", "function": {"name": "b"}},
            },
            "not among tools",
        ),
    ],
    ids=[
        "no-messages",
        "no-model",
        "tool-without-id",
        "temperature",
        "top-p",
        "n",
        "max-tokens",
        "schema-missing",
        "choice-without-tools",
        "choice-unknown-tool",
    ],
)
def test_check_request_rejects(changes: dict[str, object], fragment: str) -> None:
    data: dict[str, object] = {"model": "m", "messages": HI, **changes}
    with pytest.raises(llmkit.InvalidRequestError, match=fragment):
        check_request(msgspec.convert(data, ChatRequest))


def test_request_encodes_without_defaults() -> None:
    request = to_request({"messages": HI}, model="m")
    assert msgspec.json.decode(msgspec.json.encode(request)) == {"model": "m", "messages": HI}


def test_response_text_and_tool_calls_helpers() -> None:
    empty = ChatResponse()
    assert empty.text == ""
    assert empty.tool_calls == []
    parts = ChatResponse(
        choices=[
            Choice(
                message=Message(role="assistant", content=[TextPart(text="a"), TextPart(text="b")])
            )
        ]
    )
    assert parts.text == "ab"
    none = ChatResponse(choices=[Choice(message=Message(role="assistant"))])
    assert none.text == ""


def test_types_are_frozen() -> None:
    message = Message(role="user", content="x")
    with pytest.raises(AttributeError):
        message.content = "y"  # type: ignore[misc]


def test_to_request_rejects_unknown_message_field() -> None:
    with pytest.raises(
        llmkit.InvalidRequestError, match="messages\\[0\\] has unknown field 'contnet'"
    ):
        to_request({"messages": [{"role": "user", "contnet": "hi"}]}, model="m")


@pytest.mark.parametrize(
    ("message", "ok"),
    [
        ({"role": "user"}, False),
        ({"role": "system"}, False),
        ({"role": "assistant"}, False),
        (
            {
                "role": "assistant",
                "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{}"}}],
            },
            True,
        ),
    ],
    ids=["user", "system", "assistant-empty", "assistant-tool-calls"],
)
def test_check_request_requires_content(message: dict[str, object], ok: bool) -> None:
    request = to_request({"messages": [message]}, model="m")
    if ok:
        assert check_request(request) is request
    else:
        with pytest.raises(llmkit.InvalidRequestError, match="has no content"):
            check_request(request)


def test_tool_call_always_sends_type_and_arguments() -> None:
    from llmkit.types import Function, FunctionCall, Tool, ToolCall

    call = msgspec.json.decode(
        msgspec.json.encode(ToolCall(id="c", function=FunctionCall(name="f")))
    )
    assert call == {"id": "c", "type": "function", "function": {"name": "f", "arguments": ""}}
    tool = msgspec.json.decode(msgspec.json.encode(Tool(function=Function(name="f"))))
    assert tool == {"type": "function", "function": {"name": "f"}}
    decoded = msgspec.json.decode(b'{"id": "c", "function": {"name": "f"}}', type=ToolCall)
    assert decoded.function.arguments == ""
