"""The one error hierarchy of llmkit.

Every failure a user can see is an :class:`LLMError`::

    LLMError
    ├── AuthenticationError        401: the API key is missing or wrong
    ├── PermissionDeniedError      403: the key may not use this model or feature
    ├── NotFoundError              404: unknown model or endpoint
    ├── InvalidRequestError        400/422, and bad input caught before any call
    │   ├── ContextWindowError     the prompt does not fit the model's context
    │   └── ContentFilterError     the provider's safety filter refused
    ├── RateLimitError             429 (retryable; ``retry_after`` in seconds)
    ├── TimeoutError               connect, read or total deadline passed (retryable)
    ├── ServiceUnavailableError    5xx, 529, overloaded (retryable)
    ├── APIConnectionError         DNS, refused connection, TLS (retryable)
    ├── StreamInterruptedError     a stream broke or ended before its end marker
    ├── ProviderNotFoundError      the provider (or registry config) name is not known
    └── AllAttemptsFailedError     a call and every fallback failed (``attempts``)

Each error carries ``provider``, ``model``, ``status``, ``request_id`` and
``retryable``. Messages say how to fix the problem and never hold an API
key: :func:`scrub` removes one from any text before it becomes a message.
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = [
    "APIConnectionError",
    "AllAttemptsFailedError",
    "Attempt",
    "AuthenticationError",
    "ContentFilterError",
    "ContextWindowError",
    "InvalidRequestError",
    "LLMError",
    "NotFoundError",
    "PermissionDeniedError",
    "ProviderNotFoundError",
    "RateLimitError",
    "ServiceUnavailableError",
    "StreamInterruptedError",
    "TimeoutError",
    "body_text",
    "scrub",
    "scrub_error",
]


class LLMError(Exception):
    """Base of every llmkit error.

    Attributes:
        message: what went wrong and how to fix it.
        provider: the provider's name (``"openai"``), when known.
        model: the model asked for, when known.
        status: the HTTP status, when the provider answered.
        request_id: the provider's request id, for its support desk.
        retryable: whether sending the same request again may succeed.
        code: the provider's own error code or type, when it sent one.
        retry_after: seconds the provider asked to wait before a retry.
    """

    default_retryable = False

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        model: str | None = None,
        status: int | None = None,
        request_id: str | None = None,
        retryable: bool | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.model = model
        self.status = status
        self.request_id = request_id
        self.retryable = self.default_retryable if retryable is None else retryable
        self.code = code
        self.retry_after = retry_after

    def __str__(self) -> str:
        where = ", ".join(
            f"{name}={value}"
            for name, value in (
                ("provider", self.provider),
                ("model", self.model),
                ("status", self.status),
                ("request_id", self.request_id),
            )
            if value is not None
        )
        return f"{self.message} ({where})" if where else self.message

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}({self.message!r}, provider={self.provider!r}, status={self.status!r})"


class AuthenticationError(LLMError):
    """The API key is missing, malformed or revoked (401)."""


class PermissionDeniedError(LLMError):
    """The key is valid but may not do this (403)."""


class NotFoundError(LLMError):
    """The model or endpoint does not exist for this key (404)."""


class InvalidRequestError(LLMError):
    """The request is malformed or has values the provider rejects (400, 422)."""


class ContextWindowError(InvalidRequestError):
    """The prompt plus ``max_tokens`` exceeds the model's context window."""


class ContentFilterError(InvalidRequestError):
    """The provider's content filter refused the prompt or the answer."""


class RateLimitError(LLMError):
    """Too many requests or tokens (429); wait ``retry_after`` seconds."""

    default_retryable = True


class TimeoutError(LLMError):
    """Connecting, reading or the total deadline took too long."""

    default_retryable = True


class ServiceUnavailableError(LLMError):
    """The provider failed or is overloaded (5xx, 529)."""

    default_retryable = True


class APIConnectionError(LLMError):
    """The provider could not be reached (DNS, refused connection, TLS)."""

    default_retryable = True


class StreamInterruptedError(LLMError):
    """A stream broke off or ended before the provider's end marker."""


class ProviderNotFoundError(LLMError):
    """No provider is registered under the given name."""


class Attempt(NamedTuple):
    """One failed try of a routed call: where it went and how it failed."""

    name: str | None
    provider: str
    model: str
    error: LLMError


class AllAttemptsFailedError(LLMError):
    """A routed call failed on its provider and on every fallback.

    ``attempts`` lists each try in order, with its provider, model and
    error; ``status``, ``retryable`` and ``retry_after`` are the last one's,
    and so is ``__cause__``.
    """

    def __init__(self, name: str | None, attempts: list[Attempt]) -> None:
        last = attempts[-1].error
        tried = "; ".join(
            f"{attempt.provider}/{attempt.model}: {type(attempt.error).__name__}: "
            f"{attempt.error.message.rstrip('. ')}"
            for attempt in attempts
        )
        where = f"{name!r}" if name is not None else "the call"
        super().__init__(
            f"every attempt of {where} failed ({len(attempts)} in all): {tried}. "
            "Fix the first error, or add a fallback that can serve the request",
            status=last.status,
            retryable=last.retryable,
            retry_after=last.retry_after,
        )
        self.name = name
        self.attempts = attempts


_ESCAPE = re.compile(r'\\(?:u([0-9a-fA-F]{4})|(["\\/bfnrt]))')
_ESCAPED = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def body_text(body: bytes, limit: int = 500) -> str:
    """A response body as text for an error message: its start, escapes resolved.

    A server may echo the key it was sent inside JSON, spelled with escapes
    (a backslash-u for each letter) that :func:`scrub` would not recognise;
    here every JSON string escape in the shown part is resolved first (a
    lone surrogate becomes U+FFFD), so the scrubber sees the key as sent.
    At most ``limit`` characters are kept, cut before a word that the limit
    would split (so no fragment of a key survives the cut unrecognised).
    """
    text = body[: max(limit, 0) * 4 + 64].decode("utf-8", "replace")
    if "\\" in text:
        text = _ESCAPE.sub(lambda m: chr(int(m[1], 16)) if m[1] else _ESCAPED[m[2]], text)
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = limit
    while cut > limit - 64 and cut > 0 and (text[cut - 1].isalnum() or text[cut - 1] in "-_"):
        cut -= 1
    if cut <= limit - 64:
        cut = limit  # one long word: cut it (scrub matches any 12 characters of a key)
    return text[:cut].rstrip() + " ..."


def scrub(text: str, secret: str | None) -> str:
    """Return ``text`` with ``secret`` replaced by ``***`` wherever it, or its start, appears.

    A body cut short for a message can end in the middle of an echoed key,
    so any run of the key's first 12 characters or more is replaced too.
    Short secrets (under 8 characters) are left alone: replacing them would
    mangle ordinary words, and no real API key is that short.
    """
    if not secret or len(secret) < 8:
        return text
    head = secret[:12]
    start = text.find(head)
    while start != -1:
        end = start + len(head)
        # Extend the match as far as the text keeps following the secret.
        while end - start < len(secret) and end < len(text) and text[end] == secret[end - start]:
            end += 1
        text = text[:start] + "***" + text[end:]
        start = text.find(head, start + 3)
    return text


def scrub_error(error: LLMError, secrets: tuple[str, ...]) -> LLMError:
    """Scrub every secret from every text field of ``error``, in place; return it.

    Providers echo what they were sent: a key can come back in the message,
    the error code or type, or a request-id header.
    """
    for secret in secrets:
        for name in ("message", "code", "request_id", "model", "provider"):
            text = getattr(error, name)
            if isinstance(text, str):
                cleaned = scrub(text, secret)
                if cleaned is not text:
                    setattr(error, name, cleaned)
    if error.args != (error.message,):
        error.args = (error.message,)
    return error
