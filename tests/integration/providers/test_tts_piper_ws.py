"""Piper WS TTS client against the real legacy server (joe voice); its speech is checked by ear,
i.e. transcribed by Whisper tiny.en in this process."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pipecat.frames.frames import (
    EndWorkerFrame,
    InterruptionFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStoppedFrame,
)

from tests.integration.providers.harness import RATE, Harness, wer
from voice_connector.services import shared_models
from voice_connector.services.tts.piper_ws import RemotePiperTTSService
from voice_connector.services.ws_client import Backoff
from voice_connector_core import models

pytestmark = pytest.mark.slow
SENTENCE = "Your table for two is booked for seven o'clock tomorrow evening."


def hear(pcm: bytes) -> str:
    """What Whisper tiny.en hears in 16 kHz PCM16."""
    model = shared_models.whisper_model(models.whisper_tiny_en(), "int8")
    audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    segments, _ = model.transcribe(audio, language="en", beam_size=1)
    return " ".join(s.text.strip() for s in segments)


async def speak(h: Harness, text: str, n: int) -> bytes:
    """Speak `text`, wait for the n-th end of speech; the audio of that utterance."""
    await h.push(TTSSpeakFrame(text))
    await h.wait_for(lambda _: len(h.of(TTSStoppedFrame)) >= n)
    stops = [h.down.index(f) for f in h.of(TTSStoppedFrame)]
    begin = stops[n - 2] if n > 1 else 0
    frames = [f for f in h.down[begin : stops[n - 1]] if isinstance(f, TTSAudioRawFrame)]
    assert all(f.sample_rate == RATE for f in frames), "resampled once to the pipeline rate"
    return b"".join(f.audio for f in frames)


async def test_speaks_intelligibly_at_the_pipeline_rate(piper_ws_server: Any) -> None:
    tts = RemotePiperTTSService(url=f"{piper_ws_server.ws}/tts", voice="en_US-joe-medium")
    async with Harness(tts) as h:
        pcm = await speak(h, SENTENCE, 1)
    assert len(pcm) / 2 / RATE > 1.5
    assert wer(SENTENCE, hear(pcm)) <= 0.2
    assert not h.errors


async def test_error_frame_is_reported_and_the_call_goes_on(piper_ws_server: Any) -> None:
    tts = RemotePiperTTSService(url=f"{piper_ws_server.ws}/tts", voice="en_US-joe-medium")
    async with Harness(tts) as h:
        await h.push(TTSSpeakFrame("word " * 450))  # over the server's 2000 characters: error
        await h.wait_for(lambda _: bool(h.errors), upstream=True)
        pcm = await speak(h, "Thank you for calling.", 2)
    assert "Piper service error" in h.errors[0].error
    assert wer("Thank you for calling.", hear(pcm)) <= 0.25


async def test_connection_dropped_between_sentences_is_retried(
    piper_ws_server: Any, gate: Any
) -> None:
    await gate.open(piper_ws_server.port)
    tts = RemotePiperTTSService(url=f"{gate.ws}/tts", voice="en_US-joe-medium")
    async with Harness(tts) as h:
        await speak(h, "Hello there.", 1)
        gate.drop()
        pcm = await speak(h, "Thank you for calling.", 2)
    assert tts.channel.socket.connects == 2
    assert wer("Thank you for calling.", hear(pcm)) <= 0.25


async def test_server_down_at_start_ends_the_call() -> None:
    tts = RemotePiperTTSService(
        url="ws://127.0.0.1:9/tts",
        voice="en_US-joe-medium",
        backoff=Backoff(attempts=2, first_delay=0.05),
    )
    async with Harness(tts) as h:
        await h.wait_finished()
    assert h.of(EndWorkerFrame)
    assert not h.of(TTSAudioRawFrame)


async def test_sentence_cut_by_barge_in_is_drained_not_played(piper_ws_server: Any) -> None:
    tts = RemotePiperTTSService(url=f"{piper_ws_server.ws}/tts", voice="en_US-joe-medium")
    story = "Once upon a time there was a dragon who lived in a castle by the sea " * 4
    async with Harness(tts) as h:
        await h.push(TTSSpeakFrame(story))
        await h.wait_for(lambda f: isinstance(f, TTSAudioRawFrame))
        await h.push(InterruptionFrame())  # barge-in: the server streams the rest regardless
        cut = h.down.index(await h.wait_for(lambda f: isinstance(f, InterruptionFrame)))
        await h.push(TTSSpeakFrame("Thank you for calling."))
        await h.wait_for(lambda f: isinstance(f, TTSStoppedFrame) and h.down.index(f) > cut)
    after = [f for f in h.down[cut:] if isinstance(f, TTSAudioRawFrame)]
    pcm = b"".join(f.audio for f in after)
    assert tts.channel.discarded > 0, "the cut sentence's remaining audio was drained"
    assert len(pcm) / 2 / RATE < 4, "only the new sentence was played"
    assert wer("Thank you for calling.", hear(pcm)) <= 0.25
