"""A SIP caller's RFC 4733 keys reach the node's call record, as a Twilio caller's do.

The whole media node (its app, registry and call pipeline with instant STT/LLM/TTS) behind the
OpenSIPS double; the caller is an `RtpPeer` sending real RTP and telephone-events.
"""

from __future__ import annotations

import asyncio

import aiohttp
from conftest import free_udp_port, port_range
from helpers import answered, until

from tests.conftest import node_settings
from tests.support.fakes import fake_services
from voice_connector.caller.opensips_double import offer_sdp
from voice_connector.caller.rtp_peer import RtpPeer
from voice_connector.caller.twilio_caller import fetch_call_record

LOCAL = "127.0.0.1"


async def test_dtmf_keys_reach_the_call_record_as_a_turn(double, media_node_factory) -> None:
    settings = node_settings(
        VC_TRANSPORT_PROVIDERS="opensips",
        VC_OPENSIPS_MI_PORT=str(double.mi_port),
        VC_OPENSIPS_EVENT_PORT=str(free_udp_port()),
        VC_OPENSIPS_RTP_IP=LOCAL,
        VC_OPENSIPS_RTP_PORT_RANGE=port_range(),
        VC_OPENSIPS_RESUBSCRIBE_INTERVAL="0.2",
        VC_LLM_GREETING="Hi.",
        VC_LLM_TOOLS="false",
    )
    node = media_node_factory(settings, lambda s, info: fake_services("Option one, noted."))
    await until(lambda: bool(double.subscribers), limit=20)
    peer = await RtpPeer.open()
    key = double.new_key()
    double.invite(key, offer_sdp(peer.port))
    dest = (LOCAL, await answered(double, key))
    double.ack(key)
    peer.send(dest, bytes(160))
    await asyncio.sleep(0.5)  # the greeting
    for digit in "1#":
        peer.dtmf(dest, digit)
    await until(lambda: len(peer.received.packets) > 120, limit=10)  # time for the answer
    double.bye(key)
    async with aiohttp.ClientSession() as session:
        record = await fetch_call_record(session, f"{node.http}/calls/{key}")
    assert record is not None
    assert record["dtmf"] == "1#"
    keyed = [t for t in record["turns"] if t["dtmf"]]
    assert [t["dtmf"] for t in keyed] == ["1#"]
    assert keyed[0]["bot_text"] == "Option one, noted."
    assert record["greeting"] == "Hi."
    peer.close()
