"""The floor's response structs: only the fields a raw httpx + msgspec client reads.

Shared by ``run.py``, ``curves.py`` and ``profiling.py``, so every benchmark
measures llmkit against the same floor.
"""

from __future__ import annotations

import msgspec

__all__ = [
    "AEvent",
    "AMessage",
    "FChoice",
    "FChunk",
    "FChunkChoice",
    "FDelta",
    "FMessage",
    "FResponse",
    "FUsage",
]


class FMessage(msgspec.Struct):
    role: str
    content: str | None = None


class FChoice(msgspec.Struct):
    message: FMessage
    finish_reason: str | None = None


class FUsage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class FResponse(msgspec.Struct):
    id: str
    choices: list[FChoice]
    usage: FUsage | None = None


class FDelta(msgspec.Struct):
    content: str | None = None


class FChunkChoice(msgspec.Struct):
    delta: FDelta
    finish_reason: str | None = None


class FChunk(msgspec.Struct):
    choices: list[FChunkChoice]
    usage: FUsage | None = None


# Anthropic's Messages format, for the Anthropic rows of run.py.


class ABlock(msgspec.Struct):
    type: str
    text: str = ""


class AUsage(msgspec.Struct):
    input_tokens: int = 0
    output_tokens: int = 0


class AMessage(msgspec.Struct):
    id: str
    content: list[ABlock]
    stop_reason: str | None = None
    usage: AUsage | None = None


class ADelta(msgspec.Struct):
    type: str = ""
    text: str = ""


class AEvent(msgspec.Struct):
    type: str
    delta: ADelta | None = None
    usage: AUsage | None = None
