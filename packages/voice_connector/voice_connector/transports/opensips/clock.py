"""One 20 ms pacing clock thread for every outbound RTP stream of the process.

Why a thread and not an asyncio task: a timer callback on the event loop runs only after every
callback already queued, and with dozens of calls a burst of inbound packets and pipeline frames
easily queues 10+ ms of work, which showed up as late, bunched packets (p99 jitter ~20 ms at 25
calls). The clock thread sleeps to absolute targets (tick n at t0 + n × 20 ms, so no drift) and
only pops pre-encoded payloads and calls `sendto`; it needs the GIL for microseconds, which the
interpreter hands over within its switch interval (lowered to 1 ms by the provider). If the
process stalls for more than a period, the missed ticks are skipped (the streams advance their
timestamps, the receiver sees a gap) rather than sent as a burst.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

from loguru import logger

PTIME = 0.020


class Tickable(Protocol):
    """An outbound stream driven by the clock (called from the clock thread)."""

    def on_tick(self, lateness: float) -> None:
        """Send this period's packet; `lateness` is how far behind schedule the tick runs."""

    def on_skip(self, periods: int) -> None:
        """`periods` ticks were skipped after a stall: advance timestamps, send nothing."""


class PacingClock:
    """Drives registered streams from a daemon thread; `close()` stops it."""

    def __init__(self, period: float = PTIME) -> None:
        self.period = period
        self._streams: dict[int, Tickable] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ticks = 0
        self.skipped = 0

    def register(self, stream: Tickable) -> None:
        """Start ticking `stream` from the next period."""
        with self._lock:
            self._streams[id(stream)] = stream
            if self._thread is None:
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name="rtp-clock", daemon=True)
                self._thread.start()

    def unregister(self, stream: Tickable) -> None:
        """Stop ticking `stream` (idempotent; a tick in progress may still finish)."""
        with self._lock:
            self._streams.pop(id(stream), None)

    async def close(self) -> None:
        """Stop the clock thread."""
        with self._lock:
            self._streams.clear()
            thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join(timeout=1.0)

    def _run(self) -> None:
        start = time.monotonic()
        n = 0
        while not self._stop.is_set():
            n += 1
            target = start + n * self.period
            delay = target - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            lateness = time.monotonic() - target
            with self._lock:
                streams = list(self._streams.values())
            if lateness >= self.period:
                missed = int(lateness // self.period)
                n += missed
                self.skipped += missed
                lateness -= missed * self.period
                for stream in streams:
                    stream.on_skip(missed)
            self.ticks += 1
            for stream in streams:
                try:
                    stream.on_tick(lateness)
                except Exception:  # one broken stream must not stop the others
                    logger.exception("RTP stream tick failed")
                    self.unregister(stream)
