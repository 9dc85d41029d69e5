"""Tests for llmkit._framing: incremental SSE and NDJSON framing."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmkit._framing import NDJSONDecoder, SSEDecoder, SSEEvent

BOM = b"\xef\xbb\xbf"

# Modest budgets: the whole file should run in a few seconds.
PROPERTY_SETTINGS = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def ev(
    data: bytes, event: str | None = None, id: str | None = None, retry: int | None = None
) -> SSEEvent:
    return SSEEvent(event=event, data=data, id=id, retry=retry)


def sse_decode(chunks: Iterable[bytes]) -> list[SSEEvent]:
    decoder = SSEDecoder()
    out: list[SSEEvent] = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    out.extend(decoder.flush())
    return out


def ndjson_decode(chunks: Iterable[bytes]) -> list[bytes]:
    decoder = NDJSONDecoder()
    out: list[bytes] = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    out.extend(decoder.flush())
    return out


def bytewise(stream: bytes) -> Iterator[bytes]:
    return (stream[i : i + 1] for i in range(len(stream)))


def split_at(stream: bytes, cuts: Iterable[int]) -> list[bytes]:
    bounds = [0, *sorted(set(cuts)), len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(bounds)]


def assert_sse_every_split(stream: bytes, expected: list[SSEEvent]) -> None:
    """Whole buffer, one byte at a time, and every two-chunk split agree."""
    assert sse_decode([stream]) == expected
    assert sse_decode(bytewise(stream)) == expected
    for i in range(len(stream) + 1):
        assert sse_decode([stream[:i], stream[i:]]) == expected, f"split at {i}"


def assert_ndjson_every_split(stream: bytes, expected: list[bytes]) -> None:
    assert ndjson_decode([stream]) == expected
    assert ndjson_decode(bytewise(stream)) == expected
    for i in range(len(stream) + 1):
        assert ndjson_decode([stream[:i], stream[i:]]) == expected, f"split at {i}"


# --------------------------------------------------------------------------- SSE


@pytest.mark.parametrize(
    "eol",
    [b"\n", b"\r\n", b"\r"],
    ids=["lf", "crlf", "cr"],
)
def test_sse_line_endings_all_terminate_lines(eol: bytes) -> None:
    stream = eol.join([b"event: e", b"data: a", b"data: b", b"", b"data: c", b"", b""])
    assert_sse_every_split(stream, [ev(b"a\nb", event="e"), ev(b"c")])


def test_sse_mixed_line_endings_in_one_stream() -> None:
    stream = b"data: a\rdata: b\r\ndata: c\n\r\ndata: d\r\r"
    assert_sse_every_split(stream, [ev(b"a\nb\nc"), ev(b"d")])


def test_sse_cr_ending_chunk_then_lf_is_one_terminator() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    # If this LF were taken as an empty line, "a" would be dispatched alone.
    assert decoder.feed(b"\ndata: b\r") == []
    assert decoder.feed(b"\n") == []
    # A CR blank line dispatches at once; the LF after it is part of it.
    assert decoder.feed(b"\r") == [ev(b"a\nb")]
    assert decoder.feed(b"\ndata: c\r") == []
    assert decoder.flush() == [ev(b"c")]


def test_sse_cr_ending_chunk_then_empty_chunk_then_lf() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"") == []
    assert decoder.feed(b"\n") == []
    assert decoder.feed(b"\r\n") == [ev(b"a")]


def test_sse_cr_ending_chunk_then_cr_is_blank_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\r") == [ev(b"a")]
    # The LF after that second CR belongs to it: still no extra blank line.
    assert decoder.feed(b"\ndata: b\n") == []
    assert decoder.feed(b"\n") == [ev(b"b")]


def test_sse_blank_line_dispatches() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n") == []
    assert decoder.feed(b"\n") == [ev(b"a")]
    assert decoder.feed(b"data: b\n\ndata: c\n\n") == [ev(b"b"), ev(b"c")]
    assert decoder.flush() == []


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        (b": ping\n\n", []),
        (b":\n\n", []),
        (b": ping\ndata: a\n: more\n\n", [ev(b"a")]),
        (b":data: x\n:event: y\ndata: a\n\n", [ev(b"a")]),
        (b"data: a\n\n: keep-alive\n\n: keep-alive\n\ndata: b\n\n", [ev(b"a"), ev(b"b")]),
    ],
    ids=["ping-only", "bare-colon", "interleaved", "comment-looks-like-field", "keepalives"],
)
def test_sse_comments_are_ignored(stream: bytes, expected: list[SSEEvent]) -> None:
    assert_sse_every_split(stream, expected)


@pytest.mark.parametrize(
    ("line", "data"),
    [
        (b"data:x", b"x"),
        (b"data: x", b"x"),
        (b"data:  x", b" x"),
        (b"data: x ", b"x "),
        (b"data:\tx", b"\tx"),
        (b"data: a: b", b"a: b"),
        (b"data:", b""),
        (b"data: ", b""),
        (b"data:  ", b" "),
    ],
    ids=[
        "no-space",
        "one-space",
        "two-spaces",
        "trailing-space-kept",
        "tab-kept",
        "colon-in-value",
        "empty",
        "only-space",
        "two-spaces-only",
    ],
)
def test_sse_value_strips_one_leading_space(line: bytes, data: bytes) -> None:
    assert_sse_every_split(line + b"\n\n", [ev(data)])


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        (b"data\n\n", [ev(b"")]),
        (b"data\ndata\n\n", [ev(b"\n")]),
        (b"event\ndata: x\n\n", [ev(b"x", event="")]),
        (b"id\ndata: x\n\n", [ev(b"x", id="")]),
        (b"retry\ndata: x\n\n", [ev(b"x")]),
    ],
    ids=["data", "two-data", "event", "id", "retry-is-not-digits"],
)
def test_sse_line_without_colon_is_field_with_empty_value(
    stream: bytes, expected: list[SSEEvent]
) -> None:
    assert_sse_every_split(stream, expected)


def test_sse_data_lines_are_joined_with_lf() -> None:
    stream = b'data: {"a":\ndata: 1}\ndata:\ndata: end\n\n'
    assert_sse_every_split(stream, [ev(b'{"a":\n1}\n\nend')])


@pytest.mark.parametrize(
    "stream",
    [
        b"event: foo\n\n",
        b"id: 1\n\n",
        b"retry: 5\n\n",
        b"foo: bar\n\n",
        b": comment\n\n",
        b"\n\n\n",
        b"\r\n\r\n",
        b"event: foo\nid: 1\nretry: 5\n\n",
    ],
    ids=["event", "id", "retry", "unknown", "comment", "blank-lf", "blank-crlf", "all"],
)
def test_sse_event_without_data_is_not_dispatched(stream: bytes) -> None:
    assert_sse_every_split(stream, [])


def test_sse_empty_data_field_is_dispatched() -> None:
    assert_sse_every_split(b"data:\n\n", [ev(b"")])


def test_sse_event_name_and_retry_reset_after_dispatch() -> None:
    stream = b"event: a\nretry: 7\ndata: 1\n\ndata: 2\n\nevent: b\n\ndata: 3\n\n"
    assert_sse_every_split(stream, [ev(b"1", event="a", retry=7), ev(b"2"), ev(b"3")])


def test_sse_last_event_field_wins() -> None:
    stream = b"event: a\ndata: 1\nevent: b\n\n"
    assert_sse_every_split(stream, [ev(b"1", event="b")])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"1000", 1000),
        (b"0", 0),
        (b"007", 7),
        (b"123456789012345678901234567890", 123456789012345678901234567890),
        (b"", None),
        (b"abc", None),
        (b"-1", None),
        (b"+1", None),
        (b"1.5", None),
        (b"10 ", None),
        (b" 10", None),
        (b"1e3", None),
        (b"0x10", None),
        ("\u0661\u0662".encode(), None),
        ("\uff11".encode(), None),
    ],
    ids=[
        "int",
        "zero",
        "leading-zeros",
        "big",
        "empty",
        "letters",
        "negative",
        "plus",
        "decimal",
        "trailing-space",
        "extra-leading-space",
        "exponent",
        "hex",
        "arabic-indic-digits",
        "fullwidth-digit",
    ],
)
def test_sse_retry_requires_ascii_digits(value: bytes, expected: int | None) -> None:
    stream = b"retry: " + value + b"\ndata: x\n\n"
    assert_sse_every_split(stream, [ev(b"x", retry=expected)])
    decoder = SSEDecoder()
    decoder.feed(stream)
    assert decoder.retry == expected


def test_sse_retry_too_long_for_int_is_ignored() -> None:
    stream = b"retry: 5\ndata: a\n\nretry: " + b"9" * 5000 + b"\ndata: b\n\n"
    decoder = SSEDecoder()
    assert decoder.feed(stream) == [ev(b"a", retry=5), ev(b"b")]
    assert decoder.retry == 5


def test_sse_retry_without_data_updates_decoder_only() -> None:
    decoder = SSEDecoder()
    assert decoder.retry is None
    assert decoder.feed(b"retry: 3000\n\n") == []
    assert decoder.retry == 3000
    assert decoder.feed(b"retry: nope\n\ndata: x\n\n") == [ev(b"x")]
    assert decoder.retry == 3000


@pytest.mark.parametrize(
    "line",
    [b"foo: bar", b"Data: x", b"DATA: x", b"data : x", b" data: x", b"datum: x", b"x-id: 9"],
    ids=["foo", "capitalised", "upper", "space-before-colon", "leading-space", "prefix", "x-id"],
)
def test_sse_unknown_fields_are_ignored(line: bytes) -> None:
    stream = line + b"\ndata: real\n" + line + b"\n\n"
    assert_sse_every_split(stream, [ev(b"real")])


@pytest.mark.parametrize(
    "chunks",
    [
        [BOM + b"data: x\n\n"],
        [BOM[:1], BOM[1:] + b"data: x\n\n"],
        [BOM[:2], BOM[2:], b"data: x\n\n"],
        [b"", BOM, b"", b"data: x\n\n"],
        list(bytewise(BOM + b"data: x\n\n")),
        [b"data: x\n\n"],
    ],
    ids=["whole", "split-1", "split-2", "empty-chunks", "bytewise", "no-bom"],
)
def test_sse_bom_at_stream_start_is_skipped(chunks: list[bytes]) -> None:
    assert sse_decode(chunks) == [ev(b"x")]


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        (BOM + BOM + b"data: x\n\n", []),
        (b"data: a\n\n" + BOM + b"data: b\n\n", [ev(b"a")]),
        (b"data: " + BOM + b"x\n\n", [ev(BOM + b"x")]),
        (BOM[:2] + b"data: x\n\n", []),
        (BOM[:2], []),
    ],
    ids=["second-bom", "bom-mid-stream", "bom-in-data", "partial-bom", "only-partial-bom"],
)
def test_sse_bom_only_skipped_once_at_start(stream: bytes, expected: list[SSEEvent]) -> None:
    assert_sse_every_split(stream, expected)


def test_sse_done_sentinel_is_returned_as_data() -> None:
    stream = b'data: {"a":1}\n\ndata: [DONE]\n\n'
    assert_sse_every_split(stream, [ev(b'{"a":1}'), ev(b"[DONE]")])


def test_sse_data_is_raw_undecoded_bytes() -> None:
    stream = b"data: \xff\xfe\x00caf\xc3\xa9\n\n"
    events = sse_decode([stream])
    assert events == [ev(b"\xff\xfe\x00caf\xc3\xa9")]
    assert type(events[0].data) is bytes


def test_sse_multibyte_utf8_split_anywhere() -> None:
    name = "d\u00e9lta-\u6f22\u5b57-\U0001f389"
    text = "h\u00e9llo \u4e16\u754c \U0001f600"
    stream = f"event: {name}\ndata: {text}\nid: \u00fc\n\n".encode()
    assert_sse_every_split(stream, [ev(text.encode(), event=name, id="\u00fc")])


def test_sse_invalid_utf8_in_event_name_is_replaced() -> None:
    assert sse_decode([b"event: a\xffb\ndata: x\n\n"]) == [ev(b"x", event="a\ufffdb")]


def test_sse_id_persists_across_events() -> None:
    decoder = SSEDecoder()
    assert decoder.last_event_id is None
    events = decoder.feed(b"data: 1\n\nid: 7\ndata: 2\n\ndata: 3\n\nid: 8\n\ndata: 4\n\n")
    assert events == [ev(b"1"), ev(b"2", id="7"), ev(b"3", id="7"), ev(b"4", id="8")]
    assert decoder.last_event_id == "8"


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        (b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n", [ev(b"a", id="1"), ev(b"b", id="1")]),
        (b"id: 1\ndata: a\n\nid:\ndata: b\n\n", [ev(b"a", id="1"), ev(b"b", id="")]),
        (b"data: a\nid: 5\n\n", [ev(b"a", id="5")]),
    ],
    ids=["nul-ignored", "empty-resets", "id-after-data"],
)
def test_sse_id_field_rules(stream: bytes, expected: list[SSEEvent]) -> None:
    assert_sse_every_split(stream, expected)


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        (b"data: x\n", [ev(b"x")]),
        (b"data: x", [ev(b"x")]),
        (b"data: x\r", [ev(b"x")]),
        (b"data: x\r\n", [ev(b"x")]),
        (b"event: e\ndata: a\ndata: b", [ev(b"a\nb", event="e")]),
        (b"data: x\n\n", [ev(b"x")]),
        (b"event: e\n", []),
        (b": comment", []),
        (b"", []),
    ],
    ids=[
        "no-blank-line",
        "no-terminator",
        "cr-terminator",
        "crlf-terminator",
        "multi-line",
        "complete",
        "no-data",
        "comment",
        "empty-stream",
    ],
)
def test_sse_flush_dispatches_pending_event(stream: bytes, expected: list[SSEEvent]) -> None:
    assert_sse_every_split(stream, expected)


def test_sse_feed_holds_event_until_blank_line_then_flush_releases_it() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\n") == []
    assert decoder.flush() == [ev(b"x")]
    assert decoder.flush() == []


def test_sse_decoder_is_reusable_after_flush() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"id: 1\ndata: a") == []
    assert decoder.flush() == [ev(b"a", id="1")]
    # A new stream: BOM handling is re-armed, the last event ID is kept.
    assert decoder.feed(BOM + b"data: b\n\n") == [ev(b"b", id="1")]
    assert decoder.last_event_id == "1"


def test_sse_state_carries_across_chunks() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"event: e\n") == []
    assert decoder.feed(b"retry: 5\n") == []
    assert decoder.feed(b"data: a\n") == []
    assert decoder.feed(b"data: b\n\ndata: c\n\n") == [ev(b"a\nb", event="e", retry=5), ev(b"c")]


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        (b"data: a\ndata: b\n\ndata: c\n\n", [ev(b"a\nb"), ev(b"c")]),
        (b"data: a\n\ndata: b\n\n\n", [ev(b"a"), ev(b"b")]),
        (b"data: a\n\n\n\ndata: b\n\n\n\n\n", [ev(b"a"), ev(b"b")]),
        (b"\n\n\ndata: a\n\n", [ev(b"a")]),
        (b"data: a\n\nevent: x\ndata: b\n\n", [ev(b"a"), ev(b"b", event="x")]),
        (b"event: x\ndata: a\ndata: b\n\n", [ev(b"a\nb", event="x")]),
        (b"event: x\ndata: a\nid: 3\n\n", [ev(b"a", event="x", id="3")]),
        (b"event: x\ndata:a\n\n", [ev(b"a", event="x")]),
        (b"event:  x\ndata:  a\n\n", [ev(b" a", event=" x")]),
        (b"event: x\nretry: 1\n\ndata: a\n\n", [ev(b"a")]),
        (b"data: a\n\ndata: b\ndata: c", [ev(b"a"), ev(b"b\nc")]),
        (b"data: a\n\ndata: b\n: c\n\n", [ev(b"a"), ev(b"b")]),
        (b"data: a\n\nid: 2\n\ndata: b\n\n", [ev(b"a"), ev(b"b", id="2")]),
        (b"data: a\r\n\r\ndata: b\r\n\r\n", [ev(b"a"), ev(b"b")]),
        (b"event: x\ndata: a\n\nevent: y\ndata: b\n\n", [ev(b"a", "x"), ev(b"b", "y")]),
        (b"event: x\ndata: a\n\nevent: y\nid: 1\ndata: b\n\n", [ev(b"a", "x"), ev(b"b", "y", "1")]),
        (b"event: x\n\nevent: y\ndata: b\n\n", [ev(b"b", "y")]),
        (b"event: x\ndata: a\n\nevent: y\ndata: b\ndata: c\n\n", [ev(b"a", "x"), ev(b"b\nc", "y")]),
        (b"event: x\ndata: a\n\nevent: y\ndata: b\n\n\n", [ev(b"a", "x"), ev(b"b", "y")]),
        (b"event: x\ndata: a\n\ndata: b\n\n", [ev(b"a", "x"), ev(b"b")]),
        (b"event: x\nevent: y\ndata: a\n\n", [ev(b"a", "y")]),
        (b"event: x\ndata: a\nevent: y\n\n", [ev(b"a", "y")]),
        (b"event: x\r\ndata: a\r\n\r\nevent: y\r\ndata: b\r\n\r\n", [ev(b"a", "x"), ev(b"b", "y")]),
    ],
    ids=[
        "multiline-then-single",
        "trailing-extra-blank",
        "many-blanks",
        "leading-blanks",
        "single-then-named",
        "named-multiline",
        "named-with-id",
        "named-no-space",
        "named-extra-spaces",
        "dataless-named-block",
        "unterminated-last",
        "comment-inside",
        "id-only-block",
        "crlf-run",
        "named-run",
        "named-run-with-id",
        "named-run-dataless-first",
        "named-run-multiline-last",
        "named-run-trailing-blank",
        "named-then-unnamed",
        "two-event-lines",
        "event-after-data",
        "named-run-crlf",
    ],
)
def test_sse_block_shapes_decode_consistently(stream: bytes, expected: list[SSEEvent]) -> None:
    assert_sse_every_split(stream, expected)


def test_sse_many_events_in_one_chunk_keep_order() -> None:
    stream = b"".join(b"data: %d\n\n" % i for i in range(500))
    decoder = SSEDecoder()
    events = decoder.feed(stream + b"data: tail")
    assert events == [ev(b"%d" % i) for i in range(500)]
    assert decoder.flush() == [ev(b"tail")]


def test_sse_long_line_fed_bytewise() -> None:
    payload = b"x" * 20_000
    assert sse_decode(bytewise(b"data: " + payload + b"\n\n")) == [ev(payload)]


def test_sse_event_is_cheap_immutable_tuple() -> None:
    event = ev(b"d", event="e", id="i", retry=1)
    assert (event.event, event.data, event.id, event.retry) == ("e", b"d", "i", 1)
    with pytest.raises(AttributeError):
        event.data = b"other"  # type: ignore[misc]


# ------------------------------------------------------------------------ NDJSON


def test_ndjson_splits_complete_lines() -> None:
    decoder = NDJSONDecoder()
    assert decoder.feed(b'{"a":1}\n{"b":') == [b'{"a":1}']
    assert decoder.feed(b"2}") == []
    assert decoder.feed(b"\n") == [b'{"b":2}']
    assert decoder.flush() == []


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        (b'{"a":1}\r\n{"b":2}\r\n', [b'{"a":1}', b'{"b":2}']),
        (b'\n\n{"a":1}\n   \n\t\r\n{"b":2}\n\n', [b'{"a":1}', b'{"b":2}']),
        (b'  {"a": 1} \t\r\n', [b'{"a": 1}']),
        (b'{"a":1}\n{"b":2}', [b'{"a":1}', b'{"b":2}']),
        (b'{"a":1}\n  \t ', [b'{"a":1}']),
        (b'{"a":1}\r{"b":2}\n', [b'{"a":1}\r{"b":2}']),
        (b"", []),
        (b"\n\r\n \n", []),
    ],
    ids=[
        "crlf",
        "blank-lines-skipped",
        "whitespace-stripped",
        "trailing-line-flushed",
        "trailing-blank-dropped",
        "lone-cr-not-a-separator",
        "empty",
        "only-blank",
    ],
)
def test_ndjson_line_rules(stream: bytes, expected: list[bytes]) -> None:
    assert_ndjson_every_split(stream, expected)


def test_ndjson_multibyte_utf8_split_anywhere() -> None:
    doc = json.dumps({"t": "h\u00e9llo \u4e16\u754c \U0001f600"}, ensure_ascii=False).encode()
    assert_ndjson_every_split(doc + b"\n" + doc + b"\r\n", [doc, doc])


def test_ndjson_flush_resets_decoder() -> None:
    decoder = NDJSONDecoder()
    assert decoder.feed(b"[1]\n[2") == [b"[1]"]
    assert decoder.flush() == [b"[2"]
    assert decoder.flush() == []
    assert decoder.feed(b"[3]\n") == [b"[3]"]


def test_ndjson_long_line_fed_bytewise() -> None:
    doc = b'"' + b"x" * 20_000 + b'"'
    assert ndjson_decode(bytewise(doc + b"\n")) == [doc]


# ----------------------------------------------------------- property-based tests

_LINE_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=12)
_ID_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\r\n\x00"), max_size=6)
_UNKNOWN_NAMES = ["foo", "Data", "EVENT", "data ", " data", "x-id", "retry2", "ID"]

# One line of an event as (kind, value); "badretry" and "badid" are written as
# ``retry:`` / ``id:`` fields whose value must be ignored.
_ITEMS = st.one_of(
    st.tuples(st.just("data"), _LINE_TEXT),
    st.tuples(st.just("data"), _LINE_TEXT),
    st.tuples(st.just("event"), _LINE_TEXT),
    st.tuples(st.just("id"), _ID_TEXT),
    st.tuples(st.just("badid"), _ID_TEXT.map(lambda s: s + "\x00")),
    st.tuples(st.just("retry"), st.integers(0, 10**6).map(str)),
    st.tuples(st.just("badretry"), st.sampled_from(["", "x", "-1", "1.5", "2 ", "\u0663"])),
    st.tuples(st.just("comment"), _LINE_TEXT),
    st.tuples(st.sampled_from(_UNKNOWN_NAMES), _LINE_TEXT),
)


def _expected_sse(events: list[list[tuple[str, str]]]) -> list[SSEEvent]:
    """Reference model, computed from the generated structure."""
    out: list[SSEEvent] = []
    last_id: str | None = None
    for items in events:
        data: list[bytes] = []
        name: str | None = None
        retry: int | None = None
        for kind, value in items:
            if kind == "data":
                data.append(value.encode())
            elif kind == "event":
                name = value
            elif kind == "id":
                last_id = value
            elif kind == "retry":
                retry = int(value)
        if data:
            out.append(SSEEvent(name, b"\n".join(data), last_id, retry))
    return out


@st.composite
def sse_streams(draw: st.DrawFn) -> tuple[bytes, list[SSEEvent]]:
    events = draw(st.lists(st.lists(_ITEMS, max_size=6), max_size=6))
    lines: list[str] = []
    for items in events:
        for kind, value in items:
            if kind == "comment":
                lines.append(":" + value)
                continue
            field = {"badretry": "retry", "badid": "id"}.get(kind, kind)
            style = draw(st.sampled_from(["space", "tight", "bare"]))
            if style == "bare" and value == "":
                lines.append(field)
            elif style == "tight" and not value.startswith(" "):
                lines.append(f"{field}:{value}")
            else:
                lines.append(f"{field}: {value}")
        lines.extend([""] * draw(st.integers(1, 2)))
    lenient_end = draw(st.booleans())
    if lenient_end:  # servers sometimes omit the final blank line
        while lines and lines[-1] == "":
            lines.pop()
    parts: list[str] = []
    previous = ""
    for line in lines:
        eol = draw(st.sampled_from(["\n", "\r\n", "\r"]))
        if previous == "\r" and line == "" and eol == "\n":
            eol = "\r\n"  # a lone LF here would pair with the previous CR
        parts += [line, eol]
        previous = eol
    if lenient_end and parts and draw(st.booleans()):
        parts.pop()  # ... and even the last line terminator
    prefix = BOM if draw(st.booleans()) else b""
    return prefix + "".join(parts).encode(), _expected_sse(events)


@PROPERTY_SETTINGS
@given(case=sse_streams(), cuts=st.lists(st.integers(0, 10_000), max_size=24))
def test_sse_property_any_chunking_matches_model(
    case: tuple[bytes, list[SSEEvent]], cuts: list[int]
) -> None:
    stream, expected = case
    whole = sse_decode([stream])
    assert whole == expected
    assert sse_decode(split_at(stream, (c % (len(stream) + 1) for c in cuts))) == whole
    assert sse_decode(bytewise(stream)) == whole


@PROPERTY_SETTINGS
@given(case=sse_streams(), size=st.integers(1, 7))
def test_sse_property_fixed_size_chunks_match_model(
    case: tuple[bytes, list[SSEEvent]], size: int
) -> None:
    stream, expected = case
    chunks = [stream[i : i + size] for i in range(0, len(stream), size)]
    assert sse_decode(chunks) == expected


def _reference_sse(stream: bytes) -> list[SSEEvent]:
    """Naive, byte-at-a-time reading of the spec (plus the lenient end)."""
    if stream.startswith(BOM):
        stream = stream[len(BOM) :]
    lines: list[bytes] = []
    start = i = 0
    while i < len(stream):
        if stream[i] in b"\r\n":
            lines.append(stream[start:i])
            if stream[i : i + 2] == b"\r\n":
                i += 1
            start = i + 1
        i += 1
    if start < len(stream):
        lines.append(stream[start:])
    lines.append(b"")  # end of stream dispatches leniently
    out: list[SSEEvent] = []
    data: list[bytes] = []
    name: str | None = None
    retry: int | None = None
    last_id: str | None = None
    for line in lines:
        if not line:
            if data:
                out.append(SSEEvent(name, b"\n".join(data), last_id, retry))
            data, name, retry = [], None, None
            continue
        field, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            data.append(value)
        elif field == b"event":
            name = value.decode("utf-8", "replace")
        elif field == b"id" and b"\x00" not in value:
            last_id = value.decode("utf-8", "replace")
        elif field == b"retry" and value and all(48 <= b <= 57 for b in value):
            retry = int(value)
    return out


_SOUP_TOKENS = [b"data", b"data: ", b"event", b"event: ", b"id", b"retry", b":", b" "]
_SOUP_TOKENS += [b"\r", b"\n", b"\n\n", b"\r\n", b"x", b"7", b"\xc3\xa9", b"\xff", b"\x00", BOM]
_SOUP = st.lists(st.sampled_from(_SOUP_TOKENS), max_size=40).map(b"".join)


@PROPERTY_SETTINGS
@given(stream=_SOUP, cuts=st.lists(st.integers(0, 400), max_size=12))
def test_sse_property_byte_soup_matches_reference(stream: bytes, cuts: list[int]) -> None:
    expected = _reference_sse(stream)
    assert sse_decode([stream]) == expected
    assert sse_decode(split_at(stream, (c % (len(stream) + 1) for c in cuts))) == expected
    assert sse_decode(bytewise(stream)) == expected


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec="utf-8"), max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=6,
)
_PAD = st.text(alphabet=" \t", max_size=2)


@st.composite
def ndjson_streams(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    docs = [json.dumps(v, ensure_ascii=False).encode() for v in draw(st.lists(_JSON, max_size=8))]
    lines: list[bytes] = []
    for doc in docs:
        lines.extend(pad.encode() for pad in draw(st.lists(_PAD, max_size=2)))  # blank lines
        lines.append(draw(_PAD).encode() + doc + draw(_PAD).encode())
    parts: list[bytes] = []
    for line in lines:
        parts += [line, draw(st.sampled_from([b"\n", b"\r\n"]))]
    drop_last_eol = draw(st.booleans())
    if parts and drop_last_eol:
        parts.pop()  # no terminator after the last line
    return b"".join(parts), docs


@PROPERTY_SETTINGS
@given(case=ndjson_streams(), cuts=st.lists(st.integers(0, 10_000), max_size=24))
def test_ndjson_property_any_chunking_matches_model(
    case: tuple[bytes, list[bytes]], cuts: list[int]
) -> None:
    stream, expected = case
    whole = ndjson_decode([stream])
    assert whole == expected
    assert ndjson_decode(split_at(stream, (c % (len(stream) + 1) for c in cuts))) == whole
    assert ndjson_decode(bytewise(stream)) == whole
