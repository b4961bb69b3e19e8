"""20 calls at once through one provider: all get audio back, and every port comes back."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from conftest import Handlers
from helpers import answered, until

from voice_connector.caller.opensips_double import offer_sdp
from voice_connector.caller.rtp_peer import RtpPeer, tone


@pytest.mark.slow
async def test_twenty_concurrent_calls_without_port_leak(double, make_provider):
    handlers = Handlers()
    provider = await make_provider(handlers, rtp_port_range="42000-42079")
    peers = [await RtpPeer.open() for _ in range(20)]
    keys = [double.new_key() for _ in peers]
    for key, peer in zip(keys, peers, strict=True):
        double.invite(key, offer_sdp(peer.port))
    ports = await asyncio.gather(*(answered(double, k) for k in keys))
    assert len(set(ports)) == 20
    for key in keys:
        double.ack(key)
    await asyncio.gather(
        *(p.stream(("127.0.0.1", port), tone(1.0)) for p, port in zip(peers, ports, strict=True))
    )
    await until(lambda: all(np.abs(p.received.pcm()).max(initial=0) > 2000 for p in peers))
    # half hang up themselves, the bot hangs up the other half
    for key in keys[:10]:
        double.bye(key)
    await asyncio.gather(*(handlers.calls[k].hangup("done") for k in keys[10:]))
    await until(lambda: not provider.sessions and len(handlers.finished) == 20, limit=10)
    assert provider.ports.in_use == frozenset()
    assert sorted(double.byes_sent) == sorted(keys[10:])
    assert not double.sessions  # nothing leaked on the OpenSIPS side either
    for p in peers:
        p.close()
