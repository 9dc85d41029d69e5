"""Checks of the ``options`` and ``keep_alive`` an Ollama request sends, before it is sent.

Ollama's server reads ``options`` into its Go ``Options`` struct: a value of
the wrong type is a 500 (``option "temperature" must be of type float32``)
that looks like an outage, and a NaN that JSON carries as ``null`` is
silently dropped. These checks say so before the call.
"""

from __future__ import annotations

import math
import re
from typing import Any, Final

__all__ = ["INTEGER_LIMIT", "keep_alive_problem", "options_problem"]

# Go's time.ParseDuration: "5m", "1h30m", "-1s", "0".
_DURATION: Final = re.compile(r"-?(0|((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+)")

# The options Ollama's Options struct knows, by the Go kind it reads them
# into; a value of another type is the server's 500 'option "x" must be of
# type ...'. Names it does not know it ignores (with a warning in its log).
_INTEGER_OPTIONS: Final = frozenset(
    {
        "num_keep",
        "seed",
        "num_predict",
        "top_k",
        "repeat_last_n",
        "num_ctx",
        "num_batch",
        "num_gpu",
        "main_gpu",
        "num_thread",
        "mirostat",
    }
)
_NUMBER_OPTIONS: Final = frozenset(
    {
        "temperature",
        "top_p",
        "min_p",
        "typical_p",
        "repeat_penalty",
        "presence_penalty",
        "frequency_penalty",
        "tfs_z",
        "mirostat_tau",
        "mirostat_eta",
    }
)
_BOOLEAN_OPTIONS: Final = frozenset(
    {"use_mmap", "use_mlock", "numa", "low_vram", "f16_kv", "vocab_only", "penalize_newline"}
)
#: The largest integer option Ollama reads exactly: JSON numbers reach Go as
#: float64, beyond 2**53 no longer exact, past 2**63 undefined as an int.
INTEGER_LIMIT: Final = 2**53
_FLOAT32_MAX: Final = 3.4028234663852886e38
# Go's time.Duration: at most 2**63 nanoseconds, about 292 years.
_KEEP_ALIVE_LIMIT: Final = (2**63 - 1) // 10**9


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _finite(number: float) -> bool:
    # math.isfinite would raise OverflowError on an int too large for a float.
    return type(number) is int or math.isfinite(number)


def _not_finite(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` holds a NaN or an infinity (which JSON would carry as null)."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if depth > 32:
        return False  # the encoder refuses nesting this deep by itself
    if isinstance(value, dict):
        return any(_not_finite(item, depth + 1) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_not_finite(item, depth + 1) for item in value)
    return False


def _option_problem(name: str, value: Any) -> str | None:
    """What is wrong with one ``options`` entry, or ``None``."""
    if name in _INTEGER_OPTIONS:
        # Go takes 8192.0 as 8192 but cuts 1.5 to 1 without a word.
        if not (type(value) is int or (type(value) is float and value.is_integer())):
            return "an integer"
        if not -INTEGER_LIMIT <= value <= INTEGER_LIMIT:
            return "an integer from -2**53 to 2**53 (what a JSON number carries exactly)"
    elif name in _NUMBER_OPTIONS:
        if type(value) not in (int, float):
            return "a number"
        if not (_finite(value) and abs(value) <= _FLOAT32_MAX):
            return "a finite number (Ollama reads it as a float32)"
    elif name in _BOOLEAN_OPTIONS:
        if type(value) is not bool:
            return "True or False"
    elif name == "stop":
        if not isinstance(value, list | tuple) or not all(type(item) is str for item in value):
            return "a list of strings"
    elif _not_finite(value):
        return "free of NaN and infinities (JSON has none)"
    return None


def options_problem(wire: dict[str, Any]) -> str | None:
    """What is wrong with the ``options`` a request would send, or ``None``."""
    for name, value in wire.items():
        # The fast yes, inline: every call runs it on every entry.
        kind = type(value)
        if name in _INTEGER_OPTIONS:
            if kind is int and -INTEGER_LIMIT <= value <= INTEGER_LIMIT:
                continue
        elif name in _NUMBER_OPTIONS:
            # A NaN fails every comparison, an infinity the range.
            if (kind is float or kind is int) and -_FLOAT32_MAX <= value <= _FLOAT32_MAX:
                continue
        elif name in _BOOLEAN_OPTIONS:
            if kind is bool:
                continue
        elif not (name == "stop" or kind is float or kind is dict or kind is list or kind is tuple):
            continue
        problem = _option_problem(name, value)
        if problem is not None:
            return (
                f"Ollama option {name!r} must be {problem}, not {_shown(value)}; fix it in "
                "options={'model_options': {...}} (or the request's own setting)"
            )
    return None


def keep_alive_problem(keep: float | str | None) -> str | None:
    """What is wrong with a ``keep_alive`` option, or ``None``."""
    if keep is None:
        return None
    if isinstance(keep, str) and not _DURATION.fullmatch(keep):
        return (
            f"option keep_alive {keep!r} is not a duration; pass seconds or a string such as "
            "'10m' or '1h30m'"
        )
    if isinstance(keep, int | float) and not (_finite(keep) and abs(keep) <= _KEEP_ALIVE_LIMIT):
        return (
            f"option keep_alive {_shown(keep)} is not a usable number of seconds; pass a finite "
            "number up to about 292 years (negative: keep the model loaded for ever), or a "
            "duration such as '10m'"
        )
    return None
