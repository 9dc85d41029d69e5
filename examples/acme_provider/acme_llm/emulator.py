"""Acme's API as llmkit's contract emulator speaks it, for tests.

``AcmeProtocol`` plugs into :class:`llmkit_contracts.emulator.Emulator`:
it serves ``POST /v1/generate``, checks each request as the real API does
and writes scripted replies as Acme's JSON answer, its NDJSON stream or its
error envelope. Requests are refused, with Acme's status and envelope,
when the ``x-acme-key`` header is missing or empty (401), and with a 400
for an unknown top-level field, no model, no turns, a turn that is not
``{"speaker": "user" | "model", "text": str}`` or that opens with the model,
a ``max_output`` below 1, more than four or empty stop sequences, a
temperature outside 0 to 2, or a ``stream`` that is not a boolean.

Only the contract suite needs this module (it imports ``llmkit_contracts``,
which ships with llmkit); the codec in :mod:`acme_llm` never imports it::

    from llmkit_contracts.emulator import Emulator
    from acme_llm.emulator import AcmeProtocol

    with Emulator(AcmeProtocol()) as emulator:
        ...  # api_base=emulator.base_url
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final

from llmkit_contracts.emulator import (
    Received,
    Reply,
    Turn,
    WireProtocol,
    json_encode,
    split_text,
)

__all__ = ["AcmeProtocol"]

_PATH: Final = "/v1/generate"
_FIELDS: Final = ("model", "system", "turns", "max_output", "stop", "temperature", "stream")
_ROLES: Final = {"user": "user", "model": "assistant"}
_MAX_STOP: Final = 4
# llmkit's normalized finish reasons, as Acme writes them.
_STOP_REASONS: Final = {"stop": "done", "length": "max_output", "content_filter": "filtered"}
_KINDS: Final = {
    400: "invalid_request",
    401: "authentication",
    403: "permission",
    404: "not_found",
    405: "invalid_request",
    413: "too_large",
    422: "invalid_request",
    429: "rate_limited",
    503: "overloaded",
    529: "overloaded",
}


def _refuse(message: str, field: str | None = None) -> Reply:
    return Reply.error(400, message=message, type="invalid_request", param=field)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_turns(turns: Any) -> Reply | None:
    if not isinstance(turns, list) or not turns:
        return _refuse("'turns' must be a non-empty array of turns.", "turns")
    for i, turn in enumerate(turns):
        where = f"turns[{i}]"
        if not isinstance(turn, dict) or set(turn) != {"speaker", "text"}:
            return _refuse(f"'{where}' must be an object with 'speaker' and 'text' only.", where)
        if turn["speaker"] not in _ROLES:
            return _refuse(
                f"'{where}.speaker' must be 'user' or 'model', not {turn['speaker']!r}.",
                f"{where}.speaker",
            )
        if not isinstance(turn["text"], str):
            return _refuse(f"'{where}.text' must be a string.", f"{where}.text")
    if turns[0]["speaker"] != "user":
        return _refuse("The first turn must be the user's.", "turns[0].speaker")
    return None


def _check_options(payload: dict[str, Any]) -> Reply | None:
    system = payload.get("system")
    if system is not None and not isinstance(system, str):
        return _refuse("'system' must be a string.", "system")
    limit = payload.get("max_output")
    if limit is not None and (not _is_int(limit) or limit < 1):
        return _refuse(
            f"'max_output' must be an integer of at least 1, not {limit!r}.", "max_output"
        )
    stop = payload.get("stop")
    if stop is not None and (
        not isinstance(stop, list)
        or len(stop) > _MAX_STOP
        or not all(isinstance(s, str) and s for s in stop)
    ):
        return _refuse(f"'stop' must be at most {_MAX_STOP} non-empty strings.", "stop")
    temperature = payload.get("temperature")
    if temperature is not None and (
        isinstance(temperature, bool)
        or not isinstance(temperature, (int, float))
        or not 0 <= temperature <= 2
    ):
        return _refuse("'temperature' must be a number from 0 to 2.", "temperature")
    if not isinstance(payload.get("stream", False), bool):
        return _refuse("'stream' must be true or false.", "stream")
    return None


def _line(item: Mapping[str, Any]) -> bytes:
    return json_encode(item) + b"\n"


def _expressible(reply: Reply) -> None:
    if reply.calls or reply.reasoning is not None:
        raise ValueError("Acme has no tool calls and shows no reasoning; script Reply.text(...)")


class AcmeProtocol(WireProtocol):
    """Acme's generation API: ``/v1/generate``, JSON answers, NDJSON streams."""

    name: ClassVar[str] = "acme"
    base_path: ClassVar[str] = "/v1"
    stream_content_type: ClassVar[str] = "application/x-ndjson"

    def route(self, method: str, path: str) -> Reply | None:
        """Serve ``POST /v1/generate`` only (404, else 405)."""
        if path != _PATH:
            return Reply.error(404, message=f"No route for {method} {path}.", type="not_found")
        if method != "POST":
            return Reply.error(
                405,
                message=f"{path} takes POST, not {method}.",
                type="invalid_request",
                headers={"allow": "POST"},
            )
        return None

    def check(self, path: str, headers: Mapping[str, str], payload: Any) -> Reply | None:
        """Refuse what Acme refuses: no key, unknown fields, bad turns or options."""
        if not headers.get("x-acme-key", "").strip():
            return Reply.error(
                401,
                message="Missing API key: send it in the x-acme-key header.",
                type="authentication",
            )
        for name in payload:
            if name not in _FIELDS:
                return _refuse(
                    f"Unknown field {name!r}; Acme takes {', '.join(_FIELDS)}.", str(name)
                )
        model = payload.get("model")
        if not isinstance(model, str) or not model:
            return _refuse("'model' is required.", "model")
        return _check_turns(payload.get("turns")) or _check_options(payload)

    def wants_stream(self, path: str, payload: Any) -> bool:
        """``"stream": true`` in the body."""
        return isinstance(payload, dict) and payload.get("stream") is True

    def model(self, path: str, payload: Any) -> str:
        """The body's ``model``."""
        model = payload.get("model") if isinstance(payload, dict) else None
        return model if isinstance(model, str) else "emulator"

    def body(self, reply: Reply, payload: Any, *, seq: int, model: str) -> bytes:
        """An answer object.

        Raises:
            ValueError: the reply calls tools or shows reasoning, which Acme cannot.
        """
        _expressible(reply)
        return json_encode(
            {
                "id": f"gen_emu_{seq}",
                "model": model,
                "output": reply.content or "",
                "stop_reason": _STOP_REASONS[reply.finish_reason],
                "tokens_in": reply.prompt_tokens,
                "tokens_out": reply.completion_tokens,
            }
        )

    def events(self, reply: Reply, payload: Any, *, seq: int, model: str) -> list[bytes]:
        """``{"text"}`` lines, then the ``{"done": true, ...}`` line.

        Raises:
            ValueError: the reply calls tools or shows reasoning, which Acme cannot.
        """
        _expressible(reply)
        lines = [
            _line({"text": piece}) for piece in split_text(reply.content or "", reply.chunk_size)
        ]
        done = {
            "done": True,
            "stop_reason": _STOP_REASONS[reply.finish_reason],
            "tokens_in": reply.prompt_tokens,
            "tokens_out": reply.completion_tokens,
        }
        return [*lines, _line(done)]

    def error_body(self, reply: Reply) -> bytes:
        """Acme's error envelope; the kind follows the status unless given."""
        kind = reply.error_type or _KINDS.get(
            reply.status, "server" if reply.status >= 500 else "invalid_request"
        )
        error = {"kind": kind, "message": reply.message}
        if reply.param is not None:
            error["field"] = reply.param
        return json_encode({"error": error})

    def error_event(self, reply: Reply) -> bytes:
        """An ``{"error": ...}`` line, as Acme sends when a stream fails."""
        error = {"kind": reply.error_type or "server", "message": reply.message}
        return _line({"error": error})

    def received(self, path: str, payload: Any) -> Received:
        """``system`` is the system text; speaker ``model`` is the assistant."""
        if not isinstance(payload, dict):
            return Received()
        turns = payload.get("turns")
        stop = payload.get("stop")
        return Received(
            model=payload.get("model"),
            system=payload.get("system"),
            turns=tuple(
                Turn(role=_ROLES.get(str(turn.get("speaker")), "user"), text=turn.get("text", ""))
                for turn in (turns if isinstance(turns, list) else ())
                if isinstance(turn, dict)
            ),
            stream=payload.get("stream") is True,
            max_tokens=payload.get("max_output"),
            stop=tuple(stop) if isinstance(stop, list) else (),
            temperature=payload.get("temperature"),
        )
