"""Call flows against the OpenSIPS 3.6 double, with a real Pipecat echo pipeline per call."""

from __future__ import annotations

import asyncio

import numpy as np
from conftest import Handlers, Tone
from helpers import answer_body, answer_direction, answered, replies, until

from voice_connector.caller.opensips_double import offer_sdp
from voice_connector.caller.rtp_peer import RtpPeer, tone
from voice_connector.telemetry.outcome import CallOutcome

LOCAL = "127.0.0.1"


async def test_normal_call_echoes_audio_and_cleans_up_on_caller_bye(double, make_provider):
    handlers = Handlers()
    provider = await make_provider(handlers)
    peer = await RtpPeer.open()
    key = double.new_key()
    double.invite(key, offer_sdp(peer.port))
    port = await answered(double, key)
    body = answer_body(double, key)
    assert "m=audio" in body and "a=rtpmap:0 PCMU/8000" in body
    assert "telephone-event/8000" in body and "a=sendrecv" in body
    assert key in provider.sessions  # registered before the 200 went out
    double.ack(key)
    await peer.stream((LOCAL, port), tone(1.0))
    await until(lambda: np.abs(peer.received.pcm()).max(initial=0) > 2000)
    call = handlers.calls[key]
    assert call.info.callee == "ai" and call.info.codec == "PCMU"
    double.bye(key)
    await until(lambda: key in handlers.finished and key not in provider.sessions)
    assert provider.ports.in_use == frozenset()
    assert not double.mi_calls("ua_session_terminate", key)  # OpenSIPS already answered the BYE
    assert handlers.outcome(key) == (CallOutcome.CALLER_HANGUP, "BYE/TERMINATED")
    peer.close()


async def test_pcma_chosen_when_offered_first(double, make_provider):
    provider = await make_provider()
    peer = await RtpPeer.open()
    key = double.new_key()
    double.invite(key, offer_sdp(peer.port, (8, 0, 101)))
    await answered(double, key)
    assert "a=rtpmap:8 PCMA/8000" in answer_body(double, key)
    double.bye(key)
    await until(lambda: not provider.sessions)
    peer.close()


async def test_caller_bye_while_bot_is_talking(double, make_provider):
    handlers = Handlers(lambda: Tone(seconds=5.0))
    provider = await make_provider(handlers)
    peer = await RtpPeer.open()
    key = double.new_key()
    double.invite(key, offer_sdp(peer.port))
    await answered(double, key)
    double.ack(key)
    await until(lambda: len(peer.received.packets) > 10)
    double.bye(key)
    await until(lambda: key in handlers.finished and not provider.sessions)
    assert provider.ports.in_use == frozenset()
    count = len(peer.received.packets)
    await asyncio.sleep(0.1)
    assert len(peer.received.packets) == count  # media stopped with the call
    peer.close()


async def test_cancel_before_answer_gets_487_and_terminate(double, make_provider):
    release = asyncio.Event()

    class SlowFlavorLookup:
        async def select(self, *args, **kwargs):
            await release.wait()
            return "default"

    handlers = Handlers()
    provider = await make_provider(handlers)
    provider.flavors = SlowFlavorLookup()  # hold the answer path until the CANCEL is in
    key = double.new_key()
    double.invite(key, offer_sdp(40000))
    await until(lambda: key in provider.sessions)
    double.cancel(key)
    await asyncio.sleep(0.05)
    release.set()
    await double.wait_for(lambda: double.mi_calls("ua_session_terminate", key))
    assert replies(double, key) == [487]
    assert key not in double.sessions  # the double's session is gone: no leak
    await until(lambda: not provider.sessions)
    assert provider.ports.in_use == frozenset()
    assert handlers.outcome(key) == (CallOutcome.CANCELLED, "487 Request Terminated")
    assert key not in handlers.calls
    double.ack(key)  # the ACK of the 487 arrives afterwards and is ignored quietly
    await asyncio.sleep(0.05)


async def test_no_common_codec_gets_488_and_terminate(double, make_provider):
    handlers = Handlers()
    provider = await make_provider(handlers)
    key = double.new_key()
    double.invite(key, offer_sdp(40000, (18, 9)))
    await double.wait_for(lambda: double.mi_calls("ua_session_terminate", key))
    assert replies(double, key) == [488]
    assert key not in double.sessions
    await until(lambda: not provider.sessions)
    assert provider.ports.in_use == frozenset()
    outcome, detail = handlers.outcome(key) or (None, "")
    assert outcome == CallOutcome.REJECTED and detail.startswith("488 ")


async def test_reinvite_hold_pauses_bot_audio_and_resume_restarts_it(double, make_provider):
    handlers = Handlers(lambda: Tone(seconds=6.0))
    provider = await make_provider(handlers)
    peer = await RtpPeer.open()
    key = double.new_key()
    double.invite(key, offer_sdp(peer.port))
    await answered(double, key)
    double.ack(key)
    await until(lambda: len(peer.received.packets) > 5)

    double.reinvite(key, offer_sdp(peer.port, (0, 101), "sendonly"))
    await double.wait_for(lambda: len(replies(double, key)) == 2)
    held_answer = double.mi_calls("ua_session_reply", key)[-1]["body"]
    assert answer_direction(held_answer) == "recvonly"
    await asyncio.sleep(0.1)
    count = len(peer.received.packets)
    await asyncio.sleep(0.3)
    assert len(peer.received.packets) == count  # nothing sent while held

    double.reinvite(key, offer_sdp(peer.port, (0, 101), "sendrecv"))
    await double.wait_for(lambda: len(replies(double, key)) == 3)
    assert answer_direction(double.mi_calls("ua_session_reply", key)[-1]["body"]) == "sendrecv"
    await until(lambda: len(peer.received.packets) > count + 5)
    assert provider.sessions[key].state == "active"
    double.bye(key)
    await until(lambda: not provider.sessions)
    peer.close()


async def test_bot_hangup_terminates_after_queued_audio_played(double, make_provider):
    handlers = Handlers(lambda: Tone(seconds=1.0))
    provider = await make_provider(handlers)
    peer = await RtpPeer.open()
    key = double.new_key()
    double.invite(key, offer_sdp(peer.port))
    await answered(double, key)
    double.ack(key)
    await until(lambda: key in handlers.calls)
    await asyncio.sleep(0.1)
    await handlers.calls[key].hangup("goodbye")
    await double.wait_for(lambda: double.mi_calls("ua_session_terminate", key))
    # the whole second of tone went out before the BYE
    tone_packets = [
        p
        for p in peer.received.packets
        if abs(np.frombuffer(p[12:], np.uint8).astype(int) - 0xFF).max() > 8
    ]
    assert len(tone_packets) >= 48
    assert double.byes_sent == [key]
    await until(lambda: key in handlers.finished and not provider.sessions)
    assert provider.ports.in_use == frozenset()
    assert handlers.outcome(key) == (CallOutcome.BOT_HANGUP, "goodbye")
    peer.close()


async def test_transfer_sends_refer_then_leaves(double, make_provider):
    handlers = Handlers()
    provider = await make_provider(handlers)
    key = double.new_key()
    double.invite(key, offer_sdp(40000))
    await answered(double, key)
    double.ack(key)
    await until(lambda: key in handlers.calls)
    await handlers.calls[key].transfer("sip:agent@10.0.0.5")
    refer = [r for r in double.requests if r["method"] == "ua_session_update"]
    assert refer[0]["params"] == {
        "key": key,
        "method": "REFER",
        "extra_headers": "Refer-To: <sip:agent@10.0.0.5>\r\n",
    }
    await double.wait_for(lambda: double.mi_calls("ua_session_terminate", key))
    await until(lambda: key in handlers.finished and not provider.sessions)
    assert handlers.outcome(key) == (CallOutcome.TRANSFERRED, "sip:agent@10.0.0.5")


async def test_dtmf_digits_reach_the_pipeline_once_each(double, make_provider):
    handlers = Handlers()
    provider = await make_provider(handlers)
    peer = await RtpPeer.open()
    key = double.new_key()
    double.invite(key, offer_sdp(peer.port))
    port = await answered(double, key)
    double.ack(key)
    await until(lambda: key in handlers.calls)
    await asyncio.sleep(0.2)
    for digit in "12#":
        peer.dtmf((LOCAL, port), digit)
        await asyncio.sleep(0.02)
    await until(lambda: handlers.processors[key].digits == ["1", "2", "#"])
    double.bye(key)
    await until(lambda: not provider.sessions)
    peer.close()


async def test_opensips_restart_resubscribes_and_readiness_follows(double, make_provider):
    provider = await make_provider(resubscribe_interval=0.2)
    assert provider.readiness()[0]
    double.down = True
    double.restart()
    await until(lambda: not provider.readiness()[0], limit=3)
    double.down = False
    await until(lambda: provider.readiness()[0], limit=3)
    assert provider.opensips.event_socket in double.subscribers
    # and calls work again
    key = double.new_key()
    double.invite(key, offer_sdp(40000))
    await answered(double, key)


async def test_startup_sweep_cleans_unknown_sessions(double, make_provider):
    stale = double.new_key()
    double.sessions[stale] = type(next(iter([None])) or object)  # placeholder, replaced below
    from voice_connector.caller.opensips_double import DoubleSession

    double.sessions[stale] = DoubleSession(stale)  # an INVITE nobody answered before we started
    provider = await make_provider()
    await double.wait_for(lambda: stale not in double.sessions)
    assert replies(double, stale) == [480]
    assert provider.ports.in_use == frozenset()
