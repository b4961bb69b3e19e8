"""Real AI service servers (uvicorn, loopback, real models, once per session) for the provider
clients, plus speech clips and a TCP gate that plays a server going down or dropping connections."""

from __future__ import annotations

import shutil
import subprocess
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import ServerThread, run_server

ENGLISH = [
    "Please transfer me to the billing department.",
    "What time does the pharmacy open on Sunday?",
]
KOREAN = "하나 둘 셋 넷 다섯 오늘 날씨가 좋네요"
"""Counting and the weather, in espeak-ng's robotic Korean."""


@pytest.fixture(scope="session")
def whisper_server() -> Iterator[ServerThread]:
    from ai_services.whisper_service import Settings, build_app
    from voice_connector.models import whisper_tiny_en

    yield from run_server(build_app(Settings(whisper_tiny_en(), workers=1, max_queue=8)))


@pytest.fixture(scope="session")
def vosk_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled Korean Vosk model with Kaldi's dither off (`--dither=0`), linked, not copied.

    The packaged `conf/mfcc.conf` leaves Kaldi's default dither on: random noise added to the
    features makes the same audio decode differently from run to run.
    """
    from voice_connector.models import vosk_korean

    source = vosk_korean()
    target = tmp_path_factory.mktemp("vosk") / "model"
    (target / "conf").mkdir(parents=True)
    for item in source.iterdir():
        if item.name != "conf":
            (target / item.name).symlink_to(item.resolve())
    for item in (source / "conf").iterdir():
        text = item.read_text()
        if item.name == "mfcc.conf":
            text = text.rstrip("\n") + "\n--dither=0\n"
        (target / "conf" / item.name).write_text(text)
    return target


@pytest.fixture(scope="session")
def vosk_server(vosk_model: Path) -> Iterator[ServerThread]:
    from ai_services.vosk_server import Settings, build_app

    yield from run_server(build_app(Settings(vosk_model, sample_rate=16000)))


@pytest.fixture(scope="session")
def llama_server() -> Iterator[ServerThread]:
    from ai_services.llama_ws_server import build_app
    from voice_connector.models import smollm2_gguf

    yield from run_server(build_app(smollm2_gguf(), n_ctx=2048))


@pytest.fixture(scope="session")
def piper_server() -> Iterator[ServerThread]:
    from ai_services.piper_ws_server import Settings, build_app
    from voice_connector.models import piper_joe_voice

    onnx, config = piper_joe_voice()
    yield from run_server(build_app(Settings(onnx, config, max_text_chars=500)))


@pytest.fixture(scope="session")
def english_speech() -> dict[str, bytes]:
    """Each sentence of ENGLISH spoken by Piper (joe, noise off: deterministic), 16 kHz PCM16."""
    from tests.integration.providers.harness import piper_speech

    return {text: piper_speech(text) for text in ENGLISH}


@pytest.fixture(scope="session")
def korean_speech(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Korean speech from espeak-ng (`-v ko`), 16 kHz PCM16."""
    from ai_services.audio import resample_pcm16

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    path = Path(tmp_path_factory.mktemp("ko")) / "ko.wav"
    subprocess.run(
        ["espeak-ng", "-v", "ko", "-s", "150", "-w", str(path), KOREAN],
        check=True, capture_output=True,
    )
    with wave.open(str(path), "rb") as wav:
        pcm, rate = wav.readframes(wav.getnframes()), wav.getframerate()
    return resample_pcm16(pcm, rate, 16000)


@pytest.fixture
async def gate() -> Any:
    """A TCP gate in front of a real server: `await gate.open(port)`, `.drop()`, `.shut()`."""
    from tests.integration.providers.harness import TcpGate

    gate = TcpGate()
    yield gate
    await gate.shut()
