"""Hostile RTP datagrams over real UDP on loopback into one call's RTP stream.

From the caller's own address and from strangers: random bytes, every header bit, payload types
of other codecs, sizes around the limits, truncations, telephone-events of any length. Whatever
arrives, the stream must stay up, count each datagram at most once, hand the pipeline only whole
samples and real digits, keep the caller as its source, and hear a clean stream afterwards.
"""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from tests.fuzz.sip_media_inputs import fuzz_count, fuzz_rng, rtp_datagram
from voice_connector.audio.g711 import G711Codec
from voice_connector.caller.rtp_peer import RtpPeer, tone
from voice_connector.transports.opensips.clock import PacingClock
from voice_connector.transports.opensips.ports import PortPool
from voice_connector.transports.opensips.rtp import MAX_PAYLOAD, RtpStream

LOCAL = "127.0.0.1"
DIGITS = set("0123456789*#ABCD")


class Call:
    """One RTP stream on a real UDP port, as a SIP call has it, with what it delivered."""

    def __init__(self) -> None:
        self.audio: list[int] = []
        self.digits: list[str] = []
        self.errors: list[dict] = []
        self.clock = PacingClock()
        self.pool = PortPool(23000, 23099)
        self.stream: RtpStream | None = None
        self.port = 0

    async def open(self, caller: RtpPeer, flood_rate: int) -> RtpStream:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, context: self.errors.append(context))

        def factory(sock: socket.socket) -> RtpStream:
            return RtpStream(
                "fuzz-call",
                G711Codec("PCMU"),
                (LOCAL, caller.port),
                clock=self.clock,
                on_audio=lambda pcm: self.audio.append(len(pcm)),
                on_dtmf=self.digits.append,
                telephone_event_pt=101,
                sock=sock,
                flood_rate=flood_rate,
            )

        _, self.stream, self.port = await self.pool.open(LOCAL, factory, "fuzz-call")
        self.stream.start()
        return self.stream

    async def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.pool.release(self.port)
        await self.clock.close()
        asyncio.get_running_loop().set_exception_handler(None)


@pytest.fixture
async def call():
    c = Call()
    yield c
    await c.close()


async def send_all(peers: list[RtpPeer], dest: tuple[str, int], count: int, rng) -> int:
    """Send `count` fuzzed datagrams, most from the first peer (the caller), in paced batches."""
    for i in range(count):
        peer = peers[0] if rng.random() < 0.7 else peers[1]
        assert peer.transport is not None
        peer.transport.sendto(rtp_datagram(rng, peer.ssrc), dest)
        if i % 50 == 49:
            await asyncio.sleep(0.002)  # let the stream read (a full kernel buffer drops)
    await asyncio.sleep(0.1)
    return count


async def test_fuzzed_rtp_is_dropped_or_used_and_the_call_goes_on(call: Call) -> None:
    rng, seed = fuzz_rng("rtp")
    caller, stranger = await RtpPeer.open(), await RtpPeer.open()
    stranger.ssrc = 0x5EED5EED
    stream = await call.open(caller, flood_rate=100_000)  # let every datagram reach the checks
    dest = (LOCAL, call.port)
    count = fuzz_count(3000)
    started = time.monotonic()
    sent = await send_all([caller, stranger], dest, count, rng)
    elapsed = time.monotonic() - started
    stats = stream.stats
    handled = stats.packets_received + sum(stats.packets_rejected.values())
    handled -= stats.packets_rejected.get("non-DTMF telephone-event", 0)  # received, then ignored
    where = f"seed {seed}, {count} datagrams, stats {stats}"
    assert not call.errors, where  # no exception escaped datagram_received
    assert not stream.closed, where  # an exception there would have closed the transport
    assert sent * 0.5 <= handled <= sent, where  # each datagram counted once (a few lost in-kernel)
    # whole 16 kHz samples, at most one packet's worth (peers may send other ptimes than 20 ms)
    assert all(0 < n <= 4 * MAX_PAYLOAD and n % 2 == 0 for n in call.audio), where
    assert set(call.digits) <= DIGITS, where
    assert stream.source == (LOCAL, caller.port), where  # no stranger took the call
    assert elapsed < count / 300 + 2, where  # about 1 ms per datagram at most, sleeps included
    # a clean stream afterwards (a new SSRC, as a restarted phone) is heard, packet for packet
    before = len(call.audio)
    caller.ssrc, caller.seq = 0xC1EA2, rng.randrange(1 << 16)
    await caller.stream(dest, tone(0.5))
    await asyncio.sleep(0.05)
    assert len(call.audio) - before >= 22, where
    assert len(caller.received.packets) > 0, where  # and the bot's side still reaches the caller
    caller.close()
    stranger.close()


async def test_a_flood_of_fuzzed_rtp_is_limited_at_the_configured_rate(call: Call) -> None:
    rng, seed = fuzz_rng("rtp-flood")
    caller, stranger = await RtpPeer.open(), await RtpPeer.open()
    stream = await call.open(caller, flood_rate=200)
    count = fuzz_count(2000)
    await send_all([caller, stranger], (LOCAL, call.port), count, rng)
    stats = stream.stats
    where = f"seed {seed}, {count} datagrams, stats {stats}"
    assert not call.errors and not stream.closed, where
    flooded = stats.packets_rejected.get("flood", 0) + stats.packets_rejected.get(
        "flood from other sources", 0
    )
    assert flooded > count / 2, where
    assert stats.packets_lost <= stats.packets_received, where  # no silence per dropped packet
    caller.close()
    stranger.close()
