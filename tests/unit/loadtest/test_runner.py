"""The load tool's safety guard and its audio-timing arithmetic."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from voice_connector.caller.twilio_caller import CallResult
from voice_connector.loadtest.runner import (
    LoadOptions,
    LoadReport,
    UnsafeTarget,
    require_loopback,
    run_load,
)


@pytest.mark.parametrize("url", ["ws://127.0.0.1:8080/x", "ws://localhost:1/x", "ws://[::1]:80/"])
def test_loopback_targets_are_accepted(url: str) -> None:
    require_loopback(url)


@pytest.mark.parametrize("url", ["ws://10.0.0.5/x", "wss://example.com/x", "ws://192.168.1.2/"])
def test_other_targets_are_refused(url: str) -> None:
    with pytest.raises(UnsafeTarget):
        require_loopback(url)


def report_with(arrivals: list[tuple[float, float]]) -> LoadReport:
    report = LoadReport(LoadOptions(url="ws://127.0.0.1/x", audio=Path("x.wav")))
    result = CallResult(call_sid="CA1", stream_sid="MZ1")
    result.media_arrivals = arrivals
    report.results.append(result)
    return report


def test_steady_real_time_frames_have_no_jitter_and_no_gaps() -> None:
    arrivals = [(i * 0.02, 0.02) for i in range(50)]
    jitter, gaps, checked = report_with(arrivals).jitter_ms()
    assert max(jitter) == pytest.approx(0, abs=1e-6)
    assert (gaps, checked) == (0, 49)


def test_a_frame_after_the_buffer_ran_dry_is_an_audible_gap() -> None:
    arrivals = [(0.0, 0.02), (0.02, 0.02), (0.04, 0.02), (0.15, 0.02), (0.17, 0.02)]
    jitter, gaps, _ = report_with(arrivals).jitter_ms()
    assert gaps == 1
    assert max(jitter) == pytest.approx(90, abs=0.5)


def test_frames_sent_ahead_of_real_time_never_leave_gaps() -> None:
    arrivals = [(i * 0.01, 0.02) for i in range(40)]  # twice real time: the buffer fills
    _, gaps, _ = report_with(arrivals).jitter_ms()
    assert gaps == 0


def test_utterances_are_separated_by_long_pauses() -> None:
    arrivals = [(0.0, 0.02), (0.02, 0.02), (2.0, 0.02), (2.02, 0.02)]
    _, gaps, checked = report_with(arrivals).jitter_ms()
    assert (gaps, checked) == (0, 2)


async def test_a_call_rate_spreads_call_starts_and_respects_concurrency() -> None:
    """`--rate` starts call i no sooner than i / rate seconds in (SIPp's -r)."""
    starts: list[float] = []
    running = peak = 0

    class InstantCall:
        async def run(self) -> CallResult:
            nonlocal running, peak
            starts.append(time.monotonic())
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.05)
            running -= 1
            return CallResult(call_sid=f"CA{len(starts)}", stream_sid="MZ1")

    options = LoadOptions(
        url="ws://127.0.0.1:9/x", audio=Path("x.wav"), calls=5, concurrency=2, rate=20.0
    )
    begun = time.monotonic()
    report = await run_load(options, lambda _: InstantCall())
    assert len(report.results) == 5 and peak <= 2
    for i, start in enumerate(sorted(starts)):
        assert start - begun >= i / 20.0 - 0.005
