"""Recorded provider traffic for replay tests: load it, and import more of it.

``tests/fixtures/<provider>/`` holds one JSON file per recorded HTTP
interaction, in the corpus format::

    {"id", "source", "provider", "kind", "fidelity",
     "request":  {"method", "host", "path", "query"?, "headers", "body"},
     "response": {"status", "headers", "body_text"}}

Files are named ``<provider>-<kind>-<name>.json``. ``kind`` is ``chat``,
``chat_stream``, ``error`` and so on. Where an imported request body held
base64 blobs longer than :data:`BLOB_LIMIT` characters, they were replaced
by a short base64 placeholder (a ``data:`` URL keeps its prefix) and the
JSON paths of the replaced values are listed under ``"stripped_blobs"``.

This module only reads JSON; it never imports llmkit, so expectations built
from a fixture stay independent of the code under test. Test modules ``import corpus``:
pytest puts the tests folder on ``sys.path`` (``pythonpath`` in
pyproject.toml), since it is not a package.

To import recordings from a corpus checkout (a maintainer task, not CI)::

    python tests/corpus.py /path/to/corpus tests/fixtures/openai 'openai-chat-*.json' ...
"""

from __future__ import annotations

import base64
import json
import re
import sys
from pathlib import Path
from typing import Any

__all__ = [
    "BLOB_LIMIT",
    "FIXTURES",
    "import_fixture",
    "load",
    "sse_data",
    "strip_blobs",
]

FIXTURES = Path(__file__).resolve().parent / "fixtures"
BLOB_LIMIT = 2048

_DATA_URL = re.compile(r"(data:[^,;]*;base64,)([A-Za-z0-9+/=\r\n]+)", re.ASCII)
_BASE64 = re.compile(r"[A-Za-z0-9+/\r\n]+={0,2}", re.ASCII)


def load(provider: str, kind: str, *, path: str | None = None) -> list[dict[str, Any]]:
    """Return the recorded interactions of one provider and kind, sorted by id.

    Args:
        provider: the folder under ``tests/fixtures`` (``"openai"``).
        kind: the recording kind (``"chat"``, ``"chat_stream"``, ``"error"``).
        path: when given, only interactions whose request went to this path.
    """
    records = []
    for file in sorted((FIXTURES / provider).glob(f"{provider}-{kind}-*.json")):
        with file.open(encoding="utf-8") as fh:
            record = json.load(fh)
        if record["kind"] != kind:
            continue
        if path is not None and record["request"]["path"] != path:
            continue
        records.append(record)
    records.sort(key=lambda record: record["id"])
    return records


def sse_data(body: str) -> list[str]:
    """Return the ``data`` payloads of a server-sent-events body, in order.

    A plain reading of the SSE format (blank line ends an event, several
    ``data:`` lines join with a line feed, ``:`` lines are comments), kept
    separate from llmkit's own framing so tests can check it.
    """
    payloads: list[str] = []
    data: list[str] = []
    for line in body.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if not line:
            if data:
                payloads.append("\n".join(data))
            data = []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if name == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        payloads.append("\n".join(data))
    return payloads


def _placeholder(size: int) -> str:
    # Still valid base64, so the value keeps its shape; it decodes to a note.
    return base64.b64encode(f"stripped: {size} base64 characters".encode()).decode()


def strip_blobs(
    value: Any, *, limit: int = BLOB_LIMIT, at: str = "$", stripped: list[str] | None = None
) -> tuple[Any, list[str]]:
    """Return ``value`` with long base64 strings replaced, and the JSON paths replaced.

    A string longer than ``limit`` that is a base64 ``data:`` URL keeps its
    ``data:<type>;base64,`` prefix; a string that is bare base64 is replaced
    whole. Other long strings (prose, documents as text) are kept.
    """
    if stripped is None:
        stripped = []
    if isinstance(value, dict):
        return {
            key: strip_blobs(item, limit=limit, at=f"{at}.{key}", stripped=stripped)[0]
            for key, item in value.items()
        }, stripped
    if isinstance(value, list):
        return [
            strip_blobs(item, limit=limit, at=f"{at}[{i}]", stripped=stripped)[0]
            for i, item in enumerate(value)
        ], stripped
    if isinstance(value, str) and len(value) > limit:
        match = _DATA_URL.fullmatch(value)
        if match:
            stripped.append(at)
            return match.group(1) + _placeholder(len(match.group(2))), stripped
        if _BASE64.fullmatch(value):
            stripped.append(at)
            return _placeholder(len(value)), stripped
    return value, stripped


def import_fixture(source: Path, folder: Path) -> Path:
    """Copy one corpus file into ``folder`` with its request body's blobs stripped."""
    with source.open(encoding="utf-8") as fh:
        record = json.load(fh)
    body, stripped = strip_blobs(record["request"].get("body"))
    record["request"]["body"] = body
    if stripped:
        record["stripped_blobs"] = stripped
    target = folder / source.name
    with target.open("w", encoding="utf-8") as fh:
        json.dump(record, fh, indent=1, ensure_ascii=False)
        fh.write("\n")
    return target


def _main(argv: list[str]) -> int:
    if len(argv) < 3:
        print("usage: corpus.py SOURCE_DIR TARGET_DIR GLOB...", file=sys.stderr)
        return 2
    source, target = Path(argv[0]), Path(argv[1])
    target.mkdir(parents=True, exist_ok=True)
    for pattern in argv[2:]:
        for file in sorted(source.glob(pattern)):
            print(import_fixture(file, target))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
