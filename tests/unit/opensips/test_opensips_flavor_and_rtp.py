"""Flavor selection order, and the RTP stream's outbound packets driven tick by tick."""

from __future__ import annotations

import asyncio
import re
import struct

from aiohttp import web

from voice_connector.audio.g711 import G711Codec
from voice_connector.transports.opensips.clock import PacingClock
from voice_connector.transports.opensips.flavor import FlavorSelector
from voice_connector.transports.opensips.rtp import RtpStream

MATCHES = {"sales": re.compile(r"^\+?1800"), "support": re.compile(r"^help")}


async def test_flavor_regex_then_default_and_extra_params_first():
    sel = FlavorSelector(MATCHES, "default", known=["vip"])
    assert await sel.select("c", "18005550000") == "sales"
    assert await sel.select("c", "help-desk") == "support"
    assert await sel.select("c", "ai") == "default"
    assert await sel.select("c", "18005550000", extra_params='{"flavor": "vip"}') == "vip"
    assert await sel.select("c", "ai", extra_params='{"flavor": "typo"}') == "default"
    assert await sel.select("c", "ai", extra_params="not json") == "default"


async def test_flavor_lookup_url_wins_and_failures_fall_through():
    seen = []

    async def lookup(request: web.Request) -> web.Response:
        seen.append(dict(request.query))
        if request.query["called"] == "down":
            return web.Response(status=500)
        if request.query["called"] == "slow":
            await asyncio.sleep(2)
        return web.json_response({"flavor": "vip"})

    app = web.Application()
    app.router.add_get("/flavor", lookup)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        sel = FlavorSelector(
            MATCHES, "default", f"http://127.0.0.1:{port}/flavor", 0.3, known=["vip"]
        )
        assert await sel.select("k1", "18005550000", "alice", '{"flavor": "x"}') == "vip"
        assert seen[0] == {"called": "18005550000", "caller": "alice", "call_id": "k1"}
        assert await sel.select("k2", "down") == "default"
        assert await sel.select("k3", "slow", extra_params='{"flavor": "vip"}') == "vip"
    finally:
        await runner.cleanup()


class FakeSocket:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def sendto(self, data: bytes, addr) -> None:
        self.sent.append(data)


def _headers(packets):
    return [struct.unpack_from("!BBHII", p) for p in packets]


async def test_outbound_timeline_marker_and_barge_in():
    sock = FakeSocket()
    stream = RtpStream(
        "call-1",
        G711Codec("PCMU"),
        ("127.0.0.1", 9),
        clock=PacingClock(),
        on_audio=lambda pcm: None,
        on_dtmf=lambda d: None,
        sock=sock,
        telephone_event_pt=101,
    )
    stream.connection_made(None)  # type: ignore[arg-type]
    stream.on_tick(0.0)  # silence fill, first packet: marker
    await stream.write(b"\x10\x00" * 320 * 2)  # 40 ms of bot audio
    stream.on_tick(0.0)
    stream.on_tick(0.0)
    stream.on_tick(0.0)  # back to silence
    hdrs = _headers(sock.sent)
    markers = [h[1] >> 7 for h in hdrs]
    assert markers == [1, 1, 0, 0]  # stream start, talkspurt start
    assert [h[2] - hdrs[0][2] for h in hdrs] == [0, 1, 2, 3]
    assert [h[3] - hdrs[0][3] for h in hdrs] == [0, 160, 320, 480]
    assert len({h[4] for h in hdrs}) == 1
    assert sock.sent[-1][12:] == b"\xff" * 160

    await stream.write(b"\x10\x00" * 320 * 3)
    stream.clear()  # barge-in: queued audio is gone at once
    stream.on_tick(0.0)
    assert sock.sent[-1][12:] == b"\xff" * 160
    assert stream.stats.dropped_outbound == 3

    stream.on_skip(2)  # after a stall: timestamps jump, no burst
    stream.on_tick(0.0)
    assert _headers(sock.sent)[-1][3] - _headers(sock.sent)[-2][3] == 480
    assert _headers(sock.sent)[-1][2] - _headers(sock.sent)[-2][2] == 1

    stream.send_dtmf("7")  # RFC 4733 out: 8 packets sharing one timestamp
    for _ in range(8):
        stream.on_tick(0.0)
    dtmf = [h for h in _headers(sock.sent[-8:])]
    assert all(h[1] & 0x7F == 101 for h in dtmf) and len({h[3] for h in dtmf}) == 1
