"""The RTP stream's outbound packets driven tick by tick."""

from __future__ import annotations

import struct

from voice_connector.audio.g711 import G711Codec
from voice_connector.transports.opensips.clock import PacingClock
from voice_connector.transports.opensips.latch import LatchPolicy
from voice_connector.transports.opensips.rtp import RtpStream, build_rtp


class FakeSocket:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def sendto(self, data: bytes, addr) -> None:
        self.sent.append(data)


def _headers(packets):
    return [struct.unpack_from("!BBHII", p) for p in packets]


async def test_outbound_timeline_marker_and_barge_in():
    sock = FakeSocket()
    stream = RtpStream(
        "call-1",
        G711Codec("PCMU"),
        ("127.0.0.1", 9),
        clock=PacingClock(),
        on_audio=lambda pcm: None,
        on_dtmf=lambda d: None,
        sock=sock,
        telephone_event_pt=101,
    )
    stream.connection_made(None)  # type: ignore[arg-type]
    stream.on_tick(0.0)  # silence fill, first packet: marker
    await stream.write(b"\x10\x00" * 320 * 2)  # 40 ms of bot audio
    stream.on_tick(0.0)
    stream.on_tick(0.0)
    stream.on_tick(0.0)  # back to silence
    hdrs = _headers(sock.sent)
    markers = [h[1] >> 7 for h in hdrs]
    assert markers == [1, 1, 0, 0]  # stream start, talkspurt start
    assert [h[2] - hdrs[0][2] for h in hdrs] == [0, 1, 2, 3]
    assert [h[3] - hdrs[0][3] for h in hdrs] == [0, 160, 320, 480]
    assert len({h[4] for h in hdrs}) == 1
    assert sock.sent[-1][12:] == b"\xff" * 160

    await stream.write(b"\x10\x00" * 320 * 3)
    stream.clear()  # barge-in: queued audio is gone at once
    stream.on_tick(0.0)
    assert sock.sent[-1][12:] == b"\xff" * 160
    assert stream.stats.dropped_outbound == 3

    stream.on_skip(2)  # after a stall: timestamps jump, no burst
    stream.on_tick(0.0)
    assert _headers(sock.sent)[-1][3] - _headers(sock.sent)[-2][3] == 480
    assert _headers(sock.sent)[-1][2] - _headers(sock.sent)[-2][2] == 1

    stream.send_dtmf("7")  # RFC 4733 out: 8 packets sharing one timestamp
    for _ in range(8):
        stream.on_tick(0.0)
    dtmf = [h for h in _headers(sock.sent[-8:])]
    assert all(h[1] & 0x7F == 101 for h in dtmf) and len({h[3] for h in dtmf}) == 1


class RefusingSocket(FakeSocket):
    """sendto fails as it does for an address no socket can reach (port 99999)."""

    def sendto(self, data: bytes, addr) -> None:
        self.sent.append(data)
        raise OverflowError("getsockaddrarg: port must be 0-65535.")


def test_a_destination_that_can_never_work_is_tried_once_not_every_tick():
    sock = RefusingSocket()
    stream = RtpStream(
        "call-2",
        G711Codec("PCMU"),
        ("127.0.0.1", 99999),
        clock=PacingClock(),
        on_audio=lambda pcm: None,
        on_dtmf=lambda d: None,
        sock=sock,
    )
    for _ in range(50):  # a second of ticks: no exception reaches the clock thread
        stream.on_tick(0.0)
    assert len(sock.sent) == 1
    assert stream.stats.send_errors == 1 and stream.stats.packets_sent == 0


def hearing_stream(
    call_id: str, caller: tuple[str, int], heard: list[bytes], sock: object = None
) -> RtpStream:
    """A PCMU stream from `caller` (its SDP address) whose 16 kHz audio goes to `heard`."""
    return RtpStream(
        call_id,
        G711Codec("PCMU"),
        caller,
        clock=PacingClock(),
        on_audio=heard.append,
        on_dtmf=lambda d: None,
        sock=sock or FakeSocket(),  # type: ignore[arg-type]
    )


def test_strangers_flooding_before_the_first_latch_cannot_keep_the_caller_out():
    """Strangers share one budget; the SDP address spends the caller's own."""
    caller, stranger = ("127.0.0.1", 4000), ("127.0.0.1", 5000)
    heard: list[bytes] = []
    stream = hearing_stream("call-3", caller, heard)
    for i in range(1000):  # far more than the 200 packets/s budget, in a few milliseconds
        stream.datagram_received(build_rtp(0, i, i * 160, 0xBAD, False, bytes(160)), stranger)
        if i >= 200 and i % 50 == 0:  # the caller starts once the strangers' budget is spent
            seq = i // 50
            stream.datagram_received(build_rtp(0, seq, seq * 160, 7, False, bytes(160)), caller)
    assert stream.source == caller
    assert stream.stats.packets_received == 16 and len(heard) == 16
    assert stream.stats.packets_rejected["flood from other sources"] > 800


def test_hold_by_null_address_keeps_the_nat_source_and_a_real_move_drops_it():
    announced, nat = ("10.0.0.5", 4000), ("127.0.0.1", 6000)
    stream = RtpStream(
        "call-4",
        G711Codec("PCMU"),
        announced,
        clock=PacingClock(),
        on_audio=lambda pcm: None,
        on_dtmf=lambda d: None,
        sock=FakeSocket(),
        latch=LatchPolicy(packets=3, silence=0.0),
    )
    for seq in range(3):
        stream.datagram_received(build_rtp(0, seq, seq * 160, 9, False, bytes(160)), nat)
    assert stream.source == nat
    stream.update_remote(("0.0.0.0", 4000))  # hold
    stream.update_remote(announced)  # resume
    assert stream.source == nat
    stream.update_remote(("10.0.0.6", 4002))  # the caller really moved
    assert stream.source is None
