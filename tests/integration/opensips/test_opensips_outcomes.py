"""Every way a SIP call ends is recorded as its own outcome, in the call record and in
`voice_connector_calls_ended_total`.

The node's call registry (fake STT/LLM/TTS) takes the calls of an OpenSIPS provider behind the
double, wired as the media node wires them; the caller is an `RtpPeer` (audio, RFC 4733 keys).
Keys pressed make the fake LLM answer, so its scripted answer can hang up or transfer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from conftest import free_udp_port, port_range
from helpers import answered, replies, until
from prometheus_client import REGISTRY

from media_node.calls import CallRegistry
from tests.conftest import node_settings
from tests.support.fakes import fake_services
from voice_connector.caller.opensips_double import offer_sdp
from voice_connector.caller.rtp_peer import RtpPeer
from voice_connector.pipeline.builder import CallServices, ServicesFactory
from voice_connector.telemetry.call_record import CallRecord
from voice_connector.telemetry.outcome import CallOutcome
from voice_connector.transports.opensips import OpenSIPSProvider
from voice_connector_core.config import Settings

LOCAL = "127.0.0.1"
SUPPORT_LINE = "18005550100"
"""Called user of the shipped `support` flavor (`match = ^\\+?1800`, transfer to +15550100)."""


class Node:
    """A provider and the registry its calls go to."""

    def __init__(self, provider: OpenSIPSProvider, registry: CallRegistry) -> None:
        self.provider, self.registry = provider, registry

    async def ended(self, key: str, limit: float = 10.0) -> CallRecord:
        """The record of call `key` once it has ended and left the active calls."""

        def over() -> bool:
            record = self.registry.get(key)
            return record is not None and key not in self.registry.active

        await until(over, limit)
        record = self.registry.get(key)
        assert record is not None
        return record


def answering(answer: str) -> ServicesFactory:
    return lambda settings, info: fake_services(answer)


def counter(outcome: CallOutcome, flavor: str = "default") -> Callable[[], float]:
    """How much `calls_ended_total{transport="opensips", outcome}` grew since this call."""
    labels = {"transport": "opensips", "flavor": flavor, "outcome": outcome.value}

    def value() -> float:
        return REGISTRY.get_sample_value("voice_connector_calls_ended_total", labels) or 0.0

    before = value()
    return lambda: value() - before


@pytest.fixture
async def start_node(double):
    providers: list[OpenSIPSProvider] = []

    async def start(services: ServicesFactory | None = None, **env: str) -> Node:
        settings: Settings = node_settings(
            VC_TRANSPORT_PROVIDERS="opensips",
            VC_OPENSIPS_MI_PORT=str(double.mi_port),
            VC_OPENSIPS_EVENT_PORT=str(free_udp_port()),
            VC_OPENSIPS_RTP_IP=LOCAL,
            VC_OPENSIPS_RTP_PORT_RANGE=port_range(),
            VC_OPENSIPS_RESUBSCRIBE_INTERVAL="0.2",
            VC_LLM_GREETING="",
            VC_LLM_TOOLS="false",
            **env,
        )
        registry = CallRegistry(settings, services or answering("Fine, thanks."))
        provider = OpenSIPSProvider(settings)
        await provider.start(registry.handle, registry.admit, registry.unanswered)
        providers.append(provider)
        await double.wait_for(lambda: provider.readiness()[0])
        return Node(provider, registry)

    yield start
    for provider in providers:
        await provider.stop()


async def call(double, user: str = "ai") -> tuple[str, RtpPeer, tuple[str, int]]:
    """An answered, acknowledged call with RTP flowing: (key, caller, our RTP address)."""
    peer = await RtpPeer.open()
    key = double.new_key()
    double.invite(key, offer_sdp(peer.port), user=user)
    dest = (LOCAL, await answered(double, key))
    double.ack(key)
    peer.send(dest, bytes(160))
    return key, peer, dest


async def press(node: Node, key: str, peer: RtpPeer, dest: tuple[str, int]) -> None:
    """`1#` once the call's pipeline runs: the fake LLM answers the keys."""
    await until(lambda: key in node.registry.active)
    await asyncio.sleep(0.5)  # the pipeline starting
    for digit in "1#":
        peer.dtmf(dest, digit)


async def test_caller_bye_is_a_caller_hangup(double, start_node) -> None:
    node = await start_node()
    counted = counter(CallOutcome.CALLER_HANGUP)
    key, peer, _ = await call(double)
    await until(lambda: key in node.registry.active)
    double.bye(key)
    record = await node.ended(key)
    assert (record.outcome, record.outcome_detail) == (CallOutcome.CALLER_HANGUP, "BYE/TERMINATED")
    assert counted() == 1
    assert not double.mi_calls("ua_session_terminate", key)  # OpenSIPS answered the BYE itself
    peer.close()


async def test_the_bot_ending_the_conversation_is_a_bot_hangup(double, start_node) -> None:
    node = await start_node(answering("Goodbye! [hangup]"))
    counted = counter(CallOutcome.BOT_HANGUP)
    key, peer, dest = await call(double)
    await press(node, key, peer, dest)
    record = await node.ended(key)
    assert (record.outcome, record.outcome_detail) == (CallOutcome.BOT_HANGUP, "conversation")
    assert counted() == 1
    assert double.byes_sent == [key]
    peer.close()


async def test_the_time_limit_is_a_max_duration(double, start_node) -> None:
    node = await start_node(VC_PIPELINE_MAX_CALL_SECONDS="0.5")
    counted = counter(CallOutcome.MAX_DURATION)
    key, peer, _ = await call(double)
    record = await node.ended(key)
    assert record.outcome == CallOutcome.MAX_DURATION
    assert counted() == 1
    assert double.byes_sent == [key]  # after the goodbye
    peer.close()


async def test_a_refer_the_phone_accepts_is_a_transfer(double, start_node) -> None:
    node = await start_node(answering("Transferring you now. [transfer]"))
    counted = counter(CallOutcome.TRANSFERRED, flavor="support")
    key, peer, dest = await call(double, user=SUPPORT_LINE)
    await press(node, key, peer, dest)
    record = await node.ended(key)
    assert record.outcome == CallOutcome.TRANSFERRED
    assert record.outcome_detail.startswith("sip:+15550100@")
    assert counted() == 1
    assert [r["params"]["method"] for r in double.requests if r["method"] == "ua_session_update"]
    peer.close()


async def test_cancel_before_the_answer_is_cancelled(double, start_node) -> None:
    node = await start_node()
    release = asyncio.Event()

    class HeldFlavorLookup:
        async def select(self, *args: object, **kwargs: object) -> str:
            await release.wait()
            return "default"

    node.provider.flavors = HeldFlavorLookup()  # type: ignore[assignment]  # answer held
    counted = counter(CallOutcome.CANCELLED)
    key = double.new_key()
    double.invite(key, offer_sdp(40000))
    await until(lambda: key in node.provider.sessions)
    double.cancel(key)
    await asyncio.sleep(0.05)
    release.set()
    record = await node.ended(key)
    assert (record.outcome, record.outcome_detail) == (
        CallOutcome.CANCELLED,
        "487 Request Terminated",
    )
    assert counted() == 1 and replies(double, key) == [487]


@pytest.mark.parametrize("why", ["no common codec", "node draining", "provider draining"])
async def test_a_refused_invite_is_rejected(double, start_node, why: str) -> None:
    node = await start_node()
    counted = counter(CallOutcome.REJECTED)
    codecs = (0, 8)
    if why == "no common codec":
        codecs = (18, 9)
    elif why == "node draining":
        node.registry.draining = True  # the registry's admission refuses
    else:
        node.provider.refuse_new_calls()  # the provider refuses before any session
    key = double.new_key()
    double.invite(key, offer_sdp(40000, codecs))
    record = await node.ended(key)
    expected = {"no common codec": "488 ", "node draining": "503 draining"}.get(why, "503 not")
    assert record.outcome == CallOutcome.REJECTED
    assert record.outcome_detail.startswith(expected)
    assert counted() == 1
    assert 200 not in replies(double, key)


async def test_a_failing_call_is_an_error(double, start_node) -> None:
    def broken(settings: Settings, info: object) -> CallServices:
        raise RuntimeError("no services today")

    node = await start_node(broken)
    counted = counter(CallOutcome.ERROR)
    key, peer, _ = await call(double)
    record = await node.ended(key)
    assert (record.outcome, record.outcome_detail) == (CallOutcome.ERROR, "RuntimeError")
    assert counted() == 1
    await until(lambda: double.byes_sent == [key])  # the caller is not left hanging
    peer.close()
