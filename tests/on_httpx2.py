"""Run pytest with httpx2 standing in for httpx in this process (``tox -e httpx2``).

    python tests/on_httpx2.py [pytest arguments]

``httpx2.alias_httpx()`` makes ``import httpx`` resolve to httpx2 and
``import httpcore`` to httpcore2, so the transport's tests run unchanged on
httpx2: their mock transports and injected clients, and llmkit's own
pooled clients (``LLMKIT_HTTP_BACKEND=httpx2``, set by tox, also routes the
backend selection to httpx2). It must run before anything imports httpx.
"""

from __future__ import annotations

import sys

import httpx2

httpx2.alias_httpx()

import httpx  # noqa: E402  (after the alias, by design)
import pytest  # noqa: E402

if __name__ == "__main__":
    if httpx.__name__ != "httpx2":
        sys.exit(f"httpx is still {httpx.__name__}: the alias did not take")
    # httpx2 imports anyio before pytest loads anyio's plugin, which pytest
    # would warn about (and the config makes every warning an error). The
    # two modules that put httpx and httpx2 side by side on purpose cannot
    # run where one stands in for the other; the default run has them.
    options = [
        "-W",
        "ignore::pytest.PytestAssertRewriteWarning",
        "--ignore=tests/test_http_backends.py",
        "--ignore=tests/test_load.py",
    ]
    sys.exit(pytest.main([*options, *sys.argv[1:]]))
