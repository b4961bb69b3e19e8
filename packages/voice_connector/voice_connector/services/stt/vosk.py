"""Streaming Vosk STT, in-process (`VoskSTTService`) or on a vosk-server (`RemoteVoskSTTService`).

Vosk recognizes while the caller speaks: partial results become `InterimTranscriptionFrame`s. The
turn ends on the pipeline's VAD, not on Vosk's own endpointer: when the VAD reports the end of
speech the recognizer is flushed (`FinalResult()` locally, `{"reset" : 1}` remotely) and the whole
utterance (Vosk endpoints inside it included) is pushed as one finalized `TranscriptionFrame`, so
the turn-stop strategy ends the turn at once instead of waiting for its STT timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any, Literal

from loguru import logger
from pipecat.audio.utils import create_stream_resampler
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InterimTranscriptionFrame,
    StartFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.settings import STTSettings
from pipecat.services.stt_service import STTService
from pipecat.utils.errors import ErrorCategory
from pipecat.utils.time import time_now_iso8601
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from voice_connector.services import shared_models
from voice_connector.services.outage import CallEnder
from voice_connector.services.ws_client import Backoff, ProviderUnavailable, ReconnectingSocket

EOF_MESSAGE = '{"eof" : 1}'
"""vosk-server compares this string exactly (note the space before the colon)."""
RESET_MESSAGE = '{"reset" : 1}'
CHUNK_SECONDS = 0.1
"""Audio is fed in 100 ms chunks: fewer round trips than 20 ms frames, partials still prompt."""
VOSK_TTFS_P99 = 1.0
MAX_REPLAY_SECONDS = 30.0

ResultKind = Literal["partial", "final", "flush"]


class _VoskSTTBase(STTService):
    """Turns recognizer results into Pipecat transcription frames, one final per VAD utterance."""

    def __init__(self, *, language: str, **kwargs: Any) -> None:
        super().__init__(
            ttfs_p99_latency=VOSK_TTFS_P99,
            settings=STTSettings(model=None, language=language),
            **kwargs,
        )
        self._language = language
        self._pending = bytearray()
        self._utterance: list[str] = []
        self._last_interim = ""
        self._in_utterance = False
        self._flushes_pending = 0

    def can_generate_metrics(self) -> bool:
        return True

    def _chunk_bytes(self) -> int:
        return int(self.sample_rate * CHUNK_SECONDS) * 2

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame | None, None]:
        """Batch the 20 ms frames into chunks and feed them to the recognizer."""
        self._pending += audio
        if len(self._pending) >= self._chunk_bytes():
            chunk = bytes(self._pending)
            self._pending.clear()
            await self._feed(chunk)
        yield None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, VADUserStartedSpeakingFrame):
            self._in_utterance = True
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            if self._pending:
                chunk = bytes(self._pending)
                self._pending.clear()
                await self._feed(chunk)
            self._in_utterance = False
            self._flushes_pending += 1
            await self._flush()

    async def _on_result(self, kind: ResultKind, text: str) -> None:
        """One recognizer reply: a partial, an endpoint final, or the answer to a flush."""
        text = text.strip()
        if kind == "partial":
            combined = " ".join([*self._utterance, text]).strip()
            if text and combined != self._last_interim:
                self._last_interim = combined
                await self.push_frame(self._frame(InterimTranscriptionFrame, combined))
            return
        if kind == "final" and not (self._in_utterance or self._flushes_pending):
            if text:  # speech the VAD did not catch: Pipecat's fallback path ends that turn
                await self.push_frame(self._frame(TranscriptionFrame, text, finalized=True))
            return
        if text:
            self._utterance.append(text)
        if kind == "flush":
            self._flushes_pending = max(0, self._flushes_pending - 1)
            utterance = " ".join(self._utterance).strip()
            self._utterance.clear()
            self._last_interim = ""
            if utterance:
                await self.push_frame(self._frame(TranscriptionFrame, utterance, finalized=True))

    def _frame(self, cls: type[Any], text: str, finalized: bool = False) -> Any:
        frame = cls(text, self._user_id, time_now_iso8601(), self._language)
        if finalized:
            frame.finalized = True
        return frame

    async def _feed(self, chunk: bytes) -> None:
        raise NotImplementedError

    async def _flush(self) -> None:
        raise NotImplementedError


def _text(reply: str, key: str) -> str:
    try:
        value = json.loads(reply).get(key, "")
    except (ValueError, AttributeError):
        return ""
    return value if isinstance(value, str) else ""


class VoskSTTService(_VoskSTTBase):
    """Vosk in this process: the model is shared, each call has its own recognizer."""

    def __init__(self, *, model_path: Path, language: str = "ko", **kwargs: Any) -> None:
        super().__init__(language=language, **kwargs)
        self._model_path = model_path
        self._recognizer: Any = None

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        from vosk import KaldiRecognizer

        model = await asyncio.to_thread(shared_models.vosk_model, self._model_path)
        self._recognizer = KaldiRecognizer(model, float(self.sample_rate))

    def _accept(self, chunk: bytes) -> tuple[ResultKind, str]:
        rec = self._recognizer
        if rec.AcceptWaveform(chunk):
            return "final", _text(rec.Result(), "text")
        return "partial", _text(rec.PartialResult(), "partial")

    async def _feed(self, chunk: bytes) -> None:
        if self._recognizer is None:
            return
        kind, text = await asyncio.to_thread(self._accept, chunk)
        await self._on_result(kind, text)

    async def _flush(self) -> None:
        if self._recognizer is None:
            return
        reply = await asyncio.to_thread(self._recognizer.FinalResult)
        await self._on_result("flush", _text(reply, "text"))


class RemoteVoskSTTService(_VoskSTTBase):
    """A vosk-server over WebSocket, reconnecting (and replaying unrecognized audio) on drops.

    The server answers every message with exactly one reply, in order, so the client keeps the
    messages that have no reply yet: after a reconnect it resends them, together with the audio
    since the recognizer's last result boundary, and the utterance comes out whole.
    """

    def __init__(
        self,
        *,
        url: str,
        language: str = "ko",
        server_sample_rate: int = 16000,
        call_id: str = "",
        backoff: Backoff | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(language=language, **kwargs)
        self._backoff = backoff or Backoff()
        self._socket = ReconnectingSocket(
            url, name="vosk", call_id=call_id, backoff=self._backoff
        )
        self._server_rate = server_sample_rate
        self._resampler = create_stream_resampler()
        self._unacked: deque[tuple[str, bytes]] = deque()
        self._since_boundary: list[bytes] = []
        self._send_lock = asyncio.Lock()
        self._live: ClientConnection | None = None
        self._receiver: asyncio.Task[None] | None = None
        self._stopping = False
        self._ender = CallEnder(self, can_apologize=True)
        self.eof_reply: str | None = None
        """The server's answer to `{"eof" : 1}` at the end of the call (a final result)."""

    @property
    def reconnects(self) -> int:
        return max(0, self._socket.connects - 1)

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        self._receiver = self.create_task(self._receive_loop(), name="vosk_receive")

    async def stop(self, frame: EndFrame) -> None:
        await self._close(send_eof=True)
        await super().stop(frame)

    async def cancel(self, frame: CancelFrame) -> None:
        await self._close(send_eof=False)
        await super().cancel(frame)

    def _config_message(self) -> str:
        return json.dumps({"config": {"sample_rate": self._server_rate}})

    async def _connect(self) -> ClientConnection:
        """Open the connection, configure it and replay what the server has not answered."""
        ws = await self._socket.connect()
        async with self._send_lock:
            replay = [("audio", b"".join(self._since_boundary)), *self._unacked]
            self._since_boundary.clear()
            self._unacked.clear()
            await ws.send(self._config_message())
            for kind, audio in replay:
                if kind == "audio" and not audio:
                    continue
                self._unacked.append((kind, audio))
                await ws.send(audio if kind == "audio" else RESET_MESSAGE)
            self._live = ws  # from now on `_send` writes to it directly
        return ws

    async def _receive_loop(self) -> None:
        """Read replies; on a drop reconnect and replay, backing off while drops come in a row."""
        drops = 0  # consecutive connections that dropped before answering anything
        while not self._stopping:
            answered = False
            try:
                ws = await self._connect()
                async for reply in ws:
                    answered = True
                    await self._on_reply(reply)
                if self._stopping:
                    return
                logger.warning(f"{self}: server closed the connection; reconnecting")
            except ConnectionClosed as exc:
                if self._stopping:
                    return
                logger.warning(f"{self}: connection lost ({exc}); reconnecting")
            except ProviderUnavailable as exc:
                await self._ender.end_call(f"vosk-server unavailable: {exc}", exc)
                return
            self._live = None
            self._socket.drop()
            drops = 0 if answered else drops + 1
            if drops >= self._backoff.attempts:
                await self._ender.end_call("vosk-server keeps dropping the connection")
                return
            if drops:
                await asyncio.sleep(self._backoff.delay(drops))

    async def _on_reply(self, reply: str | bytes) -> None:
        kind, audio = self._unacked.popleft() if self._unacked else ("audio", b"")
        try:
            data = json.loads(reply)
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        if kind == "eof":
            self.eof_reply = str(reply)
        elif "error" in data:
            await self.push_error(f"vosk-server: {data['error']}", category=ErrorCategory.SERVER)
        elif "partial" in data and kind == "audio":
            self._since_boundary.append(audio)
            self._trim_replay()
            await self._on_result("partial", str(data["partial"]))
        else:
            self._since_boundary.clear()
            result: ResultKind = "flush" if kind == "flush" else "final"
            await self._on_result(result, str(data.get("text", "")))

    def _trim_replay(self) -> None:
        limit = int(self._server_rate * MAX_REPLAY_SECONDS) * 2
        while sum(len(a) for a in self._since_boundary) > limit and len(self._since_boundary) > 1:
            self._since_boundary.pop(0)

    async def _send(self, kind: str, audio: bytes = b"") -> None:
        async with self._send_lock:
            self._unacked.append((kind, audio))
            if self._live is None:
                return  # the receive loop is reconnecting: it resends everything unanswered
            with contextlib.suppress(ConnectionClosed):
                await self._live.send(audio if kind == "audio" else RESET_MESSAGE)

    async def _feed(self, chunk: bytes) -> None:
        if self._ender.ended:
            return
        if self.sample_rate != self._server_rate:
            chunk = await self._resampler.resample(chunk, self.sample_rate, self._server_rate)
        await self._send("audio", chunk)

    async def _flush(self) -> None:
        if not self._ender.ended:
            await self._send("flush")

    async def _close(self, *, send_eof: bool) -> None:
        self._stopping = True
        ws = self._live
        if send_eof and ws is not None:
            try:
                async with asyncio.timeout(3.0):
                    async with self._send_lock:
                        self._unacked.append(("eof", b""))
                        await ws.send(EOF_MESSAGE)
                    if self._receiver is not None:
                        await asyncio.shield(self._receiver)
            except (TimeoutError, ConnectionClosed) as exc:
                logger.warning(f"{self}: no clean end of stream: {exc!r}")
        if self._receiver is not None:
            await self.cancel_task(self._receiver)
            self._receiver = None
        await self._socket.close()
