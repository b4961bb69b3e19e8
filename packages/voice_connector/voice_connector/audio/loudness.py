"""Caller loudness for the VAD's volume gate, measured incrementally.

Pipecat's VAD gates speech on BS.1770 loudness over the last 400 ms. Its tracker re-measures the
whole 400 ms (6400 samples at 16 kHz) from scratch for every 32 ms VAD window: twelve times the
audio it needs, and the largest single cost of a call's input path. This tracker filters each
window once and keeps the energy of each chunk of the last 400 ms, so a reading costs one short
convolution and a dot product.

The K-weighting is a 33-tap linear-phase FIR matched to BS.1770's two biquads (high shelf +4 dB
above ~1.7 kHz, high-pass at 38 Hz) plus per-chunk DC removal; on telephone audio (nothing below
300 Hz) it reads within a fraction of a LU of the exact filters. Loudness maps to 0..1 exactly as
Pipecat's does (-110..-10 LUFS, the -70 LUFS absolute gate reads 0).
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

WINDOW_SECS = 0.4
"""A BS.1770 gating block."""
FIR_TAPS = 33
ABSOLUTE_GATE_LUFS = -70.0
MIN_LUFS, MAX_LUFS = -110.0, -10.0


def _biquad_response(b: list[float], a: list[float], w: np.ndarray) -> np.ndarray:
    z = np.exp(-1j * w)
    return (b[0] + b[1] * z + b[2] * z * z) / (a[0] + a[1] * z + a[2] * z * z)


def k_weighting_response(rate: int, freqs_hz: np.ndarray) -> np.ndarray:
    """|H(f)| of BS.1770's K-weighting at `rate` (the two biquads, as libebur128 derives them)."""
    w = 2 * np.pi * freqs_hz / rate
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / rate)
    vh = 10 ** (gain_db / 20)
    vb = vh**0.4996667741545416
    a0 = 1 + k / q + k * k
    shelf = _biquad_response(
        [(vh + vb * k / q + k * k) / a0, 2 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0],
        [1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0],
        w,
    )
    f0, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f0 / rate)
    a0 = 1 + k / q + k * k
    highpass = _biquad_response(
        [1.0, -2.0, 1.0], [1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0], w
    )
    return np.abs(shelf * highpass)


def design_k_weighting_fir(rate: int, taps: int = FIR_TAPS) -> np.ndarray:
    """Linear-phase FIR whose magnitude follows the K-weighting (frequency sampling, Hann)."""
    n_fft = 1024
    magnitude = k_weighting_response(rate, np.fft.rfftfreq(n_fft, 1 / rate))
    impulse = np.fft.fftshift(np.fft.irfft(magnitude, n_fft))
    centre = n_fft // 2
    h = impulse[centre - taps // 2 : centre + taps // 2 + 1] * np.hanning(taps + 2)[1:-1]
    return h.astype(np.float32)


class LoudnessTracker:
    """BS.1770 loudness of the last 400 ms of one audio stream, normalized to 0..1."""

    def __init__(self, sample_rate: int) -> None:
        self._fir = design_k_weighting_fir(sample_rate)
        self._history = np.zeros(len(self._fir) - 1, dtype=np.float32)
        self._window = math.ceil(WINDOW_SECS * sample_rate)
        self._chunks: deque[tuple[float, int]] = deque()  # (sum of squares, samples) per update
        self._samples = 0

    def update(self, pcm16: bytes) -> float:
        """Add audio (PCM16 mono) and return the loudness of the last 400 ms (0 until full)."""
        x = np.frombuffer(pcm16, dtype=np.int16).astype(np.float32)
        if not len(x):
            return self.volume
        x -= np.add.reduce(x) / len(x)  # DC: the 38 Hz high-pass is longer than the FIR
        extended = np.concatenate((self._history, x))
        self._history = extended[-len(self._history) :]
        weighted = np.convolve(extended, self._fir, mode="valid")
        energy = float(np.dot(weighted, weighted)) / (32768.0 * 32768.0)
        self._chunks.append((energy, len(x)))
        self._samples += len(x)
        while self._samples - self._chunks[0][1] >= self._window:
            _, old_samples = self._chunks.popleft()
            self._samples -= old_samples
        return self.volume

    @property
    def volume(self) -> float:
        if self._samples < self._window:
            return 0.0
        # The oldest chunk straddles the window's start: count the part inside it.
        oldest_energy, oldest_samples = self._chunks[0]
        outside = (self._samples - self._window) / oldest_samples
        total = sum(energy for energy, _ in self._chunks)  # a dozen chunks: no running drift
        mean_square = (total - oldest_energy * outside) / self._window
        if mean_square <= 0.0:
            return 0.0
        lufs = -0.691 + 10 * math.log10(mean_square)
        if lufs < ABSOLUTE_GATE_LUFS:
            return 0.0
        return min(1.0, max(0.0, (lufs - MIN_LUFS) / (MAX_LUFS - MIN_LUFS)))
