"""Unit tests of the OpenAI codec's edges that the recorded corpus does not reach."""

from __future__ import annotations

import httpx
import pytest

import llmkit
from llmkit import generics
from llmkit._framing import SSEEvent
from llmkit.types import ChatRequest, HttpResponse, Message, StreamState
from llmkit_providers.openai import OpenAI, error_from_body

REQUEST = ChatRequest(model="gpt-4o", messages=[Message(role="user", content="x")])


@pytest.mark.parametrize(
    ("status", "body", "expected", "retryable"),
    [
        (
            400,
            b'{"error": {"message": "This model\'s maximum context length is 8192 tokens", "code": "context_length_exceeded"}}',
            llmkit.ContextWindowError,
            False,
        ),
        (
            400,
            b'{"error": {"message": "flagged", "code": "content_filter"}}',
            llmkit.ContentFilterError,
            False,
        ),
        (
            401,
            b'{"error": {"message": "bad key", "code": "invalid_api_key"}}',
            llmkit.AuthenticationError,
            False,
        ),
        (
            403,
            b'{"error": {"message": "region not supported"}}',
            llmkit.PermissionDeniedError,
            False,
        ),
        (
            404,
            b'{"error": {"message": "no model", "code": "model_not_found"}}',
            llmkit.NotFoundError,
            False,
        ),
        (408, b"", llmkit.ServiceUnavailableError, True),
        (413, b'{"error": "too large"}', llmkit.InvalidRequestError, False),
        (422, b'{"message": "unprocessable"}', llmkit.InvalidRequestError, False),
        (
            429,
            b'{"error": {"message": "slow down", "type": "tokens"}}',
            llmkit.RateLimitError,
            True,
        ),
        (500, b"<html>oops</html>", llmkit.ServiceUnavailableError, True),
        (529, b'{"error": {"message": "overloaded"}}', llmkit.ServiceUnavailableError, True),
        (418, b'{"error": {"message": "teapot"}}', llmkit.LLMError, False),
    ],
    ids=[
        "context",
        "filter",
        "401",
        "403",
        "404",
        "408",
        "413-string",
        "422-message",
        "429",
        "500-html",
        "529",
        "418",
    ],
)
def test_openai_error_mapping(
    status: int, body: bytes, expected: type[llmkit.LLMError], retryable: bool
) -> None:
    error = generics.decode_error(
        OpenAI(), HttpResponse(status=status, headers=httpx.Headers(), body=body), REQUEST
    )
    assert type(error) is expected
    assert error.retryable is retryable
    assert error.status == status
    assert error.provider == "openai"
    assert error.message


def test_openai_error_empty_body_says_status() -> None:
    assert "HTTP 502 with an empty body" in error_from_body(OpenAI(), 502, b"", "m").message


def test_openai_malformed_success_body_raises() -> None:
    with pytest.raises(llmkit.LLMError, match="not a chat completion"):
        generics.decode_response(
            OpenAI(), HttpResponse(status=200, headers={}, body=b"<html>"), REQUEST
        )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            b'{"error": {"message": "The server had an error", "type": "server_error"}}',
            llmkit.ServiceUnavailableError,
        ),
        (
            b'{"error": {"message": "bad tool", "type": "invalid_request_error", "status_code": 400}}',
            llmkit.InvalidRequestError,
        ),
        (b'{"error": {"message": "slow", "type": "rate_limit_error"}}', llmkit.RateLimitError),
        (b"not json", llmkit.LLMError),
    ],
    ids=["server-error", "groq-status-code", "rate-limit", "not-json"],
)
def test_openai_stream_error_event(data: bytes, expected: type[llmkit.LLMError]) -> None:
    item = generics.decode_event(OpenAI(), SSEEvent(None, data, None, None), StreamState(model="m"))
    assert type(item) is expected


def test_openai_stream_done_marks_end() -> None:
    state = StreamState()
    assert generics.decode_event(OpenAI(), SSEEvent(None, b"[DONE]", None, None), state) is None
    assert state.done
