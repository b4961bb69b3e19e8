"""The latching rule, decision by decision (the integration tests drive it over real UDP)."""

from __future__ import annotations

from voice_connector.transports.opensips.latch import Latch, LatchPolicy

SDP, NAT, OTHER = ("10.0.0.5", 4000), ("198.51.100.7", 31000), ("203.0.113.9", 5000)
POLICY = LatchPolicy(packets=3, silence=0.5)


def offer_stream(latch: Latch, addr, ssrc: int, seqs, now: float) -> list[bool]:
    return [latch.offer(addr, ssrc, seq, now) for seq in seqs]


def test_the_sdp_address_latches_at_its_first_packet():
    latch = Latch(SDP, POLICY, now=0.0)
    assert latch.offer(SDP, 1, 100, now=0.01)
    assert latch.source == SDP


def test_another_address_needs_a_sustained_stream_and_the_sdp_address_silent():
    latch = Latch(SDP, POLICY, now=0.0)
    assert offer_stream(latch, NAT, 7, [10, 11, 12, 13], now=0.2) == [False] * 4  # too early
    assert latch.offer(NAT, 7, 14, now=0.6)  # 0.5 s since the port opened, 5 in sequence
    assert latch.source == NAT


def test_a_broken_sequence_or_a_new_ssrc_starts_the_count_again():
    latch = Latch(SDP, POLICY, now=-10.0)
    assert offer_stream(latch, NAT, 7, [10, 11, 500], now=0.0) == [False] * 3  # a jump
    assert offer_stream(latch, NAT, 8, [501, 502], now=0.0) == [False] * 2  # a new SSRC
    assert latch.offer(NAT, 8, 505, now=0.0)  # a small gap (loss, reordering) still counts


def test_relatching_needs_the_current_source_silent_except_for_the_sdp_address():
    latch = Latch(SDP, POLICY, now=-10.0)
    assert offer_stream(latch, NAT, 7, [1, 2, 3], now=0.0)[-1]
    latch.last_heard = 1.0  # the NAT source is talking
    assert offer_stream(latch, OTHER, 9, [1, 2, 3, 4], now=1.2) == [False] * 4
    assert latch.offer(OTHER, 9, 5, now=1.6)  # silent 0.6 s: the new source takes it
    latch.last_heard = 2.0
    assert offer_stream(latch, SDP, 1, [1, 2, 3], now=2.01) == [False, False, True]
    assert latch.source == SDP


def test_without_latching_only_the_sdp_address_is_accepted():
    latch = Latch(SDP, LatchPolicy(enabled=False, packets=1, silence=0.0), now=-10.0)
    assert offer_stream(latch, NAT, 7, range(20), now=0.0) == [False] * 20
    assert latch.offer(SDP, 1, 1, now=0.0) and latch.source == SDP


def test_a_moved_sdp_address_is_latched_afresh():
    latch = Latch(SDP, POLICY, now=-10.0)
    assert latch.offer(SDP, 1, 1, now=0.0)
    latch.moved(OTHER, now=1.0)
    assert latch.source is None
    assert latch.offer(OTHER, 2, 1, now=1.01)
