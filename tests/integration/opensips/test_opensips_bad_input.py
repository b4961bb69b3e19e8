"""Bad RTP, SDP and events: dropped, counted, logged once; the process and other calls go on."""

from __future__ import annotations

import asyncio
import json
import socket
import struct

import numpy as np
import pytest
from conftest import Handlers
from helpers import answered, replies, until
from loguru import logger

from voice_connector.caller.opensips_double import offer_sdp
from voice_connector.caller.rtp_peer import RtpPeer, tone

LOCAL = "127.0.0.1"
VIDEO_ONLY = (
    "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"
    "m=video 5000 RTP/AVP 96\r\n"
)


@pytest.fixture
def log_lines():
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="WARNING")
    yield lines
    logger.remove(sink)


async def _call(double, peer):
    key = double.new_key()
    double.invite(key, offer_sdp(peer.port))
    port = await answered(double, key)
    double.ack(key)
    return key, port


async def test_bad_rtp_is_dropped_counted_and_logged_once(double, make_provider, log_lines):
    handlers = Handlers()
    provider = await make_provider(handlers)
    peer, other_peer = await RtpPeer.open(), await RtpPeer.open()
    key, port = await _call(double, peer)
    key2, port2 = await _call(double, other_peer)
    dest = (LOCAL, port)
    peer.send(dest, bytes(160))  # latches on the peer
    await asyncio.sleep(0.05)
    raw = peer.transport
    for _ in range(3):
        raw.sendto(b"\x40" + bytes(171), dest)  # version 1
        raw.sendto(b"\x80\x00\x01", dest)  # truncated header
        peer.send(dest, bytes(160), pt=96)  # unknown payload type
    intruder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    intruder.bind((LOCAL, 0))
    for _ in range(3):
        intruder.sendto(peer.packet(bytes(160)), dest)  # a second source
    intruder.close()
    await asyncio.sleep(0.1)
    rejected = provider.sessions[key].rtp.stats.packets_rejected
    assert rejected == {
        "wrong version": 3,
        "truncated header": 3,
        "unknown payload type": 3,
        "from a second source": 3,
    }
    for reason in rejected:
        assert sum(reason in line and key in line for line in log_lines) == 1
    # the other call is untouched and both still carry audio
    await other_peer.stream((LOCAL, port2), tone(0.5))
    await until(lambda: np.abs(other_peer.received.pcm()).max(initial=0) > 2000)
    assert provider.sessions[key2].rtp.stats.packets_rejected == {}
    await peer.stream(dest, tone(0.5))
    await until(lambda: np.abs(peer.received.pcm()).max(initial=0) > 2000)
    for k in (key, key2):
        double.bye(k)
    await until(lambda: not provider.sessions)
    peer.close()
    other_peer.close()


async def test_rtp_flood_is_limited(double, make_provider, log_lines):
    provider = await make_provider()
    peer = await RtpPeer.open()
    key, port = await _call(double, peer)
    for _ in range(2000):
        peer.send((LOCAL, port), bytes(160))
    await asyncio.sleep(0.2)
    stats = provider.sessions[key].rtp.stats
    assert stats.packets_rejected.get("flood", 0) > 100  # (the kernel drops some too)
    assert stats.packets_received < 300
    assert sum("flood" in line for line in log_lines) == 1
    double.bye(key)
    await until(lambda: not provider.sessions)
    peer.close()


@pytest.mark.parametrize(
    "body",
    [
        "garbage",
        "",
        "v=0\r\nm=audio xx RTP/AVP 0\r\n",
        VIDEO_ONLY,
        offer_sdp(99999),
        offer_sdp(4000, ip="999.1.1.1"),
        offer_sdp(4000).replace("IN IP4 127.0.0.1", "IN IP6 ::1"),
        offer_sdp(4000, ip="media.example.com"),
        offer_sdp(4000, ip="224.0.0.1"),
        offer_sdp(4000).replace("c=IN IP4 127.0.0.1\r\n", ""),
        offer_sdp(4000) + "a=x-pad:" + "A" * 9000 + "\r\n",
    ],
    ids=[
        "garbage",
        "empty",
        "bad-port",
        "video-only",
        "port-99999",
        "ip-999.1.1.1",
        "ipv6",
        "hostname",
        "multicast",
        "no-c-line",
        "oversized",
    ],
)
async def test_unusable_sdp_gets_488_and_terminate(double, make_provider, body):
    provider = await make_provider()
    key = double.new_key()
    double.invite(key, body)
    await double.wait_for(lambda: double.mi_calls("ua_session_terminate", key))
    assert replies(double, key) == [488]
    assert key not in double.sessions
    await until(lambda: not provider.sessions)
    assert provider.ports.in_use == frozenset()


async def test_malformed_events_are_dropped_and_calls_go_on(double, make_provider, log_lines):
    provider = await make_provider()
    peer = await RtpPeer.open()
    key, _ = await _call(double, peer)
    bad = [
        b"not json at all",
        b"\xff\xfe\x00",
        json.dumps({"jsonrpc": "2.0", "method": "E_UA_SESSION", "params": {"event_type": "NEW"}}),
        json.dumps({"jsonrpc": "2.0", "method": "E_OTHER", "params": {}}),
        json.dumps([1, 2, 3]),
        json.dumps({"jsonrpc": "2.0", "method": "E_UA_SESSION", "params": "x"}),
    ]
    for datagram in bad * 2:
        double.send_raw(datagram if isinstance(datagram, bytes) else datagram.encode())
    double.send("ACK-UPDATED", {"key": "B2B.9.9.9.9", "method": "FOO", "event_type": "UPDATED"})
    double.send("ACK-UPDATED", {"key": key, "method": "FOO", "event_type": "UPDATED"})
    await asyncio.sleep(0.2)
    assert sum("not JSON" in line for line in log_lines) == 1
    assert sum("missing key" in line for line in log_lines) == 1
    assert any("B2B.9.9.9.9" in line and "unknown session" in line for line in log_lines)
    assert any(key in line and "unhandled FOO" in line for line in log_lines)
    assert provider.sessions[key].state == "active"
    # a new call still works
    key2 = double.new_key()
    double.invite(key2, offer_sdp(40000))
    await answered(double, key2)
    for k in (key, key2):
        double.bye(k)
    await until(lambda: not provider.sessions)
    peer.close()


async def test_dtmf_retransmits_and_unknown_events_are_deduplicated(double, make_provider):
    handlers = Handlers()
    provider = await make_provider(handlers)
    peer = await RtpPeer.open()
    key, port = await _call(double, peer)
    await until(lambda: key in handlers.calls)
    await asyncio.sleep(0.2)
    peer.dtmf((LOCAL, port), "5")
    # a flash event (code 16) is not a digit
    peer.send((LOCAL, port), struct.pack("!BBH", 16, 0x80, 160), pt=101)
    await until(lambda: handlers.processors[key].digits == ["5"])
    await asyncio.sleep(0.1)
    assert handlers.processors[key].digits == ["5"]
    assert provider.sessions[key].rtp.stats.dtmf_received == 1
    double.bye(key)
    await until(lambda: not provider.sessions)
    peer.close()
