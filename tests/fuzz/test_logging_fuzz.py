"""Hostile log lines: scrubbing stays fast on any shape, secrets never survive, lines stay bounded.

Lines up to ~100 kB made of what peers control (long runs of letters, `token` repeated, near-
credentials, control characters, numbers) through the Redactor and the JSON sink.
"""

from __future__ import annotations

import io
import json
import sys
import time

from loguru import logger

from tests.fuzz.app_inputs import log_line
from tests.fuzz.sip_media_inputs import fuzz_count, fuzz_rng
from voice_connector_core.logs import (
    MAX_MESSAGE_CHARS,
    REDACTED,
    Redactor,
    clip,
    setup_logging,
)

SECRET = "vc-fuzz-secret-93d1f0"
MAX_SECONDS_PER_100KB = 0.05
MAX_SECONDS_PER_LINE = 0.25
"""Lines are at most ~100 kB; one pause of a shared CPU must not fail the run."""


def test_scrubbing_is_fast_and_complete_on_hostile_lines() -> None:
    """Linear: ~30 ms per 100 kB on a busy core; the quadratic pattern took 11.6 s for 10 kB."""
    rng, seed = fuzz_rng("logging")
    redact = Redactor([SECRET])
    total_chars, total_time, slowest = 0, 0.0, 0.0
    for index in range(fuzz_count(300)):
        line, carries = log_line(rng, SECRET)
        began = time.perf_counter()
        out = redact(line)
        took = time.perf_counter() - began
        total_chars, total_time = total_chars + len(line), total_time + took
        slowest = max(slowest, took)
        assert SECRET not in out, f"seed {seed}, input {index}: secret survived"
        assert not carries or REDACTED in out, f"seed {seed}, input {index}"
        clipped = clip(line)
        assert len(clipped) < 100 and "\n" not in clipped and "\r" not in clipped
    per_100kb = total_time * 100_000 / total_chars
    assert per_100kb < MAX_SECONDS_PER_100KB, f"seed {seed}: {per_100kb * 1000:.1f} ms per 100 kB"
    assert slowest < MAX_SECONDS_PER_LINE, f"seed {seed}: a line took {slowest:.2f} s"


def test_every_hostile_line_is_one_bounded_json_entry() -> None:
    rng, seed = fuzz_rng("logging-sink")
    buffer = io.StringIO()
    setup_logging("DEBUG", "json", [SECRET], stream=buffer)
    try:
        count = fuzz_count(100)
        for _ in range(count):
            line, _ = log_line(rng, SECRET)
            logger.warning(line)
    finally:
        logger.remove()
        logger.configure(extra={}, patcher=None)
        logger.add(sys.stderr)
    # one entry per "\n": JSON escapes control characters (U+2028 and friends may stay raw)
    entries = [json.loads(text) for text in buffer.getvalue().split("\n") if text]
    assert len(entries) == count, f"seed {seed}"
    assert all(len(entry["message"]) < MAX_MESSAGE_CHARS + 200 for entry in entries)
    assert SECRET not in buffer.getvalue()
