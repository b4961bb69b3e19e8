"""Real speech for the real-peer tests: espeak-ng → 8 kHz WAV → a PCMU 20 ms RTP pcap."""

from __future__ import annotations

import pathlib
import struct
import subprocess

import numpy as np

from voice_connector.audio.g711 import ulaw_encode


def speech_wav(path: pathlib.Path, text: str) -> np.ndarray:
    """Synthesize `text` and return it as 8 kHz int16 (also leaves the WAV at `path`)."""
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-w", str(raw), text], check=True, capture_output=True)
    subprocess.run(
        ["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(path)],
        check=True,
        capture_output=True,
    )
    data = path.read_bytes()
    return np.frombuffer(data[data.index(b"data") + 8 :], dtype=np.int16)


def write_rtp_pcap(
    path: pathlib.Path, pcm8k: np.ndarray, src_port: int = 6000, dst_port: int = 6002
) -> None:
    """One PCMU RTP packet per 20 ms in a classic pcap (Ethernet/IPv4/UDP), as SIPp replays it."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for n, i in enumerate(range(0, len(pcm8k) - 159, 160)):
        rtp = struct.pack("!BBHII", 0x80, 0x80 if n == 0 else 0, n, n * 160, 0x5EED) + ulaw_encode(
            pcm8k[i : i + 160]
        )
        udp = struct.pack("!HHHH", src_port, dst_port, 8 + len(rtp), 0) + rtp
        ip = (
            struct.pack(
                "!BBHHHBBH4s4s",
                0x45,
                0,
                20 + len(udp),
                n,
                0,
                64,
                17,
                0,
                bytes([127, 0, 0, 1]),
                bytes([127, 0, 0, 1]),
            )
            + udp
        )
        frame = bytes(6) + bytes(6) + b"\x08\x00" + ip
        sec, usec = divmod(n * 20000, 1_000_000)
        out.append(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame)
    path.write_bytes(b"".join(out))
