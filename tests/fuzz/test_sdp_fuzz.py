"""Hostile SDP offers: the parser directly, and INVITEs through the OpenSIPS double on loopback.

Mutations of the recorded SIPp offer (lines dropped, doubled, moved; fields replaced by out of
range ports, IPv6, impossible or multicast addresses, host names, huge numbers, NULs), random
bytes and oversized bodies. Each offer is either usable (then the answer is valid and we can send
to the address) or refused with `SdpError`, which the provider answers 488 (+ terminate); no other
exception, no 500, no port or session left behind.
"""

from __future__ import annotations

import ipaddress
import socket
import time

import pytest

from tests.fuzz.sip_media_inputs import fuzz_count, fuzz_long, fuzz_rng, sdp_offer
from voice_connector.caller.opensips_double import OpenSIPSDouble
from voice_connector.transports.base import CallTransport
from voice_connector.transports.opensips import OpenSIPSProvider, OpenSIPSSettings
from voice_connector.transports.opensips.sdp import (
    Negotiated,
    SdpError,
    build_answer,
    negotiate,
    parse_offer,
)
from voice_connector_core.config import Settings

LOCAL = "127.0.0.1"
CODECS = ["PCMU", "PCMA"]


def classify(body: str) -> Negotiated | None:
    """What the provider will do with `body`: the negotiated stream, or None for a 488."""
    try:
        return negotiate(parse_offer(body), CODECS)
    except SdpError:
        return None


def timed(body: str) -> float:
    started = time.perf_counter()
    classify(body)
    return time.perf_counter() - started


def check_usable(neg: Negotiated) -> None:
    """A usable offer names an address and port RTP can really be sent to."""
    assert 0 < neg.remote_port <= 65535
    ip = ipaddress.ip_address(neg.remote_ip)
    assert ip.version == 4 and not ip.is_multicast
    assert neg.codec in CODECS
    answer = build_answer(neg, "203.0.113.7", 35000, 1, 0)
    assert parse_offer(answer).port == 35000  # our answer parses under our own rules


def test_fuzzed_offers_parse_or_raise_sdp_error_quickly() -> None:
    rng, seed = fuzz_rng("sdp")
    count = fuzz_count(3000)
    usable = slowest = 0.0
    slowest_body = ""
    for _ in range(count):
        body = sdp_offer(rng)
        started = time.perf_counter()
        neg = classify(body)  # anything but SdpError propagates and fails the test
        if (took := time.perf_counter() - started) > slowest:
            slowest, slowest_body = took, body
        if neg is not None:
            usable += 1
            check_usable(neg)
    # the slowest offer again, best of three (a busy machine's pauses are not the parser's)
    slowest = min(timed(slowest_body) for _ in range(3))
    assert slowest < 0.05, f"seed {seed}: one offer takes {slowest * 1000:.1f} ms"
    assert 0 < usable < count, f"seed {seed}: the mutations should give both outcomes"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LOCAL, 0))
        return s.getsockname()[1]


@pytest.fixture
async def node():
    """A started provider behind the OpenSIPS double; calls just wait for their end."""
    double = await OpenSIPSDouble().start()
    settings = OpenSIPSSettings(
        mi_ip=LOCAL,
        mi_port=double.mi_port,
        mi_timeout=0.5,
        event_ip=LOCAL,
        event_port=free_udp_port(),
        rtp_ip=LOCAL,
        rtp_port_range="23100-23299",
        resubscribe_interval=0.2,
        codecs=CODECS,
    )
    provider = OpenSIPSProvider(Settings(opensips=settings))

    async def on_call(call: CallTransport) -> None:
        await call.wait_ended()

    await provider.start(on_call)
    await double.wait_for(lambda: provider.readiness()[0])
    yield double, provider
    await provider.stop()
    double.close()


def final_reply(double: OpenSIPSDouble, key: str) -> int | None:
    codes = [int(p["code"]) for p in double.mi_calls("ua_session_reply", key)]
    finals = [c for c in codes if c >= 200]
    return finals[0] if finals else None


async def test_fuzzed_invites_are_answered_200_or_488_and_leave_nothing(node) -> None:
    double, provider = node
    rng, seed = fuzz_rng("sdp-invite")
    count = fuzz_count(150)
    answered = refused = 0
    for i in range(count):
        body = sdp_offer(rng)
        expected = classify(body)
        key = double.new_key()
        double.invite(key, body)
        await double.wait_for(lambda k=key: final_reply(double, k) is not None)
        code = final_reply(double, key)
        where = f"seed {seed}, input {i}: {body[:200]!r}"
        if expected is None:
            assert code == 488, where
            await double.wait_for(lambda k=key: bool(double.mi_calls("ua_session_terminate", k)))
            refused += 1
        else:
            assert code == 200, where
            check_usable(expected)
            double.ack(key)
            double.bye(key)
            answered += 1
        await double.wait_for(lambda k=key: k not in provider.sessions)
        double.requests.clear()  # keep the double's lookups short over a long run
    assert answered and refused, f"seed {seed}: {answered} answered, {refused} refused"
    assert provider.ports.in_use == frozenset()
    assert not provider.sessions
    if fuzz_long():
        assert count >= 10_000
