"""The incremental loudness tracker reads what Pipecat's BS.1770 tracker reads, at a fraction of
the cost (the cost is in benchmarks/vad.py, not asserted here)."""

from __future__ import annotations

import wave

import numpy as np
import pytest
from pipecat.audio.volume import AudioVolumeTracker

from voice_connector.audio.loudness import LoudnessTracker, k_weighting_response

SPEECH = "/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0930.wav"


def librivox_speech() -> np.ndarray:
    with wave.open(SPEECH) as w:
        assert w.getframerate() == 16000
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


def readings(samples: np.ndarray, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """(Pipecat's volume, ours) after each chunk, once both windows are full."""
    theirs, ours = AudioVolumeTracker(), LoudnessTracker(16000)
    a, b = [], []
    for start in range(0, len(samples) - chunk + 1, chunk):
        data = samples[start : start + chunk].tobytes()
        theirs.update(data, 16000)
        a.append(theirs.volume)
        b.append(ours.update(data))
    skip = -(-6400 // chunk)  # the first 400 ms: both read 0 until the window is full
    return np.array(a[skip:]), np.array(b[skip:])


@pytest.mark.parametrize("chunk", [512, 320])
@pytest.mark.parametrize("gain", [1.0, 0.1])
def test_speech_reads_as_pipecat_reads_it(chunk: int, gain: float) -> None:
    speech = (librivox_speech() * gain).astype(np.int16)
    theirs, ours = readings(speech, chunk)
    assert np.abs(ours - theirs).max() < 0.03  # 3 LU on the 100 LU scale
    assert abs(float(np.mean(ours - theirs))) < 0.005


def test_a_dc_offset_is_not_loudness() -> None:
    speech = librivox_speech().astype(np.int32)
    theirs, ours = readings(np.clip(speech + 3000, -32768, 32767).astype(np.int16), 512)
    assert np.abs(ours - theirs).max() < 0.03
    _, constant = readings(np.full(16000, 3000, dtype=np.int16), 512)
    assert constant.max() == 0.0


def test_silence_and_the_absolute_gate_read_zero() -> None:
    tracker = LoudnessTracker(16000)
    assert tracker.update(np.zeros(8000, dtype=np.int16).tobytes()) == 0.0
    faint = (np.random.default_rng(0).normal(0, 0.5, 8000)).astype(np.int16)  # below -70 LUFS
    assert tracker.update(faint.tobytes()) == 0.0


def test_reads_zero_until_400_ms_have_arrived() -> None:
    tracker = LoudnessTracker(16000)
    loud = librivox_speech()[16000 : 16000 + 6400]
    assert tracker.update(loud[:6000].tobytes()) == 0.0
    assert tracker.update(loud[6000:].tobytes()) > 0.5
    assert tracker.update(b"") > 0.5  # an empty chunk changes nothing


def test_k_weighting_matches_bs1770_at_48k() -> None:
    """The filter design reproduces the standard's published response (+4 dB shelf, 38 Hz HPF)."""
    gains = 20 * np.log10(k_weighting_response(48000, np.array([20.0, 1000.0, 10000.0])))
    assert gains[0] < -10  # high-passed
    assert abs(gains[1] - 0.7) < 0.3  # ~+0.7 dB at 1 kHz (shelf rising)
    assert abs(gains[2] - 4.0) < 0.3  # +4 dB shelf
