"""Fixtures for the AI service servers.

Each runs for real (uvicorn, loopback, free port, real model), once per test session, in a
background thread with its own event loop (`tests.support.servers`). The Qwen Ollama-API server is
the session-wide `qwen_ollama` fixture of tests/conftest.py, shared with the other suites.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI

from ai_services.audio import resample_pcm16
from tests.support.servers import ServerThread
from tests.support.speech import espeak_korean

SENTENCES = [
    "Please transfer me to the billing department.",
    "I would like to book a table for two people tomorrow evening.",
    "What time does the pharmacy open on Sunday?",
]
KOREAN_TEXT = "안녕하세요 만나서 반갑습니다"


@pytest.fixture
def start_server() -> Iterator[Any]:
    """Start extra servers with special settings inside one test; stopped after it."""
    started: list[ServerThread] = []

    def start(app: FastAPI, wait_ready: bool = True) -> ServerThread:
        server = ServerThread(app).start(wait_ready=wait_ready)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


# --------------------------------------------------------------------------- speech


@pytest.fixture(scope="session")
def piper_voice() -> Any:
    from piper import PiperVoice

    from voice_connector_core.models import piper_joe_voice

    onnx, config = piper_joe_voice()
    return PiperVoice.load(str(onnx), config_path=str(config))


def synthesize(voice: Any, text: str, rate: int) -> bytes:
    """English speech from Piper (joe voice) as PCM16 at `rate`.

    Deterministic (Piper's noise off: its random draws otherwise make a test pass or fail by
    luck) and with 300 ms of silence each side like a VAD-cut utterance's pre-roll.
    """
    from piper import SynthesisConfig

    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    pcm = b"".join(chunk.audio_int16_bytes for chunk in voice.synthesize(text, config))
    silence = b"\0\0" * int(voice.config.sample_rate * 0.3)
    return resample_pcm16(silence + pcm + silence, voice.config.sample_rate, rate)


@pytest.fixture(scope="session")
def english_16k(piper_voice: Any) -> dict[str, bytes]:
    """Each sentence of SENTENCES spoken by Piper, 16 kHz PCM16."""
    return {text: synthesize(piper_voice, text, 16000) for text in SENTENCES}


@pytest.fixture(scope="session")
def korean_8k(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Korean speech as 8 kHz PCM16 (telephony rate, Vosk's default)."""
    return espeak_korean(KOREAN_TEXT, tmp_path_factory.mktemp("speech"), 8000)


def words(text: str) -> list[str]:
    return re.sub(r"[^\w\s']", " ", text.lower()).split()


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word error rate (word-level Levenshtein distance / reference length)."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / max(len(ref), 1)


@pytest.fixture(scope="session")
def wer() -> Any:
    """The word-error-rate function (a fixture: this folder has no package to import from)."""
    return word_error_rate
