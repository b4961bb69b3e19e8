"""STT clients against the real servers (real models, real sockets), behind a real VAD.

Whisper remote: Piper English must come back within 20 % WER. Vosk (the only installable Vosk model
is Korean): espeak-ng Korean must give a non-empty transcript, the same each time, finalized when
the VAD ends the utterance; remote Vosk must survive the server dropping the connection
mid-utterance and must end the stream with the exact `{"eof" : 1}`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.frames.frames import (
    EndWorkerFrame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
    TTSSpeakFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.audio.vad_processor import VADProcessor

from tests.integration.providers.harness import Harness, silence, utterance, wer
from voice_connector.services.outage import APOLOGY
from voice_connector.services.stt.vosk import RemoteVoskSTTService, VoskSTTService
from voice_connector.services.stt.whisper_remote import RemoteWhisperSTTService
from voice_connector.services.ws_client import Backoff

pytestmark = pytest.mark.slow
FAST_GIVE_UP = Backoff(attempts=2, first_delay=0.05)


def vad() -> VADProcessor:
    return VADProcessor(vad_analyzer=SileroVADAnalyzer(params=VADParams(stop_secs=0.5)))


def final(frame: Any) -> bool:
    return isinstance(frame, TranscriptionFrame) and frame.finalized


async def transcribe(stt: Any, pcm: bytes, realtime: bool = False) -> tuple[str, Harness]:
    """Run one utterance through VAD → stt; the finalized transcript and the harness."""
    async with Harness(vad(), stt) as h:
        await h.push_audio(utterance(pcm), realtime=realtime)
        frame = await h.wait_for(final)
        # The final comes after the VAD's stop, i.e. it is what ends the turn.
        stop = h.down.index(h.of(VADUserStoppedSpeakingFrame)[0])
        assert h.down.index(frame) > stop
    return frame.text, h


async def test_whisper_remote_transcribes_english(
    whisper_server: Any, english_speech: dict[str, bytes]
) -> None:
    for text, pcm in english_speech.items():
        stt = RemoteWhisperSTTService(url=whisper_server.http, call_id="call-w1")
        heard, h = await transcribe(stt, pcm)
        assert wer(text, heard) <= 0.2, heard
        assert not h.errors


async def test_whisper_remote_down_at_start_apologizes_and_ends() -> None:
    stt = RemoteWhisperSTTService(url="http://127.0.0.1:9", backoff=FAST_GIVE_UP)
    async with Harness(vad(), stt) as h:
        await h.wait_finished()
    assert [f.text for f in h.of(TTSSpeakFrame)] == [APOLOGY]
    assert h.of(EndWorkerFrame)
    assert h.errors


async def test_whisper_remote_down_mid_call_apologizes_and_ends(
    whisper_server: Any, english_speech: dict[str, bytes], gate: Any
) -> None:
    await gate.open(whisper_server.port)
    stt = RemoteWhisperSTTService(url=gate.http, backoff=FAST_GIVE_UP)
    async with Harness(vad(), stt) as h:
        pcm = next(iter(english_speech.values()))
        await h.push_audio(utterance(pcm))
        await h.wait_for(final)
        await gate.shut()
        await h.push_audio(utterance(pcm))
        await h.wait_finished()
    assert [f.text for f in h.of(TTSSpeakFrame)] == [APOLOGY]


async def test_vosk_local_transcript_is_stable_and_final(
    vosk_model: Path, korean_speech: bytes
) -> None:
    texts = []
    for _ in range(2):
        stt = VoskSTTService(model_path=vosk_model)
        text, h = await transcribe(stt, korean_speech, realtime=True)
        texts.append(text)
        assert h.of(InterimTranscriptionFrame), "partials should stream while speaking"
        assert len(h.of(TranscriptionFrame)) == 1
    assert texts[0].strip()
    assert texts[0] == texts[1]


async def test_vosk_remote_transcript_is_stable_and_ends_with_eof(
    vosk_server: Any, korean_speech: bytes
) -> None:
    texts = []
    for _ in range(2):
        stt = RemoteVoskSTTService(url=vosk_server.ws, call_id="call-v1")
        text, h = await transcribe(stt, korean_speech, realtime=True)
        texts.append(text)
        assert h.of(InterimTranscriptionFrame)
        assert not h.errors
        # Only the exact '{"eof" : 1}' gets a final result (anything else: an error reply).
        assert stt.eof_reply is not None
        assert "text" in json.loads(stt.eof_reply)
    assert texts[0].strip()
    assert texts[0] == texts[1]


async def test_vosk_remote_survives_server_dropping_mid_utterance(
    vosk_server: Any, korean_speech: bytes, gate: Any
) -> None:
    stt = RemoteVoskSTTService(url=vosk_server.ws)
    reference, _ = await transcribe(stt, korean_speech, realtime=True)
    await gate.open(vosk_server.port)
    stt = RemoteVoskSTTService(url=gate.ws)
    async with Harness(vad(), stt) as h:
        pcm = utterance(korean_speech)
        half = len(pcm) // 2 // 640 * 640
        await h.push_audio(pcm[:half], realtime=True)
        assert h.of(InterimTranscriptionFrame), "the server was recognizing when it dropped"
        gate.drop()
        await h.push_audio(pcm[half:], realtime=True)
        frame = await h.wait_for(final)
    assert stt.reconnects >= 1
    # The unanswered audio was replayed on the new connection: the utterance comes out whole
    # (within Vosk's own run-to-run wobble).
    assert wer(reference, frame.text) <= 0.3, (reference, frame.text)


async def test_vosk_remote_down_at_start_apologizes_and_ends() -> None:
    stt = RemoteVoskSTTService(url="ws://127.0.0.1:9", backoff=FAST_GIVE_UP)
    async with Harness(vad(), stt) as h:
        await h.wait_finished()
    assert [f.text for f in h.of(TTSSpeakFrame)] == [APOLOGY]


async def test_vosk_remote_down_mid_call_apologizes_and_ends(
    vosk_server: Any, korean_speech: bytes, gate: Any
) -> None:
    await gate.open(vosk_server.port)
    stt = RemoteVoskSTTService(url=gate.ws, backoff=FAST_GIVE_UP)
    async with Harness(vad(), stt) as h:
        await h.push_audio(utterance(korean_speech))
        await h.wait_for(final)
        await gate.shut()
        await h.push_audio(silence(0.5))
        await h.wait_finished()
    assert [f.text for f in h.of(TTSSpeakFrame)] == [APOLOGY]
