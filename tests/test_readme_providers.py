"""The README's provider table says what provider_info reports, for every built-in."""

import re
from importlib.metadata import entry_points
from pathlib import Path

from llmkit import core
from llmkit.provider import ENTRY_POINT_GROUP

README = Path(__file__).resolve().parent.parent / "README.md"

# Table column -> Capabilities flag.
COLUMNS = {
    "streaming": "streaming",
    "tools": "tools",
    "parallel tools": "parallel_tool_calls",
    "vision": "vision",
    "files": "file_input",
    "JSON mode": "json_mode",
    "JSON schema": "json_schema",
    "reasoning": "reasoning",
    "embeddings": "embeddings",
}


def _table() -> dict[str, dict[str, str]]:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Providers\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[2:]:
        cells = dict(
            zip(header, (cell.strip() for cell in line.strip("|").split("|")), strict=True)
        )
        rows[cells["name"].strip("`")] = cells
    return rows


def _builtins() -> set[str]:
    return {
        entry.name
        for entry in entry_points(group=ENTRY_POINT_GROUP)
        if entry.value.startswith("llmkit_providers.")
    }


def test_readme_lists_every_builtin_provider() -> None:
    assert set(_table()) == _builtins()


def test_readme_provider_table_matches_provider_info() -> None:
    for name, row in _table().items():
        info = core.provider_info(name)
        key_cell = f"`{info.api_key_env}`" if info.api_key_env else "none"
        assert row["key variable"] == key_cell, name
        for column, flag in COLUMNS.items():
            cell = row[column]
            default = getattr(info.capabilities, flag)
            if cell in ("yes", "no"):
                assert default is (cell == "yes"), f"{name}: {column} says {cell}"
                continue
            # A list of models: on for each of them, off by default.
            models = re.findall(r"`([^`]+)`", cell)
            assert models, f"{name}: {column} cell {cell!r} is neither yes, no nor models"
            assert default is False, f"{name}: {column} lists models but is on for all"
            for model in models:
                assert getattr(core.provider_info(name, model).capabilities, flag), (name, model)
