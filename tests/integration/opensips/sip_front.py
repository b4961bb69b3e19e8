"""The SIP side of the OpenSIPS 3.6 double, for tests with a real SIP/RTP peer (SIPp).

Like OpenSIPS with `ua_session_server_init(..., "adrbh")`: an INVITE becomes an INVITE/NEW event
(the key doubles as our To-tag), the connector's `ua_session_reply` becomes the SIP reply, ACK and
BYE become ACK/UPDATED and BYE/TERMINATED events, and OpenSIPS answers the BYE itself.
"""

from __future__ import annotations

import asyncio

from voice_connector.caller.opensips_double import OpenSIPSDouble


def _headers(msg: str) -> tuple[str, dict[str, str], str]:
    head, _, body = msg.partition("\r\n\r\n")
    lines = head.split("\r\n")
    fields: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields.setdefault(name.strip().lower(), value.strip())
    return lines[0], fields, body


class SipFront(asyncio.DatagramProtocol):
    """Minimal UAS on loopback feeding the double."""

    def __init__(self, double: OpenSIPSDouble) -> None:
        self.double = double
        self.port = 0
        self.keys: dict[str, str] = {}  # Call-ID → key
        self.transport: asyncio.DatagramTransport | None = None

    @classmethod
    async def open(cls, double: OpenSIPSDouble) -> SipFront:
        front = cls(double)
        await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: front, local_addr=("127.0.0.1", 0)
        )
        return front

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.port = transport.get_extra_info("sockname")[1]

    def datagram_received(self, data: bytes, addr) -> None:
        msg = data.decode(errors="replace")
        start, fields, body = _headers(msg)
        method = start.split(" ", 1)[0]
        call_id = fields.get("call-id", "")
        head = msg.partition("\r\n\r\n")[0].split("\r\n", 1)[1] + "\r\n"
        if method == "INVITE" and call_id not in self.keys:
            key = self.double.new_key()
            self.keys[call_id] = key
            from voice_connector.caller.opensips_double import DoubleSession

            self.double.sessions[key] = DoubleSession(key)
            self.double.send("INVITE-NEW", {"key": key, "body": body, "headers": head})
            asyncio.get_running_loop().create_task(self._answer(key, msg, addr))
        elif method == "ACK":
            key = self.keys.get(call_id, "")
            session = self.double.sessions.get(key)
            if session and session.state == "ANSWERED":
                session.state = "CONFIRMED"
            self.double.send("ACK-UPDATED", {"key": key, "headers": head})
        elif method == "BYE":
            key = self.keys.get(call_id, "")
            self._reply(msg, addr, 200, "OK", key)
            self.double.sessions.pop(key, None)
            self.double.send("BYE-TERMINATED", {"key": key, "headers": head})

    async def _answer(self, key: str, invite: str, addr) -> None:
        await self.double.wait_for(lambda: self.double.mi_calls("ua_session_reply", key), 5)
        reply = self.double.mi_calls("ua_session_reply", key)[-1]
        self._reply(invite, addr, int(reply["code"]), reply["reason"], key, reply.get("body", ""))

    def _reply(self, request: str, addr, code: int, reason: str, key: str, body: str = "") -> None:
        lines = [f"SIP/2.0 {code} {reason}"]
        for line in request.partition("\r\n\r\n")[0].split("\r\n")[1:]:
            name = line.partition(":")[0].strip().lower()
            if name in ("via", "from", "call-id", "cseq"):
                lines.append(line)
            elif name == "to":
                lines.append(line if ";tag=" in line else f"{line};tag={key}")
        lines.append(f"Contact: <sip:ai@127.0.0.1:{self.port}>")
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body.encode())}")
        assert self.transport is not None
        self.transport.sendto(("\r\n".join(lines) + "\r\n\r\n" + body).encode(), addr)
