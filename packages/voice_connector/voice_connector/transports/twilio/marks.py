"""Playback truth on Twilio: `mark` messages sent behind bot audio, and their echoes.

Twilio buffers the audio we send (Pipecat sends faster than real time), so "written to the
socket" is not "heard by the caller". A `mark` sent after a sentence's audio is echoed by Twilio
when that audio has played; after a `clear` Twilio echoes the marks still pending, and those were
*not* played. The ledger keeps that bookkeeping for one stream.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any


class MarkLedger:
    """Marks issued on one stream, in order, and which of them the caller actually heard."""

    def __init__(self, stream_sid: str) -> None:
        self.stream_sid = stream_sid
        self._ids = itertools.count(1)
        self.pending: dict[str, str] = {}
        """name → text of the bot speech before it, in issue order, not yet echoed."""
        self.played: list[str] = []
        self._cleared: set[str] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def issue(self, text: str = "") -> tuple[str, dict[str, Any]]:
        """A new mark for the speech just sent: its name and the Twilio message to send."""
        name = f"vc-{next(self._ids)}"
        self.pending[name] = text
        self._idle.clear()
        message = {"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}}
        return name, message

    def echoed(self, name: str) -> None:
        """Twilio echoed `name`: played, unless it was pending when we sent `clear`."""
        if name in self._cleared:
            self._cleared.discard(name)
        elif self.pending.pop(name, None) is not None:
            self.played.append(name)
        if not self.pending:
            self._idle.set()

    def heard(self, name: str) -> bool:
        return name in self.played

    def cleared(self) -> list[str]:
        """We sent `clear`: everything pending was dropped unplayed; returns those names."""
        dropped = list(self.pending)
        self._cleared.update(dropped)
        self.pending.clear()
        self._idle.set()
        return dropped

    async def wait_played(self, limit_seconds: float) -> bool:
        """Until every issued mark is echoed or cleared; False if `limit_seconds` passed first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout=limit_seconds)
        except TimeoutError:
            return False
        return True
