"""Azure OpenAI's chat completions, as the emulator speaks it.

OpenAI's protocol (:class:`~llmkit_contracts.emulators.openai.OpenAIProtocol`)
at Azure's address, with Azure's checks and additions:

* ``POST /openai/deployments/{deployment}/chat/completions?api-version=...``;
  any other path, or a request without ``api-version``, gets Azure's
  ``404 Resource not found``;
* the key in an ``api-key`` header, or a Microsoft Entra ID token as
  ``Authorization: Bearer``; without either, ``401`` with Azure's message;
* content filtering: every answer carries ``prompt_filter_results`` and
  per-choice ``content_filter_results`` (a stream opens with a chunk that
  has no id and no choices, only the prompt's results); a completion cut
  by the filter finishes with ``content_filter``; a filtered prompt is
  answered ``400`` with code ``content_filter`` and the results under
  ``innererror`` (script it with ``Reply.error(400, code="content_filter")``);
* errors Azure raises itself (``401``, ``404``, ``429``) use its short
  envelope, ``{"error": {"code": "<status>", "message": ...}}``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar, Final
from urllib.parse import parse_qs

from llmkit_contracts.emulator import Emulator, Reply, json_encode
from llmkit_contracts.emulators.openai import OpenAIProtocol

__all__ = ["AzureEmulator", "AzureProtocol"]

_DEPLOYMENT: Final = re.compile(r"^/openai/deployments/([^/]+)/chat/completions$")
_CATEGORIES: Final = ("hate", "self_harm", "sexual", "violence")
_SHORT_ENVELOPE: Final = frozenset({401, 403, 404, 429})


def _results(filtered: bool = False) -> dict[str, Any]:
    results: dict[str, Any] = {
        name: {"filtered": False, "severity": "safe"} for name in _CATEGORIES
    }
    if filtered:
        results["violence"] = {"filtered": True, "severity": "high"}
    return results


def _not_found() -> Reply:
    return Reply.error(404, message="Resource not found", code="404")


class AzureProtocol(OpenAIProtocol):
    """Azure OpenAI: deployment paths, ``api-version``, ``api-key`` or Entra ID, filter results."""

    name: ClassVar[str] = "azure"
    base_path: ClassVar[str] = ""

    def route(self, method: str, path: str) -> Reply | None:
        """Serve ``POST /openai/deployments/{deployment}/chat/completions`` only."""
        if not _DEPLOYMENT.match(path):
            return _not_found()
        if method != "POST":
            return Reply.error(
                405, message=f"Method {method} not allowed.", headers={"allow": "POST"}
            )
        return None

    def auth_refusal(self, path: str, headers: Mapping[str, str]) -> Reply | None:
        """An ``api-key`` header or an ``Authorization: Bearer`` token is required."""
        if headers.get("api-key", "").strip():
            return None
        token = headers.get("authorization", "")
        if token.startswith("Bearer ") and token[7:].strip():
            return None
        return Reply.error(
            401,
            message="Access denied due to invalid subscription key or wrong API endpoint. Make "
            "sure to provide a valid key for an active subscription and use a correct regional "
            "API endpoint for your resource.",
            code="401",
        )

    def check(self, path: str, headers: Mapping[str, str], payload: Any) -> Reply | None:
        """Refuse a request without ``api-version``, then as OpenAI does."""
        query = parse_qs(path.partition("?")[2])
        if not query.get("api-version", [""])[0]:
            return _not_found()
        return super().check(path, headers, payload)

    def model(self, path: str, payload: Any) -> str:
        """The body's ``model``, else the deployment."""
        model = payload.get("model") if isinstance(payload, dict) else None
        if isinstance(model, str) and model:
            return model
        match = _DEPLOYMENT.match(path.partition("?")[0])
        return match.group(1) if match else "emulator"

    def deployment(self, path: str) -> str | None:
        """The deployment a request path names."""
        match = _DEPLOYMENT.match(path.partition("?")[0])
        return match.group(1) if match else None

    def choice_extras(self, reply: Reply, *, finish: bool) -> dict[str, Any]:
        """The completion's filter results; the filter's category is set when it cut the answer."""
        return {"content_filter_results": _results(reply.finish_reason == "content_filter")}

    def body_extras(self, reply: Reply) -> dict[str, Any]:
        """The prompt's filter results."""
        return {
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": _results()}]
        }

    def stream_prelude(self, reply: Reply, head: dict[str, Any]) -> list[bytes]:
        """The chunk Azure opens a stream with: no id, no choices, the prompt's results."""
        chunk = {
            "choices": [],
            "created": 0,
            "id": "",
            "model": "",
            "object": "",
            **self.body_extras(reply),
        }
        return [b"data: " + json_encode(chunk) + b"\n\n"]

    def error_body(self, reply: Reply) -> bytes:
        """Azure's envelopes: the content filter's, the short one, or OpenAI's."""
        if reply.code == "content_filter":
            error = {
                "message": reply.message,
                "type": None,
                "param": "prompt",
                "code": "content_filter",
                "status": reply.status,
                "innererror": {
                    "code": "ResponsibleAIPolicyViolation",
                    "content_filter_result": _results(filtered=True),
                },
            }
            return json_encode({"error": error})
        if reply.status in _SHORT_ENVELOPE and reply.error_type is None:
            code = reply.code or str(reply.status)
            return json_encode({"error": {"code": code, "message": reply.message}})
        return super().error_body(reply)


class AzureEmulator(Emulator):
    """An :class:`~llmkit_contracts.emulator.Emulator` that speaks :class:`AzureProtocol`."""

    def __init__(self, *, default: Reply | None = None, strict: bool = True) -> None:
        super().__init__(AzureProtocol(), default=default, strict=strict)
