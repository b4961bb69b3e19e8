"""Piper on the legacy Piper WebSocket service (`/tts`): one persistent connection per call.

Request `{"text", "voice", "sample_rate", "format": "pcm16"}` → `{"type": "start"}`, binary PCM16
chunks at the voice's rate, `{"type": "end"}`; `{"type": "error"}` becomes an ErrorFrame and the
call goes on. Audio is resampled once, 22050 Hz → pipeline rate, by Pipecat's
`_stream_audio_frames_from_iterator`, as the in-process Piper does. A sentence cut off by barge-in
keeps streaming until its `end` (no cancel in the protocol): `ResponseChannel` drains it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any

from pipecat.frames.frames import ErrorFrame, Frame
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TTSService

from voice_connector.services.outage import CallEnder, ChannelForTheCall
from voice_connector.services.tts.first_clause import speak_first_clause_early
from voice_connector.services.ws_client import (
    Backoff,
    ConnectionLost,
    Message,
    ProviderUnavailable,
    ReconnectingSocket,
    ResponseChannel,
)

PIPER_MEDIUM_RATE = 22050
"""Piper's medium-quality voices (en_US-joe-medium included) speak at 22050 Hz."""


class PiperServiceError(Exception):
    """The Piper service answered a request with an error frame."""


def _control(message: Message) -> dict[str, Any]:
    if isinstance(message, bytes):
        return {}
    try:
        data = json.loads(message)
    except ValueError:
        return {"type": "error", "message": f"unexpected text frame {message[:80]!r}"}
    return data if isinstance(data, dict) else {}


def is_last_message(message: Message) -> bool:
    """`end` and `error` end a response."""
    return _control(message).get("type") in ("end", "error")


class RemotePiperTTSService(ChannelForTheCall, TTSService):
    """Speaks through the Piper WebSocket service; reconnects on drops, ends the call if gone."""

    def __init__(
        self,
        *,
        url: str,
        voice: str,
        voice_sample_rate: int = PIPER_MEDIUM_RATE,
        call_id: str = "",
        backoff: Backoff | None = None,
        first_chunk_words: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            push_start_frame=True,
            push_stop_frames=True,
            settings=TTSSettings(model=None, voice=voice, language=None),
            **kwargs,
        )
        socket = ReconnectingSocket(url, name="piper_ws", call_id=call_id, backoff=backoff)
        self.channel = ResponseChannel(socket, is_last_message)
        self._voice_name = voice
        self._voice_rate = voice_sample_rate
        self._ender = CallEnder(self, can_apologize=False)
        speak_first_clause_early(self, first_chunk_words)

    def can_generate_metrics(self) -> bool:
        return True

    def _request(self, text: str) -> str:
        return json.dumps(
            {
                "text": text,
                "voice": self._voice_name,
                "sample_rate": self._voice_rate,
                "format": "pcm16",
            }
        )

    async def _audio(self, text: str) -> AsyncIterator[bytes]:
        """The PCM chunks of one sentence; raises `PiperServiceError` on an error frame."""
        async with aclosing(self.channel.request(self._request(text))) as replies:
            async for message in replies:
                if isinstance(message, bytes):
                    yield message
                    continue
                data = _control(message)
                if data.get("type") == "error":
                    raise PiperServiceError(str(data.get("message", "unknown error")))

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame, None]:
        """Stream one sentence; a lost connection is retried once on a fresh one."""
        if self._ender.ended:
            return
        await self.start_tts_usage_metrics(text)
        for attempt in (1, 2):
            spoken = False
            try:
                async with aclosing(self._audio(text)) as chunks:
                    async for frame in self._stream_audio_frames_from_iterator(
                        chunks, in_sample_rate=self._voice_rate, context_id=context_id
                    ):
                        spoken = True
                        await self.stop_ttfb_metrics()
                        yield frame
                return
            except PiperServiceError as exc:
                yield ErrorFrame(error=f"Piper service error: {exc}")
                return
            except ConnectionLost as exc:
                if spoken or attempt == 2:
                    yield ErrorFrame(error=str(exc))
                    return
            except ProviderUnavailable as exc:
                await self._ender.end_call(str(exc), exc)
                return
            finally:
                await self.stop_ttfb_metrics()
