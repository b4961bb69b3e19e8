"""JSON from peers we do not trust, with size and nesting bounded before the parser runs.

Python's decoder recurses once per nesting level: `[[[[…` a few thousand deep raises
`RecursionError`, which is not a `ValueError` and escaped every handler written for bad JSON.
Numbers such as `1e999` decode to infinity, which `int()` turns into `OverflowError`. `loads`
refuses all of these with `BadJSON`, whose `reason` is one of a few fixed words (safe as a metric
label and a log key).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 32
"""Deepest nesting accepted; Twilio's messages and OpenSIPS's events nest 3 levels."""

_STRUCTURE = re.compile(r'"(?:[^"\\]++|\\.?)*+(?:"|\Z)|[\[\]{}]', re.DOTALL)
"""A whole string (closed or running to the end: never rescanned) or one bracket."""


class BadJSON(ValueError):
    """Input refused before or while decoding; `reason` is a short fixed word."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def nesting_depth(text: str, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of JSON text, counted up to `limit + 1` (linear, strings skipped)."""
    brackets = text.count("[") + text.count("{")
    if brackets <= limit:
        return brackets  # an upper bound, and the common case: no scan at all
    depth = deepest = 0
    for token in _STRUCTURE.finditer(text):
        char = token.group()
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > limit:
                break
        elif char in "]}":
            depth -= 1
    return deepest


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadJSON("non-finite-number")
    return value


def _no_constant(name: str) -> float:
    raise BadJSON("non-finite-number")


def loads(data: str | bytes, max_bytes: int, max_depth: int = MAX_DEPTH) -> Any:
    """Decode `data`, or raise `BadJSON`: too-large, not-utf8, too-deep, non-finite-number,
    not-json."""
    if len(data) > max_bytes:
        raise BadJSON("too-large")
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadJSON("not-utf8") from exc
    if nesting_depth(data, max_depth) > max_depth:
        raise BadJSON("too-deep")
    try:
        return json.loads(data, parse_float=_finite, parse_constant=_no_constant)
    except BadJSON:
        raise
    except RecursionError as exc:  # a deep stack left less room than max_depth: still refused
        raise BadJSON("too-deep") from exc
    except ValueError as exc:  # JSONDecodeError, and int() of a 5,000-digit number
        raise BadJSON("not-json") from exc
