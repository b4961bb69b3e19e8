"""Speech fixtures: sentences spoken by the real Piper voice, and word error rate."""

from __future__ import annotations

import re
import wave
from functools import cache
from pathlib import Path

import jiwer
import numpy as np

from voice_connector.services import shared_models
from voice_connector_core import models


def normalize(text: str) -> str:
    """Lower case, words only: WER should not count punctuation or case."""
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


def wer(reference: str, hypothesis: str) -> float:
    return jiwer.wer(normalize(reference), normalize(hypothesis) or "<empty>")


@cache
def _voice():  # type: ignore[no-untyped-def]
    return shared_models.piper_voice(*models.piper_joe_voice())


def speak(text: str, directory: Path) -> Path:
    """`text` spoken by Piper's joe voice into `directory` (cached by text)."""
    directory.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] + ".wav"
    path = directory / name
    if not path.exists():
        with wave.open(str(path), "wb") as wav:
            _voice().synthesize_wav(text, wav)
    return path


def espeak_korean(text: str, directory: Path, rate: int, speed: int = 140) -> bytes:
    """Korean `text` from espeak-ng (`-v ko`) as PCM16 at `rate`: speech for the Korean Vosk
    model, the only Vosk model installable here. Skips the test when espeak-ng is missing."""
    import shutil
    import subprocess

    import pytest
    import soxr

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    path = directory / f"ko-{speed}.wav"
    subprocess.run(
        ["espeak-ng", "-v", "ko", "-s", str(speed), "-w", str(path), text],
        check=True,
        capture_output=True,
    )
    with wave.open(str(path), "rb") as wav:
        pcm, source_rate = wav.readframes(wav.getnframes()), wav.getframerate()
    samples = np.frombuffer(pcm, dtype=np.int16)
    return soxr.resample(samples, source_rate, rate).astype(np.int16).tobytes()
