"""The public surface: one curated __all__, lazy and cheap to import."""

from __future__ import annotations

import subprocess
import sys

import pytest

import llmkit


def test_api_all_is_sorted_and_resolves() -> None:
    assert list(llmkit.__all__) == sorted(llmkit.__all__)
    for name in llmkit.__all__:
        assert getattr(llmkit, name) is not None, name


def test_api_public_names_are_listed() -> None:
    public = {name for name in dir(llmkit) if not name.startswith("_")}
    assert public <= set(llmkit.__all__)


def test_api_unknown_attribute_raises() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        llmkit.no_such_name  # noqa: B018


def test_api_import_is_light() -> None:
    code = (
        "import sys, llmkit; "
        "print(sorted(m for m in ('plum', 'httpx', 'llmkit_providers.openai', 'llmkit.core') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_api_builtin_key_is_lazy_reexport() -> None:
    from llmkit_providers.openai import OpenAI

    assert llmkit.OpenAI is OpenAI
