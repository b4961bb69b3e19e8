"""A simulated SIP caller: the OpenSIPS double signals, a Python RTP phone carries the media.

Like the Twilio caller it streams real-time 20 ms G.711 for the whole call (silence between
utterances), detects the bot's speech in the RTP it receives (the connector sends comfort silence
while quiet, so speech is told apart by energy), measures voice-to-voice on the wire (its last
speech packet → the first loud packet back), and hangs up with a BYE.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from voice_connector.audio.g711 import ulaw_decode, ulaw_encode
from voice_connector.caller.opensips_double import OpenSIPSDouble, offer_sdp
from voice_connector.caller.rtp_peer import RtpPeer
from voice_connector.caller.twilio_caller import (
    CHUNK_BYTES,
    CHUNK_SECS,
    CallerTurn,
    fetch_call_record,
    load_mulaw,
)
from voice_connector.transports.opensips.sdp import parse_offer

SPEECH_RMS = 300.0
"""A received 20 ms packet louder than this carries bot speech (silence fill is ~0)."""
END_OF_ANSWER_SECS = 1.5
SILENT_PACKET = ulaw_encode(np.zeros(CHUNK_BYTES, dtype=np.int16))


@dataclass
class SipCallerOptions:
    audio: list[Path]
    node_http: str
    """The media node's base URL, for its call record (`/calls/{key}`)."""
    called: str = "ai"
    extra_params: str | None = None
    answer_timeout: float = 60.0
    answer_setup_timeout: float = 10.0
    wait_for_greeting: bool = True
    """Listen for the bot's greeting before speaking (off for nodes configured without one)."""


@dataclass
class SipCallResult:
    key: str
    answered: bool = False
    turns: list[CallerTurn] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    loud_packets: int = 0
    server_record: dict[str, Any] | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.answered and not self.error and self.loud_packets > 0

    @property
    def media_arrivals(self) -> list[tuple[float, float]]:
        """(arrival, seconds of audio) per received packet: every RTP packet is 20 ms."""
        return [(t, CHUNK_SECS) for t in self.arrivals]


class SimulatedSipCall:
    """One SIP call through the double; `run()` places it and returns what happened."""

    def __init__(self, double: OpenSIPSDouble, options: SipCallerOptions) -> None:
        self.double = double
        self.options = options
        self.key = double.new_key()
        self.result = SipCallResult(key=self.key)
        self._last_loud = 0.0
        self._phone: RtpPeer | None = None

    def _on_packet(self, packet: bytes) -> None:
        now = time.monotonic()
        self.result.arrivals.append(now)
        pcm = ulaw_decode(packet[12:]).astype(np.float64)
        if len(pcm) and float(np.sqrt(np.mean(pcm**2))) > SPEECH_RMS:
            self.result.loud_packets += 1
            self._last_loud = now
            turn = self.result.turns[-1] if self.result.turns else None
            if turn and turn.last_frame_at and turn.first_bot_audio_at is None:
                turn.first_bot_audio_at = now

    async def _answer(self) -> tuple[str, int] | None:
        """Wait for our 200 OK (an MI `ua_session_reply`) and return the connector's RTP address."""
        try:
            await self.double.wait_for(
                lambda: (
                    any(
                        r.get("code") == 200
                        for r in self.double.mi_calls("ua_session_reply", self.key)
                    )
                    or any(
                        r.get("code", 0) >= 300
                        for r in self.double.mi_calls("ua_session_reply", self.key)
                    )
                ),
                limit=self.options.answer_setup_timeout,
            )
        except TimeoutError:
            return None
        replies = self.double.mi_calls("ua_session_reply", self.key)
        answer = next((r for r in replies if r.get("code") == 200), None)
        if answer is None:
            return None
        offer = parse_offer(answer["body"])
        return offer.ip, offer.port

    async def _send_realtime(self, dest: tuple[str, int], mulaw: bytes) -> float:
        assert self._phone is not None
        loop = asyncio.get_running_loop()
        start = loop.time()
        last = time.monotonic()
        for index, offset in enumerate(range(0, len(mulaw), CHUNK_BYTES)):
            await asyncio.sleep(max(0.0, start + index * CHUNK_SECS - loop.time()))
            self._phone.send(dest, mulaw[offset : offset + CHUNK_BYTES].ljust(CHUNK_BYTES, b"\xff"))
            last = time.monotonic()
        return last

    async def _silence_until(self, dest: tuple[str, int], done: Any, limit: float) -> None:
        assert self._phone is not None
        loop = asyncio.get_running_loop()
        start = loop.time()
        index = 0
        while loop.time() - start < limit and not done():
            await asyncio.sleep(max(0.0, start + index * CHUNK_SECS - loop.time()))
            self._phone.send(dest, SILENT_PACKET)
            index += 1

    def _answer_finished(self) -> bool:
        turn = self.result.turns[-1] if self.result.turns else None
        started = turn is None or turn.first_bot_audio_at is not None
        quiet = time.monotonic() - self._last_loud
        return started and self._last_loud > 0 and quiet >= END_OF_ANSWER_SECS

    async def run(self) -> SipCallResult:
        clips = [(path.name, load_mulaw(path)) for path in self.options.audio]
        self._phone = await RtpPeer.open()
        self._phone.on_packet = self._on_packet
        try:
            self.double.invite(
                self.key,
                offer_sdp(self._phone.port),
                user=self.options.called,
                extra_params=self.options.extra_params,
            )
            dest = await self._answer()
            if dest is None:
                self.result.error = "not answered"
                return self.result
            self.result.answered = True
            self.double.ack(self.key)
            if self.options.wait_for_greeting:
                limit = self.options.answer_timeout
                await self._silence_until(dest, self._answer_finished, limit)
            for name, mulaw in clips:
                turn = CallerTurn(audio=name)
                self.result.turns.append(turn)
                turn.last_frame_at = await self._send_realtime(dest, mulaw)
                await self._silence_until(dest, self._answer_finished, self.options.answer_timeout)
            self.double.bye(self.key)
        finally:
            self._phone.close()
        self.result.server_record = await self._fetch_record()
        return self.result

    async def _fetch_record(self) -> dict[str, Any] | None:
        url = f"{self.options.node_http.rstrip('/')}/calls/{self.key}"
        async with aiohttp.ClientSession() as session:
            return await fetch_call_record(session, url)
