"""Property: every public entry point returns a result or raises an LLMError, never anything else.

Inputs are drawn from a hostile pool (lone surrogates, NaN and infinities, huge
ints, deep nesting, arbitrary objects, odd headers, wrong types everywhere)
mixed with plain valid values. Every drawn piece carries its verdict, decided
where it is drawn, never re-derived from the value:

* ``OK``: valid; the call must succeed after sending exactly one request;
* ``ANY``: hostile but sendable; a result or an LLMError, both are fine;
* ``CALL``: the call must refuse it before sending (``Config(...)`` may accept it);
* ``BAD``: must be refused before sending, by ``Config(...)`` itself too.

The verdict of a whole input is the worst verdict of its pieces. Every
request goes to a recording ``httpx.MockTransport``, so "refused before
sending" means the transport recorded nothing. No error may show the API key.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, NamedTuple

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llmkit
from llmkit import core
from llmkit.config import Config
from llmkit.types import (
    ChatRequest,
    ChatResponse,
    Function,
    ImagePart,
    ImageURL,
    Message,
    ResponseFormat,
    TextPart,
    Tool,
)
from llmkit_providers.openai import OpenAI

SECRET = "sk-prop-0123456789abcdef"

_BASE = settings(
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.large_base_example,
    ],
)

_COMPLETION_BODY = {
    "id": "chatcmpl-prop",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-4o-mini",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}
_SSE_BODY = (
    b'data: {"id":"chatcmpl-prop","object":"chat.completion.chunk","created":1700000000,'
    b'"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"role":"assistant","content":"ok"},'
    b'"finish_reason":null}]}\n\n'
    b"data: [DONE]\n\n"
)


# --- pieces and verdicts ------------------------------------------------------------


class V(IntEnum):
    """What an input demands of the call; the pieces of one input combine by ``max``."""

    OK = 0
    ANY = 1
    CALL = 2
    BAD = 3


OK, ANY, CALL, BAD = V.OK, V.ANY, V.CALL, V.BAD


class P(NamedTuple):
    """A drawn value, its verdict and a short, ASCII-only label for reports."""

    value: Any
    verdict: V
    label: str

    def __repr__(self) -> str:
        return self.label

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        # Hypothesis would otherwise walk the value itself, deep nesting and all.
        printer.text(self.label)


class _Sentinel:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


ABSENT: Any = _Sentinel("ABSENT")  # the field is left out
CLIENT: Any = _Sentinel("CLIENT")  # the recording client of the right kind
OTHER_CLIENT: Any = _Sentinel("OTHER_CLIENT")  # the recording client of the wrong kind


def leaf(value: Any, verdict: V = OK, label: str | None = None) -> P:
    # ascii() keeps lone surrogates out of hypothesis' report; never call it on deep values.
    text = label if label is not None else ascii(value)
    if len(text) > 60:
        text = text[:57] + "..."
    if verdict is not OK:
        text += f"<{verdict.name}>"
    return P(value, verdict, text)


def worst(pieces: Iterable[P]) -> V:
    return max((p.verdict for p in pieces), default=OK)


def pick(*pieces: P) -> st.SearchStrategy[P]:
    return st.sampled_from(pieces)


def as_list(items: Sequence[P]) -> P:
    return P([p.value for p in items], worst(items), "[" + ", ".join(p.label for p in items) + "]")


def as_dict(pairs: Sequence[tuple[P, P]]) -> P:
    """A dict whose keys are pieces too (a key may be the hostile part)."""
    value = {k.value: v.value for k, v in pairs}
    label = "{" + ", ".join(f"{k.label}: {v.label}" for k, v in pairs) + "}"
    return P(value, worst(p for pair in pairs for p in pair), label)


def as_fields(fields: dict[str, P]) -> tuple[dict[str, Any], V, str]:
    """Plain-named fields: ABSENT ones are left out of the value but keep their verdict."""
    value = {name: p.value for name, p in fields.items() if p.value is not ABSENT}
    shown = [(n, p) for n, p in fields.items() if p.value is not ABSENT or p.verdict is not OK]
    label = ", ".join(f"{name}={p.label}" for name, p in shown)
    return value, worst(fields.values()), label


def fields_dict(fields: dict[str, P]) -> P:
    value, verdict, label = as_fields(fields)
    return P(value, verdict, "{" + label + "}")


def fields_struct(cls: Callable[..., Any], name: str) -> Callable[[dict[str, P]], P]:
    def build(fields: dict[str, P]) -> P:
        value, verdict, label = as_fields(fields)
        return P(cls(**value), verdict, f"{name}({label})")

    return build


def retag(verdict: V) -> Callable[[P], P]:
    def change(piece: P) -> P:
        return P(piece.value, verdict, piece.label + f"<{verdict.name}>")

    return change


Spec = dict[str, tuple[st.SearchStrategy[P], st.SearchStrategy[P]]]


@st.composite
def record(draw: st.DrawFn, spec: Spec, required: frozenset[str], hostile: bool) -> dict[str, P]:
    """Draw some of ``spec``'s fields (the required ones always); when hostile, spoil 1-2."""
    names = [n for n in spec if n in required or draw(st.booleans())]
    spoiled: set[str] = set()
    if hostile:
        spoiled = set(draw(st.lists(st.sampled_from(list(spec)), min_size=1, max_size=2)))
    return {
        n: draw(spec[n][1] if n in spoiled else spec[n][0])
        for n in spec
        if n in names or n in spoiled
    }


# --- hostile and valid leaves ----------------------------------------------------------

SURROGATE_TEXT = st.tuples(
    st.text(max_size=6), st.sampled_from(["\ud800", "\udfff", "\udc80"]), st.text(max_size=6)
).map(lambda t: leaf(t[0] + t[1] + t[2], BAD))
FIXED_SURROGATES = pick(leaf("\ud800", BAD), leaf("a\udfffb", BAD))
TEXT_OK = st.one_of(
    st.text(max_size=16).map(leaf),
    pick(leaf("Hi"), leaf("caf\u00e9 \u65e5\u672c \U0001f600"), leaf("line\nbreak\ttab")),
)
NON_FINITE = pick(leaf(math.nan, BAD), leaf(math.inf, BAD), leaf(-math.inf, BAD))

JSON_OK_LEAF = st.one_of(
    pick(leaf(None), leaf(True), leaf(0), leaf(-7), leaf(1.5), leaf(1e300), leaf("\x00\x1f")),
    st.integers(-(2**53), 2**53).map(leaf),
    st.floats(allow_nan=False, allow_infinity=False).map(leaf),
    TEXT_OK,
)
# Hostile values JSON can carry: a call may send them or refuse them.
JSON_SENDABLE_LEAF = pick(
    leaf(10**30, ANY),
    leaf(10**100, ANY, "10**100"),
    leaf(-(2**64), ANY),
    leaf({1, 2}, ANY),
    leaf(frozenset(), ANY),
    leaf(b"\x00\xff", ANY),
    leaf({5: "int key"}, ANY),
)
JSON_HOSTILE_LEAF = st.one_of(
    NON_FINITE,
    SURROGATE_TEXT,
    JSON_SENDABLE_LEAF,
    pick(
        leaf(object(), BAD, "object()"),
        leaf({"\ud800": 1}, BAD),
        leaf({"k": [1, math.nan]}, BAD),
    ),
)
DEPTHS = st.one_of(st.sampled_from([200, 999, 1000, 1001, 3000]), st.integers(200, 3000))


@st.composite
def deep(draw: st.DrawFn, leaves: st.SearchStrategy[P]) -> P:
    """A list or dict nested 200-3000 deep around one leaf, built bottom-up (no recursion).

    Deep nesting alone is sendable (``ANY``); a leaf that must be refused still must be.
    """
    depth = draw(DEPTHS)
    kind = draw(st.sampled_from(["list", "dict"]))
    inner = draw(leaves)
    value = inner.value
    for _ in range(depth):
        value = [value] if kind == "list" else {"d": value}
    verdict = max(ANY, inner.verdict)
    return P(value, verdict, f"<{kind} nested {depth} deep around {inner.label}><{verdict.name}>")


def json_value(hostile: bool) -> st.SearchStrategy[P]:
    leaves = JSON_HOSTILE_LEAF if hostile else JSON_OK_LEAF
    keys = st.sampled_from(["a", "b", "c"]).map(leaf)
    small = st.one_of(
        st.lists(leaves, min_size=1, max_size=3).map(as_list),
        st.lists(
            st.tuples(keys, leaves), min_size=1, max_size=3, unique_by=lambda kv: kv[0].value
        ).map(as_dict),
    )
    if hostile:
        return st.one_of(leaves, small, deep(st.one_of(JSON_OK_LEAF, JSON_HOSTILE_LEAF)))
    return st.one_of(leaves, small)


# --- headers --------------------------------------------------------------------------

HEADER_NAME_OK = pick(leaf("X-Trace"), leaf("x-request-tag"), leaf("OpenAI-Beta"))
HEADER_NAME_BAD = pick(
    *(
        leaf(name, BAD)
        for name in [
            "",
            "a b",
            "x:y",
            "x\r\ny",
            "x\ny",
            "Content-Length",
            "content-LENGTH",
            "Host",
            "HOST",
            "Transfer-Encoding",
            "transfer-encoding",
            "\u00e9",
            "x-\u00e9t\u00e9",
            "x-\ud800",
            5,
            None,
            b"X-Bytes",
        ]
    )
)
HEADER_VALUE_OK = pick(leaf("v"), leaf(""), leaf("a b"), leaf("tok-123"), leaf("x=1; y=2"))
HEADER_VALUE_BAD = pick(
    *(
        leaf(value, BAD)
        for value in [
            "x\r\ny",
            "x\ny",
            "x\ry",
            "\u00e9",
            "\ud800",
            "a\udfffb",
            5,
            None,
            b"v",
            math.nan,
        ]
    )
)


def header_dict(hostile: bool) -> st.SearchStrategy[P]:
    good = st.tuples(HEADER_NAME_OK, HEADER_VALUE_OK)
    if not hostile:
        return st.lists(good, max_size=2, unique_by=lambda kv: kv[0].value).map(as_dict)
    bad_pair = st.one_of(
        st.tuples(HEADER_NAME_BAD, HEADER_VALUE_OK), st.tuples(HEADER_NAME_OK, HEADER_VALUE_BAD)
    )
    spoiled = st.lists(
        st.one_of(good, bad_pair, bad_pair),
        min_size=1,
        max_size=3,
        unique_by=lambda kv: kv[0].value,
    ).map(as_dict)
    return st.one_of(spoiled, pick(leaf("x", BAD), leaf(5, BAD), leaf(["X-Trace"], BAD)))


# --- messages, tools, requests ----------------------------------------------------------

ROLE_OK = pick(leaf("user"), leaf("system"), leaf("assistant"), leaf("developer"))
ROLE_BAD = pick(
    leaf("robot", BAD), leaf(5, BAD), leaf(None, BAD), leaf("\ud800", BAD), leaf("USER", BAD)
)
NAME_OK = pick(leaf("alice"), leaf("bob_2"))
NAME_BAD = st.one_of(pick(leaf(5, BAD), leaf(math.nan, BAD), leaf(["alice"], BAD)), SURROGATE_TEXT)
IMAGE_URL = "https://example.test/cat.png"


def part(struct: bool, hostile: bool) -> st.SearchStrategy[P]:
    bad_text = st.one_of(
        pick(leaf(5, BAD), leaf(None, BAD), leaf(["x"], BAD)), NON_FINITE, SURROGATE_TEXT
    )
    if struct:
        image = P(ImagePart(image_url=ImageURL(url=IMAGE_URL, detail="low")), OK, "ImagePart(...)")
        if not hostile:
            return st.one_of(
                TEXT_OK.map(lambda t: P(TextPart(text=t.value), OK, f"TextPart({t.label})")),
                st.just(image),
            )
        return st.one_of(
            bad_text.map(lambda t: P(TextPart(text=t.value), BAD, f"TextPart({t.label})")),
            st.one_of(pick(leaf(5, BAD)), SURROGATE_TEXT).map(
                lambda u: P(
                    ImagePart(image_url=ImageURL(url=u.value)), BAD, f"ImagePart({u.label})"
                )
            ),
            pick(
                P(ImagePart(image_url=IMAGE_URL), BAD, "ImagePart(image_url=str)<BAD>"),  # type: ignore[arg-type]
                leaf({"type": "text", "text": "dict part in a struct"}, ANY),
                leaf(5, BAD),
            ),
        )
    text_part = {"type": "text", "text": None}
    if not hostile:
        return st.one_of(
            TEXT_OK.map(lambda t: P({**text_part, "text": t.value}, OK, f"text({t.label})")),
            st.just(leaf({"type": "image_url", "image_url": {"url": IMAGE_URL, "detail": "low"}})),
        )
    return st.one_of(
        bad_text.map(lambda t: P({**text_part, "text": t.value}, BAD, f"text({t.label})<BAD>")),
        st.one_of(pick(leaf(5, BAD)), SURROGATE_TEXT).map(
            lambda u: P(
                {"type": "image_url", "image_url": {"url": u.value}}, BAD, f"image({u.label})"
            )
        ),
        pick(
            leaf({"type": "robot", "text": "x"}, BAD),
            leaf({"type": "text"}, BAD),
            leaf({"type": "image_url", "image_url": IMAGE_URL}, BAD),
            leaf("text", BAD),
            leaf(5, BAD),
        ),
    )


def content(struct: bool, hostile: bool) -> st.SearchStrategy[P]:
    if not hostile:
        return st.one_of(
            TEXT_OK, st.lists(part(struct, False), min_size=1, max_size=2).map(as_list)
        )
    return st.one_of(
        pick(
            leaf(12345, BAD),
            leaf(None, BAD),
            leaf(ABSENT, BAD),
            leaf(math.nan, BAD),
            leaf(b"bytes", BAD),
            leaf({"type": "text", "text": "not in a list"}, BAD),
            leaf([], ANY),
        ),
        SURROGATE_TEXT,
        deep(JSON_OK_LEAF).map(retag(BAD)),  # nested lists or dicts are never content
        st.tuples(st.lists(part(struct, False), max_size=1), part(struct, True)).map(
            lambda t: as_list([*t[0], t[1]])
        ),
    )


def message(struct: bool, hostile: bool) -> st.SearchStrategy[P]:
    spec: Spec = {
        "role": (ROLE_OK, ROLE_BAD if struct else st.one_of(ROLE_BAD, pick(leaf(ABSENT, BAD)))),
        "content": (content(struct, False), content(struct, True)),
        "name": (NAME_OK, NAME_BAD),
    }
    if not struct:
        spec["contnet"] = (pick(leaf(ABSENT)), pick(leaf("typo of content", BAD)))
    fields = record(spec, frozenset({"role", "content"}), hostile)
    return fields.map(fields_struct(Message, "Message") if struct else fields_dict)


def messages(struct: bool, hostile: bool) -> st.SearchStrategy[P]:
    if not hostile:
        return st.lists(message(struct, False), min_size=1, max_size=3).map(as_list)
    one_bad = st.tuples(st.lists(message(struct, False), max_size=2), message(struct, True)).map(
        lambda t: as_list([*t[0], t[1]])
    )
    wrong = pick(
        leaf([], BAD),
        leaf("hi", BAD),
        leaf(5, BAD),
        leaf(None, BAD),
        leaf({"role": "user", "content": "not in a list"}, BAD),
    )
    if struct:
        in_struct = pick(leaf([{"role": "user", "content": "dict in a struct"}], ANY))
        return st.one_of(one_bad, wrong, in_struct)
    return st.one_of(one_bad, wrong, pick(leaf(ABSENT, BAD)))


def parameters(hostile: bool) -> st.SearchStrategy[P]:
    def schema(default: P) -> P:
        value = {
            "type": "object",
            "properties": {"q": {"type": "string", "default": default.value}},
        }
        return P(value, default.verdict, "{...default: " + default.label + "}")

    if not hostile:
        return json_value(False).map(schema)
    return st.one_of(
        json_value(True).map(schema),
        pick(
            leaf("x", BAD),
            leaf(5, BAD),
            leaf([1], BAD),
            leaf(math.nan, BAD),
            leaf({"\ud800": {}}, BAD),
        ),
    )


def tool(struct: bool, hostile: bool) -> st.SearchStrategy[P]:
    function_spec: Spec = {
        "name": (
            pick(leaf("get_weather"), leaf("lookup")),
            st.one_of(pick(leaf(5, BAD), leaf(None, BAD)), SURROGATE_TEXT),
        ),
        "description": (TEXT_OK, st.one_of(NON_FINITE, SURROGATE_TEXT, pick(leaf(7, BAD)))),
        "parameters": (parameters(False), parameters(True)),
    }
    build_function = fields_struct(Function, "Function") if struct else fields_dict
    function = record(function_spec, frozenset({"name"}), hostile).map(build_function)
    kind = pick(leaf("function")) if not hostile else pick(leaf("function"), leaf(5, BAD))
    if struct:
        return st.tuples(function, kind).map(
            lambda t: P(
                Tool(function=t[0].value, type=t[1].value),
                worst(t),
                f"Tool({t[0].label}, type={t[1].label})",
            )
        )
    return st.tuples(function, kind).map(
        lambda t: P(
            {"type": t[1].value, "function": t[0].value},
            worst(t),
            f"tool({t[0].label}, type={t[1].label})",
        )
    )


def tools(struct: bool, hostile: bool) -> st.SearchStrategy[P]:
    if not hostile:
        return st.lists(tool(struct, False), min_size=1, max_size=2).map(as_list)
    return st.one_of(
        st.tuples(tool(struct, False), tool(struct, True)).map(lambda t: as_list(list(t))),
        pick(leaf("x", BAD), leaf({}, BAD), leaf([5], BAD)),
    )


def response_format(struct: bool, hostile: bool) -> st.SearchStrategy[P]:
    if struct:
        if not hostile:
            return pick(
                P(ResponseFormat(type="json_object"), OK, "ResponseFormat(json_object)"),
                P(ResponseFormat(type="text"), OK, "ResponseFormat(text)"),
            )
        return pick(
            P(ResponseFormat(type="xml"), BAD, "ResponseFormat(xml)<BAD>"),  # type: ignore[arg-type]
            P(
                ResponseFormat(type="json_schema"),
                BAD,
                "ResponseFormat(json_schema, no schema)<BAD>",
            ),
            leaf({"type": "json_object"}, ANY),  # converted, as in a dict request
            leaf("json", BAD),
            leaf(5, BAD),
        )
    if not hostile:
        return pick(
            leaf({"type": "text"}),
            leaf({"type": "json_object"}),
            leaf(
                {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
            ),
        )
    return pick(
        leaf({"type": "xml"}, BAD),
        leaf({"type": "json_schema"}, BAD),
        leaf(
            {"type": "json_schema", "json_schema": {"name": "x", "schema": {"max": math.inf}}}, BAD
        ),
        leaf("json", BAD),
        leaf(5, BAD),
    )


def extra_body(hostile: bool) -> st.SearchStrategy[P]:
    keys = st.sampled_from(["x_flag", "x_meta", "x_list"]).map(leaf)
    if not hostile:
        return st.lists(
            st.tuples(keys, json_value(False)), max_size=2, unique_by=lambda kv: kv[0].value
        ).map(as_dict)
    spoiled = st.tuples(st.one_of(keys, SURROGATE_TEXT), json_value(True)).map(
        lambda kv: as_dict([kv])
    )
    return st.one_of(
        spoiled,
        spoiled,
        pick(leaf("x", BAD), leaf(5, BAD), leaf([1], BAD), leaf({5: "int key"}, BAD)),
    )


def _range(lo: float, hi: float) -> st.SearchStrategy[P]:
    return st.floats(lo, hi).map(leaf)


def request_spec(struct: bool) -> Spec:
    positive_bad = pick(
        leaf(0, BAD),
        leaf(-1, BAD),
        leaf("x", BAD),
        leaf(5.0, BAD),
        leaf(math.nan, BAD),
        leaf(10**30, ANY),
    )
    spec: Spec = {
        "messages": (messages(struct, False), messages(struct, True)),
        "temperature": (
            _range(0.0, 2.0),
            st.one_of(
                NON_FINITE,
                pick(
                    leaf("hot", BAD),
                    leaf(3.0, BAD),
                    leaf(-0.5, BAD),
                    leaf(1e300, BAD),
                    leaf(True, BAD),
                    leaf([1], BAD),
                ),
            ),
        ),
        "top_p": (_range(0.0, 1.0), st.one_of(NON_FINITE, pick(leaf(1.5, BAD), leaf("x", BAD)))),
        "max_tokens": (st.integers(1, 4096).map(leaf), positive_bad),
        "max_completion_tokens": (st.integers(1, 4096).map(leaf), positive_bad),
        "stop": (
            pick(leaf("\n"), leaf(["END", "STOP"]), leaf("\u00e9")),
            st.one_of(
                pick(leaf(7, BAD), leaf([7], BAD), leaf(["a\udfffb"], BAD), leaf(math.nan, BAD)),
                FIXED_SURROGATES,
            ),
        ),
        "seed": (
            st.integers(-(2**31), 2**31).map(leaf),
            pick(
                leaf("x", BAD), leaf(1.5, BAD), leaf(math.nan, BAD), leaf(10**100, ANY, "10**100")
            ),
        ),
        "n": (st.integers(1, 3).map(leaf), pick(leaf(0, BAD), leaf("2", BAD))),
        "user": (TEXT_OK, st.one_of(SURROGATE_TEXT, pick(leaf(5, BAD)))),
        "tools": (tools(struct, False), tools(struct, True)),
        "tool_choice": (
            pick(leaf("auto"), leaf("none")),
            pick(
                leaf("bogus", BAD),
                leaf(5, BAD),
                leaf("\ud800", BAD),
                leaf({"type": "function"}, BAD),
            ),
        ),
        "response_format": (response_format(struct, False), response_format(struct, True)),
        "parallel_tool_calls": (
            pick(leaf(True), leaf(False)),
            pick(leaf("yes", BAD), leaf(1, BAD), leaf(math.nan, BAD)),
        ),
        "extra_body": (extra_body(False), extra_body(True)),
        "extra_headers": (header_dict(False), header_dict(True)),
    }
    if not struct:
        # A struct call replaces ``stream`` and cannot take an unknown field at all.
        spec["stream"] = (pick(leaf(True), leaf(False)), pick(leaf("yes", BAD)))
        spec["temprature"] = (pick(leaf(ABSENT)), pick(leaf(1.0, BAD)))
    return spec


REQUEST_SPECS = {False: request_spec(False), True: request_spec(True)}


SENDABLE = st.one_of(JSON_SENDABLE_LEAF, deep(JSON_OK_LEAF))


@st.composite
def request(draw: st.DrawFn, hostile: bool, model: P | None, sendable: bool = False) -> P:
    """A dict in OpenAI's shape or a ChatRequest built directly; ``model`` goes inside.

    ``sendable`` adds a hostile value that JSON can carry (huge ints, sets, bytes, deep
    nesting) to ``extra_body`` or to a tool's parameters, and nothing that must be refused.
    """
    struct = draw(st.booleans())
    fields = draw(record(REQUEST_SPECS[struct], frozenset({"messages"}), hostile))
    if sendable:
        odd = draw(SENDABLE)
        if draw(st.booleans()):
            fields["extra_body"] = as_dict([(leaf("x_odd"), odd)])
        else:
            schema = {"type": "object", "properties": {"q": {"default": odd.value}}}
            params = P(schema, odd.verdict, "{...default: " + odd.label + "}")
            build = fields_struct(Function, "Function") if struct else fields_dict
            function = build({"name": leaf("lookup"), "parameters": params})
            wrap = Tool if struct else (lambda **kw: {"type": "function", **kw})
            fields["tools"] = P([wrap(function=function.value)], ANY, f"[tool({function.label})]")
    if struct:
        chosen = model if model is not None else leaf("gpt-4o-mini")
        fields = {"model": chosen, **fields}
        return fields_struct(ChatRequest, "ChatRequest")(fields)
    if model is not None:
        fields = {"model": model, **fields}
    return fields_dict(fields)


PROVIDER_OK = pick(leaf("openai"), leaf("openai"), leaf("openai"), leaf(OpenAI(), OK, "OpenAI()"))
PROVIDER_BAD = pick(*(leaf(p, BAD) for p in [[], {}, 5, None, "opnai", "OpenAI", "", "\ud800"]))
MODEL_OK = st.one_of(
    pick(leaf("gpt-4o-mini"), leaf("o1-mini"), leaf("m"), leaf("mod\u00e8le")),
    st.text(min_size=1, max_size=12).map(leaf),
)
MODEL_BAD = st.one_of(
    pick(*(leaf(m, BAD) for m in ["", 5, None, ["m"], math.nan, b"m"])), FIXED_SURROGATES
)


# --- configs ---------------------------------------------------------------------------

SECONDS_OK = pick(leaf(30), leaf(60.0), leaf(600))
SECONDS_BAD = st.one_of(
    NON_FINITE,
    FIXED_SURROGATES,
    pick(
        leaf(0, BAD),
        leaf(-1, BAD),
        leaf("soon", BAD),
        leaf(True, BAD),
        leaf([], BAD),
        leaf(1e300, ANY),
    ),
)


def config_spec(client_field: str, unknown: bool) -> Spec:
    spec: Spec = {
        "api_key": (
            pick(leaf(SECRET), leaf(SECRET + "\n"), leaf(" " + SECRET)),
            pick(
                leaf(ABSENT, CALL),
                leaf(None, CALL),
                leaf(SECRET + " x", CALL),
                leaf(SECRET + "\r\nx", CALL),
                leaf("\u00e9" + SECRET, CALL),
                leaf("", ANY),
                leaf(5, BAD),
                leaf([SECRET], BAD),
                leaf(SECRET + "\ud800", BAD),
                leaf("\udfff" + SECRET, BAD),
            ),
        ),
        client_field: (
            pick(leaf(CLIENT)),
            pick(leaf(OTHER_CLIENT, CALL), leaf("x", CALL), leaf(5, CALL)),
        ),
        "api_base": (
            pick(leaf("https://example.test/v1"), leaf("http://127.0.0.1:9/v1/")),
            pick(
                leaf(5, BAD),
                leaf("https://\ud800.test/v1", BAD),
                leaf("ftp://example.test", CALL),
                leaf("example.test/v1", CALL),
                leaf("", ANY),
                leaf("https://\u00e9.test/v1", ANY),
            ),
        ),
        "timeout": (SECONDS_OK, SECONDS_BAD),
        "connect_timeout": (SECONDS_OK, SECONDS_BAD),
        "deadline": (SECONDS_OK, SECONDS_BAD),
        "retries": (
            pick(leaf(0), leaf(1), leaf(2)),
            pick(
                leaf(-1, BAD),
                leaf("3", BAD),
                leaf(1.5, BAD),
                leaf(True, BAD),
                leaf(math.nan, BAD),
                leaf(10**100, ANY, "10**100"),
            ),
        ),
        "headers": (header_dict(False), header_dict(True)),
    }
    if unknown:
        spec["timout"] = (pick(leaf(ABSENT)), pick(leaf(5, BAD)))
    return spec


SYNC_CONFIG = config_spec("http_client", unknown=True)
ASYNC_CONFIG = config_spec("async_http_client", unknown=True)
SYNC_KWARGS = config_spec("http_client", unknown=False)
_REQUIRED_CONFIG = frozenset({"api_key", "http_client", "async_http_client"})


@dataclass(frozen=True)
class ConfigArg:
    """How the config reaches the call: a dict, ``Config(**fields)`` or a raw value."""

    kind: str
    fields: dict[str, Any]

    def build(self, client: Any, other: Any) -> Any:
        if self.kind == "raw":
            return self.fields["raw"]
        swap = {CLIENT: client, OTHER_CLIENT: other}
        fields = {
            k: swap.get(v, v) if isinstance(v, _Sentinel) else v for k, v in self.fields.items()
        }
        return Config(**fields) if self.kind == "Config" else fields


@st.composite
def config(draw: st.DrawFn, hostile: bool, sync: bool) -> P:
    kind = draw(
        st.sampled_from(["dict", "dict", "Config", "raw"] if hostile else ["dict", "Config"])
    )
    if kind == "raw":
        raw = draw(
            pick(leaf("x", BAD), leaf(5, BAD), leaf([1, 2], BAD), leaf([], BAD), leaf(None, CALL))
        )
        return P(ConfigArg("raw", {"raw": raw.value}), raw.verdict, f"raw {raw.label}")
    spec = SYNC_CONFIG if sync else ASYNC_CONFIG
    if kind == "Config":
        spec = {k: v for k, v in spec.items() if k != "timout"}  # Config() takes no unknown name
    fields = draw(record(spec, _REQUIRED_CONFIG, hostile))
    value, verdict, label = as_fields(fields)
    return P(ConfigArg(kind, value), verdict, f"{kind}({label})")


# --- the calls and the property ----------------------------------------------------------


@dataclass
class Call:
    """One drawn call: its pieces by argument name, and the worst verdict among them."""

    parts: dict[str, P]

    @property
    def verdict(self) -> V:
        return worst(self.parts.values())

    def __getitem__(self, name: str) -> Any:
        return self.parts[name].value

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={p.label}" for name, p in self.parts.items())
        return f"Call<{self.verdict.name}>({shown})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


TARGETS = st.sampled_from(
    [
        *[()] * 5,
        *[("request",)] * 2,
        *[("config",)] * 2,
        *[("sendable",)] * 2,
        ("model",),
        ("provider",),
        ("request", "config"),
    ]
)


@st.composite
def completion_call(draw: st.DrawFn, sync: bool = True) -> Call:
    bad = draw(TARGETS)
    model = draw(MODEL_BAD if "model" in bad else MODEL_OK)
    in_request = model if draw(st.booleans()) else None
    return Call(
        {
            "provider": draw(PROVIDER_BAD if "provider" in bad else PROVIDER_OK),
            "model": model,
            "request": draw(request("request" in bad, in_request, "sendable" in bad)),
            "config": draw(config("config" in bad, sync)),
        }
    )


class Recorder:
    """The handler behind the MockTransport: records each request, answers a canned 200."""

    def __init__(self, streaming: bool) -> None:
        self.streaming = streaming
        self.sent: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        if self.streaming:
            return httpx.Response(
                200, content=_SSE_BODY, headers={"Content-Type": "text/event-stream"}
            )
        return httpx.Response(200, json=_COMPLETION_BODY)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


def check(call: Call, recorder: Recorder | None, run: Callable[[], Any]) -> Any:
    """Run one call and hold it to the property; return its result (None when it raised)."""
    sent = recorder.sent if recorder is not None else []
    error: llmkit.LLMError | None = None
    try:
        result = run()
    except llmkit.LLMError as exc:  # anything else escapes and fails the test as it is
        error = exc
    if error is not None:
        assert_no_secret(error)
        assert call.verdict is not OK, f"a valid call failed: {error!a}"
        if call.verdict >= CALL:
            assert not sent, f"refused only after sending {len(sent)} request(s): {error!a}"
        return None
    assert call.verdict < CALL, (
        f"accepted input it must refuse (sent {len(sent)} request(s)); "
        f"returned {type(result).__name__}"
    )
    if recorder is not None:
        assert len(sent) == 1, f"a successful call sent {len(sent)} requests"
    return result


def assert_no_secret(error: BaseException) -> None:
    assert SECRET not in str(error), "the API key leaked into str(error)"
    assert SECRET not in repr(error), "the API key leaked into repr(error)"


def _text(result: Any) -> str:
    return result.text if isinstance(result, ChatResponse) else str(result)


# --- the tests -----------------------------------------------------------------------------


@settings(_BASE, max_examples=50)
@given(call=completion_call())
def test_completion_returns_or_refuses_unsent(call: Call) -> None:
    recorder = Recorder(streaming=False)

    def run() -> Any:
        other = httpx.AsyncClient(transport=recorder.transport())  # the wrong kind
        with httpx.Client(transport=recorder.transport()) as client:
            cfg = call.parts["config"].value.build(client, other)
            return core.completion(call["provider"], call["model"], call["request"], cfg)

    result = check(call, recorder, run)
    if result is not None:
        assert isinstance(result, ChatResponse)
        assert result.text == "ok"


@settings(_BASE, max_examples=35)
@given(call=completion_call(), iterate=st.booleans())
def test_stream_returns_or_refuses_unsent(call: Call, iterate: bool) -> None:
    recorder = Recorder(streaming=True)

    def run() -> Any:
        other = httpx.AsyncClient(transport=recorder.transport())  # the wrong kind
        with httpx.Client(transport=recorder.transport()) as client:
            cfg = call.parts["config"].value.build(client, other)
            with core.stream(call["provider"], call["model"], call["request"], cfg) as stream:
                if iterate:
                    return "".join(chunk.text for chunk in stream)
                return stream.collect()

    result = check(call, recorder, run)
    if result is not None:
        assert _text(result) == "ok"


@settings(_BASE, max_examples=35)
@given(call=completion_call(sync=False), streaming=st.booleans())
def test_acompletion_returns_or_refuses_unsent(call: Call, streaming: bool) -> None:
    recorder = Recorder(streaming=streaming)

    async def main() -> Any:
        async with httpx.AsyncClient(transport=recorder.transport()) as client:
            with httpx.Client(transport=recorder.transport()) as other:
                cfg = call.parts["config"].value.build(client, other)
                args = (call["provider"], call["model"], call["request"], cfg)
                if not streaming:
                    return await core.acompletion(*args)
                async with await core.astream(*args) as stream:
                    return await stream.acollect()

    result = check(call, recorder, lambda: asyncio.run(main()))
    if result is not None:
        assert _text(result) == "ok"


@st.composite
def validate_call(draw: st.DrawFn) -> Call:
    bad = draw(
        st.sampled_from(
            [(), (), ("request",), ("request",), ("sendable",), ("model",), ("provider",)]
        )
    )
    model = draw(MODEL_BAD if "model" in bad else MODEL_OK)
    return Call(
        {
            "provider": draw(PROVIDER_BAD if "provider" in bad else PROVIDER_OK),
            "request": draw(request("request" in bad, model, "sendable" in bad)),
        }
    )


@settings(_BASE, max_examples=40)
@given(call=validate_call())
def test_validate_request_returns_or_refuses(call: Call) -> None:
    result = check(call, None, lambda: core.validate_request(call["provider"], call["request"]))
    if result is not None:
        assert isinstance(result, ChatRequest)


@st.composite
def chat_call(draw: st.DrawFn) -> Call:
    bad = draw(
        st.sampled_from(
            [(), (), ("text",), ("system_prompt",), ("config",), ("model",), ("provider",)]
        )
    )
    text_bad = st.one_of(
        SURROGATE_TEXT,
        NON_FINITE,
        pick(leaf(12345, BAD), leaf(None, BAD), leaf(["Hi"], BAD), leaf(b"Hi", BAD)),
    )
    system_ok = st.one_of(pick(leaf(None)), TEXT_OK)
    system_bad = st.one_of(SURROGATE_TEXT, pick(leaf(5, BAD), leaf({"role": "system"}, BAD)))
    fields = draw(record(SYNC_CONFIG, _REQUIRED_CONFIG, "config" in bad))
    value, verdict, label = as_fields(fields)
    return Call(
        {
            "provider": draw(PROVIDER_BAD if "provider" in bad else PROVIDER_OK),
            "model": draw(MODEL_BAD if "model" in bad else MODEL_OK),
            "text": draw(text_bad if "text" in bad else TEXT_OK),
            "system_prompt": draw(system_bad if "system_prompt" in bad else system_ok),
            "config": P(ConfigArg("dict", value), verdict, f"kwargs({label})"),
        }
    )


@settings(_BASE, max_examples=30)
@given(call=chat_call())
def test_chat_returns_or_refuses_unsent(call: Call) -> None:
    recorder = Recorder(streaming=False)

    def run() -> Any:
        other = httpx.AsyncClient(transport=recorder.transport())  # the wrong kind
        with httpx.Client(transport=recorder.transport()) as client:
            kwargs = call.parts["config"].value.build(client, other)
            return core.chat(
                call["provider"],
                call["model"],
                call["text"],
                system_prompt=call["system_prompt"],
                **kwargs,
            )

    result = check(call, recorder, run)
    if result is not None:
        assert result == "ok"


@st.composite
def config_kwargs(draw: st.DrawFn) -> P:
    fields = draw(record(SYNC_KWARGS, _REQUIRED_CONFIG, draw(st.booleans())))
    value, verdict, label = as_fields(fields)
    return P(value, verdict, f"Config({label})")


@settings(_BASE, max_examples=40)
@given(kwargs=config_kwargs())
def test_config_refuses_bad_fields_when_built(kwargs: P) -> None:
    recorder = Recorder(streaming=False)
    other = httpx.AsyncClient(transport=recorder.transport())  # the wrong kind
    with httpx.Client(transport=recorder.transport()) as client:
        refusal: llmkit.LLMError | None = None
        try:
            built = ConfigArg("Config", kwargs.value).build(client, other)
        except llmkit.LLMError as exc:
            refusal = exc
        if refusal is not None:
            assert_no_secret(refusal)
            assert kwargs.verdict is not OK, f"Config(...) refused valid fields: {refusal!a}"
            return
        assert kwargs.verdict is not BAD, "Config(...) accepted a field it must refuse"
        # What Config(...) may accept (a missing key, a wrong client) the call must refuse.
        hi = {"messages": [{"role": "user", "content": "Hi"}]}
        call = Call({"config": kwargs})
        result = check(call, recorder, lambda: core.completion("openai", "m", hi, built))
    if result is not None:
        assert result.text == "ok"
