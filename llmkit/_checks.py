"""Checks shared by request and config validation: wire-safe JSON and HTTP headers.

Both return a description of the first problem (or ``None``) rather than
raising, so each caller builds the error its layer needs. Neither ever puts
a header value into a description: it may be a credential.
"""

from __future__ import annotations

import math
import re
from typing import Any

import msgspec

__all__ = [
    "MAX_JSON_DEPTH",
    "OWNED_HEADERS",
    "free_form_problem",
    "has_surrogate",
    "header_problem",
    "json_problem",
]

# How deep free-form JSON may nest when an encoder gave up on its depth
# (msgspec stops near Python's C recursion limit with a RecursionError that
# names nothing): the walk names the first value past this. Real tool
# schemas nest a few levels.
MAX_JSON_DEPTH = 100

# Headers that frame the message or the connection: the transport writes them,
# and a user's value would corrupt the request (h11 refuses some mid-send).
OWNED_HEADERS = frozenset(
    [
        "connection",
        "content-length",
        "host",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ]
)

_SURROGATE = re.compile("[\ud800-\udfff]")
# RFC 9110 token characters: what a header name may hold.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def has_surrogate(text: str) -> bool:
    """Return whether ``text`` holds a lone surrogate, which UTF-8 cannot encode."""
    # isascii() runs in C and settles the common case without a scan.
    return not text.isascii() and _SURROGATE.search(text) is not None


def _string_problem(text: str, path: str) -> str | None:
    if has_surrogate(text):
        return (
            f"{path} holds a lone surrogate (a half of a UTF-16 pair), which UTF-8 "
            "cannot encode; decode the text with errors='replace' or remove it"
        )
    return None


def json_problem(value: Any, path: str = "$", *, max_depth: int | None = None) -> str | None:
    """Return why ``value`` cannot be sent as JSON, naming its path, or ``None``.

    Walks iteratively (so any depth is safe to inspect), through dicts,
    lists, tuples and msgspec Structs. Refused: lone surrogates in strings
    and keys, NaN and infinite floats, keys that are neither strings nor
    ints, objects JSON has no form for, and nesting deeper than
    ``max_depth`` when given. Slow (it formats every path): run it to name
    a problem that :func:`free_form_problem` or an encoder detected.
    """
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    pop, push = stack.pop, stack.append
    while stack:
        item, where, depth = pop()
        kind = type(item)
        if kind is str:
            problem = _string_problem(item, where)
            if problem is not None:
                return problem
        elif kind is float:
            if not math.isfinite(item):
                return f"{where} is {item}, which JSON cannot hold; send a finite number or null"
        elif kind is int or kind is bool or item is None:
            continue
        elif kind is dict or kind is list or kind is tuple or isinstance(item, msgspec.Struct):
            if max_depth is not None and depth >= max_depth:
                return (
                    f"{where} nests deeper than {max_depth} levels; flatten it "
                    "(no provider accepts JSON that deep)"
                )
            if kind is dict:
                for key, inner in item.items():
                    if type(key) is str:
                        problem = _string_problem(key, f"{where}.{key!r}")
                        if problem is not None:
                            return problem
                    elif type(key) is not int:
                        return (
                            f"{where} has a key of type {type(key).__name__}; "
                            "JSON object keys must be strings"
                        )
                    push((inner, f"{where}.{key}", depth + 1))
            elif kind is list or kind is tuple:
                for index, inner in enumerate(item):
                    push((inner, f"{where}[{index}]", depth + 1))
            else:
                for name in item.__struct_fields__:
                    push((getattr(item, name), f"{where}.{name}", depth + 1))
        else:
            # What msgspec can still encode (datetime, UUID, set, bytes, enums)
            # becomes builtins here and is walked; anything else is refused.
            try:
                converted = msgspec.to_builtins(item)
            except (TypeError, ValueError, RecursionError):
                return (
                    f"{where} is of type {kind.__name__}, which JSON cannot hold; use str, "
                    "int, float, bool, None, list or dict"
                )
            push((converted, where, depth))
    return None


_pack = msgspec.msgpack.Encoder().encode
# A msgpack float64 (0xcb) whose exponent bits are all ones: NaN or +-inf.
# JSON encoders write those as null, silently; msgpack keeps them visible.
_NON_FINITE = re.compile(rb"\xcb[\x7f\xff][\xf0-\xff]")


def free_form_problem(values: list[tuple[str, Any]]) -> str | None:
    """Return the first problem among free-form JSON ``(path, value)`` pairs, or ``None``.

    Free-form values (``extra_body``, tool parameters, JSON schemas) are
    typed ``Any``, so nothing else checks them. One msgpack encoding, in C,
    finds every problem but a non-finite float, which msgpack keeps visible
    where JSON would write ``null``; a byte scan rules that out for ordinary
    values. The slow walk that names the path runs only when something is
    found. Nesting is refused where the encoder gives up on it (near
    Python's C recursion limit, which differs between versions), with the
    path of the first value deeper than :data:`MAX_JSON_DEPTH`.
    """
    try:
        packed = _pack([value for _, value in values])
    except (TypeError, ValueError, UnicodeError, RecursionError, OverflowError):
        pass
    else:
        if _NON_FINITE.search(packed) is None:
            return None
    for path, value in values:
        problem = json_problem(value, path, max_depth=MAX_JSON_DEPTH)
        if problem is not None:
            return problem
    return None


def header_problem(name: Any, value: Any, where: str) -> str | None:
    """Return why header ``name: value`` cannot be sent, or ``None``.

    ``where`` names the header's origin (``"config header"``). The value is
    never quoted: it may be a credential.
    """
    if type(name) is not str or _TOKEN.fullmatch(name) is None:
        shown = repr(name) if type(name) is str and name.isprintable() else "a name"
        return (
            f"{where} {shown} is not a valid header name; use letters, digits and "
            "!#$%&'*+-.^_`|~ only (no spaces, colons or line breaks)"
        )
    if name.lower() in OWNED_HEADERS:
        return f"{where} {name!r} is set by the transport; remove it"
    if type(value) is not str:
        return f"{where} {name!r} must be a string, not {type(value).__name__}"
    if not value.isascii() or not value.replace("\t", " ").isprintable():
        return f"{where} {name!r} must be one line of ASCII text"
    if value != value.strip(" \t"):
        # HTTP strips it, or (h11) refuses the request mid-send.
        return f"{where} {name!r} must not start or end with spaces or tabs"
    return None
