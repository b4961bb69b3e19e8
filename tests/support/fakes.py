"""Instant stand-ins for STT, LLM and TTS, for tests about call flow rather than models.

They are real Pipecat processors speaking the same frames as the real services, so the pipeline,
transport, barge-in and call control run unchanged; only the model work is skipped.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

import numpy as np
from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TranscriptionFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TTSService
from pipecat.utils.time import time_now_iso8601

from voice_connector.pipeline.builder import CallServices

TONE_RATE = 16000
SECONDS_PER_CHARACTER = 0.06


class FakeSTT(FrameProcessor):
    """Emits one fixed transcript at each end of caller speech.

    Passes the caller's audio on unless `stop_audio_at_stt` turns that off, as a real STT: the
    smart-turn analyzer past it reads that audio.
    """

    def __init__(self, text: str = "hello there") -> None:
        super().__init__()
        self.text = text
        self._audio_passthrough = True

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame) and not self._audio_passthrough:
            return
        await self.push_frame(frame, direction)
        if isinstance(frame, VADUserStoppedSpeakingFrame):
            transcript = TranscriptionFrame(self.text, "caller", time_now_iso8601())
            transcript.finalized = True
            await self.push_frame(transcript)


class FakeLLM(FrameProcessor):
    """Answers every context with a fixed sentence (or the caller's last words echoed)."""

    def __init__(self, answer: str = "") -> None:
        super().__init__()
        self.answer = answer
        self.contexts: list[list[dict]] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not isinstance(frame, LLMContextFrame):
            await self.push_frame(frame, direction)
            return
        messages = [dict(m) for m in frame.context.get_messages() if isinstance(m, dict)]
        self.contexts.append(messages)
        last_user = next(
            (m.get("content") for m in reversed(messages) if m.get("role") == "user"), ""
        )
        await self.push_frame(LLMFullResponseStartFrame())
        await self.push_frame(LLMTextFrame(self.answer or f"You said {last_user}."))
        await self.push_frame(LLMFullResponseEndFrame())


class ToneTTS(TTSService):
    """Speaks any text as a 440 Hz tone, 60 ms per character: audible, instant, countable."""

    def __init__(self) -> None:
        super().__init__(
            push_start_frame=True,
            push_stop_frames=True,
            settings=TTSSettings(model=None, voice=None, language=None),
        )

    def can_generate_metrics(self) -> bool:
        return False

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame, None]:
        seconds = max(0.2, len(text) * SECONDS_PER_CHARACTER)
        t = np.arange(int(seconds * TONE_RATE)) / TONE_RATE
        pcm = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16).tobytes()

        async def chunks() -> AsyncIterator[bytes]:
            for offset in range(0, len(pcm), 3200):
                yield pcm[offset : offset + 3200]

        async for frame in self._stream_audio_frames_from_iterator(
            chunks(), in_sample_rate=TONE_RATE, context_id=context_id
        ):
            yield frame


def fake_services(answer: str = "", transcript: str = "hello there") -> CallServices:
    return CallServices(stt=FakeSTT(transcript), llm=FakeLLM(answer), tts=ToneTTS())
