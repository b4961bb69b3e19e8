"""A Python RTP phone for tests and the benchmark: sends paced G.711, records what comes back."""

from __future__ import annotations

import asyncio
import struct
import time
from dataclasses import dataclass, field

import numpy as np

from voice_connector.audio.g711 import ulaw_decode, ulaw_encode


@dataclass
class Received:
    """Packets received from the connector, with arrival times (monotonic seconds)."""

    times: list[float] = field(default_factory=list)
    packets: list[bytes] = field(default_factory=list)

    def headers(self) -> list[tuple[int, int, int, int, bool]]:
        """(pt, seq, ts, ssrc, marker) per packet."""
        out = []
        for p in self.packets:
            _, b1, seq, ts, ssrc = struct.unpack_from("!BBHII", p)
            out.append((b1 & 0x7F, seq, ts, ssrc, bool(b1 & 0x80)))
        return out

    def pcm(self, payload_type: int = 0) -> np.ndarray:
        """Decoded μ-law audio of all packets of `payload_type`."""
        chunks = [ulaw_decode(p[12:]) for p in self.packets if p[1] & 0x7F == payload_type]
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)


class RtpPeer(asyncio.DatagramProtocol):
    """One caller's media endpoint on loopback."""

    def __init__(self) -> None:
        self.received = Received()
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0
        self.seq = 1000
        self.ts = 5000
        self.ssrc = 0x1234ABCD
        self.on_packet = None

    @classmethod
    async def open(cls) -> RtpPeer:
        loop = asyncio.get_running_loop()
        peer = cls()
        await loop.create_datagram_endpoint(lambda: peer, local_addr=("127.0.0.1", 0))
        return peer

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.port = transport.get_extra_info("sockname")[1]

    def datagram_received(self, data: bytes, addr) -> None:
        self.received.times.append(time.monotonic())
        self.received.packets.append(data)
        if self.on_packet:
            self.on_packet(data)

    def close(self) -> None:
        if self.transport:
            self.transport.close()

    def packet(
        self,
        payload: bytes,
        pt: int = 0,
        marker: bool = False,
        seq: int | None = None,
        ts: int | None = None,
    ) -> bytes:
        return (
            struct.pack(
                "!BBHII",
                0x80,
                (0x80 if marker else 0) | pt,
                (self.seq if seq is None else seq) & 0xFFFF,
                (self.ts if ts is None else ts) & 0xFFFFFFFF,
                self.ssrc,
            )
            + payload
        )

    def send(self, dest: tuple[str, int], payload: bytes, pt: int = 0, **kw) -> None:
        assert self.transport is not None
        self.transport.sendto(self.packet(payload, pt, **kw), dest)
        self.seq += 1
        self.ts += 160

    async def stream(self, dest: tuple[str, int], pcm8k: np.ndarray, ptime: float = 0.02) -> None:
        """Send `pcm8k` as paced 20 ms μ-law packets (absolute schedule)."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in range(0, len(pcm8k) - 159, 160):
            await asyncio.sleep(max(0.0, start + (i // 160) * ptime - loop.time()))
            self.send(dest, ulaw_encode(pcm8k[i : i + 160]))

    def dtmf(self, dest: tuple[str, int], digit: str, pt: int = 101) -> None:
        """One RFC 4733 event: 3 tone packets, the end packet 3 times (same timestamp)."""
        code = "0123456789*#".index(digit)
        ts = self.ts
        for i in range(3):
            self.send(dest, struct.pack("!BBH", code, 10, 160 * (i + 1)), pt, marker=i == 0, ts=ts)
        for _ in range(3):
            self.send(dest, struct.pack("!BBH", code, 0x80 | 10, 480), pt, ts=ts)
        self.ts = ts + 480


def tone(seconds: float, freq: float = 440.0, rate: int = 8000, amp: int = 8000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.int16)
