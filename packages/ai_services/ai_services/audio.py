"""PCM helpers shared by the speech servers: validate rates, decode WAV, resample for the models."""

from __future__ import annotations

import io
import wave

import numpy as np
import soxr

from ai_services.errors import ServiceError

MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 48000


def check_sample_rate(value: object) -> int:
    """A usable PCM sample rate as int, or a 400 `ServiceError` saying what is accepted."""
    try:
        rate = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise ServiceError(400, f"sample_rate must be an integer, got {value!r}") from None
    if (isinstance(value, float) and value != rate) or isinstance(value, bool):
        raise ServiceError(400, f"sample_rate must be an integer, got {value!r}")
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise ServiceError(
            400, f"sample_rate {rate} out of range {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz"
        )
    return rate


def pcm16_to_float(data: bytes, rate: int, target_rate: int = 16000) -> np.ndarray:
    """Mono PCM16LE bytes -> float32 in [-1, 1] at `target_rate` (what Whisper wants)."""
    if len(data) % 2:
        raise ServiceError(400, "PCM16 audio must have an even number of bytes")
    samples = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    if rate != target_rate and samples.size:
        samples = soxr.resample(samples, rate, target_rate).astype(np.float32)
    return samples


def resample_pcm16(data: bytes, rate: int, target_rate: int) -> bytes:
    """Mono PCM16LE bytes resampled to `target_rate` (same format)."""
    if rate == target_rate:
        return data
    samples = np.frombuffer(data, dtype="<i2")
    out = soxr.resample(samples, rate, target_rate)
    return np.asarray(out, dtype="<i2").tobytes()


def wav_to_pcm16(data: bytes) -> tuple[bytes, int]:
    """(mono PCM16LE bytes, sample rate) from a PCM16 WAV file; stereo is mixed down."""
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            frames = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise ServiceError(400, f"not a PCM WAV file: {exc}") from None
    if width != 2:
        raise ServiceError(400, f"WAV must be 16-bit PCM, got {8 * width}-bit")
    if channels > 1:
        mixed = np.frombuffer(frames, dtype="<i2").reshape(-1, channels).mean(axis=1)
        frames = mixed.astype("<i2").tobytes()
    return frames, check_sample_rate(rate)


def pcm16_to_wav(data: bytes, rate: int) -> bytes:
    """Wrap mono PCM16LE bytes in a WAV container."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(data)
    return buf.getvalue()
