"""The connector's SIP call flows against the real OpenSIPS 3.6.8 running the shipped
`media-node/opensips/opensips.cfg`, with SIPp as the caller sending real RTP, and each flow also
run against the OpenSIPS double: both must produce the same wire trace (the E_UA_SESSION events
the connector receives, the MI session commands it sends and how OpenSIPS answered them), so a
double that drifts from the real peer fails here.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import numpy as np
import pytest
from conftest import Echo, Handlers, Tone, start_provider
from helpers import answered, replies, until
from media import speech_wav
from pipecat.frames.frames import Frame, InputAudioRawFrame
from pipecat.processors.frame_processor import FrameDirection
from wire_trace import WireTap

from tests.support.real_opensips import node_opensips, requires_opensips
from tests.support.sipp import (
    SIPP_SKIP,
    run_sipp,
    scenario,
    write_dtmf_pcap,
    write_speech_pcap,
)
from voice_connector.caller.opensips_double import OpenSIPSDouble, offer_sdp
from voice_connector.caller.rtp_peer import RtpPeer, tone
from voice_connector.telemetry.outcome import CallOutcome
from voice_connector.transports.base import CallRefused
from voice_connector.transports.opensips import OpenSIPSProvider

pytestmark = [requires_opensips, pytest.mark.skipif(SIPP_SKIP is not None, reason=SIPP_SKIP or "")]
LOCAL = "127.0.0.1"
EVENT_FIELDS = {
    "key", "event_type", "entity_type", "status", "reason", "method", "body", "headers",
    "extra_params",
}  # fmt: skip
B2BE_FIELDS = {
    "dlg",
    "logic_key",
    "mod_name",
    "state",
    "last_invite_cseq",
    "last_method",
    "db_flag",
    "ruri",
    "callid",
    "from",
    "from_uri",
    "from_tag",
    "to",
    "to_uri",
    "to_tag",
    "cseq",
    "contact",
    "send_sock",
    "tm_tran",
}  # fmt: skip  (one b2be_list entity, as OpenSIPS 3.6.8 lists it)


class Listener(Echo):
    """Echo that also counts the caller's loud 20 ms frames (speech that really arrived)."""

    def __init__(self) -> None:
        super().__init__()
        self.loud_frames = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, InputAudioRawFrame):
            pcm = np.frombuffer(frame.audio, dtype=np.int16)
            if pcm.size and np.abs(pcm).max() > 2000:
                self.loud_frames += 1
        await super().process_frame(frame, direction)


@dataclasses.dataclass
class Peer:
    """One OpenSIPS, double or real, with the wire tap in front of its MI."""

    kind: str
    tap: WireTap
    double: OpenSIPSDouble | None = None
    real: object | None = None
    providers: list[OpenSIPSProvider] = dataclasses.field(default_factory=list)

    @property
    def sip(self) -> tuple[str, int]:
        return (self.real.sip_ip, self.real.sip_port)  # type: ignore[union-attr]

    async def provider(self, handlers: Handlers, **overrides) -> OpenSIPSProvider:
        provider = await start_provider(self.tap.port, handlers, **overrides)
        self.providers.append(provider)
        await until(lambda: provider.readiness()[0], limit=5)
        return provider


@pytest.fixture(scope="module")
def speech_pcap(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("speech")
    pcm = speech_wav(workdir / "speech.wav", "Hello. I would like to know the opening hours.")
    return write_speech_pcap(workdir / "speech.pcap", pcm)


@pytest.fixture(params=["double", pytest.param("real", marks=pytest.mark.slow)])
async def peer(request, tmp_path):
    if request.param == "double":
        double = await OpenSIPSDouble().start()
        tap = await WireTap(double.mi_port).start()
        tap.subscribe_double(double)
        p = Peer("double", tap, double=double)
    else:
        real = node_opensips(tmp_path / "opensips")
        await asyncio.to_thread(real.start)
        tap = await WireTap(real.mi_port).start()
        await tap.subscribe_real()
        p = Peer("real", tap, real=real)
    yield p
    for provider in p.providers:
        await provider.stop()
    tap.close()
    if p.double is not None:
        p.double.close()
    if p.real is not None:
        await asyncio.to_thread(p.real.stop)


async def sipp_ok(peer: Peer, tmp_path: Path, name: str, **fields) -> None:
    run = await run_sipp(scenario(name, tmp_path, **fields), peer.sip, tmp_path)
    assert run.ok, run.stderr + peer.real.log()[-3000:]  # type: ignore[union-attr]


async def test_answered_call_carries_speech_and_ends_on_caller_bye(peer, tmp_path, speech_pcap):
    handlers = Handlers(Listener)
    provider = await peer.provider(handlers)
    if peer.kind == "real":
        await sipp_ok(peer, tmp_path, "call", audio=speech_pcap, hold_ms=3500)
    else:
        phone = await RtpPeer.open()
        key = peer.double.new_key()
        peer.double.invite(key, offer_sdp(phone.port, (0, 101)))
        port = await answered(peer.double, key)
        peer.double.ack(key)
        await phone.stream((LOCAL, port), tone(2.0))
        peer.double.bye(key)
        phone.close()
    await until(lambda: handlers.finished and not provider.sessions)
    (key,) = peer.tap.keys()
    assert peer.tap.event_trace(key) == ["INVITE/NEW", "ACK/UPDATED", "BYE/TERMINATED"]
    await until(lambda: len(peer.tap.mi_trace(key)) == 1)
    assert peer.tap.mi_trace(key) == ["ua_session_reply 200=ok"]
    assert peer.tap.event_fields() == EVENT_FIELDS
    assert handlers.processors[key].loud_frames > 40  # > 0.8 s of the caller's audio arrived
    assert provider.ports.in_use == frozenset()
    assert handlers.outcome(key) == (CallOutcome.CALLER_HANGUP, "BYE/TERMINATED")


async def test_cancel_before_answer_gets_487(peer, tmp_path):
    release = asyncio.Event()

    class HeldFlavorLookup:  # holds the answer path until the CANCEL is in
        async def select(self, *args, **kwargs):
            await release.wait()
            return "default"

    handlers = Handlers()
    provider = await peer.provider(handlers)
    provider.flavors = HeldFlavorLookup()
    if peer.kind == "real":
        sipp = asyncio.create_task(
            run_sipp(scenario("cancel", tmp_path, wait_ms=300), peer.sip, tmp_path)
        )
        await until(lambda: any(e["method"] == "CANCEL" for e in peer.tap.events), limit=10)
        release.set()
        run = await sipp
        assert run.ok, run.stderr
    else:
        key = peer.double.new_key()
        peer.double.invite(key, offer_sdp(40000))
        await until(lambda: key in provider.sessions)
        peer.double.cancel(key)
        await asyncio.sleep(0.05)
        release.set()
        await until(lambda: peer.tap.mi_trace(key)[-1:] == ["ua_session_terminate=ok"])
        peer.double.ack(key)  # the ACK of our 487, as OpenSIPS reports it
    (key,) = peer.tap.keys()
    await until(lambda: len(peer.tap.event_trace(key)) == 3 and not provider.sessions)
    assert peer.tap.event_trace(key) == ["INVITE/NEW", "CANCEL/TERMINATED", "ACK/UPDATED"]
    await until(lambda: len(peer.tap.mi_trace(key)) == 2)
    assert peer.tap.mi_trace(key) == ["ua_session_reply 487=ok", "ua_session_terminate=ok"]
    assert not handlers.calls and provider.ports.in_use == frozenset()
    assert handlers.outcome(key) == (CallOutcome.CANCELLED, "487 Request Terminated")


@pytest.mark.parametrize("refusal", ["no common codec", "node full"])
async def test_refused_invite_gets_final_reply_and_leaves_nothing(peer, tmp_path, refusal):
    def full(call_id: str) -> None:
        raise CallRefused("at capacity")

    code, codecs = (488, "18") if refusal == "no common codec" else (503, "0 101")
    handlers = Handlers()
    provider = await peer.provider(handlers, admit=full if code == 503 else None)
    if peer.kind == "real":
        await sipp_ok(peer, tmp_path, "refused", codecs=codecs, code=code)
    else:
        key = peer.double.new_key()
        peer.double.invite(key, offer_sdp(40000, tuple(int(c) for c in codecs.split())))
        await until(lambda: peer.tap.mi_trace(key)[-1:] == ["ua_session_terminate=ok"])
        peer.double.ack(key)
    (key,) = peer.tap.keys()
    await until(lambda: len(peer.tap.mi_trace(key)) == 2)
    assert peer.tap.mi_trace(key) == [f"ua_session_reply {code}=ok", "ua_session_terminate=ok"]
    assert peer.tap.event_trace(key)[0] == "INVITE/NEW"
    await until(lambda: not provider.sessions)  # the tap relays the last MI reply before we read it
    assert not handlers.calls
    outcome, detail = handlers.outcome(key) or (None, "")
    assert outcome == CallOutcome.REJECTED and detail.startswith(f"{code} ")
    if peer.real is not None:  # nothing leaked in OpenSIPS, once its INVITE transaction is over
        await until(lambda: peer.real.mi("b2be_list") == [], limit=5)


async def test_reinvite_hold_and_resume(peer, tmp_path, speech_pcap):
    handlers = Handlers(Listener)
    provider = await peer.provider(handlers)
    if peer.kind == "real":
        await sipp_ok(peer, tmp_path, "hold", audio=speech_pcap)
    else:
        key = peer.double.new_key()
        peer.double.invite(key, offer_sdp(40000, (0, 101)))
        await answered(peer.double, key)
        peer.double.ack(key)
        for answers, direction in ((2, "sendonly"), (3, "sendrecv")):
            peer.double.reinvite(key, offer_sdp(40000, (0, 101), direction))
            await peer.double.wait_for(lambda n=answers: len(replies(peer.double, key)) == n)
            peer.double.ack(key)
        peer.double.bye(key)
    await until(lambda: handlers.finished and not provider.sessions)
    (key,) = peer.tap.keys()
    assert peer.tap.event_trace(key) == [
        "INVITE/NEW", "ACK/UPDATED",
        "INVITE/UPDATED", "ACK/UPDATED",
        "INVITE/UPDATED", "ACK/UPDATED",
        "BYE/TERMINATED",
    ]  # fmt: skip
    await until(lambda: len(peer.tap.mi_trace(key)) == 3)
    assert peer.tap.mi_trace(key) == ["ua_session_reply 200=ok"] * 3


async def test_transfer_refers_the_caller_and_leaves(peer, tmp_path, speech_pcap):
    handlers = Handlers()
    provider = await peer.provider(handlers)

    async def transfer_when_answered() -> None:
        await until(lambda: handlers.calls, limit=10)
        await asyncio.sleep(0.3)
        (call,) = handlers.calls.values()
        await call.transfer("sip:agent@127.0.0.1:5999")

    transferring = asyncio.create_task(transfer_when_answered())
    if peer.kind == "real":
        await sipp_ok(peer, tmp_path, "refer", audio=speech_pcap)
    else:
        key = peer.double.new_key()
        peer.double.invite(key, offer_sdp(40000))
        await answered(peer.double, key)
        peer.double.ack(key)
    await transferring
    await until(lambda: handlers.finished and not provider.sessions)
    (key,) = peer.tap.keys()
    assert peer.tap.event_trace(key) == ["INVITE/NEW", "ACK/UPDATED", "REFER/ANSWERED/202"]
    await until(lambda: len(peer.tap.mi_trace(key)) == 3)
    assert peer.tap.mi_trace(key) == [
        "ua_session_reply 200=ok",
        "ua_session_update REFER=ok",
        "ua_session_terminate=ok",
    ]
    assert handlers.outcome(key) == (CallOutcome.TRANSFERRED, "sip:agent@127.0.0.1:5999")


async def test_bot_hangup_sends_bye_after_its_audio(peer, tmp_path, speech_pcap):
    handlers = Handlers(lambda: Tone(seconds=0.6))
    provider = await peer.provider(handlers)

    async def hang_up_when_answered() -> None:
        await until(lambda: handlers.calls, limit=10)
        await asyncio.sleep(0.2)
        (call,) = handlers.calls.values()
        await call.hangup("goodbye")

    hanging_up = asyncio.create_task(hang_up_when_answered())
    if peer.kind == "real":
        await sipp_ok(peer, tmp_path, "hangup", audio=speech_pcap)
    else:
        key = peer.double.new_key()
        peer.double.invite(key, offer_sdp(40000))
        await answered(peer.double, key)
        peer.double.ack(key)
    await hanging_up
    await until(lambda: handlers.finished and not provider.sessions)
    (key,) = peer.tap.keys()
    assert peer.tap.event_trace(key) == ["INVITE/NEW", "ACK/UPDATED"]
    await until(lambda: len(peer.tap.mi_trace(key)) == 2)
    assert peer.tap.mi_trace(key) == ["ua_session_reply 200=ok", "ua_session_terminate=ok"]
    assert handlers.outcome(key) == (CallOutcome.BOT_HANGUP, "goodbye")
    if peer.real is not None:
        assert peer.real.mi("b2be_list") == []


async def test_startup_sweep_refuses_a_session_nobody_answered(peer, tmp_path):
    """An INVITE that arrived while no connector listened: the next start-up answers it 480."""
    if peer.kind == "real":
        sipp = asyncio.create_task(
            run_sipp(scenario("refused", tmp_path, codecs="0", code=480), peer.sip, tmp_path)
        )
        await until(lambda: peer.tap.keys(), limit=10)
        key = peer.tap.keys()[0]
    else:
        key = peer.double.new_key()
        peer.double.invite(key, offer_sdp(40000))
        await asyncio.sleep(0.05)
    listing = await peer.tap.command("b2be_list")
    assert [entity["to_tag"] for entity in listing] == [key]
    assert set(listing[0]) == B2BE_FIELDS
    provider = await peer.provider(Handlers())
    await until(lambda: len(peer.tap.mi_trace(key)) == 2)
    if peer.kind == "real":
        run = await sipp
        assert run.ok, run.stderr
        assert peer.real.mi("b2be_list") == []
    assert peer.tap.mi_trace()[1:] == [
        "b2be_list=ok",
        "ua_session_reply 480=ok",
        "ua_session_terminate=ok",
    ]
    assert not provider.sessions


async def test_dtmf_digits_reach_the_pipeline(peer, tmp_path):
    handlers = Handlers()
    provider = await peer.provider(handlers)
    if peer.kind == "real":
        dtmf = write_dtmf_pcap(tmp_path / "dtmf.pcap", "12#")
        await sipp_ok(peer, tmp_path, "call", audio=dtmf, hold_ms=2500)
    else:
        phone = await RtpPeer.open()
        key = peer.double.new_key()
        peer.double.invite(key, offer_sdp(phone.port))
        port = await answered(peer.double, key)
        peer.double.ack(key)
        await asyncio.sleep(0.3)
        for digit in "12#":
            phone.dtmf((LOCAL, port), digit)
            await asyncio.sleep(0.05)
        await until(lambda: len(handlers.processors[key].digits) == 3)
        peer.double.bye(key)
        phone.close()
    await until(lambda: handlers.finished and not provider.sessions)
    (key,) = peer.tap.keys()
    assert handlers.processors[key].digits == ["1", "2", "#"]


async def test_opensips_restart_resubscribes_and_calls_work_again(peer, tmp_path, speech_pcap):
    handlers = Handlers()
    provider = await peer.provider(handlers, resubscribe_interval=0.2)
    if peer.kind == "real":
        await asyncio.to_thread(peer.real.stop)
    else:
        peer.double.down = True
        peer.double.restart()
    await until(lambda: not provider.readiness()[0], limit=5)
    if peer.kind == "real":
        await asyncio.to_thread(peer.real.start)
    else:
        peer.double.down = False
    await until(lambda: provider.readiness()[0], limit=5)
    if peer.kind == "real":
        subscribers = peer.real.mi("subscribers_list", {"event": "E_UA_SESSION"})
        sockets = [s["socket"] for s in subscribers["Event"]["Subscribers"]]
        assert provider.opensips.event_socket in sockets
        await sipp_ok(peer, tmp_path, "call", audio=speech_pcap, hold_ms=500)
        await until(lambda: handlers.finished)
    else:
        assert provider.opensips.event_socket in peer.double.subscribers
