"""How long to wait before trying again: exponential backoff with jitter, and Retry-After.

One policy serves the registry's calls and the ``with_retry`` wrapper, so
both wait alike and both stop waiting at a :func:`llmkit.registry.with_timeout`
deadline.
"""

from __future__ import annotations

import random
import time

from llmkit import _http
from llmkit.errors import LLMError

__all__ = ["Backoff"]


class Backoff:
    """Retry settings: how many retries, the first wait, the longest wait."""

    __slots__ = ("delay", "max_delay", "retries")

    def __init__(self, retries: int, delay: float, max_delay: float) -> None:
        self.retries = retries
        self.delay = delay
        self.max_delay = max_delay

    def wait(self, error: LLMError, tries: int, retryable: bool | None = None) -> float | None:
        """Seconds to wait before retry number ``tries + 1`` after ``error``; ``None``: do not.

        ``retryable`` overrides the error's own flag. Not retried: an error
        that is not retryable, the retries used up, a
        ``Retry-After`` longer than ``max_delay`` (better served by a
        fallback than by waiting), or a wait that would pass the deadline
        of an enclosing ``with_timeout``.
        """
        if not (error.retryable if retryable is None else retryable) or tries >= self.retries:
            return None
        asked = error.retry_after
        if asked is not None and asked > 0:
            if asked > self.max_delay:
                return None
            wait = asked
        else:
            # Equal jitter: at least half the exponential step, so clients that
            # failed together spread out without any retrying at once.
            ceiling = min(self.max_delay, self.delay * 2.0**tries)
            wait = random.uniform(ceiling / 2, ceiling)
        deadline = _http.scope_deadline()
        if deadline is not None and time.monotonic() + wait >= deadline:
            return None
        return wait
