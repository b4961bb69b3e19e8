"""Hostile E_UA_SESSION datagrams: parsed alone, over real UDP on loopback, and into the provider.

Every datagram is either an event or an `EventError` (dropped, counted by reason); the reasons
stay a small fixed set, the provider's set of warned kinds stays bounded, and nothing escapes
as a traceback.
"""

from __future__ import annotations

import asyncio
import socket

from tests.fuzz.app_inputs import event_datagram
from tests.fuzz.sip_media_inputs import fuzz_count, fuzz_rng
from voice_connector.transports.opensips.events import (
    EventError,
    EventListener,
    UaSessionEvent,
    parse_event,
)
from voice_connector.transports.opensips.provider import MAX_LOGGED_KINDS, OpenSIPSProvider
from voice_connector_core.config import Settings

LOCAL = "127.0.0.1"
MAX_REASONS = 16


def test_every_datagram_is_an_event_or_an_event_error() -> None:
    rng, seed = fuzz_rng("events")
    reasons: set[str] = set()
    for index in range(fuzz_count(2_000)):
        data = event_datagram(rng)
        try:
            event = parse_event(data)
        except EventError as exc:
            reasons.add(str(exc))
            continue
        except Exception as exc:  # the point of the test
            raise AssertionError(f"seed {seed}, input {index}: {exc!r} for {data[:80]!r}") from exc
        assert isinstance(event, UaSessionEvent) and event.key and len(event.method) <= 32
        assert isinstance(event.status, int)
    assert len(reasons) <= MAX_REASONS, sorted(reasons)


async def test_datagrams_over_udp_leave_the_provider_bounded() -> None:
    """Through the real listener socket into the provider's event handling (no call accepted)."""
    rng, seed = fuzz_rng("events-udp")
    provider = OpenSIPSProvider(Settings())
    handled: list[UaSessionEvent] = []
    failures: list[BaseException] = []

    def on_event(event: UaSessionEvent) -> None:
        handled.append(event)
        if event.event_type == "NEW" and event.method == "INVITE":
            return  # would answer 503 over MI: not this test's business
        try:
            provider._on_event(event)
        except Exception as exc:  # collected and asserted below
            failures.append(exc)

    listener = EventListener(on_event)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((LOCAL, 0))
        port = probe.getsockname()[1]
    await listener.open(LOCAL, port)
    count = fuzz_count(1_000)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for index in range(count):
                data = event_datagram(rng)[:65_000]
                sender.sendto(data, (LOCAL, port))
                if index % 50 == 0:
                    await asyncio.sleep(0.005)  # let the loop drain the socket
        await asyncio.sleep(0.3)
    finally:
        listener.close()
    received = len(handled) + sum(listener.rejected.values())
    assert received >= count * 0.9, f"seed {seed}: {received} of {count} datagrams seen"
    assert not failures, f"seed {seed}: {failures[:3]}"
    assert len(listener.rejected) <= MAX_REASONS, sorted(listener.rejected)
    assert len(provider._unknown_logged) <= MAX_LOGGED_KINDS
