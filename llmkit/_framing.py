"""Incremental stream framing: bytes in, frames out.

Two push-style decoders turn a response body that arrives in arbitrary chunks
into frames:

* :class:`SSEDecoder` parses ``text/event-stream`` (Server-Sent Events, per
  the WHATWG HTML "event stream interpretation" rules) into :class:`SSEEvent`.
* :class:`NDJSONDecoder` splits newline-delimited JSON into one ``bytes``
  object per non-blank line.

Other formats (binary ones such as AWS event streams) are added with
:func:`register_framing`; a call names its format in ``HttpCall.framing``.

Both built-in decoders are robust to any chunk boundary: a chunk may end in the middle of a
line, between the CR and LF of a CRLF pair, or inside a multi-byte UTF-8
character. Payloads stay ``bytes`` so a JSON decoder can consume them
without an intermediate ``str``.

Both sit on the streaming hot path, so the common case (LF line endings,
``data: ...`` events, several per chunk) is handled with a few C-level
``bytes`` operations per chunk and no per-byte Python loop; the general
line-by-line path is taken only when needed. Only the standard library is
used.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, Final, NamedTuple, Protocol

__all__ = [
    "Framer",
    "Framing",
    "NDJSONDecoder",
    "SSEDecoder",
    "SSEEvent",
    "framing",
    "register_framing",
    "unregister_framing",
]

_BOM: Final = b"\xef\xbb\xbf"
_LF: Final = 0x0A
_CR: Final = 0x0D
# A CR not followed by LF (a lone-CR line ending).
_LONE_CR: Final = re.compile(rb"\r(?!\n)")


def _joined(parts: list[bytes], chunk: bytes) -> bytes:
    """Return the pieces held since the last line end plus ``chunk``; forget the pieces."""
    if not parts:
        return chunk
    parts.append(chunk)
    buf = b"".join(parts)
    parts.clear()
    return buf


class SSEEvent(NamedTuple):
    """One dispatched server-sent event.

    Attributes:
        event: Value of the last ``event:`` field of the event, or ``None``
            when the event had none (an ``event:`` field with an empty value
            gives ``""``).
        data: Values of the event's ``data:`` fields joined with line feeds,
            as raw bytes (not decoded). ``b"[DONE]"`` and similar sentinels
            are passed through untouched.
        id: The last event ID at dispatch time: the value of the most recent
            ``id:`` field seen on the stream so far (per spec it persists
            across events), or ``None`` if no ``id:`` field has been seen.
        retry: Value of the event's last valid ``retry:`` field (ASCII digits
            only), or ``None``.
    """

    event: str | None
    data: bytes
    id: str | None
    retry: int | None


# ``tuple.__new__`` on the NamedTuple skips the generated Python-level
# ``__new__``: roughly half the construction cost on the hot path.
_new_event: Final = tuple.__new__


class SSEDecoder:
    """Incremental Server-Sent Events decoder.

    Feed it raw body chunks with :meth:`feed`; call :meth:`flush` once at end
    of stream. Lines may end with CRLF, LF or CR; a blank line dispatches the
    pending event; lines starting with ``:`` are comments; unknown fields are
    ignored; a UTF-8 BOM at the very start of the stream is skipped. An event
    without any ``data:`` line is not dispatched (per spec), but its
    ``id:``/``retry:`` fields still update :attr:`last_event_id` and
    :attr:`retry`.
    """

    __slots__ = (
        "_at_start",
        "_clean",
        "_data",
        "_event",
        "_event_retry",
        "_guard",
        "_head",
        "_last_id",
        "_parts",
        "_retry",
        "_skip_lf",
    )

    def __init__(self) -> None:
        # Pieces of the current incomplete line; never contain CR or LF.
        self._parts: list[bytes] = []
        # Fields of the event being assembled; ``_clean`` is True while none
        # has been set since the last blank line.
        self._data: list[bytes] = []
        self._event: str | None = None
        self._event_retry: int | None = None
        self._clean = True
        # Connection-level state.
        self._last_id: str | None = None
        self._retry: int | None = None
        # The previous chunk ended with CR: drop an LF that starts the next.
        self._skip_lf = False
        # Still looking for a BOM at stream start; ``_head`` holds a prefix.
        self._at_start = True
        self._head = b""
        # ``_skip_lf or _at_start``: one test on the hot path.
        self._guard = True

    @property
    def last_event_id(self) -> str | None:
        """The most recent ``id:`` value seen on the stream, or ``None``."""
        return self._last_id

    @property
    def retry(self) -> int | None:
        """The most recent valid ``retry:`` value (milliseconds), or ``None``."""
        return self._retry

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Consume one chunk of the body.

        Args:
            chunk: The next bytes of the stream, split anywhere.

        Returns:
            The events completed by this chunk, in order (often empty).
        """
        if self._guard:
            chunk = self._guard_chunk(chunk)
        elif (
            # The commonest chunk of all: exactly one "data: D\n\n" event, with
            # nothing pending. Eight C-level tests, and out.
            not self._parts
            and self._clean
            and chunk.endswith(b"\n\n")
            and chunk.startswith(b"data: ")
        ):
            data = chunk[6:-2]
            if data.find(b"\n") < 0 and chunk.find(b"\r") < 0:
                return [_new_event(SSEEvent, (None, data, self._last_id, None))]
        has_cr = chunk.find(b"\r") >= 0
        if not has_cr and chunk.find(b"\n") < 0:
            # No line ends here: just remember the piece (no copying).
            if chunk:
                self._parts.append(chunk)
            return []
        buf = _joined(self._parts, chunk)
        if has_cr:
            buf = self._normalize(buf)
        out: list[SSEEvent] = []
        pos = 0
        if not self._clean:
            # Finish the event under construction on the general path.
            end = buf.find(b"\n\n")
            if end < 0:
                self._lines(buf, out)
                return out
            self._block(buf[:end], out)
            pos = end + 2
        # From here no event is under construction: try the fast paths, which
        # take a run of complete events of one common shape in a few C calls.
        if buf.startswith(b"data: ", pos):
            # ``data: D\n\n`` events: valid if no LF is left inside any D.
            end = buf.rfind(b"\n\n", pos)
            if end >= 0:
                run = buf[pos + 6 : end]
                datas = run.split(b"\n\ndata: ")
                if len(datas) == 1:
                    if run.find(b"\n") < 0:
                        out.append(_new_event(SSEEvent, (None, run, self._last_id, None)))
                        pos = end + 2
                elif b"".join(datas).find(b"\n") < 0:
                    last_id = self._last_id
                    out += [_new_event(SSEEvent, (None, data, last_id, None)) for data in datas]
                    pos = end + 2
        elif buf.startswith(b"event: ", pos):
            pos = self._named_run(buf, pos, out)
        if pos < len(buf):
            rest = buf[pos:] if pos else buf
            if rest.find(b"\n") < 0:
                self._parts.append(rest)
            else:
                self._lines(rest, out)
        return out

    def flush(self) -> list[SSEEvent]:
        """Signal end of stream.

        Leniently treats an unterminated last line as complete and
        dispatches a pending event that has data even though its closing
        blank line never arrived (strictly, the spec discards it). The
        decoder is then ready for a new stream; :attr:`last_event_id` and
        :attr:`retry` are kept.

        Returns:
            The pending event, if any, as a list of zero or one event.
        """
        if self._head:
            self._parts.append(self._head)
        if self._parts:  # never holds empty pieces
            self._field(b"".join(self._parts))
        out: list[SSEEvent] = []
        self._dispatch(out)
        self._parts = []
        self._head = b""
        self._skip_lf = False
        self._at_start = self._guard = True
        return out

    def _guard_chunk(self, chunk: bytes) -> bytes:
        """Drop a stream-start BOM or an LF completing a chunk-final CR."""
        if self._at_start:
            head = self._head + chunk if self._head else chunk
            if len(head) < len(_BOM) and _BOM.startswith(head):
                self._head = head  # could still be a split BOM
                return b""
            self._head = b""
            self._at_start = False
            chunk = head[len(_BOM) :] if head.startswith(_BOM) else head
        if self._skip_lf and chunk:
            self._skip_lf = False
            if chunk[0] == _LF:
                chunk = chunk[1:]
        self._guard = self._at_start or self._skip_lf
        return chunk

    def _normalize(self, buf: bytes) -> bytes:
        """Rewrite CRLF and lone CR line endings of ``buf`` to LF.

        A CR that ends the buffer terminates its line now; an LF opening the
        next chunk then belongs to it and must not count as an empty line.
        """
        if buf[-1] == _CR:
            self._skip_lf = self._guard = True
            if _LONE_CR.search(buf, 0, len(buf) - 1) is None:
                return buf.replace(b"\r", b"") + b"\n"
        elif _LONE_CR.search(buf) is None:
            # Only CRLF: deleting every CR is several times faster than
            # replacing the two-byte sequence.
            return buf.replace(b"\r", b"")
        return buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")

    def _named_run(self, buf: bytes, pos: int, out: list[SSEEvent]) -> int:
        r"""Fast path for ``event: N\ndata: D\n\n`` events starting at ``pos``.

        Returns:
            Where parsing must resume: past the run, or ``pos`` if the
            complete events there do not all have exactly this shape.
        """
        end = buf.rfind(b"\n\n", pos)
        if end < 0:
            return pos
        run = buf[pos + 7 : end]
        blocks = run.split(b"\n\nevent: ")
        if len(blocks) == 1:
            name, sep, data = run.partition(b"\ndata: ")
            if not sep or name.find(b"\n") >= 0 or data.find(b"\n") >= 0:
                return pos
            out.append(
                _new_event(SSEEvent, (name.decode("utf-8", "replace"), data, self._last_id, None))
            )
            return end + 2
        names, seps, datas = zip(*[block.partition(b"\ndata: ") for block in blocks], strict=True)
        if not all(seps) or b"".join(names).find(b"\n") >= 0 or b"".join(datas).find(b"\n") >= 0:
            return pos
        last_id = self._last_id
        out += [
            _new_event(SSEEvent, (name.decode("utf-8", "replace"), data, last_id, None))
            for name, data in zip(names, datas, strict=True)
        ]
        return end + 2

    def _block(self, block: bytes, out: list[SSEEvent]) -> None:
        """Apply the lines of ``block``, then the blank line that ended it."""
        for line in block.split(b"\n"):
            if line:
                self._field(line)
            else:
                self._dispatch(out)
        self._dispatch(out)

    def _lines(self, buf: bytes, out: list[SSEEvent]) -> None:
        """General path: parse an LF-only buffer, keep its incomplete line."""
        blocks = buf.split(b"\n\n")
        tail = blocks.pop()
        if blocks:
            clean = self._clean
            last_id = self._last_id
            for block in blocks:
                if clean:
                    # Common single-event shapes, without per-line dispatch.
                    nl = block.find(b"\n")
                    if nl < 0:
                        if block[:6] == b"data: ":
                            out.append(_new_event(SSEEvent, (None, block[6:], last_id, None)))
                            continue
                    elif (
                        block[:7] == b"event: "
                        and block.startswith(b"data: ", nl + 1)
                        and block.find(b"\n", nl + 1) < 0
                    ):
                        name = block[7:nl].decode("utf-8", "replace")
                        data = block[nl + 7 :]
                        out.append(_new_event(SSEEvent, (name, data, last_id, None)))
                        continue
                self._block(block, out)
                last_id = self._last_id
                clean = True
        if tail.find(b"\n") >= 0:
            lines = tail.split(b"\n")
            tail = lines.pop()
            for line in lines:
                if line:
                    self._field(line)
                else:
                    self._dispatch(out)
        if tail:
            self._parts.append(tail)

    def _field(self, line: bytes) -> None:
        """Apply one non-blank line (without its terminator) to the state."""
        colon = line.find(b":")
        if colon == 0:
            return  # comment
        if colon < 0:
            name = line
            value = b""
        else:
            name = line[:colon]
            value = line[colon + 1 :]
            if value[:1] == b" ":
                value = value[1:]
        if name == b"data":
            self._data.append(value)
            self._clean = False
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
            self._clean = False
        elif name == b"id":
            if value.find(b"\x00") < 0:
                self._last_id = value.decode("utf-8", "replace")
        elif name == b"retry" and value.isdigit():  # bytes.isdigit: ASCII only
            try:
                retry = int(value)
            except ValueError:  # beyond sys.get_int_max_str_digits(): ignore
                return
            self._retry = self._event_retry = retry
            self._clean = False

    def _dispatch(self, out: list[SSEEvent]) -> None:
        """Finish the current event: emit it if it has data, then reset."""
        if self._clean:
            return
        if self._data:
            data = b"\n".join(self._data)
            out.append(_new_event(SSEEvent, (self._event, data, self._last_id, self._event_retry)))
            self._data = []
        self._event = None
        self._event_retry = None
        self._clean = True


class NDJSONDecoder:
    """Incremental newline-delimited JSON framer.

    Splits the stream on LF (so CRLF works too), strips surrounding ASCII
    whitespace from each line and drops blank lines. Lines are returned as
    ``bytes``, ready for a JSON decoder; they are not parsed here.
    """

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        # Pieces of the current incomplete line; never contain LF.
        self._parts: list[bytes] = []

    def feed(self, chunk: bytes) -> list[bytes]:
        """Consume one chunk of the body.

        Args:
            chunk: The next bytes of the stream, split anywhere.

        Returns:
            The complete non-blank lines ended by this chunk, stripped and
            without their terminators (often empty).
        """
        if chunk.find(b"\n") < 0:
            if chunk:
                self._parts.append(chunk)
            return []
        buf = _joined(self._parts, chunk)
        lines = buf.split(b"\n")
        tail = lines.pop()
        if tail:
            self._parts.append(tail)
        # ``bytes.strip`` returns the same object when there is nothing to strip.
        return [stripped for line in lines if (stripped := line.strip())]

    def flush(self) -> list[bytes]:
        """Signal end of stream.

        Returns:
            The trailing line that had no terminator, if it is not blank, as
            a list of zero or one line. The decoder is then ready for reuse.
        """
        if not self._parts:
            return []
        line = b"".join(self._parts).strip()
        self._parts = []
        return [line] if line else []


# --- the framing registry: how a provider's stream is cut into events -------------------


class Framer(Protocol):
    """What a framing builds per stream: push bytes in, get complete events out."""

    def feed(self, chunk: bytes) -> Iterable[Any]:
        """Return the events that ``chunk`` completes."""
        ...

    def flush(self) -> Iterable[Any]:
        """Return what the end of the body completes (or raise on a partial event)."""
        ...


class Framing(NamedTuple):
    """A registered stream format.

    Attributes:
        name: what an ``HttpCall.framing`` names.
        new: builds one :class:`Framer` per stream.
        event_type: the class of the events it yields; a provider's
            ``decode_event`` method is annotated with it (and resolved once
            per stream, on it).
    """

    name: str
    new: Callable[[], Framer]
    event_type: type


_framings: dict[str, Framing] = {
    "sse": Framing("sse", SSEDecoder, SSEEvent),
    "ndjson": Framing("ndjson", NDJSONDecoder, bytes),
}
_BUILT_IN: Final = frozenset(_framings)


def register_framing(name: str, new: Callable[[], Framer], event_type: type) -> Framing:
    """Register a stream format (for example AWS event streams) under ``name``.

    Providers then set ``HttpCall(framing=name)`` and register
    ``decode_event`` for ``event_type``. Registering a name again replaces
    it, except the built-in ``"sse"`` and ``"ndjson"``.

    Raises:
        ValueError: ``name`` is a built-in framing, or empty.
        TypeError: ``new`` is not callable or ``event_type`` not a class.
    """
    if not isinstance(name, str) or not name:
        raise ValueError("a framing needs a non-empty name")
    if name in _BUILT_IN:
        raise ValueError(f"{name!r} is a built-in framing; register yours under another name")
    if not callable(new) or not isinstance(event_type, type):
        raise TypeError("register_framing(name, new, event_type): new() builds a framer")
    spec = _framings[name] = Framing(name, new, event_type)
    return spec


def unregister_framing(name: str) -> None:
    """Remove a framing added with :func:`register_framing` (built-ins stay)."""
    if name not in _BUILT_IN:
        _framings.pop(name, None)


def _snapshot() -> dict[str, Framing]:
    return dict(_framings)


def _restore(saved: dict[str, Framing]) -> None:
    _framings.clear()
    _framings.update(saved)


def framing(name: str) -> Framing | None:
    """Return the framing registered under ``name``, or ``None``."""
    return _framings.get(name)
