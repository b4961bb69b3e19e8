"""Event datagrams from a hostile peer: refused with a reason, never a traceback."""

from __future__ import annotations

import json

import pytest

from voice_connector.transports.opensips.events import EventError, parse_event


def datagram(params: dict) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "method": "E_UA_SESSION", "params": params}).encode()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"[" * 60_000, "too-deep"),
        (
            datagram({"key": "k", "method": "INVITE", "event_type": "NEW"})[:-2]
            + b","
            + b"{" * 20_000,
            "too-deep",
        ),
        (
            datagram({"key": "k", "method": "INVITE", "event_type": "NEW", "status": 1}).replace(
                b'"status": 1', b'"status": 1e999'
            ),
            "non-finite",
        ),
        (datagram({"key": "k", "method": "X" * 5000, "event_type": "NEW"}), "bad event_type"),
        (datagram({"key": "k" * 5000, "method": "INVITE", "event_type": "NEW"}), "missing key"),
        (b" " * 70_000, "too-large"),
    ],
    ids=["deep-array", "deep-object-in-params", "status-1e999", "long-method", "long-key", "large"],
)
def test_hostile_events_raise_event_error_not_a_traceback(data, reason):
    """Deep nesting was a RecursionError and `status: 1e999` an OverflowError, both uncaught."""
    with pytest.raises(EventError, match=reason):
        parse_event(data)


def test_invented_method_names_do_not_grow_the_warned_set():
    from voice_connector.transports.opensips.events import UaSessionEvent
    from voice_connector.transports.opensips.provider import MAX_LOGGED_KINDS, OpenSIPSProvider
    from voice_connector_core.config import Settings

    provider = OpenSIPSProvider(Settings())
    for index in range(1000):
        method = "M" + "".join(chr(65 + int(d)) for d in str(index))
        provider._on_event(UaSessionEvent(key=f"k{index}", event_type="UPDATED", method=method))
    assert len(provider._unknown_logged) == MAX_LOGGED_KINDS
