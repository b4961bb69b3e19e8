"""Real AI service servers (uvicorn, loopback, real models, once per session) for the provider
clients, plus speech clips and a TCP gate that plays a server going down or dropping connections."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.speech import espeak_korean

ENGLISH = [
    "Please transfer me to the billing department.",
    "What time does the pharmacy open on Sunday?",
]
KOREAN = "하나 둘 셋 넷 다섯 오늘 날씨가 좋네요"
"""Counting and the weather, in espeak-ng's robotic Korean."""


@pytest.fixture(scope="session")
def vosk_model() -> Path:
    """The bundled Korean Vosk model with Kaldi's dither off: the same audio, the same words."""
    from voice_connector_core.models import vosk_korean, with_dither

    return with_dither(vosk_korean(), 0.0)


@pytest.fixture(scope="session")
def english_speech() -> dict[str, bytes]:
    """Each sentence of ENGLISH spoken by Piper (joe, noise off: deterministic), 16 kHz PCM16."""
    from tests.integration.providers.harness import piper_speech

    return {text: piper_speech(text) for text in ENGLISH}


@pytest.fixture(scope="session")
def korean_speech(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Korean speech, 16 kHz PCM16."""
    return espeak_korean(KOREAN, tmp_path_factory.mktemp("ko"), 16000, speed=150)


@pytest.fixture
async def gate() -> Any:
    """A TCP gate in front of a real server: `await gate.open(port)`, `.drop()`, `.shut()`."""
    from tests.integration.providers.harness import TcpGate

    gate = TcpGate()
    yield gate
    await gate.shut()
