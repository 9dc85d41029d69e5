"""The native Ollama codec, without a server: requests out, bytes in.

What goes on the wire for each part of a request (messages, images, tools,
tool_choice, format, options, think), what is refused before sending, and
how answers, stream lines and error bodies are read back.
"""

from __future__ import annotations

import json
from typing import Any, cast

import pytest

import llmkit_providers.ollama  # registers "ollama" before the per-test snapshot
from llmkit.provider import (
    AuthenticationError,
    Capabilities,
    ChatResponse,
    ContextWindowError,
    EventPipeline,
    HttpCall,
    HttpResponse,
    InvalidRequestError,
    LLMError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    StreamChunk,
    StreamInterruptedError,
    StreamState,
    Usage,
    accumulate,
    build_call,
    capabilities,
    decode_error,
    decode_event,
    decode_response,
    prepare,
)
from llmkit_providers.ollama import Ollama, forced_call_format, ollama_base_url

KEY = Ollama()
MODEL = "qwen3"
HI: dict[str, Any] = {"messages": [{"role": "user", "content": "Hi"}]}
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
TIME: dict[str, Any] = {"type": "function", "function": {"name": "get_time"}}


def _call(
    request: dict[str, Any], config: dict[str, Any] | None = None, stream: bool = False
) -> HttpCall:
    key, req, cfg = prepare("ollama", MODEL, request, config, stream)
    return build_call(key, req, cfg)


def _body(request: dict[str, Any], config: dict[str, Any] | None = None) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(_call(request, config).body))


def _refused(request: dict[str, Any], match: str, config: dict[str, Any] | None = None) -> None:
    with pytest.raises(InvalidRequestError, match=match) as raised:
        _call(request, config)
    assert raised.value.provider == "ollama"


# --- requests --------------------------------------------------------------------------


def test_plain_request_goes_to_api_chat_unstreamed_without_a_key() -> None:
    call = _call(HI)
    assert call.url == "http://localhost:11434/api/chat"
    assert call.framing == "ndjson"
    assert not call.stream
    assert "authorization" not in {name.lower() for name in call.headers}
    # Ollama streams unless told not to: "stream": false is always sent.
    assert json.loads(call.body) == {"model": MODEL, "messages": HI["messages"], "stream": False}


def test_stream_request_says_stream_true_and_is_ndjson() -> None:
    call = _call(HI, stream=True)
    assert call.stream
    assert call.framing == "ndjson"
    assert json.loads(call.body)["stream"] is True


def test_an_api_key_goes_as_a_bearer_token_when_given() -> None:
    call = _call(HI, {"api_key": "ollama-cloud-key-123", "api_base": "https://ollama.com"})
    assert call.headers["Authorization"] == "Bearer ollama-cloud-key-123"
    assert call.url == "https://ollama.com/api/chat"


def test_sampling_settings_go_in_options() -> None:
    body = _body(
        {
            **HI,
            "max_tokens": 64,
            "temperature": 0.2,
            "top_p": 0.9,
            "stop": "END",
            "seed": 7,
        },
        {"options": {"model_options": {"num_ctx": 8192, "temperature": 1.0}}},
    )
    # The request's own settings win over model_options.
    assert body["options"] == {
        "num_ctx": 8192,
        "temperature": 0.2,
        "num_predict": 64,
        "top_p": 0.9,
        "stop": ["END"],
        "seed": 7,
    }


def test_max_completion_tokens_is_num_predict_too() -> None:
    assert _body({**HI, "max_completion_tokens": 9})["options"] == {"num_predict": 9}


@pytest.mark.parametrize(
    ("think", "wire"),
    [(True, True), (False, False), ("high", "high"), ("max", "max")],
    ids=["true", "false", "high", "max"],
)
def test_think_option_is_sent(think: Any, wire: Any) -> None:
    assert _body(HI, {"options": {"think": think}})["think"] == wire


def test_think_left_unset_is_not_sent() -> None:
    # A thinking model then thinks by default, as Ollama decides.
    assert "think" not in _body(HI)


def test_think_level_must_be_known() -> None:
    with pytest.raises(InvalidRequestError, match="think"):
        prepare("ollama", MODEL, HI, {"options": {"think": "extreme"}}, False)


@pytest.mark.parametrize("keep", [0, -1, 300, "10m", "1h30m", "0"], ids=str)
def test_keep_alive_is_sent(keep: Any) -> None:
    assert _body(HI, {"options": {"keep_alive": keep}})["keep_alive"] == keep


def test_keep_alive_that_is_no_duration_is_refused() -> None:
    _refused(
        HI, "keep_alive 'ten minutes' is not a duration", {"options": {"keep_alive": "ten minutes"}}
    )


@pytest.mark.parametrize("keep", [float("nan"), float("inf"), -float("inf"), 10**30, 1e30], ids=str)
def test_keep_alive_that_is_no_usable_number_is_refused(keep: Any) -> None:
    # msgspec writes NaN as null, and Go's Duration overflows past 292 years.
    _refused(
        HI, "keep_alive .* is not a usable number of seconds", {"options": {"keep_alive": keep}}
    )


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"temperature": "hot"}, "'temperature' must be a number, not 'hot'"),
        ({"top_p": True}, "'top_p' must be a number"),
        ({"repeat_penalty": float("nan")}, "'repeat_penalty' must be a finite number"),
        ({"min_p": 1e39}, "'min_p' must be a finite number"),
        ({"num_ctx": 4096.5}, "'num_ctx' must be an integer, not 4096.5"),
        ({"num_ctx": float("nan")}, "'num_ctx' must be an integer, not nan"),
        ({"num_predict": "64"}, "'num_predict' must be an integer"),
        ({"top_k": 2**60}, "'top_k' must be an integer from -2\\*\\*53"),
        ({"seed": False}, "'seed' must be an integer"),
        ({"stop": "x"}, "'stop' must be a list of strings, not 'x'"),
        ({"stop": ["a", 1]}, "'stop' must be a list of strings"),
        ({"use_mmap": "yes"}, "'use_mmap' must be True or False"),
        ({"my_option": [1.0, float("inf")]}, "'my_option' must be free of NaN"),
    ],
    ids=lambda v: str(v)[:30],
)
def test_model_options_of_the_wrong_type_are_refused(options: dict[str, Any], match: str) -> None:
    # Ollama answers these with a 500 that looks like an outage.
    _refused(HI, match, {"options": {"model_options": options}})


def test_request_settings_ollama_cannot_hold_are_refused() -> None:
    _refused({**HI, "seed": 10**30}, "'seed' must be an integer from")


def test_model_options_of_the_right_type_are_sent_and_none_left_out() -> None:
    options = {
        "num_ctx": 8192,
        "top_k": 40.0,
        "repeat_penalty": 1,
        "min_p": 0.05,
        "use_mmap": False,
        "stop": ("END",),
        "num_ctx_future": "any JSON",
        "mirostat": None,
    }
    body = _body(HI, {"options": {"model_options": options}})
    assert body["options"] == {
        "num_ctx": 8192,
        "top_k": 40.0,
        "repeat_penalty": 1,
        "min_p": 0.05,
        "use_mmap": False,
        "stop": ["END"],
        "num_ctx_future": "any JSON",
    }


def test_unknown_provider_option_is_refused_naming_it() -> None:
    with pytest.raises(InvalidRequestError, match="num_ctx"):
        prepare("ollama", MODEL, HI, {"options": {"num_ctx": 4096}}, False)


def test_system_and_developer_messages_stay_in_place_as_system() -> None:
    body = _body(
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
                {"role": "developer", "content": [{"type": "text", "text": "No emoji."}]},
            ]
        }
    )
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "system", "content": "No emoji."},
    ]


def test_images_become_a_base64_list_beside_the_text() -> None:
    body = _body(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                        {"type": "text", "text": "Be short."},
                    ],
                }
            ]
        }
    )
    assert body["messages"] == [
        {"role": "user", "content": "What is this?\nBe short.", "images": [PNG]}
    ]


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("https://example.com/cat.png", "base64 data only: fetch the image"),
        ("data:image/png,rawbytes", "not base64"),
        ("ftp://example.com/cat.png", "must be a base64 data: URL"),
    ],
    ids=["remote", "not-base64", "other"],
)
def test_images_that_are_no_base64_data_are_refused(url: str, match: str) -> None:
    content = [{"type": "image_url", "image_url": {"url": url}}]
    _refused({"messages": [{"role": "user", "content": content}]}, match)


@pytest.mark.parametrize(
    "data",
    ["@@@", "", PNG[:-2], "YW-_", "aGk=\u00e9", "aGk"],
    ids=["symbols", "empty", "unpadded", "urlsafe", "non-ascii", "short"],
)
def test_image_data_that_is_no_valid_base64_is_refused(data: str) -> None:
    # The server would answer 400 "illegal base64 data"; llmkit says it first.
    content = [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}}]
    _refused({"messages": [{"role": "user", "content": content}]}, "not valid base64")


def test_audio_parts_and_system_images_are_refused() -> None:
    audio = [{"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]
    _refused(
        {"messages": [{"role": "user", "content": audio}]},
        "'input_audio'; Ollama takes text and images",
    )
    image = [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]
    _refused(
        {"messages": [{"role": "system", "content": image}, *HI["messages"]]},
        "'image_url'; Ollama takes text only",
    )


def test_n_above_one_is_refused() -> None:
    _refused({**HI, "n": 2}, "one answer per call")


def test_tools_go_as_function_tools_with_an_empty_schema_by_default() -> None:
    body = _body({**HI, "tools": [WEATHER, TIME]})
    assert body["tools"] == [
        WEATHER,
        {
            "type": "function",
            "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
        },
    ]
    assert "format" not in body


def test_history_with_calls_and_results_round_trips_ids_names_and_objects() -> None:
    history = {
        "messages": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {
                "role": "assistant",
                "content": None,
                "reasoning": "Two cities, two calls.",
                "tool_calls": [
                    {
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    },
                    {
                        "id": "call_b",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_a", "content": "18 C"},
            {"role": "tool", "tool_call_id": "call_b", "content": "21 C"},
            {"role": "tool", "tool_call_id": "call_x", "name": "get_time", "content": "noon"},
        ],
        "tools": [WEATHER],
    }
    messages = _body(history)["messages"]
    assert messages[1] == {
        "role": "assistant",
        "content": "",
        "thinking": "Two cities, two calls.",
        "tool_calls": [
            {"id": "call_a", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
            {"id": "call_b", "function": {"name": "get_weather", "arguments": {}}},
        ],
    }
    # tool_call_id for current servers, tool_name (found by id) for older ones.
    assert messages[2:] == [
        {"role": "tool", "content": "18 C", "tool_name": "get_weather", "tool_call_id": "call_a"},
        {"role": "tool", "content": "21 C", "tool_name": "get_weather", "tool_call_id": "call_b"},
        {"role": "tool", "content": "noon", "tool_name": "get_time", "tool_call_id": "call_x"},
    ]


def test_tool_arguments_that_are_no_object_are_refused() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1, 2]"}}
    history = [*HI["messages"], {"role": "assistant", "tool_calls": [call]}]
    _refused({"messages": history}, r"tool_calls\[0\] has arguments that are not a JSON object")


def test_non_function_tools_are_refused() -> None:
    _refused(
        {**HI, "tools": [{"type": "web_search", "function": {"name": "x"}}]}, "function tools only"
    )


def test_tool_choice_auto_sends_the_tools_as_they_are() -> None:
    body = _body({**HI, "tools": [WEATHER], "tool_choice": "auto"})
    assert [tool["function"]["name"] for tool in body["tools"]] == ["get_weather"]
    assert "format" not in body


def test_tool_choice_none_offers_no_tools() -> None:
    body = _body({**HI, "tools": [WEATHER], "tool_choice": "none", "parallel_tool_calls": False})
    assert "tools" not in body
    assert "format" not in body


def test_tool_choice_named_forces_one_call_through_format() -> None:
    choice = {"type": "function", "function": {"name": "get_weather"}}
    call = _call({**HI, "tools": [WEATHER, TIME], "tool_choice": choice}, stream=True)
    body = json.loads(call.body)
    assert [tool["function"]["name"] for tool in body["tools"]] == ["get_weather", "get_time"]
    assert body["format"] == {
        "type": "object",
        "properties": {
            "name": {"type": "string", "enum": ["get_weather"]},
            "arguments": WEATHER["function"]["parameters"],
        },
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }
    # The stream's framing carries the names the call may take.
    assert call.framing == 'ollama-forced-tool:["get_weather"]'


def test_tool_choice_required_forces_one_of_the_tools() -> None:
    body = _body({**HI, "tools": [WEATHER, TIME], "tool_choice": "required"})
    shapes = body["format"]["anyOf"]
    assert [shape["properties"]["name"]["enum"] for shape in shapes] == [
        ["get_weather"],
        ["get_time"],
    ]
    assert shapes[1]["properties"]["arguments"] == {"type": "object", "properties": {}}
    # One forced call: parallel_tool_calls=False is honoured.
    assert _body(
        {**HI, "tools": [WEATHER], "tool_choice": "required", "parallel_tool_calls": False}
    )


def test_forcing_a_tool_and_a_response_format_conflict() -> None:
    _refused(
        {
            **HI,
            "tools": [WEATHER],
            "tool_choice": "required",
            "response_format": {"type": "json_object"},
        },
        "leave one of tool_choice",
    )


def test_parallel_tool_calls_false_with_auto_is_refused() -> None:
    _refused(
        {**HI, "tools": [WEATHER], "parallel_tool_calls": False},
        "cannot limit a turn to one tool call",
    )


def test_response_format_becomes_format() -> None:
    assert _body({**HI, "response_format": {"type": "json_object"}})["format"] == "json"
    schema = {"type": "object", "properties": {"name": {"type": "string"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "cat", "schema": schema}}
    assert _body({**HI, "response_format": fmt})["format"] == schema
    assert "format" not in _body({**HI, "response_format": {"type": "text"}})
    _refused(
        {**HI, "response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
        "has no schema",
    )


def test_extra_body_and_extra_headers_are_merged_last() -> None:
    call = _call(
        {
            **HI,
            "extra_body": {"truncate": False, "stream": False},
            "extra_headers": {"x-trace": "1"},
        }
    )
    assert json.loads(call.body)["truncate"] is False
    assert call.headers["x-trace"] == "1"


def test_forced_call_format_of_one_tool_is_the_object_itself() -> None:
    from llmkit.provider import Function, Tool

    tool = Tool(function=Function(name="f"))
    assert forced_call_format([tool], ["f"])["properties"]["arguments"] == {
        "type": "object",
        "properties": {},
    }


# --- OLLAMA_HOST -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "base"),
    [
        ("127.0.0.1:11434", "http://127.0.0.1:11434"),
        ("gpu-box", "http://gpu-box:11434"),
        ("gpu-box:8080", "http://gpu-box:8080"),
        (":8080", "http://127.0.0.1:8080"),
        ("0.0.0.0", "http://127.0.0.1:11434"),
        ("0.0.0.0:11500", "http://127.0.0.1:11500"),
        ("http://gpu-box", "http://gpu-box:80"),
        ("http://gpu-box:9000/", "http://gpu-box:9000"),
        ("HTTPS://ollama.example.com", "https://ollama.example.com:443"),
        ("https://proxy.example.com:8443/ollama/", "https://proxy.example.com:8443/ollama"),
        ("[::1]:11434", "http://[::1]:11434"),
        ("[::]", "http://[::1]:11434"),
        ("::", "http://[::1]:11434"),
        ("  localhost:11434  ", "http://localhost:11434"),
        ("fe80::1%eth0", "http://[fe80::1%25eth0]:11434"),
        ("[fe80::1%eth0]:8080", "http://[fe80::1%25eth0]:8080"),
        ("[fe80::1%25eth0]:8080", "http://[fe80::1%25eth0]:8080"),
    ],
)
def test_ollama_host_forms(value: str, base: str) -> None:
    assert ollama_base_url(value) == base


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("http://u:p@gpu-box:1", "user name or password"),
        ("u:p@gpu-box", "user name or password"),
        ("[::1", "without its closing bracket"),
        ("[::1]8080", "without its closing bracket"),
        ("http://gpu-box?token=abc", "query"),
        ("gpu-box#x", "fragment"),
    ],
)
def test_ollama_host_forms_that_are_refused(value: str, match: str) -> None:
    with pytest.raises(InvalidRequestError, match=match) as raised:
        ollama_base_url(value, provider="ollama")
    message = str(raised.value)
    assert "OLLAMA_HOST" in message
    assert raised.value.provider == "ollama"
    # Credentials and queries are never repeated.
    assert ":p@" not in message
    assert "abc" not in message


# --- answers ---------------------------------------------------------------------------


def _answer(body: dict[str, Any], request: dict[str, Any] | None = None) -> ChatResponse:
    _, req, _ = prepare("ollama", MODEL, request or HI, None, False)
    response = HttpResponse(status=200, headers={}, body=json.dumps(body).encode())
    return cast(ChatResponse, decode_response(KEY, response, req))


def _done(message: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "created_at": "2025-07-07T20:32:53.844124Z",
        "message": {"role": "assistant", **message},
        "done": True,
        "done_reason": "stop",
        "prompt_eval_count": 26,
        "eval_count": 298,
        **extra,
    }


def test_answer_text_usage_and_finish() -> None:
    answer = _answer(_done({"content": "Hello!"}))
    assert answer.text == "Hello!"
    assert answer.model == MODEL
    choice = answer.choices[0]
    assert (choice.finish_reason, choice.native_finish_reason) == ("stop", "stop")
    assert answer.usage is not None
    assert (
        answer.usage.prompt_tokens,
        answer.usage.completion_tokens,
        answer.usage.total_tokens,
    ) == (26, 298, 324)


def test_answer_thinking_is_reasoning() -> None:
    answer = _answer(_done({"content": "42", "thinking": "Six times seven."}))
    assert answer.choices[0].message.reasoning == "Six times seven."


@pytest.mark.parametrize(
    ("reason", "finish"),
    [("length", "length"), ("stop", "stop"), ("load", "stop"), (None, "stop")],
    ids=["length", "stop", "load", "absent"],
)
def test_done_reason_is_normalized_and_kept(reason: str | None, finish: str) -> None:
    answer = _answer(_done({"content": "x"}, done_reason=reason))
    assert answer.choices[0].finish_reason == finish
    assert answer.choices[0].native_finish_reason == reason


def test_counts_left_out_are_zero() -> None:
    body = _done({"content": ""})
    del body["prompt_eval_count"], body["eval_count"]
    assert _answer(body).usage == Usage(prompt_tokens=0, completion_tokens=0, total_tokens=0)


def test_tool_calls_with_object_arguments_become_json_strings() -> None:
    calls = [
        {
            "id": "call_k3j2",
            "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}},
        },
        {"function": {"index": 1, "name": "get_weather", "arguments": {"city": "Rome"}}},
    ]
    answer = _answer(_done({"content": "", "tool_calls": calls}), {**HI, "tools": [WEATHER]})
    got = answer.tool_calls
    assert [(c.function.name, json.loads(c.function.arguments)) for c in got] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Rome"}),
    ]
    # The server's id where it sent one; a made-up one, unique, where it did not.
    assert got[0].id == "call_k3j2"
    assert got[1].id.startswith("call_")
    assert len(got[1].id) == 13
    assert answer.choices[0].message.content is None
    assert answer.choices[0].finish_reason == "tool_calls"
    assert answer.choices[0].native_finish_reason == "stop"


def test_made_up_ids_differ_between_answers() -> None:
    body = _done({"content": "", "tool_calls": [{"function": {"name": "f", "arguments": {}}}]})
    ids = {_answer(body).tool_calls[0].id for _ in range(20)}
    assert len(ids) == 20


@pytest.mark.parametrize(
    ("arguments", "read"),
    [
        (None, {}),
        ('{"city": "Paris"}', {"city": "Paris"}),
        (' {"city": "Paris"} ', {"city": "Paris"}),
    ],
    ids=["null", "string-of-object", "string-of-object-spaced"],
)
def test_tool_arguments_null_or_a_string_holding_an_object_are_read(
    arguments: Any, read: dict[str, Any]
) -> None:
    call = {"function": {"name": "get_weather", "arguments": arguments}}
    answer = _answer(_done({"content": "", "tool_calls": [call]}))
    assert json.loads(answer.tool_calls[0].function.arguments) == read
    chunks, pipeline = _stream([_line({"tool_calls": [call]}), _done_line()])
    assert pipeline.error is None
    assert json.loads(accumulate(chunks).tool_calls[0].function.arguments) == read


@pytest.mark.parametrize(
    "arguments",
    ["Paris", "[1]", [1], 5, True, '"nested"'],
    ids=["string", "string-of-list", "list", "number", "bool", "string-of-string"],
)
def test_tool_arguments_that_are_no_object_raise(arguments: Any) -> None:
    call = {"function": {"name": "get_weather", "arguments": arguments}}
    with pytest.raises(LLMError, match="arguments that are not a JSON object") as raised:
        _answer(_done({"content": "", "tool_calls": [call]}))
    assert raised.value.provider == "ollama"
    _, pipeline = _stream([_line({"tool_calls": [call]}), _done_line()])
    assert isinstance(pipeline.error, LLMError)
    assert "arguments that are not a JSON object" in pipeline.error.message


FORCED = {**HI, "tools": [WEATHER, TIME], "tool_choice": "required"}


def test_a_forced_answer_is_read_as_the_call() -> None:
    content = '{"name": "get_weather", "arguments": {"city": "Paris"}}'
    answer = _answer(_done({"content": content}), FORCED)
    assert [(c.function.name, json.loads(c.function.arguments)) for c in answer.tool_calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    assert answer.choices[0].message.content is None
    assert answer.choices[0].finish_reason == "tool_calls"


def test_a_forced_answer_the_server_parsed_as_a_call_is_taken_as_it_is() -> None:
    call = {"id": "call_1", "function": {"name": "get_time", "arguments": {}}}
    answer = _answer(_done({"content": "", "tool_calls": [call]}), FORCED)
    assert [(c.id, c.function.name) for c in answer.tool_calls] == [("call_1", "get_time")]


@pytest.mark.parametrize(
    "content",
    [
        '{"name": "get_weather", "arguments": {"ci',
        '{"name": "other", "arguments": {}}',
        '{"name": "get_time", "arguments": 5}',
    ],
    ids=["cut-short", "unknown-name", "arguments-no-object"],
)
def test_a_forced_answer_that_is_no_call_stays_text(content: str) -> None:
    answer = _answer(_done({"content": content}, done_reason="length"), FORCED)
    assert answer.tool_calls == []
    assert answer.text == content
    assert answer.choices[0].finish_reason == "length"


def test_json_content_of_an_unforced_request_stays_text() -> None:
    content = '{"name": "get_weather", "arguments": {}}'
    answer = _answer(_done({"content": content}), {**HI, "tools": [WEATHER]})
    assert answer.text == content
    assert answer.tool_calls == []


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"not json", "not one JSON object"),
        (b'{"model": "x", "done": true}', "without a message"),
    ],
    ids=["garbage", "no-message"],
)
def test_an_answer_that_is_no_chat_response_names_api_base(body: bytes, match: str) -> None:
    _, req, _ = prepare("ollama", MODEL, HI, None, False)
    with pytest.raises(LLMError, match=match) as raised:
        decode_response(KEY, HttpResponse(status=200, headers={}, body=body), req)
    assert "without /api or /v1" in str(raised.value)


def test_an_error_object_in_a_200_answer_raises_it() -> None:
    _, req, _ = prepare("ollama", MODEL, HI, None, False)
    with pytest.raises(ServiceUnavailableError, match="runner crashed"):
        decode_response(
            KEY, HttpResponse(status=200, headers={}, body=b'{"error": "runner crashed"}'), req
        )


def test_an_answer_that_is_not_done_is_incomplete() -> None:
    with pytest.raises(StreamInterruptedError, match="done: false: the answer is incomplete"):
        _answer({**_done({"content": "partial"}), "done": False})


DEEP = b'{"a":' * 50_000 + b"1" + b"}" * 50_000


def test_an_answer_nested_too_deeply_is_a_clear_error() -> None:
    call = b'{"function": {"name": "f", "arguments": ' + DEEP + b"}}"
    body = (
        b'{"model": "m", "done": true, "message": {"content": "", "tool_calls": [' + call + b"]}}"
    )
    _, req, _ = prepare("ollama", MODEL, HI, None, False)
    with pytest.raises(LLMError, match="nested too deeply") as raised:
        decode_response(KEY, HttpResponse(status=200, headers={}, body=body), req)
    assert "provider package" not in raised.value.message
    _, pipeline = _stream([body.replace(b'"done": true', b'"done": false') + b"\n"])
    assert pipeline.error is not None
    assert "nested too deeply" in pipeline.error.message
    assert "provider package" not in pipeline.error.message


# --- streams ---------------------------------------------------------------------------


def _line(message: dict[str, Any] | None = None, **fields: Any) -> bytes:
    item: dict[str, Any] = {"model": MODEL, "created_at": "2025-07-07T20:22:19Z", "done": False}
    if message is not None:
        item["message"] = {"role": "assistant", "content": "", **message}
    item.update(fields)
    return json.dumps(item).encode() + b"\n"


def _done_line(**fields: Any) -> bytes:
    done = {"done": True, "done_reason": "stop", "prompt_eval_count": 12, "eval_count": 5}
    return _line({}, **{**done, **fields})


def _stream(lines: list[bytes], framing: str = "ndjson") -> tuple[list[StreamChunk], EventPipeline]:
    state = StreamState(provider="ollama", model=MODEL)

    def decode(event: Any, state: StreamState) -> Any:
        return decode_event(KEY, event, state)

    pipeline = EventPipeline(framing, decode, state)
    chunks: list[StreamChunk] = []
    for line in lines:
        chunks += pipeline.feed(line)
    if pipeline.error is None:
        chunks += pipeline.finish()
    return chunks, pipeline


def test_stream_text_role_first_finish_and_usage_last() -> None:
    chunks, pipeline = _stream(
        [_line({"content": "Hel"}), _line({"content": "lo"}), _line({"content": ""}), _done_line()]
    )
    assert pipeline.state.done
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.text for c in chunks] == ["Hel", "lo", ""]
    last = chunks[-1]
    assert (last.choices[0].finish_reason, last.choices[0].native_finish_reason) == ("stop", "stop")
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (12, 5)
    assert accumulate(chunks).text == "Hello"


def test_stream_of_only_a_done_line_still_opens_with_the_role() -> None:
    chunks, _ = _stream([_done_line()])
    assert len(chunks) == 1
    choice = chunks[0].choices[0]
    assert (choice.delta.role, choice.finish_reason) == ("assistant", "stop")


def test_stream_thinking_then_content() -> None:
    chunks, _ = _stream(
        [
            _line({"thinking": "Hmm, "}),
            _line({"thinking": "six sevens."}),
            _line({"content": "42"}),
            _done_line(done_reason="length"),
        ]
    )
    answer = accumulate(chunks)
    assert answer.choices[0].message.reasoning == "Hmm, six sevens."
    assert answer.text == "42"
    assert answer.choices[0].finish_reason == "length"


def test_stream_tool_calls_arrive_whole_indexed_in_order() -> None:
    first = {
        "id": "call_p",
        "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}},
    }
    second = {"function": {"index": 0, "name": "get_weather", "arguments": {"city": "Rome"}}}
    chunks, _ = _stream(
        [_line({"tool_calls": [first]}), _line({"tool_calls": [second]}), _done_line()]
    )
    deltas = [d for c in chunks for d in c.choices[0].delta.tool_calls or ()]
    assert [d.index for d in deltas] == [0, 1]
    assert deltas[0].id == "call_p"
    assert deltas[1].id is not None
    assert deltas[1].id.startswith("call_")
    answer = accumulate(chunks)
    assert [json.loads(c.function.arguments)["city"] for c in answer.tool_calls] == [
        "Paris",
        "Rome",
    ]
    assert answer.choices[0].finish_reason == "tool_calls"


def test_forced_stream_holds_the_content_and_ends_with_the_call() -> None:
    pieces = ['{"name": "get_', 'weather", "argu', 'ments": {"city": "Paris"}}']
    chunks, _ = _stream(
        [_line({"content": p}) for p in pieces] + [_done_line()], "ollama-forced-tool"
    )
    assert all(not c.text for c in chunks)
    answer = accumulate(chunks)
    assert [(c.function.name, json.loads(c.function.arguments)) for c in answer.tool_calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    assert answer.choices[0].finish_reason == "tool_calls"


def test_forced_stream_cut_by_length_gives_the_text_back() -> None:
    chunks, _ = _stream(
        [_line({"content": '{"name": "get_'}), _done_line(done_reason="length")],
        "ollama-forced-tool",
    )
    answer = accumulate(chunks)
    assert answer.text == '{"name": "get_'
    assert answer.tool_calls == []
    assert answer.choices[0].finish_reason == "length"


def test_forced_stream_with_a_native_call_keeps_it() -> None:
    call = {"id": "call_n", "function": {"name": "get_time", "arguments": {}}}
    chunks, _ = _stream([_line({"tool_calls": [call]}), _done_line()], "ollama-forced-tool")
    answer = accumulate(chunks)
    assert [(c.id, c.function.name) for c in answer.tool_calls] == [("call_n", "get_time")]


@pytest.mark.parametrize(
    ("name", "is_call"), [("get_weather", True), ("other", False)], ids=["forced", "unknown"]
)
def test_forced_stream_checks_the_name_as_the_whole_answer_does(name: str, is_call: bool) -> None:
    # The framing of the call's own request carries the names it may take.
    framing = _call({**HI, "tools": [WEATHER, TIME], "tool_choice": "required"}, stream=True)
    content = json.dumps({"name": name, "arguments": {"city": "Paris"}})
    chunks, pipeline = _stream([_line({"content": content}), _done_line()], framing.framing)
    assert pipeline.error is None
    answer = accumulate(chunks)
    assert [c.function.name for c in answer.tool_calls] == ([name] if is_call else [])
    assert answer.text == ("" if is_call else content)
    whole = _answer(_done({"content": content}), FORCED)
    assert [c.function.name for c in whole.tool_calls] == [
        c.function.name for c in answer.tool_calls
    ]


def test_forced_framings_stay_bounded() -> None:
    tools = [{"type": "function", "function": {"name": f"tool_{i}"}} for i in range(80)]
    for i in range(80):
        choice = {"type": "function", "function": {"name": f"tool_{i}"}}
        _call({**HI, "tools": tools, "tool_choice": choice}, stream=True)
    named = llmkit_providers.ollama._NAMED_FRAMINGS
    assert len(named) == 64
    assert 'ollama-forced-tool:["tool_79"]' in named
    assert 'ollama-forced-tool:["tool_0"]' not in named


def test_stream_error_line_raises_after_the_text_before_it() -> None:
    chunks, pipeline = _stream(
        [
            _line({"content": "Once"}),
            b'{"error": "model runner has unexpectedly stopped"}\n',
            _line({"content": "never"}),
        ]
    )
    assert [c.text for c in chunks] == ["Once"]
    assert isinstance(pipeline.error, ServiceUnavailableError)
    assert "unexpectedly stopped" in pipeline.error.message
    assert "incomplete" in pipeline.error.message
    assert pipeline.error.status is None


def test_stream_without_a_done_line_is_interrupted() -> None:
    chunks, pipeline = _stream([_line({"content": "Once upon"})])
    assert [c.text for c in chunks] == ["Once upon"]
    assert isinstance(pipeline.error, StreamInterruptedError)


def test_stream_error_line_without_a_message_says_so() -> None:
    _, pipeline = _stream([_line({"content": "a"}), b'{"error": ""}\n'])
    assert pipeline.error is not None
    assert pipeline.error.message.startswith(
        "the Ollama server reported an error without saying which. The stream broke off"
    )


def test_stream_line_that_is_no_json_raises() -> None:
    _, pipeline = _stream([_line({"content": "a"}), b"<html>\n"])
    assert isinstance(pipeline.error, LLMError)
    assert "not a JSON object" in pipeline.error.message


def test_nothing_after_the_done_line_is_read() -> None:
    chunks, pipeline = _stream([_done_line(), _line({"content": "late"})])
    assert pipeline.state.done
    assert [c.text for c in chunks] == [""]


# --- errors ----------------------------------------------------------------------------


def _error(status: int, body: bytes, model: str = MODEL) -> LLMError:
    _, req, _ = prepare("ollama", model, HI, None, False)
    return cast(
        LLMError, decode_error(KEY, HttpResponse(status=status, headers={}, body=body), req)
    )


@pytest.mark.parametrize(
    ("status", "body", "kind", "says"),
    [
        (400, b'{"error": "invalid think value"}', InvalidRequestError, "invalid think value"),
        (
            400,
            b'{"error": "registry.ollama.ai/library/gemma:latest does not support tools"}',
            InvalidRequestError,
            "leave out what it cannot do",
        ),
        (
            400,
            b'{"error": "\\"gemma\\" does not support thinking"}',
            InvalidRequestError,
            "ollama show qwen3",
        ),
        (401, b'{"error": "unauthorized"}', AuthenticationError, "api_key="),
        (403, b'{"error": "forbidden"}', PermissionDeniedError, "forbidden"),
        (404, b'{"error": "model \'qwen3\' not found"}', NotFoundError, "run `ollama pull qwen3`"),
        (
            404,
            b'{"error": "model \\"qwen3\\" not found, try pulling it first"}',
            NotFoundError,
            "`ollama pull qwen3`",
        ),
        (404, b"404 page not found", NotFoundError, "without /api or /v1"),
        (413, b'{"error": "too large"}', InvalidRequestError, "too large"),
        (429, b'{"error": "too many requests"}', RateLimitError, "Slow down"),
        (
            500,
            b'{"error": "input length exceeds the context length"}',
            ContextWindowError,
            "num_ctx",
        ),
        (
            500,
            b'{"error": "llama runner process has terminated"}',
            ServiceUnavailableError,
            "retry later",
        ),
        (
            503,
            b'{"error": "server busy, please try again.  maximum pending requests exceeded"}',
            ServiceUnavailableError,
            "server busy",
        ),
        (499, b'{"error": "request canceled"}', LLMError, "request canceled"),
        (502, b"", ServiceUnavailableError, "HTTP 502, no body"),
    ],
    ids=lambda v: str(v)[:24] if not isinstance(v, bytes) else None,
)
def test_error_bodies_map_by_status_and_message(
    status: int, body: bytes, kind: type[LLMError], says: str
) -> None:
    error = _error(status, body)
    assert type(error) is kind
    assert error.status == status
    assert says in error.message


@pytest.mark.parametrize(
    "body",
    [
        b'{"error": "option \\"temperature\\" must be of type float32"}',
        b'{"error": "option \\"stop\\" must be of an array of strings"}',
        b'{"error": "invalid format: \\"\\\\\\"xml\\\\\\"\\"; expected \\"json\\" or a valid JSON Schema"}',
    ],
    ids=["type", "array", "format"],
)
def test_a_500_for_a_request_the_server_cannot_use_is_not_retryable(body: bytes) -> None:
    error = _error(500, body)
    assert type(error) is InvalidRequestError
    assert not error.retryable
    assert "no retry mends it" in error.message


def test_long_error_messages_are_cut() -> None:
    error = _error(500, json.dumps({"error": "A" * 200_000}).encode())
    assert error.message.startswith("A" * 500 + " .... ")
    assert len(error.message) < 700
    _, pipeline = _stream([_line({"content": "a"}), json.dumps({"error": "B" * 200_000}).encode()])
    assert pipeline.error is not None
    assert len(pipeline.error.message) < 700


@pytest.mark.parametrize(
    ("model", "tools", "vision", "reasoning"),
    [
        ("llama3.2", True, False, False),
        ("llama3.2:1b", True, False, False),
        ("llama3.2-vision:11b", False, True, False),
        ("llama3", False, False, False),
        ("llama4:scout", True, True, False),
        ("qwen3:8b", True, False, True),
        ("qwen3:30b-a3b-instruct-2507-q4_K_M", True, False, False),
        ("qwen3-coder:30b", True, False, False),
        ("qwen3-vl:8b", True, True, True),
        ("qwen2.5vl:7b", False, True, False),
        ("deepseek-r1:8b", True, False, True),
        ("gpt-oss:20b", True, False, True),
        ("magistral", True, False, True),
        ("gemma3", False, True, False),
        ("gemma3:1b", False, False, False),
        ("gemma3:270m", False, False, False),
        ("mistral-small3.1:24b", True, True, False),
        ("llava:13b", False, True, False),
        ("phi4-reasoning:14b", False, False, False),
        ("cogito:8b", True, False, False),
        ("registry.ollama.ai/library/qwen3:8b", True, False, True),
        ("hf.co/unsloth/Qwen3-8B-GGUF:Q4_K_M", True, False, True),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_capabilities_follow_the_model_family(
    model: str, tools: bool, vision: bool, reasoning: bool
) -> None:
    caps = cast(Capabilities, capabilities(KEY, model))
    assert (caps.tools, caps.parallel_tool_calls, caps.vision, caps.reasoning) == (
        tools,
        tools,
        vision,
        reasoning,
    )
    # What the server does for any model.
    assert (caps.streaming, caps.json_mode, caps.json_schema) == (True, True, True)
    assert (caps.audio_input, caps.file_input, caps.embeddings) == (False, False, False)


@pytest.mark.parametrize("model", ["", "my-own-model:latest", "hf.co/someone/Foo-GGUF"])
def test_capabilities_of_no_known_family_are_the_servers_only(model: str) -> None:
    assert capabilities(KEY, model) == Capabilities(
        streaming=True, json_mode=True, json_schema=True
    )


def test_key_data() -> None:
    assert llmkit_providers.ollama.Ollama.api_key_env is None
    assert KEY.base_url_env == "OLLAMA_HOST"
    assert "ollama serve" in KEY.connect_hint
