"""Loss is counted, and concealed, only for real sequence gaps of the latched stream."""

from __future__ import annotations

import asyncio

from conftest import Handlers
from helpers import answered, until

from voice_connector.caller.opensips_double import offer_sdp
from voice_connector.caller.rtp_peer import RtpPeer, tone
from voice_connector.transports.opensips.rtp import SAMPLES_PER_PACKET

LOCAL = "127.0.0.1"


async def _call(double, make_provider, peer: RtpPeer):
    handlers = Handlers()
    provider = await make_provider(handlers)
    key = double.new_key()
    double.invite(key, offer_sdp(peer.port))
    port = await answered(double, key)
    double.ack(key)
    await until(lambda: key in handlers.calls)
    return provider, handlers, key, (LOCAL, port)


def count_fed(handlers: Handlers, key: str) -> list[int]:
    """Count the 20 ms audio chunks the RTP stream hands to the pipeline (real and concealed)."""
    transport = handlers.calls[key].input_transport
    fed = [0]
    feed = transport.feed_audio

    def counting(pcm: bytes) -> None:
        fed[0] += 1
        feed(pcm)

    transport.feed_audio = counting  # type: ignore[method-assign]
    return fed


async def test_a_flood_is_not_concealed_as_loss(double, make_provider):
    peer = await RtpPeer.open()
    provider, handlers, key, dest = await _call(double, make_provider, peer)
    fed = count_fed(handlers, key)
    await peer.stream(dest, tone(0.4))
    for _burst in range(25):  # ~5,000 packets in about a second, in sequence
        for _ in range(200):
            peer.send(dest, bytes(160))
        await asyncio.sleep(0.04)
    await peer.stream(dest, tone(0.4))
    rtp = provider.sessions[key].rtp
    stats = rtp.stats
    assert stats.packets_rejected.get("flood", 0) > 3000
    assert stats.packets_lost <= 5  # the flood limit's drops are not the network's loss
    assert fed[0] <= stats.packets_received + 5  # no 20 ms of silence per dropped packet
    assert stats.jitter_ms < 40
    double.bye(key)
    await until(lambda: not provider.sessions)
    peer.close()


async def test_telephone_events_share_the_sequence_and_are_not_loss(double, make_provider):
    peer = await RtpPeer.open()
    provider, handlers, key, dest = await _call(double, make_provider, peer)
    await peer.stream(dest, tone(0.2))
    for digit in "12#":
        peer.dtmf(dest, digit)  # 6 telephone-event packets, sequence numbers between the audio
        await peer.stream(dest, tone(0.1))
    await until(lambda: handlers.processors[key].digits == ["1", "2", "#"])
    stats = provider.sessions[key].rtp.stats
    await until(lambda: stats.packets_received == 10 + 3 * 6 + 3 * 5)
    assert stats.packets_lost == 0
    assert stats.dtmf_received == 3
    double.bye(key)
    await until(lambda: not provider.sessions)
    peer.close()


async def test_a_real_gap_is_still_counted_and_concealed(double, make_provider):
    peer = await RtpPeer.open()
    provider, handlers, key, dest = await _call(double, make_provider, peer)
    fed = count_fed(handlers, key)
    await peer.stream(dest, tone(0.2))
    peer.seq += 4  # four packets lost on the way
    peer.ts += 4 * SAMPLES_PER_PACKET
    await peer.stream(dest, tone(0.2))
    stats = provider.sessions[key].rtp.stats
    await until(lambda: stats.packets_received == 20)
    assert stats.packets_lost == 4
    assert fed[0] == stats.packets_received + 4
    double.bye(key)
    await until(lambda: not provider.sessions)
    peer.close()
