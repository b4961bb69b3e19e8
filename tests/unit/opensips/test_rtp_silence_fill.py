"""A caller who stops sending while silent (DTX, comfort noise) still has their silence heard.

The pipeline's VAD and smart-turn count audio frames, not the clock: without the fill, a turn
judged unfinished would wait for the aggregator's stop timeout instead of the configured silence.
"""

from __future__ import annotations

import asyncio
import socket
import time

from tests.unit.opensips.test_opensips_flavor_and_rtp import hearing_stream
from voice_connector.transports.opensips.rtp import (
    PCM16K_PER_PACKET,
    SILENCE_FILL_AFTER,
    RtpStream,
    build_rtp,
)

CALLER = ("127.0.0.1", 4000)


async def ticks(stream: RtpStream, seconds: float) -> None:
    """The pacing clock's 20 ms ticks for `seconds`, the event loop running between them."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        stream.on_tick(0.0)
        await asyncio.sleep(0.02)
    await asyncio.sleep(0)  # let a fill the last tick scheduled run


async def test_silence_is_filled_in_on_the_clock_once_the_caller_stops_sending() -> None:
    heard: list[bytes] = []
    stream = hearing_stream("call-dtx", CALLER, heard)
    stream.connection_made(None)  # type: ignore[arg-type]
    await ticks(stream, 0.3)
    assert heard == []  # nobody has spoken yet: nothing to fill

    for seq in range(5):
        stream.datagram_received(build_rtp(0, seq, seq * 160, 7, False, b"\xff" * 160), CALLER)
    last_packet = time.monotonic()
    assert len(heard) == 5

    await ticks(stream, SILENCE_FILL_AFTER * 0.6)
    assert len(heard) == 5  # a short gap may be a late packet: never overtaken

    await ticks(stream, 0.5)
    filled = heard[5:]
    gap_ms = (time.monotonic() - last_packet) * 1000
    assert all(frame == bytes(PCM16K_PER_PACKET) for frame in filled)
    assert gap_ms - 80 <= 20 * len(filled) <= gap_ms  # the whole gap, a tick or two behind
    assert stream.stats.silence_filled == len(filled)

    stream.datagram_received(build_rtp(0, 5, 5 * 160, 7, False, b"\xff" * 160), CALLER)
    count = len(heard)
    await ticks(stream, SILENCE_FILL_AFTER * 0.6)
    assert len(heard) == count  # talking again: the fill stops at once

    stream.close()
    await ticks(stream, 0.3)
    assert len(heard) == count


async def test_packets_waiting_unread_are_not_overtaken_by_made_up_silence() -> None:
    """The event loop fell behind: the caller's packets sit in the socket. No fill until read."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    heard: list[bytes] = []
    stream = hearing_stream("call-busy-loop", CALLER, heard, sock)
    stream.connection_made(None)  # type: ignore[arg-type]
    stream.datagram_received(build_rtp(0, 0, 0, 7, False, b"\xff" * 160), CALLER)
    sender.sendto(build_rtp(0, 1, 160, 7, False, b"\xff" * 160), sock.getsockname())
    await asyncio.sleep(0.01)  # delivered to the socket, not read: nobody reads it here

    await ticks(stream, 0.4)
    assert len(heard) == 1 and stream.stats.silence_filled == 0

    sock.recv(2048)  # the loop catches up (this test reads the packet away instead)
    await ticks(stream, 0.2)
    assert stream.stats.silence_filled > 0
    stream.close()
    sock.close()
    sender.close()
