"""Who may take a call's RTP: the SDP address at once, another address (NAT) only by the rule.

Real UDP on loopback: the caller is an `RtpPeer` whose address the offer announces (or not, for
NAT), the attacker another socket that learned the call's port and sprays it.
"""

from __future__ import annotations

import asyncio
import itertools
import socket

import numpy as np
from conftest import Handlers, Tone
from helpers import answered, until

from voice_connector.caller.opensips_double import offer_sdp
from voice_connector.caller.rtp_peer import RtpPeer, tone
from voice_connector.transports.opensips.ports import PortPool

LOCAL = "127.0.0.1"


def loud(peer: RtpPeer) -> bool:
    """The peer has heard bot audio (the tone), not only silence fill."""
    return np.abs(peer.received.pcm()).max(initial=0) > 2000


async def spray(attacker: RtpPeer, dest: tuple[str, int], seconds: float) -> None:
    """Junk of every size, then a valid-looking PCMU stream (its own SSRC), paced at 20 ms."""
    assert attacker.transport is not None
    for size in (1, 2, 11, 12, 13, 200):
        attacker.transport.sendto(b"\x80" * size, dest)
    attacker.ssrc = 0xBAD0BAD0
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        attacker.send(dest, bytes(160))
        await asyncio.sleep(0.02)


async def test_an_attacker_spraying_the_port_never_gets_the_stream(double, make_provider):
    handlers = Handlers(lambda: Tone(1.0))
    provider = await make_provider(handlers)
    caller, attacker = await RtpPeer.open(), await RtpPeer.open()
    key = double.new_key()
    double.invite(key, offer_sdp(caller.port))
    port = await answered(double, key)
    dest = (LOCAL, port)
    attack = asyncio.create_task(spray(attacker, dest, 1.5))  # first, before the caller
    await asyncio.sleep(0.1)
    double.ack(key)
    await caller.stream(dest, tone(1.5))
    await attack
    rtp = provider.sessions[key].rtp
    assert attacker.received.packets == []  # not one packet of the greeting
    assert loud(caller)  # the caller got the greeting...
    assert rtp.stats.packets_received >= 70  # ...and was heard
    assert rtp.source == (LOCAL, caller.port)
    assert rtp.stats.relatches == 0
    assert rtp.stats.packets_rejected.get("from a second source", 0) > 0
    double.bye(key)
    await until(lambda: not provider.sessions)
    caller.close()
    attacker.close()


async def test_a_stranger_flooding_the_port_cannot_keep_the_caller_out(double, make_provider):
    handlers = Handlers(lambda: Tone(1.0))
    provider = await make_provider(handlers)
    caller, attacker = await RtpPeer.open(), await RtpPeer.open()
    attacker.ssrc = 0xBAD0BAD0
    key = double.new_key()
    double.invite(key, offer_sdp(caller.port))
    dest = (LOCAL, await answered(double, key))
    double.ack(key)

    async def flood() -> None:  # ~2,000 valid-looking packets/s from another address
        end = asyncio.get_running_loop().time() + 0.9  # (not so many that the kernel drops)
        while asyncio.get_running_loop().time() < end:
            for _ in range(10):
                attacker.send(dest, bytes(160))
            await asyncio.sleep(0.005)

    await asyncio.gather(flood(), caller.stream(dest, tone(0.8)))
    rtp = provider.sessions[key].rtp
    assert attacker.received.packets == []
    assert rtp.stats.packets_received >= 35  # the caller was heard all along
    assert rtp.source == (LOCAL, caller.port)
    assert rtp.stats.packets_rejected.get("flood from other sources", 0) > 500
    double.bye(key)
    await until(lambda: not provider.sessions)
    caller.close()
    attacker.close()


async def test_a_nat_caller_is_latched_when_nobody_else_sends(double, make_provider):
    """The offer names an address nothing sends from; the caller's media comes from elsewhere."""
    handlers = Handlers(lambda: Tone(3.0))
    provider = await make_provider(handlers)
    caller = await RtpPeer.open()
    announced = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    announced.bind((LOCAL, 0))  # the address behind NAT, silent: it never sends
    key = double.new_key()
    double.invite(key, offer_sdp(announced.getsockname()[1]))
    port = await answered(double, key)
    double.ack(key)
    await caller.stream((LOCAL, port), tone(1.5))
    rtp = provider.sessions[key].rtp
    assert rtp.source == (LOCAL, caller.port)
    await until(lambda: loud(caller))  # bot audio now follows the caller's real address
    assert rtp.stats.packets_received >= 40  # all but the first ~0.5 s were heard
    double.bye(key)
    await until(lambda: not provider.sessions)
    caller.close()
    announced.close()


async def test_relatching_needs_the_old_source_silent(double, make_provider):
    handlers = Handlers(lambda: Tone(4.0))
    provider = await make_provider(handlers, rtp_latch_silence_ms=300, rtp_latch_packets=5)
    caller, rival = await RtpPeer.open(), await RtpPeer.open()
    key = double.new_key()
    double.invite(key, offer_sdp(caller.port))
    port = await answered(double, key)
    double.ack(key)
    dest = (LOCAL, port)
    rival.ssrc = 0x0BADCAFE
    # both stream at once for a second: the latched caller keeps the call
    await asyncio.gather(caller.stream(dest, tone(1.0)), rival.stream(dest, tone(1.0)))
    rtp = provider.sessions[key].rtp
    assert rival.received.packets == []
    assert rtp.source == (LOCAL, caller.port)
    # the caller goes quiet (its NAT binding changed): after the silence, the new source takes it
    await rival.stream(dest, tone(1.0))
    assert rtp.source == (LOCAL, rival.port)
    assert rtp.stats.relatches == 1
    await until(lambda: loud(rival))
    double.bye(key)
    await until(lambda: not provider.sessions)
    caller.close()
    rival.close()


async def test_without_latching_only_the_sdp_address_is_heard(double, make_provider):
    provider = await make_provider(rtp_latching=False, rtp_latch_silence_ms=0)
    caller = await RtpPeer.open()
    key = double.new_key()
    double.invite(key, offer_sdp(caller.port + 2))  # announces another port than it sends from
    port = await answered(double, key)
    double.ack(key)
    await caller.stream((LOCAL, port), tone(0.5))
    rtp = provider.sessions[key].rtp
    assert caller.received.packets == [] and rtp.stats.packets_received == 0
    assert rtp.source is None
    double.bye(key)
    await until(lambda: not provider.sessions)
    caller.close()


async def test_ports_are_random_distinct_and_released():
    pool = PortPool(24000, 24199)  # 100 even ports
    assert pool.capacity == 100
    drawn = []
    for i in range(40):  # one call after another
        transport, _, port = await pool.open(LOCAL, lambda s: asyncio.DatagramProtocol(), f"c{i}")
        drawn.append(port)
        transport.close()
        pool.release(port)
    steps = [b - a for a, b in itertools.pairwise(drawn)]
    assert steps.count(2) < 5, drawn  # not handed out in order
    assert len(set(drawn[:25])) == 25  # a released port cools down before it is drawn again
    # a full range: every port once, then refusal, then the released one again
    held = [await pool.open(LOCAL, lambda s: asyncio.DatagramProtocol(), "x") for _ in range(100)]
    assert len({port for _, _, port in held}) == 100 and len(pool.in_use) == 100
    try:
        await pool.open(LOCAL, lambda s: asyncio.DatagramProtocol(), "full")
        raise AssertionError("a full pool handed out a port")
    except OSError:
        pass
    transport, _, port = held.pop()
    transport.close()
    await asyncio.sleep(0)  # the socket closes on the next loop turn
    pool.release(port)
    again = await pool.open(LOCAL, lambda s: asyncio.DatagramProtocol(), "again")
    assert again[2] == port
    for transport, _, p in [*held, again]:
        transport.close()
        pool.release(p)
    assert pool.in_use == frozenset()
