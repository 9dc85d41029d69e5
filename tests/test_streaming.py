from __future__ import annotations

import llmkit
from llmkit._framing import SSEEvent
from llmkit.streaming import EventPipeline, accumulate
from llmkit.types import (
    ChunkChoice,
    Delta,
    FunctionCallDelta,
    StreamChunk,
    StreamState,
    ToolCallDelta,
    Usage,
)


def _chunk(delta: Delta, finish: str | None = None, index: int = 0) -> StreamChunk:
    return StreamChunk(
        id="c1",
        model="m",
        created=7,
        choices=[ChunkChoice(index=index, delta=delta, finish_reason=finish)],
    )


def _call(
    index: int, id: str | None = None, name: str | None = None, args: str | None = None
) -> Delta:
    return Delta(
        tool_calls=[
            ToolCallDelta(
                index=index,
                id=id,
                type="function" if id else None,
                function=FunctionCallDelta(name=name, arguments=args),
            )
        ]
    )


def test_accumulate_text_finish_and_usage() -> None:
    chunks = [
        _chunk(Delta(role="assistant", content="")),
        _chunk(Delta(content="Hel")),
        _chunk(Delta(content="lo")),
        _chunk(Delta(), "stop"),
        StreamChunk(
            id="c1", model="m", usage=Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5)
        ),
    ]
    response = accumulate(chunks)
    assert response.text == "Hello"
    assert response.choices[0].finish_reason == "stop"
    assert response.usage == Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5)
    assert (response.id, response.model, response.created) == ("c1", "m", 7)


def test_accumulate_parallel_tool_calls_by_index() -> None:
    chunks = [
        _chunk(_call(0, "call_a", "get_weather", "")),
        _chunk(_call(1, "call_b", "get_time", "")),
        _chunk(_call(0, args='{"city":')),
        _chunk(_call(1, args='{"tz":"UTC"}')),
        _chunk(_call(0, args='"Paris"}')),
        _chunk(Delta(), "tool_calls"),
    ]
    response = accumulate(chunks)
    calls = response.tool_calls
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [
        ("call_a", "get_weather", '{"city":"Paris"}'),
        ("call_b", "get_time", '{"tz":"UTC"}'),
    ]
    assert response.choices[0].message.content is None


def test_accumulate_new_id_at_same_index_starts_new_call() -> None:
    chunks = [
        _chunk(_call(0, "call_a", "f", "{}")),
        _chunk(_call(0, "call_b", "g", '{"x":1}')),
    ]
    calls = accumulate(chunks).tool_calls
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [
        ("call_a", "f", "{}"),
        ("call_b", "g", '{"x":1}'),
    ]


def test_accumulate_several_choices() -> None:
    chunks = [
        _chunk(Delta(content="a"), index=1),
        _chunk(Delta(content="b"), index=0),
        _chunk(Delta(), "stop", index=1),
    ]
    response = accumulate(chunks)
    assert [c.index for c in response.choices] == [0, 1]
    assert [c.message.content for c in response.choices] == ["b", "a"]


def test_accumulate_empty_stream() -> None:
    response = accumulate([])
    assert response.choices == []
    assert response.text == ""


def _decode(event: SSEEvent, state: StreamState) -> StreamChunk | llmkit.LLMError | None:
    if event.data == b"[DONE]":
        state.done = True
        return None
    if event.data == b"err":
        return llmkit.ServiceUnavailableError("overloaded mid-stream")
    return StreamChunk(id=event.data.decode())


def test_pipeline_requires_end_marker() -> None:
    pipeline = EventPipeline("sse", _decode, StreamState(provider="p", model="m"))
    assert [c.id for c in pipeline.feed(b"data: a\n\ndata: b\n\n")] == ["a", "b"]
    assert pipeline.finish() == []
    assert isinstance(pipeline.error, llmkit.StreamInterruptedError)
    assert pipeline.error.provider == "p"


def test_pipeline_finishes_after_end_marker() -> None:
    pipeline = EventPipeline("sse", _decode, StreamState())
    assert [c.id for c in pipeline.feed(b"data: a\n\ndata: [DO")] == ["a"]
    assert pipeline.feed(b"NE]\n\n") == []
    assert pipeline.finish() == []


def test_pipeline_keeps_chunks_before_error_event() -> None:
    pipeline = EventPipeline("sse", _decode, StreamState())
    # Both chunks before the error come out, whatever the network read held.
    assert [c.id for c in pipeline.feed(b"data: a\n\ndata: b\n\ndata: err\n\ndata: c\n\n")] == [
        "a",
        "b",
    ]
    assert isinstance(pipeline.error, llmkit.ServiceUnavailableError)
    assert "mid-stream" in str(pipeline.error)
    assert pipeline.feed(b"data: d\n\n") == []


def test_pipeline_ignores_events_after_end_marker() -> None:
    pipeline = EventPipeline("sse", _decode, StreamState())
    assert [
        c.id for c in pipeline.feed(b"data: a\n\ndata: [DONE]\n\ndata: x\n\ndata: err\n\n")
    ] == ["a"]
    assert pipeline.error is None
    assert pipeline.finish() == []
    assert pipeline.error is None


def test_pipeline_ndjson_framing() -> None:
    def decode(line: bytes, state: StreamState) -> StreamChunk | None:
        if line == b"end":
            state.done = True
            return None
        return StreamChunk(id=line.decode())

    pipeline = EventPipeline("ndjson", decode, StreamState())
    assert [c.id for c in pipeline.feed(b"x\ny")] == ["x"]
    assert [c.id for c in pipeline.feed(b"\nend\n")] == ["y"]
    assert pipeline.finish() == []


def test_accumulator_keeps_the_native_finish_reason() -> None:
    from llmkit.streaming import Accumulator
    from llmkit.types import ChunkChoice, Delta, StreamChunk

    acc = Accumulator()
    acc.add(StreamChunk(choices=[ChunkChoice(delta=Delta(role="assistant", content="Hi"))]))
    acc.add(
        StreamChunk(choices=[ChunkChoice(finish_reason="stop", native_finish_reason="end_turn")])
    )
    choice = acc.result().choices[0]
    assert (choice.finish_reason, choice.native_finish_reason) == ("stop", "end_turn")
