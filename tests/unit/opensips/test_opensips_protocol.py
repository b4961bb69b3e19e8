"""SDP, RTP/RFC 4733 packets, E_UA_SESSION parsing: the recorded OpenSIPS 3.6 data and garbage."""

from __future__ import annotations

import json
import struct

import pytest

from voice_connector.caller.opensips_double import recorded
from voice_connector.transports.opensips import rfc4733
from voice_connector.transports.opensips.events import EventError, parse_event, uri_user
from voice_connector.transports.opensips.rtp import RtpError, build_rtp, parse_rtp
from voice_connector.transports.opensips.sdp import (
    SdpError,
    build_answer,
    negotiate,
    parse_offer,
)


def datagram(params: dict) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "method": "E_UA_SESSION", "params": params}).encode()


def test_recorded_offer_parses_and_negotiates_pcmu_with_telephone_event():
    offer = parse_offer(recorded("INVITE-NEW")["body"])
    assert (offer.ip, offer.port, offer.payload_types) == ("127.0.0.1", 22366, (0, 8, 101))
    assert offer.telephone_event_pt == 101 and offer.direction == "sendrecv"
    neg = negotiate(offer, ["PCMA", "PCMU"])
    assert (neg.codec, neg.payload_type) == ("PCMU", 0)  # the offer's order wins
    answer = build_answer(neg, "203.0.113.7", 35000, 1, 0)
    assert "c=IN IP4 203.0.113.7\r\n" in answer
    assert "m=audio 35000 RTP/AVP 0 101\r\n" in answer
    assert "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n" in answer
    assert answer.endswith("a=sendrecv\r\n")


def test_config_restricts_codecs_and_static_types_need_no_rtpmap():
    offer = parse_offer("v=0\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8\r\n")
    assert negotiate(offer, ["PCMA"]).codec == "PCMA"
    assert negotiate(offer, ["PCMA"]).telephone_event_pt is None
    with pytest.raises(SdpError, match="no common codec"):
        negotiate(parse_offer("v=0\r\nc=IN IP4 1.1.1.1\r\nm=audio 4000 RTP/AVP 18\r\n"), ["PCMU"])


def test_recorded_reinvite_is_a_hold_and_the_answer_is_recvonly():
    neg = negotiate(parse_offer(recorded("INVITE-UPDATED")["body"]), ["PCMU"])
    assert neg.direction == "sendonly" and not neg.we_send
    assert build_answer(neg, "1.2.3.4", 35000, 1, 1).endswith("a=recvonly\r\n")


@pytest.mark.parametrize(
    "body", ["", "garbage", "v=0\r\nm=audio xx RTP/AVP 0\r\n", "v=0\r\nm=video 5 RTP/AVP 96\r\n"]
)
def test_unusable_sdp_raises(body):
    with pytest.raises(SdpError):
        parse_offer(body)


@pytest.mark.parametrize(
    ("c_line", "port", "why"),
    [
        ("IN IP4 999.1.1.1", 4000, "not an IP address"),
        ("IN IP6 ::1", 4000, "IPv6"),
        ("IN IP4 media.example.com", 4000, "not an IP address"),
        ("IN IP4 239.1.2.3", 4000, "not unicast"),
        ("IN IP4 255.255.255.255", 4000, "not unicast"),
        ("IN IP4 10.0.0.1", 99999, "out of range"),
    ],
)
def test_offers_we_cannot_send_to_are_refused(c_line, port, why):
    with pytest.raises(SdpError, match=why):
        parse_offer(f"v=0\r\nc={c_line}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n")


def test_sdp_size_is_bounded_before_parsing_and_hold_address_is_kept():
    body = "v=0\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
    offer = parse_offer(body)
    assert (offer.ip, offer.direction) == ("0.0.0.0", "inactive")
    with pytest.raises(SdpError, match="limit"):
        parse_offer(body + "a=x:" + "9" * 10_000 + "\r\n")


def test_rtp_round_trip_and_header_features():
    packet = build_rtp(0, 65535, 2**32 - 1, 0xDEADBEEF, True, b"\xff" * 160)
    p = parse_rtp(packet)
    assert (p.payload_type, p.seq, p.timestamp, p.ssrc, p.marker) == (
        0,
        65535,
        2**32 - 1,
        0xDEADBEEF,
        True,
    )
    # 1 CSRC, a 1-word extension and 4 bytes of padding around a 160-byte payload
    head = struct.pack("!BBHII", 0x80 | 0x20 | 0x10 | 1, 8, 1, 2, 3) + b"CSRC"
    ext = struct.pack("!HH", 0xBEDE, 1) + b"\x00" * 4
    p = parse_rtp(head + ext + b"\xd5" * 160 + b"\x00\x00\x00\x04")
    assert (p.payload_type, len(p.payload)) == (8, 160)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x80\x00", "truncated header"),
        (b"\x40" + bytes(171), "wrong version"),
        (b"\x90\x00" + bytes(10), "truncated header"),
    ],
)
def test_bad_rtp_is_rejected_with_a_reason(data, reason):
    with pytest.raises(RtpError) as exc:
        parse_rtp(data)
    assert exc.value.reason == reason


def test_rfc4733_events():
    packets = rfc4733.digit_packets("#")
    assert len(packets) == 8 and packets[0][1] and not packets[1][1]
    last = rfc4733.parse_event(packets[-1][0])
    assert last == rfc4733.DtmfEvent("#", True, 10, 800)
    assert rfc4733.parse_event(struct.pack("!BBH", 16, 0x80, 1)) is None  # flash: not a digit
    assert rfc4733.parse_event(b"\x01") is None


@pytest.mark.parametrize(
    "name", ["INVITE-NEW", "ACK-UPDATED", "BYE-TERMINATED", "CANCEL-TERMINATED", "INVITE-UPDATED"]
)
def test_recorded_events_parse(name):
    params = recorded(name)
    event = parse_event(datagram(params))
    assert (event.key, event.method, event.event_type) == (
        params["key"],
        params["method"],
        params["event_type"],
    )
    assert event.is_request and event.extra_params is None
    assert event.header("Call-ID").endswith("@127.0.0.1")


def test_event_fields_and_called_user():
    event = parse_event(datagram(recorded("INVITE-NEW")))
    assert uri_user(event.header("To")) == "ai"
    assert uri_user(event.header("From")) == "sipp"
    assert uri_user("<tel:+4930123>") == "+4930123"
    assert uri_user('"x" <sip:+15551234@pbx.example.com;user=phone>') == "+15551234"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not an E_UA_SESSION"),
        (json.dumps({"method": "E_OTHER", "params": {}}).encode(), "not an E_UA_SESSION"),
        (datagram({"event_type": "NEW", "method": "INVITE"}), "missing key"),
        (datagram({"key": "k", "method": "INVITE"}), "missing event_type"),
        (json.dumps({"method": "E_UA_SESSION", "params": 3}).encode(), "no params"),
    ],
)
def test_malformed_events_raise(data, reason):
    with pytest.raises(EventError, match=reason):
        parse_event(data)
