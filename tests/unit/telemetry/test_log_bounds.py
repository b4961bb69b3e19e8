"""Log lines a peer can size: scrubbing stays linear, messages are capped, writing never blocks."""

from __future__ import annotations

import io
import json
import re
import threading
import time

from loguru import logger

from voice_connector_core.logs import (
    MAX_MESSAGE_CHARS,
    REDACTED,
    LineWriter,
    Redactor,
    clip,
)

SECRET = "s3cr3t-auth-value"


def best_time(function, text: str, runs: int = 3) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        function(text)
        best = min(best, time.perf_counter() - started)
    return best


def test_scrubbing_a_long_run_of_letters_is_linear() -> None:
    """A 10 kB call SID took 11.6 s to scrub (quadratic pattern); now milliseconds."""
    redact = Redactor([SECRET])
    short = "call CA" + "A" * 1_000 + " refused"
    long = "call CA" + "A" * 10_000 + " refused"
    long_time = best_time(redact, long)
    ratio = long_time / max(best_time(redact, short), 1e-6)
    assert long_time < 0.05, f"10 kB line scrubbed in {long_time * 1000:.1f} ms"
    assert ratio < 50, f"10 kB / 1 kB time ratio {ratio:.1f} (linear ~10, quadratic ~100)"


def test_linear_scrubbing_still_removes_credentials() -> None:
    redact = Redactor([SECRET])
    text = redact(f"x_api_key=abc123 {'b' * 5000} authToken=zz9 {SECRET} password: prose")
    assert "abc123" not in text and "zz9" not in text and SECRET not in text
    assert f"x_api_key={REDACTED}" in text and f"authToken={REDACTED}" in text
    assert "password: prose" in text


def test_clip_bounds_and_flattens_peer_values() -> None:
    assert clip("CA123") == "CA123"
    clipped = clip("CA" + "9" * 10_000)
    assert len(clipped) < 100 and clipped.endswith("…(+9938)")
    assert "\n" not in clip("CA1\nFAKE | ERROR | injected line") and "\r" not in clip("a\rb")
    assert clip(["not", "a", "string"]) == "['not', 'a', 'string']"


def test_a_huge_message_is_capped_in_both_formats(log_capture) -> None:  # type: ignore[no-untyped-def]
    for fmt in ("json", "console"):
        buffer = log_capture(fmt)
        logger.warning("x" * 100_000)
        text = buffer.getvalue()
        message = json.loads(text)["message"] if fmt == "json" else text
        assert MAX_MESSAGE_CHARS <= len(message) < MAX_MESSAGE_CHARS + 300
        assert "characters)" in message


class BlockedStream(io.StringIO):
    """stderr whose reader stalls: writes wait until `release` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def write(self, text: str) -> int:
        self.release.wait(10)
        return super().write(text)


def test_background_writer_never_makes_the_logger_wait() -> None:
    stream = BlockedStream()
    writer = LineWriter(stream, lambda message: f"{message}\n", max_pending=100)
    try:
        started = time.perf_counter()
        for index in range(300):  # more than the queue holds, while the stream is blocked
            writer.write(f"line {index}")
        assert time.perf_counter() - started < 0.5
        stream.release.set()
        assert writer.wait_written(5)
        text = stream.getvalue()
        assert "line 0\n" in text and "lines dropped (queue full)" in text
        written = re.findall(r"^line \d+$", text, flags=re.MULTILINE)
        dropped = sum(map(int, re.findall(r"^log writer: (\d+) lines dropped", text, re.MULTILINE)))
        assert len(written) <= 101  # the queue's lines and the one in hand
        assert len(written) + dropped == 300  # every line is written or counted, none lost
    finally:
        stream.release.set()
        writer.stop()


def test_background_sink_writes_everything_by_logger_complete(log_capture) -> None:  # type: ignore[no-untyped-def]
    from voice_connector_core.logs import setup_logging

    log_capture("json")  # restores loguru afterwards
    buffer = io.StringIO()
    setup_logging("INFO", "json", [SECRET], stream=buffer, background=True)
    for index in range(50):
        logger.info(f"line {index} {SECRET}")
    logger.remove()  # stops the writer: everything queued is written first
    lines = buffer.getvalue().splitlines()
    assert len(lines) == 50 and SECRET not in buffer.getvalue()


def test_phone_numbers_are_masked_at_info_and_kept_at_debug(log_capture) -> None:  # type: ignore[no-untyped-def]
    from voice_connector_core.logs import set_phone_masking

    for fmt in ("json", "console"):
        buffer = log_capture(fmt)
        logger.info("call CA1: transferred to +15551234567 (sip:4930123456@pbx)")
        logger.debug("call CA1: caller +15551234567")
        info, debug = buffer.getvalue().splitlines()
        assert "+15551234567" not in info and "+155******67" in info and "sip:493*****56@" in info
        assert "+15551234567" in debug
    try:
        set_phone_masking(False)
        buffer = log_capture("json")
        logger.info("caller +15551234567")
        assert "+15551234567" in buffer.getvalue()
    finally:
        set_phone_masking(True)


def test_a_long_url_path_in_the_access_log_is_clipped(log_capture, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import logging

    buffer = log_capture("console", level="INFO")
    access = logging.getLogger("uvicorn.access")
    # As the node runs uvicorn (log_config=None): the access logger hands its records to ours.
    # A test server started earlier with uvicorn's default logging config leaves it detached.
    for name in ("uvicorn.access", "uvicorn"):  # uvicorn's own config stops both propagating
        attached = logging.getLogger(name)
        monkeypatch.setattr(attached, "handlers", [])
        monkeypatch.setattr(attached, "propagate", True)
        monkeypatch.setattr(attached, "disabled", False)
    previous = access.level
    access.setLevel(logging.NOTSET)
    try:
        access.info('%s - "%s %s HTTP/%s" %d', "1.2.3.4:5", "GET", "/" + "p" * 10_000, "1.1", 404)
    finally:
        access.setLevel(previous)
    line = buffer.getvalue()
    assert len(line) < 500 and "…(+" in line and '"GET /ppp' in line and "404" in line
