"""Playback bookkeeping (mark echoes vs `clear`) and action markers in streamed text."""

from __future__ import annotations

import pytest

from voice_connector.pipeline.call_control import HANGUP, TRANSFER, MarkerFilter
from voice_connector.transports.twilio.marks import MarkLedger


async def test_echoed_marks_are_heard_cleared_ones_are_not() -> None:
    ledger = MarkLedger("MZ1")
    first, message = ledger.issue("Hello.")
    second, _ = ledger.issue("How are you?")
    assert message == {"event": "mark", "streamSid": "MZ1", "mark": {"name": first}}
    ledger.echoed(first)
    assert ledger.cleared() == [second]
    ledger.echoed(second)  # Twilio echoes marks still pending when `clear` arrives
    assert ledger.heard(first) and not ledger.heard(second)
    assert await ledger.wait_played(0.1)


async def test_wait_played_times_out_while_a_mark_is_pending() -> None:
    ledger = MarkLedger("MZ1")
    name, _ = ledger.issue("x")
    assert not await ledger.wait_played(0.01)
    ledger.echoed(name)
    assert await ledger.wait_played(0.01)


def test_unknown_echo_is_ignored() -> None:
    ledger = MarkLedger("MZ1")
    ledger.echoed("never-sent")
    assert ledger.played == []


def feed_all(chunks: list[str]) -> tuple[str, list[str]]:
    markers = MarkerFilter()
    text, actions = "", []
    for chunk in chunks:
        clean, found = markers.feed(chunk)
        text += clean
        actions += found
    return text + markers.flush(), actions


@pytest.mark.parametrize(
    ("chunks", "text", "actions"),
    [
        (["Goodbye! [hangup]"], "Goodbye! ", [HANGUP]),
        (["Goodbye! [", "hang", "up]"], "Goodbye! ", [HANGUP]),
        (["Bye [HANG UP]"], "Bye ", [HANGUP]),
        (["One moment. [trans", "fer]"], "One moment. ", [TRANSFER]),
        (["Press [1] now"], "Press [1] now", []),
        (["An open [bracket"], "An open [bracket", []),
        (["Ends with [han"], "Ends with [han", []),
        (["no markers here"], "no markers here", []),
    ],
)
def test_markers_are_found_across_chunks_and_stripped(chunks, text, actions) -> None:  # type: ignore[no-untyped-def]
    assert feed_all(chunks) == (text, actions)
