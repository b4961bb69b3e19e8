"""A simulated Twilio caller speaking the exact Media Streams protocol.

It behaves like Twilio's side of a `<Connect><Stream>`: `connected`, `start` (with
customParameters), inbound `media` in 20 ms μ-law chunks at real-time pace for the whole call
(silence between utterances, as a phone line does), `dtmf`, and `stop`. It plays the bot's audio on
a real-time clock, so it echoes each `mark` only once the audio before it has "played", and a
`clear` drops what has not played yet — what a caller would actually hear.

It is the user's way to try the connector without a phone, and the tests' Twilio peer.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

import aiohttp
import numpy as np
import soxr

from voice_connector.audio.g711 import ulaw_decode, ulaw_encode
from voice_connector.telemetry.outcome import CallOutcome
from voice_connector_core.netaccess import private_headers

RATE = 8000
CHUNK_SECS = 0.02
CHUNK_BYTES = int(RATE * CHUNK_SECS)
SILENCE = ulaw_encode(np.zeros(CHUNK_BYTES, dtype=np.int16))
END_OF_ANSWER_SECS = 1.5
"""Bot silence after which its answer is taken as finished."""
SPEECH_RMS = 300.0
"""A chunk louder than this (RMS of 16-bit PCM) holds speech: a synthesized clip's trailing
silence, and line noise, stay below it."""


@dataclass
class CallerOptions:
    audio: list[Path]
    url: str = "ws://127.0.0.1:8080/twilio/stream"
    flavor: str = ""
    called: str = ""
    caller: str = "+15550001111"
    out: Path | None = None
    answer_timeout: float = 60.0
    dtmf: str = ""
    barge_in_after: float | None = None
    """Start each next utterance this long after the bot starts answering (barge-in)."""
    wait_for_greeting: bool = True
    call_sid: str = field(default_factory=lambda: "CA" + uuid.uuid4().hex)
    extra_parameters: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class CallerTurn:
    audio: str
    sent_at: float = 0.0
    last_frame_at: float = 0.0
    speech_end_at: float = 0.0
    """When the clip's last chunk holding speech was sent (its trailing silence follows)."""
    first_bot_audio_at: float | None = None

    @property
    def voice_to_voice_ms(self) -> float | None:
        if self.first_bot_audio_at is None:
            return None
        return round((self.first_bot_audio_at - self.last_frame_at) * 1000, 1)

    @property
    def speech_to_voice_ms(self) -> float | None:
        """The caller's last speech frame sent → the first bot audio frame received."""
        if self.first_bot_audio_at is None or not self.speech_end_at:
            return None
        return round((self.first_bot_audio_at - self.speech_end_at) * 1000, 1)


@dataclass
class CallResult:
    call_sid: str
    stream_sid: str
    turns: list[CallerTurn] = field(default_factory=list)
    started_at: float = 0.0
    """When `start` was sent (monotonic)."""
    first_audio_at: float | None = None
    """When the first bot audio of the call arrived: the greeting, if there is one."""
    bot_media_messages: int = 0
    bot_audio: bytearray = field(default_factory=bytearray)
    media_arrivals: list[tuple[float, float]] = field(default_factory=list)
    """(monotonic arrival time, seconds of audio) of every bot media message."""
    clears: int = 0
    marks_echoed: list[str] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    server_record: dict[str, Any] | None = None
    closed_by_server: bool = False
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and self.bot_media_messages > 0

    def report(self) -> str:
        lines = [f"call {self.call_sid} ({'ok' if self.ok else 'FAILED ' + self.error})"]
        record = self.server_record or {}
        if record.get("greeting"):
            lines.append(f"  bot:    {record['greeting']}")
        server_turns = record.get("turns", [])
        for index, turn in enumerate(self.turns):
            lines.append(f"  caller: [{turn.audio}]")
            server = server_turns[index] if index < len(server_turns) else {}
            if server.get("user_text"):
                lines.append(f"  heard:  {server['user_text']}  (STT {server.get('stt_ms')} ms)")
            if server.get("bot_text"):
                lines.append(
                    f"  bot:    {server['bot_text']}  (LLM first token "
                    f"{server.get('llm_ttft_ms')} ms, TTS first audio "
                    f"{server.get('tts_first_audio_ms')} ms)"
                )
            lines.append(f"  voice-to-voice on the wire: {turn.voice_to_voice_ms} ms")
        lines.append(
            f"  bot audio: {len(self.bot_audio) / RATE:.1f} s in "
            f"{self.bot_media_messages} media messages; clears: {self.clears}"
        )
        return "\n".join(lines)


def load_mulaw(path: Path) -> bytes:
    """A WAV file (any rate, mono or stereo, 16-bit) as 8 kHz μ-law."""
    with wave.open(str(path), "rb") as wav:
        rate, channels, width = wav.getframerate(), wav.getnchannels(), wav.getsampwidth()
        frames = wav.readframes(wav.getnframes())
    if width != 2:
        raise ValueError(f"{path}: only 16-bit PCM WAV is supported")
    pcm = np.frombuffer(frames, dtype=np.int16)
    if channels > 1:
        pcm = pcm.reshape(-1, channels).mean(axis=1).astype(np.int16)
    if rate != RATE:
        pcm = soxr.resample(pcm, rate, RATE).astype(np.int16)
    return ulaw_encode(pcm)


def _holds_speech(chunk: bytes) -> bool:
    pcm = ulaw_decode(chunk).astype(np.float32)
    return float(np.sqrt(np.mean(pcm * pcm))) > SPEECH_RMS


def write_wav(path: Path, mulaw: bytes) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(ulaw_decode(mulaw).astype(np.int16).tobytes())


async def fetch_call_record(
    session: aiohttp.ClientSession, url: str, attempts: int = 40
) -> dict[str, Any] | None:
    """The node's record of a call once it has ended (its pipeline ends a moment after the
    caller hangs up); None if the node does not answer."""
    for _ in range(attempts):
        try:
            async with session.get(url, headers=private_headers()) as response:
                if response.status == 200:
                    record = await response.json()
                    if record.get("outcome") != CallOutcome.ACTIVE:
                        return record
        except aiohttp.ClientError:
            return None
        await asyncio.sleep(0.25)
    return None


def call_record_url(stream_url: str, call_sid: str) -> str:
    parsed = urlparse(stream_url)
    scheme = "https" if parsed.scheme == "wss" else "http"
    return urlunparse((scheme, parsed.netloc, f"/calls/{call_sid}", "", "", ""))


class _Playback:
    """The caller's ear: bot audio plays in real time; marks echo once reached; clear drops."""

    def __init__(self) -> None:
        self.queued_until = 0.0  # monotonic time at which queued audio finishes playing
        self.pending_marks: list[tuple[float, str]] = []
        self.last_audio_at = 0.0

    def add_audio(self, seconds: float, now: float) -> None:
        self.queued_until = max(self.queued_until, now) + seconds
        self.last_audio_at = now

    def add_mark(self, name: str, now: float) -> None:
        self.pending_marks.append((max(self.queued_until, now), name))

    def clear(self, now: float) -> list[str]:
        self.queued_until = now
        names = [name for _, name in self.pending_marks]
        self.pending_marks.clear()
        return names

    def due_marks(self, now: float) -> list[str]:
        due = [name for at, name in self.pending_marks if at <= now]
        self.pending_marks = [(at, n) for at, n in self.pending_marks if at > now]
        return due

    def playing(self, now: float) -> bool:
        return self.queued_until > now


class SimulatedTwilioCall:
    """One call; `run()` places it and returns what happened."""

    def __init__(self, options: CallerOptions) -> None:
        self.options = options
        self.stream_sid = "MZ" + uuid.uuid4().hex
        self.result = CallResult(call_sid=options.call_sid, stream_sid=self.stream_sid)
        self._sequence = 0
        self._chunk = 0
        self._playback = _Playback()
        self._outbox: list[bytes] = []
        self._bot_started = asyncio.Event()

    def _message(self, event: str, **body: Any) -> str:
        self._sequence += 1
        return json.dumps(
            {
                "event": event,
                "sequenceNumber": str(self._sequence),
                "streamSid": self.stream_sid,
                **body,
            }
        )

    def start_message(self) -> str:
        params = {
            "flavor": self.options.flavor,
            "called": self.options.called,
            "caller": self.options.caller,
            **self.options.extra_parameters,
        }
        return self._message(
            "start",
            start={
                "streamSid": self.stream_sid,
                "accountSid": "AC" + "0" * 32,
                "callSid": self.options.call_sid,
                "tracks": ["inbound"],
                "customParameters": {k: v for k, v in params.items() if v},
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": RATE, "channels": 1},
            },
        )

    def media_message(self, chunk: bytes) -> str:
        self._chunk += 1
        return self._message(
            "media",
            media={
                "track": "inbound",
                "chunk": str(self._chunk),
                "timestamp": str(int(self._chunk * CHUNK_SECS * 1000)),
                "payload": base64.b64encode(chunk).decode(),
            },
        )

    async def _receive(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            now = time.monotonic()
            data = json.loads(msg.data)
            event = data.get("event")
            if event == "media":
                audio = base64.b64decode(data["media"]["payload"])
                self.result.bot_media_messages += 1
                self.result.bot_audio.extend(audio)
                self.result.media_arrivals.append((now, len(audio) / RATE))
                self._playback.add_audio(len(audio) / RATE, now)
                if self.result.first_audio_at is None:
                    self.result.first_audio_at = now
                turn = self.result.turns[-1] if self.result.turns else None
                if turn and turn.last_frame_at and turn.first_bot_audio_at is None:
                    turn.first_bot_audio_at = now
                self._bot_started.set()
            elif event == "mark":
                self._playback.add_mark(data["mark"]["name"], now)
            elif event == "clear":
                self.result.clears += 1
                for name in self._playback.clear(now):
                    await self._echo_mark(ws, name)
            else:
                self.result.received.append(data)
        self.result.closed_by_server = True

    async def _echo_mark(self, ws: aiohttp.ClientWebSocketResponse, name: str) -> None:
        self.result.marks_echoed.append(name)
        await ws.send_str(self._message("mark", mark={"name": name}))

    async def _until_closed(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """The node hung up while we were talking: let the close handshake finish."""
        for _ in range(500):
            if ws.closed:
                return
            await asyncio.sleep(0.01)

    async def _send_realtime(
        self, ws: aiohttp.ClientWebSocketResponse, audio: bytes, turn: CallerTurn | None = None
    ) -> float:
        """Stream `audio` in 20 ms chunks on a monotonic schedule; stops if the node hangs up.

        Returns when the last chunk was sent; stamps `turn.speech_end_at` at its last speech.
        """
        try:
            return await self._stream_chunks(ws, audio, turn)
        except aiohttp.ClientConnectionResetError:
            await self._until_closed(ws)
            return time.monotonic()

    async def _stream_chunks(
        self, ws: aiohttp.ClientWebSocketResponse, audio: bytes, turn: CallerTurn | None
    ) -> float:
        next_at = time.monotonic()
        last = next_at
        for offset in range(0, len(audio), CHUNK_BYTES):
            chunk = audio[offset : offset + CHUNK_BYTES].ljust(CHUNK_BYTES, SILENCE[:1])
            await self._tick(ws, next_at)
            await ws.send_str(self.media_message(chunk))
            last = time.monotonic()
            if turn is not None and _holds_speech(chunk):
                turn.speech_end_at = last
            next_at += CHUNK_SECS
        return last

    async def _tick(self, ws: aiohttp.ClientWebSocketResponse, at: float) -> None:
        delay = at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        for name in self._playback.due_marks(time.monotonic()):
            await self._echo_mark(ws, name)

    async def _silence_until(
        self, ws: aiohttp.ClientWebSocketResponse, done: Any, limit: float
    ) -> None:
        """Keep the line open with silence until `done()`, `limit` seconds, or the node hangs up."""
        try:
            await self._stream_silence(ws, done, limit)
        except aiohttp.ClientConnectionResetError:
            await self._until_closed(ws)

    async def _stream_silence(
        self, ws: aiohttp.ClientWebSocketResponse, done: Any, limit: float
    ) -> None:
        next_at = time.monotonic()
        deadline = next_at + limit
        while time.monotonic() < deadline and not ws.closed and not done():
            await self._tick(ws, next_at)
            await ws.send_str(self.media_message(SILENCE))
            next_at += CHUNK_SECS

    def _answer_finished(self) -> bool:
        now = time.monotonic()
        turn = self.result.turns[-1] if self.result.turns else None
        started = turn is None or turn.first_bot_audio_at is not None
        quiet = now - max(self._playback.last_audio_at, self._playback.queued_until)
        return started and self._playback.last_audio_at > 0 and quiet >= END_OF_ANSWER_SECS

    async def run(self) -> CallResult:
        options = self.options
        clips = [(path.name, load_mulaw(path)) for path in options.audio]
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            try:
                ws = await session.ws_connect(options.url, headers=options.headers, max_msg_size=0)
            except aiohttp.ClientError as exc:
                self.result.error = f"cannot connect: {exc}"
                return self.result
            async with ws:
                receiver = asyncio.create_task(self._receive(ws))
                await ws.send_str(
                    json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})
                )
                await ws.send_str(self.start_message())
                self.result.started_at = time.monotonic()
                if options.wait_for_greeting:
                    await self._silence_until(ws, self._answer_finished, options.answer_timeout)
                for index, (name, audio) in enumerate(clips):
                    turn = CallerTurn(audio=name, sent_at=time.monotonic())
                    self.result.turns.append(turn)
                    self._bot_started.clear()
                    turn.last_frame_at = await self._send_realtime(ws, audio, turn)
                    is_last = index == len(clips) - 1
                    if options.barge_in_after is not None and not is_last:
                        await self._silence_until(
                            ws,
                            lambda t=turn: t.first_bot_audio_at is not None,
                            options.answer_timeout,
                        )
                        await self._silence_until(ws, lambda: False, options.barge_in_after)
                    else:
                        await self._silence_until(ws, self._answer_finished, options.answer_timeout)
                for digit in options.dtmf:
                    await ws.send_str(
                        self._message("dtmf", dtmf={"track": "inbound_track", "digit": digit})
                    )
                if options.dtmf:
                    await self._silence_until(ws, self._answer_finished, options.answer_timeout)
                if not ws.closed:
                    await ws.send_str(
                        self._message(
                            "stop",
                            stop={"accountSid": "AC" + "0" * 32, "callSid": options.call_sid},
                        )
                    )
                    await ws.close()
                await asyncio.wait_for(receiver, timeout=5)
            record_url = call_record_url(self.options.url, self.options.call_sid)
            self.result.server_record = await fetch_call_record(session, record_url)
        if options.out is not None:
            write_wav(options.out, bytes(self.result.bot_audio))
        return self.result


async def place_call(options: CallerOptions) -> CallResult:
    """Place one simulated call and return what happened."""
    return await SimulatedTwilioCall(options).run()
