"""Low-latency 8 kHz ↔ 16 kHz resampling for telephone audio.

Pipecat's default stream resampler (soxr VHQ) holds back ~40 ms per direction on 20 ms chunks;
on a phone call that is latency the caller hears. A 2:1 ratio only needs a short linear-phase
low-pass FIR run as a polyphase filter: with 32 taps the group delay is ~1 ms, the passband is
flat to 3 kHz and 1.5 dB down at 3.4 kHz (the top of what G.711 carries), images of the band
above 4 kHz are 36 dB down or more, and it costs a few microseconds per 20 ms chunk in numpy.
`benchmarks/resampler.py` measures the options; `benchmarks/word_accuracy.py` measured Whisper's
WER through it against soxr VHQ and 64 taps: the same (tests/unit/audio/test_resample.py).
"""

from __future__ import annotations

import numpy as np
from pipecat.audio.resamplers.base_audio_resampler import BaseAudioResampler

DEFAULT_TAPS = 32


def design_lowpass(
    taps: int = DEFAULT_TAPS, cutoff_hz: float = 3800.0, rate: int = 16000, beta: float = 6.0
) -> np.ndarray:
    """Kaiser-windowed sinc low-pass at `rate`, unity DC gain."""
    n = np.arange(taps) - (taps - 1) / 2
    h = np.sinc(2 * cutoff_hz / rate * n) * np.kaiser(taps, beta)
    return (h / h.sum()).astype(np.float32)


def _to_int16_bytes(y: np.ndarray) -> bytes:
    r = np.rint(y)
    np.minimum(r, 32767, out=r)  # two ufuncs: a quarter cheaper than np.clip's dispatch
    np.maximum(r, -32768, out=r)
    return r.astype(np.int16).tobytes()


class Upsampler2x:
    """8 kHz → 16 kHz, stateful across chunks (one per call direction)."""

    def __init__(self, taps: int = DEFAULT_TAPS) -> None:
        h = design_lowpass(taps) * 2.0  # zero-stuffing halves the gain
        self._phases = (h[0::2], h[1::2])
        self._history = np.zeros(len(self._phases[0]) - 1, dtype=np.float32)
        #: Group delay in output (16 kHz) samples, for latency accounting.
        self.delay_samples = (taps - 1) / 2

    def process(self, pcm8k: np.ndarray | bytes) -> bytes:
        """int16 samples at 8 kHz → PCM16 bytes at 16 kHz (twice the samples)."""
        x = np.frombuffer(pcm8k, dtype=np.int16) if isinstance(pcm8k, bytes) else pcm8k
        ext = np.concatenate((self._history, x.astype(np.float32)))
        if len(self._history):
            self._history = ext[-len(self._history) :]
        out = np.empty(2 * len(x), dtype=np.float32)
        out[0::2] = np.convolve(ext, self._phases[0], mode="valid")
        out[1::2] = np.convolve(ext, self._phases[1], mode="valid")
        return _to_int16_bytes(out)


class Downsampler2x:
    """16 kHz → 8 kHz, stateful across chunks; odd-length chunks keep their phase."""

    def __init__(self, taps: int = DEFAULT_TAPS) -> None:
        self._h = design_lowpass(taps)
        self._history = np.zeros(taps - 1, dtype=np.float32)
        self._phase = 0
        self.delay_samples = (taps - 1) / 2  # in input (16 kHz) samples

    def process_array(self, pcm16k: np.ndarray | bytes) -> np.ndarray:
        """PCM16 at 16 kHz → int16 samples at 8 kHz."""
        x = np.frombuffer(pcm16k, dtype=np.int16) if isinstance(pcm16k, bytes) else pcm16k
        ext = np.concatenate((self._history, x.astype(np.float32)))
        self._history = ext[-len(self._history) :]
        full = np.convolve(ext, self._h, mode="valid")
        out = full[self._phase :: 2]
        self._phase = (self._phase + len(x)) % 2
        return np.clip(np.rint(out), -32768, 32767).astype(np.int16)

    def reset(self) -> None:
        """Forget the filter state (after a barge-in the old tail must not leak into new audio)."""
        self._history[:] = 0
        self._phase = 0


class LowLatencyResampler(BaseAudioResampler):
    """Pipecat resampler interface over the 2:1 FIR filters, for one stream direction.

    Pipecat's serializers hold one stream resampler per direction; this one swaps soxr VHQ's
    ~50 ms hold-back for ~1 ms on the 8 kHz ↔ 16 kHz steps telephony needs, and falls back to
    Pipecat's own for any other pair of rates.
    """

    def __init__(self) -> None:
        self._up: Upsampler2x | None = None
        self._down: Downsampler2x | None = None
        self._other: BaseAudioResampler | None = None

    async def resample(self, audio: bytes, in_rate: int, out_rate: int) -> bytes:
        if in_rate == out_rate:
            return audio
        if (in_rate, out_rate) == (8000, 16000):
            self._up = self._up or Upsampler2x()
            return self._up.process(audio)
        if (in_rate, out_rate) == (16000, 8000):
            self._down = self._down or Downsampler2x()
            return self._down.process_array(audio).tobytes()
        if self._other is None:
            from pipecat.audio.utils import create_stream_resampler

            self._other = create_stream_resampler()
        return await self._other.resample(audio, in_rate, out_rate)
