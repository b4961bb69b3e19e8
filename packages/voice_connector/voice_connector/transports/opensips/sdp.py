"""SDP offer/answer for one G.711 audio stream (+ RFC 4733 telephone-event).

Parsing uses aiortc's parser (it copes with a=rtcp, fmtp and CRLF); what it leaves out (static
payload types without rtpmap, session-level direction) is filled in here. The answer is written
by hand: it is a handful of lines and must carry exactly one codec plus telephone-event (OpenSIPS
CE's own answer drops telephone-event, which kills DTMF).
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass

from aiortc.sdp import SessionDescription

MAX_SDP_BYTES = 8192
"""Longest offer parsed. A phone's audio offer is a few hundred bytes; the body comes from the
caller, so its size is checked before any parsing."""
_STATIC = {0: "PCMU", 8: "PCMA"}
_DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_ANSWER_DIRECTION = {
    "sendrecv": "sendrecv",
    "sendonly": "recvonly",
    "recvonly": "sendonly",
    "inactive": "inactive",
}


class SdpError(ValueError):
    """The offer cannot be used: garbage, no audio, or no codec in common (→ 488)."""


@dataclass(frozen=True)
class AudioOffer:
    """The caller's audio stream as offered."""

    ip: str
    port: int
    payload_types: tuple[int, ...]
    codecs: dict[int, str]  # payload type → upper-case encoding name
    telephone_event_pt: int | None
    direction: str


@dataclass(frozen=True)
class Negotiated:
    """What both sides will use."""

    codec: str
    payload_type: int
    telephone_event_pt: int | None
    remote_ip: str
    remote_port: int
    direction: str  # the offer's direction, from the caller's point of view

    @property
    def we_send(self) -> bool:
        """False while the caller holds the call (sendonly/inactive from their side)."""
        return self.direction in ("sendrecv", "recvonly")


def parse_offer(body: str) -> AudioOffer:
    """The first usable audio stream of an SDP offer, or SdpError (→ 488).

    The media address must be a literal unicast IPv4 address and the port 1-65535: anything else
    (IPv6, host names, `999.1.1.1`, port 99999) cannot be sent to, so it is refused here rather
    than answered and failed on every packet. `c=0.0.0.0` (RFC 2543 hold) is kept, as inactive.
    """
    if not body or not body.strip():
        raise SdpError("no SDP body")
    if len(body) > MAX_SDP_BYTES:
        raise SdpError(f"SDP of {len(body)} characters (limit {MAX_SDP_BYTES})")
    try:
        desc = SessionDescription.parse(body)
    except Exception as exc:  # aiortc asserts on malformed lines
        raise SdpError(f"unparsable SDP ({type(exc).__name__})") from exc
    session_dir = _session_direction(body)
    for media in desc.media:
        if media.kind != "audio" or not media.port:
            continue
        if not 0 < media.port <= 65535:
            raise SdpError(f"audio port {media.port} out of range")
        ip = _media_ip(media.host or desc.host)
        if ip == "0.0.0.0":
            # RFC 3264 hold via c=0.0.0.0 still needs a valid stream; keep it as inactive.
            direction = "inactive"
        else:
            direction = media.direction or session_dir or "sendrecv"
        codecs = {c.payloadType: c.mimeType.split("/", 1)[-1].upper() for c in media.rtp.codecs}
        for pt in media.fmt:
            if isinstance(pt, int) and pt in _STATIC:
                codecs.setdefault(pt, _STATIC[pt])
        te = next((pt for pt, name in codecs.items() if name == "TELEPHONE-EVENT"), None)
        pts = tuple(pt for pt in media.fmt if isinstance(pt, int))
        return AudioOffer(ip, int(media.port), pts, codecs, te, direction)
    raise SdpError("no audio stream in SDP")


def _media_ip(host: str | None) -> str:
    """The audio stream's address if we can send RTP to it (IPv4 unicast, or 0.0.0.0 for hold)."""
    if not host:
        raise SdpError("no connection address (c=) for the audio stream")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise SdpError(f"connection address {host[:64]!r} is not an IP address") from None
    if ip.version != 4:
        raise SdpError(f"connection address {host} is IPv6 (media is IPv4 only)")
    if ip.is_unspecified:
        return "0.0.0.0"
    if ip.is_multicast or ip == ipaddress.IPv4Address("255.255.255.255"):
        raise SdpError(f"connection address {host} is not unicast")
    return str(ip)


def _session_direction(body: str) -> str | None:
    for line in body.splitlines():
        line = line.strip()
        if line.startswith("m="):
            return None
        if line.startswith("a=") and line[2:] in _DIRECTIONS:
            return line[2:]
    return None


def negotiate(offer: AudioOffer, our_codecs: list[str]) -> Negotiated:
    """Pick the first codec in the offer's order that we allow (RFC 3264: honour the offerer)."""
    allowed = {c.upper() for c in our_codecs}
    for pt in offer.payload_types:
        name = offer.codecs.get(pt)
        if name in allowed:
            return Negotiated(
                codec=name,
                payload_type=pt,
                telephone_event_pt=offer.telephone_event_pt,
                remote_ip=offer.ip,
                remote_port=offer.port,
                direction=offer.direction,
            )
    offered = [offer.codecs.get(pt, str(pt)) for pt in offer.payload_types]
    raise SdpError(f"no common codec: offered {offered}, we allow {our_codecs}")


def build_answer(neg: Negotiated, ip: str, port: int, session_id: int, version: int) -> str:
    """Our SDP answer (CRLF line ends, as OpenSIPS forwards it verbatim)."""
    pts = [neg.payload_type]
    lines = [
        "v=0",
        f"o=voice-connector {session_id} {version} IN IP4 {ip}",
        "s=voice-connector",
        f"c=IN IP4 {ip}",
        "t=0 0",
    ]
    if neg.telephone_event_pt is not None:
        pts.append(neg.telephone_event_pt)
    lines.append(f"m=audio {port} RTP/AVP {' '.join(map(str, pts))}")
    lines.append(f"a=rtpmap:{neg.payload_type} {neg.codec}/8000")
    if neg.telephone_event_pt is not None:
        lines.append(f"a=rtpmap:{neg.telephone_event_pt} telephone-event/8000")
        lines.append(f"a=fmtp:{neg.telephone_event_pt} 0-16")
    lines.append("a=ptime:20")
    lines.append(f"a={_ANSWER_DIRECTION[neg.direction]}")
    return "\r\n".join(lines) + "\r\n"


def new_session_id() -> int:
    """An o= session id (NTP-ish seconds, as RFC 4566 suggests)."""
    return int(time.time()) + 2208988800
