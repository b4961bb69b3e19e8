"""Load a running media node with simulated calls, bounded in count and time.

Every call is a full simulated call (Twilio: real-time 20 ms media, marks, clear; SIP: the
OpenSIPS double's signalling and real RTP), so the node does exactly the work of real calls.
Loopback targets only, unless the operator names a deployed node's host explicitly
(`voice-connector load --allow-remote-target HOST`): a load test never leaves this machine by
accident, e.g. through a mistyped URL or a stale default.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import aiohttp

from voice_connector.caller.twilio_caller import CallerOptions, SimulatedTwilioCall
from voice_connector_core.netaccess import private_headers

BURST_GAP_SECS = 0.2
"""Arrivals further apart than this belong to different bot utterances."""
LATE_MARGIN_SECS = 0.02
"""A frame arriving this long after the audio before it finished playing leaves an audible gap."""


class UnsafeTarget(ValueError):
    """The load target is not on this machine."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_target(url: str, allowed_host: str = "") -> None:
    """Accept a loopback `url`, or one whose host is exactly the operator's `allowed_host`.

    Raises `UnsafeTarget` otherwise. Only the host is compared (case and a trailing dot
    ignored), never a suffix or a resolved address, so the opt-in names one deployment.
    """
    host = (urlparse(url).hostname or "").lower()
    if is_loopback(host):
        return
    wanted = allowed_host.strip().lower().rstrip(".")
    if wanted and host.rstrip(".") == wanted:
        return
    hint = f" (allowed: {wanted!r})" if wanted else ""
    raise UnsafeTarget(
        f"load tests target loopback addresses, not {host!r}{hint}; to load a deployed node, "
        f"pass --allow-remote-target {host or 'HOST'}"
    )


def require_loopback(url: str) -> None:
    check_target(url)


class SimulatedCall(Protocol):
    async def run(self) -> Any: ...


@dataclass
class LoadOptions:
    url: str
    """Twilio: the stream URL; SIP: the node's HTTP base URL (for call records and /metrics)."""
    audio: Path
    calls: int = 10
    concurrency: int = 5
    duration: float = 120.0
    answer_timeout: float = 30.0
    rate: float = 0.0
    """New calls per second, as SIPp's `-r` (0: all at once, so every turn end coincides)."""
    allowed_host: str = ""
    """A non-loopback host the operator explicitly allowed (`--allow-remote-target`)."""

    @classmethod
    def from_args(cls, args: argparse.Namespace, url: str) -> LoadOptions:
        """From `voice-connector load`'s arguments (`url`: --url or --node by transport)."""
        return cls(
            url=url,
            audio=Path(args.audio),
            calls=args.calls,
            concurrency=args.concurrency,
            duration=args.duration,
            rate=args.rate,
            allowed_host=getattr(args, "allow_remote_target", "") or "",
        )


@dataclass
class NodeSample:
    cpu_seconds: float = 0.0
    rss_bytes: float = 0.0


@dataclass
class LoadReport:
    options: LoadOptions
    results: list[Any] = field(default_factory=list)
    """CallResult / SipCallResult: `.ok`, `.turns`, `.media_arrivals`."""
    wall_seconds: float = 0.0
    peak_concurrency: int = 0
    before: NodeSample = field(default_factory=NodeSample)
    after: NodeSample = field(default_factory=NodeSample)
    peak_rss_bytes: float = 0.0

    @property
    def completed(self) -> list[Any]:
        return [r for r in self.results if r.ok and r.turns and r.turns[0].first_bot_audio_at]

    def voice_to_voice_ms(self) -> list[float]:
        return [t.voice_to_voice_ms for r in self.completed for t in r.turns if t.voice_to_voice_ms]

    def jitter_ms(self) -> tuple[list[float], int, int]:
        """Send-interval jitter of bot frames, audible gaps, frames checked.

        Jitter is each gap's distance from the call's median gap within utterances (the sender's
        pace, whatever rate it chose); a gap is audible when a frame arrives after everything
        before it has already played (the caller's playout buffer ran dry mid-utterance).
        """
        jitter: list[float] = []
        gaps_heard = checked = 0
        for result in self.results:
            arrivals = result.media_arrivals
            gaps = [t1 - t0 for (t0, _), (t1, _) in pairwise(arrivals) if t1 - t0 <= BURST_GAP_SECS]
            if gaps:
                median = sorted(gaps)[len(gaps) // 2]
                jitter += [abs(gap - median) * 1000 for gap in gaps]
            playout_end = 0.0
            for arrival, seconds in arrivals:
                if playout_end and arrival - playout_end <= BURST_GAP_SECS:
                    checked += 1
                    gaps_heard += arrival > playout_end + LATE_MARGIN_SECS
                playout_end = max(playout_end, arrival) + seconds
        return jitter, gaps_heard, checked

    def table(self) -> str:
        v2v = self.voice_to_voice_ms()
        jitter, late, checked = self.jitter_ms()
        done = len(self.completed)
        cpu = self.after.cpu_seconds - self.before.cpu_seconds
        rss = max(0.0, self.peak_rss_bytes - self.before.rss_bytes)
        rows = [
            ("calls completed / failed", f"{done} / {len(self.results) - done}"),
            ("peak concurrent calls", str(self.peak_concurrency)),
            ("voice-to-voice p50 / p95 / p99 ms", _pcts(v2v)),
            ("outbound send jitter p50 / p99 ms", _pcts(jitter, (50, 99))),
            ("audible gaps (late frames) / frames", f"{late} / {checked}"),
            ("node CPU seconds per call", f"{cpu / done:.2f}" if done else "-"),
            (
                "node memory per concurrent call MiB",
                f"{rss / max(1, self.peak_concurrency) / 2**20:.1f}",
            ),
            ("wall time s", f"{self.wall_seconds:.1f}"),
        ]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))]


def _pcts(values: list[float], pcts: tuple[int, ...] = (50, 95, 99)) -> str:
    if not values:
        return "-"
    return " / ".join(f"{percentile(values, p):.1f}" for p in pcts)


_METRIC = re.compile(r"^(process_cpu_seconds_total|process_resident_memory_bytes) (\S+)$", re.M)


async def sample_node(session: aiohttp.ClientSession, metrics_url: str) -> NodeSample:
    """The node's own CPU and memory, from its Prometheus process collector."""
    try:
        async with session.get(metrics_url, headers=private_headers()) as response:
            text = await response.text()
    except aiohttp.ClientError:
        return NodeSample()
    values = {name: float(value) for name, value in _METRIC.findall(text)}
    return NodeSample(
        values.get("process_cpu_seconds_total", 0.0),
        values.get("process_resident_memory_bytes", 0.0),
    )


def twilio_call(options: LoadOptions) -> SimulatedCall:
    return SimulatedTwilioCall(
        CallerOptions(audio=[options.audio], url=options.url, answer_timeout=options.answer_timeout)
    )


async def run_load(
    options: LoadOptions, new_call: Callable[[LoadOptions], SimulatedCall] = twilio_call
) -> LoadReport:
    """Place `calls` calls, at most `concurrency` at once, none started after `duration`."""
    check_target(options.url, options.allowed_host)
    parsed = urlparse(options.url)
    metrics_url = (
        f"{'https' if parsed.scheme in ('wss', 'https') else 'http'}://{parsed.netloc}/metrics"
    )
    report = LoadReport(options)
    gate = asyncio.Semaphore(options.concurrency)
    active = 0
    started = time.monotonic()

    async def one_call(index: int) -> None:
        nonlocal active
        if options.rate > 0:
            await asyncio.sleep(max(0.0, started + index / options.rate - time.monotonic()))
        async with gate:
            if time.monotonic() - started > options.duration:
                return
            active += 1
            report.peak_concurrency = max(report.peak_concurrency, active)
            try:
                report.results.append(await new_call(options).run())
            finally:
                active -= 1

    async with aiohttp.ClientSession() as session:
        report.before = await sample_node(session, metrics_url)
        tasks = [asyncio.create_task(one_call(i)) for i in range(options.calls)]

        async def watch_memory() -> None:
            while True:
                sample = await sample_node(session, metrics_url)
                report.peak_rss_bytes = max(report.peak_rss_bytes, sample.rss_bytes)
                await asyncio.sleep(0.5)

        watcher = asyncio.create_task(watch_memory())
        limit = options.duration + options.answer_timeout * 2 + 30
        try:
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=limit)
        except TimeoutError:
            for task in tasks:
                task.cancel()
        watcher.cancel()
        report.after = await sample_node(session, metrics_url)
    report.wall_seconds = time.monotonic() - started
    return report
