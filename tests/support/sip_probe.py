"""One SIP request over UDP from a chosen loopback source, for checks where SIPp's scenario
machinery is more than the point needs (an OPTIONS ping, the first reply to an INVITE)."""

from __future__ import annotations

import socket
import uuid


def request(
    method: str,
    target: tuple[str, int],
    source_ip: str = "127.0.0.1",
    body: str = "",
    user: str = "ai",
) -> tuple[str, socket.socket]:
    """Build `method` from a fresh socket on `source_ip`; returns (message, bound socket)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((source_ip, 0))
    port = sock.getsockname()[1]
    host, dport = target
    tag = uuid.uuid4().hex[:8]
    lines = [
        f"{method} sip:{user}@{host}:{dport} SIP/2.0",
        f"Via: SIP/2.0/UDP {source_ip}:{port};branch=z9hG4bK{uuid.uuid4().hex[:12]};rport",
        f"From: <sip:probe@{source_ip}:{port}>;tag={tag}",
        f"To: <sip:{user}@{host}:{dport}>",
        f"Call-ID: {uuid.uuid4().hex}@{source_ip}",
        f"CSeq: 1 {method}",
        f"Contact: <sip:probe@{source_ip}:{port}>",
        "Max-Forwards: 70",
    ]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body.encode())}")
    return "\r\n".join(lines) + "\r\n\r\n" + body, sock


def final_reply(
    method: str,
    target: tuple[str, int],
    source_ip: str = "127.0.0.1",
    body: str = "",
    timeout: float = 5.0,
    on_provisional=None,
) -> str:
    """Send `method` and return the first final (>= 200) reply's text (provisional skipped)."""
    message, sock = request(method, target, source_ip, body)
    with sock:
        sock.settimeout(timeout)
        sock.sendto(message.encode(), target)
        while True:
            reply = sock.recv(65535).decode(errors="replace")
            if int(reply.split(" ", 2)[1]) >= 200:
                return reply
            if on_provisional is not None:
                on_provisional(reply)


def status(reply: str) -> int:
    return int(reply.split(" ", 2)[1])


def header(reply: str, name: str) -> str:
    """The first value of header `name` (case-insensitive), '' if absent."""
    for line in reply.split("\r\n\r\n", 1)[0].split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return ""
