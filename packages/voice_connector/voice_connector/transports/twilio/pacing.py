"""Outbound pacing for Twilio: real time, but a little ahead.

Pipecat's WebSocket output sends each audio chunk exactly on the real-time clock, so any tick
that runs late on a busy event loop becomes a gap the caller hears. Twilio buffers what it
receives, so we keep `LEAD_SECS` of audio in that buffer: the first chunks of each answer go out at
once, later chunks on the real-time schedule, and a late tick is made up by sending sooner.
Barge-in loses nothing by it: `clear` flushes Twilio's buffer.
"""

from __future__ import annotations

import asyncio
import time

from pipecat.transports.websocket.fastapi import (
    FastAPIWebsocketOutputTransport,
    FastAPIWebsocketTransport,
)

LEAD_SECS = 0.1


class LeadPacedOutput(FastAPIWebsocketOutputTransport):
    """Pipecat's output with a bounded lead over real time instead of none."""

    async def _write_audio_sleep(self) -> None:
        now = time.monotonic()
        floor = now - LEAD_SECS
        if self._next_send_time < floor:  # idle or late: re-anchor, keeping the lead
            self._next_send_time = floor
        self._next_send_time += self._send_interval
        delay = self._next_send_time - now
        if delay > 0:
            await asyncio.sleep(delay)


class LeadPacedTransport(FastAPIWebsocketTransport):
    """Pipecat's FastAPI WebSocket transport with `LeadPacedOutput`."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._output = LeadPacedOutput(self, self._client, self._params, name=self._output_name)
