"""The 8 → 16 kHz upsampler keeps what a phone line carries, as Whisper needs it.

benchmarks.word_accuracy measured the 32-tap filter against soxr VHQ (what Pipecat uses) on the
same utterances: the same WER. These tests hold the properties that made it so: the telephone
band passes (within 2 dB up to 3.4 kHz; 1.5 dB down at 3.4 kHz), mirror images of it above
4 kHz (which Whisper's mel bands up to 8 kHz would hear as speech energy that is not there)
are at least 30 dB down, and 20 ms chunks give the same stream as one piece.
"""

from __future__ import annotations

import numpy as np
import pytest

from voice_connector.audio.resample import Upsampler2x

RATE_IN, RATE_OUT = 8000, 16000


def upsample(x: np.ndarray, chunk: int = 160) -> np.ndarray:
    up = Upsampler2x()
    return np.concatenate(
        [
            np.frombuffer(up.process(x[i : i + chunk]), dtype=np.int16)
            for i in range(0, len(x), chunk)
        ]
    ).astype(np.float64)


def level_db(y: np.ndarray, freq: float) -> float:
    """Amplitude of `freq` in the 16 kHz signal `y`, dB relative to full amplitude 10000."""
    t = np.arange(len(y)) / RATE_OUT
    amplitude = 2 * abs(np.mean(y * np.exp(-2j * np.pi * freq * t)))
    return 20 * np.log10(max(amplitude, 1e-9) / 10000)


@pytest.mark.parametrize("freq", [300, 1000, 2000, 3000, 3400])
def test_telephone_band_passes_and_its_image_is_rejected(freq: int) -> None:
    t = np.arange(RATE_IN) / RATE_IN  # one second
    x = np.rint(10000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)
    y = upsample(x)[400:]  # past the filter's start-up
    assert level_db(y, freq) > -2.0
    assert level_db(y, RATE_IN - freq) < -30  # the zero-stuffing image, mirrored about 4 kHz


def test_chunking_does_not_change_the_stream() -> None:
    x = (np.random.default_rng(1).standard_normal(RATE_IN) * 3000).astype(np.int16)
    assert np.array_equal(upsample(x, chunk=160), upsample(x, chunk=len(x)))
    assert np.array_equal(upsample(x, chunk=160), upsample(x, chunk=37))
