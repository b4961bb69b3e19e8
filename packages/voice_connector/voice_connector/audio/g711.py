"""G.711 μ-law and A-law with numpy lookup tables.

`audioop` is gone in Python 3.13, and per-sample Python is too slow for 100 calls, so both
directions are a single table lookup: encoding indexes a 65536-entry table by the int16 sample
(viewed as uint16), decoding a 256-entry table by the byte. The tables are built once from the
ITU-T reference algorithm (the Sun g711.c code that audioop used), so output is bit-identical.
"""

from __future__ import annotations

import numpy as np

_SEG_UEND = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)
_SEG_AEND = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], dtype=np.int32)

#: The payload byte for digital silence, used for silence fill.
ULAW_SILENCE = 0xFF
ALAW_SILENCE = 0xD5


def _all_int16() -> np.ndarray:
    """Every int16 value, ordered by its uint16 bit pattern (the encode table index)."""
    return np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.int16).astype(np.int32)


def _build_ulaw_encode() -> np.ndarray:
    pcm = _all_int16() >> 2  # 14-bit
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    pcm = np.minimum(np.abs(pcm), 8159) + (0x84 >> 2)
    seg = np.searchsorted(_SEG_UEND, pcm, side="left")
    seg_c = np.minimum(seg, 7)
    uval = (seg_c << 4) | ((pcm >> (seg_c + 1)) & 0xF)
    uval = np.where(seg >= 8, 0x7F, uval)
    return (uval ^ mask).astype(np.uint8)


def _build_ulaw_decode() -> np.ndarray:
    u = (~np.arange(256, dtype=np.int32)) & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


def _build_alaw_encode() -> np.ndarray:
    pcm = _all_int16() >> 3  # 13-bit
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    pcm = np.where(pcm >= 0, pcm, -pcm - 1)
    seg = np.searchsorted(_SEG_AEND, pcm, side="left")
    seg_c = np.minimum(seg, 7)
    low = np.where(seg_c < 2, (pcm >> 1) & 0xF, (pcm >> np.maximum(seg_c, 1)) & 0xF)
    aval = np.where(seg >= 8, 0x7F, (seg_c << 4) | low)
    return (aval ^ mask).astype(np.uint8)


def _build_alaw_decode() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = np.where(seg == 0, t + 8, t + 0x108)
    t = np.where(seg > 1, t << np.maximum(seg - 1, 0), t)
    return np.where(a & 0x80, t, -t).astype(np.int16)


_ULAW_ENC = _build_ulaw_encode()
_ULAW_DEC = _build_ulaw_decode()
_ALAW_ENC = _build_alaw_encode()
_ALAW_DEC = _build_alaw_decode()


def _as_index(pcm: bytes | np.ndarray) -> np.ndarray:
    samples = np.frombuffer(pcm, dtype=np.int16) if isinstance(pcm, bytes | bytearray) else pcm
    return samples.astype(np.int16, copy=False).view(np.uint16)


def ulaw_encode(pcm: bytes | np.ndarray) -> bytes:
    """PCM16 (bytes or int16 array) → μ-law bytes."""
    return _ULAW_ENC[_as_index(pcm)].tobytes()


def ulaw_decode(data: bytes) -> np.ndarray:
    """μ-law bytes → int16 samples."""
    return _ULAW_DEC[np.frombuffer(data, dtype=np.uint8)]


def alaw_encode(pcm: bytes | np.ndarray) -> bytes:
    """PCM16 (bytes or int16 array) → A-law bytes."""
    return _ALAW_ENC[_as_index(pcm)].tobytes()


def alaw_decode(data: bytes) -> np.ndarray:
    """A-law bytes → int16 samples."""
    return _ALAW_DEC[np.frombuffer(data, dtype=np.uint8)]


class G711Codec:
    """One G.711 variant by its SDP name, so the RTP engine does not branch per packet."""

    def __init__(self, name: str) -> None:
        upper = name.upper()
        if upper == "PCMU":
            self.payload_type, self.silence_byte = 0, ULAW_SILENCE
            self.encode, self.decode = ulaw_encode, ulaw_decode
        elif upper == "PCMA":
            self.payload_type, self.silence_byte = 8, ALAW_SILENCE
            self.encode, self.decode = alaw_encode, alaw_decode
        else:
            raise ValueError(f"not a G.711 codec: {name}")
        self.name = upper
        self.sample_rate = 8000

    def silence(self, samples: int) -> bytes:
        """Encoded digital silence of `samples` samples."""
        return bytes([self.silence_byte]) * samples
