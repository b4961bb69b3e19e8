"""A double that stands for OpenSIPS 3.6 (b2b_entities + event_datagram + mi_datagram).

Used by the tests, the SIP load test (`voice-connector load --transport sip`) and benchmarks:
OpenSIPS itself cannot run everywhere the connector is developed.

It speaks the same wire protocol as the real thing, from the datagrams recorded off OpenSIPS 3.6.8
(`recorded/`): E_UA_SESSION notifications are the recorded JSON with the key, SDP body and
headers adapted per test, sent as one UDP datagram to every subscriber; MI is JSON-RPC over UDP
with the recorded reply shapes ({"result": "OK"}, subscribers_list's Event/Subscribers nesting,
{"error": {"code", "message"}}). It reproduces the quirks a connector must survive:

- CANCEL is answered by OpenSIPS but no 487 goes to the INVITE: the session stays until the
  connector replies 487 and terminates it;
- `ua_session_terminate` on a NEW session nobody answered fails with 500;
- subscriptions live in memory only: `restart()` forgets them (and the sessions);
- events are sent only to current subscribers.
"""

from __future__ import annotations

import asyncio
import copy
import json
import pathlib
import time
from dataclasses import dataclass, field
from typing import Any

RECORDED = pathlib.Path(__file__).with_name("recorded")


def recorded(name: str) -> dict[str, Any]:
    """One recorded E_UA_SESSION params object (e.g. 'INVITE-NEW')."""
    return json.loads((RECORDED / f"{name}.json").read_text())


def offer_sdp(
    port: int,
    payload_types: tuple[int, ...] = (0, 8, 101),
    direction: str = "sendrecv",
    ip: str = "127.0.0.1",
) -> str:
    """The recorded SIPp offer with our peer's port, codec list and direction."""
    names = {
        0: "PCMU/8000",
        8: "PCMA/8000",
        101: "telephone-event/8000",
        18: "G729/8000",
        9: "G722/8000",
    }
    lines = [
        "v=0",
        "o=sipp 53655765 2353687637 IN IP4 127.0.0.1",
        "s=-",
        f"c=IN IP4 {ip}",
        "t=0 0",
        f"m=audio {port} RTP/AVP {' '.join(map(str, payload_types))}",
    ]
    lines += [f"a=rtpmap:{pt} {names[pt]}" for pt in payload_types if pt in names]
    if 101 in payload_types:
        lines.append("a=fmtp:101 0-16")
    lines += [f"a=rtcp:{port + 1}", "a=ptime:20", f"a={direction}"]
    return "\r\n".join(lines) + "\r\n"


@dataclass
class DoubleSession:
    """What OpenSIPS' b2b_entities would hold for one UAS session."""

    key: str
    state: str = "NEW"  # NEW → ANSWERED → CONFIRMED; REJECTED; CANCELLED
    replies: list[int] = field(default_factory=list)
    headers: str = ""


class OpenSIPSDouble:
    """MI server + event sender on loopback."""

    def __init__(self, ip: str = "127.0.0.1") -> None:
        self.ip = ip
        self.mi_port = 0
        self.requests: list[dict[str, Any]] = []  # every MI request, in order
        self.sessions: dict[str, DoubleSession] = {}
        self.subscribers: dict[str, tuple[int, float]] = {}  # socket → (expire, subscribed at)
        self.byes_sent: list[str] = []
        self.down = False  # while True, MI requests get no answer (OpenSIPS not running)
        self.refer_reply: int | None = 202  # reply event sent after a REFER, None for none
        self._mi_transport: asyncio.DatagramTransport | None = None
        self._event_transport: asyncio.DatagramTransport | None = None
        self._counter = 0
        self.changed = asyncio.Event()

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self, mi_port: int = 0) -> OpenSIPSDouble:
        """Listen for MI on `mi_port` (0: any free port; see `self.mi_port`)."""
        loop = asyncio.get_running_loop()
        double = self

        class _MI(asyncio.DatagramProtocol):
            def connection_made(self, transport):
                self.transport = transport

            def datagram_received(self, data, addr):
                reply = double._handle_mi(data)
                if reply is not None:
                    self.transport.sendto(json.dumps(reply).encode(), addr)

        self._mi_transport, _ = await loop.create_datagram_endpoint(
            _MI, local_addr=(self.ip, mi_port)
        )
        self.mi_port = self._mi_transport.get_extra_info("sockname")[1]
        self._event_transport, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=(self.ip, 0)
        )
        return self

    def close(self) -> None:
        for transport in (self._mi_transport, self._event_transport):
            if transport is not None:
                transport.close()

    def restart(self) -> None:
        """OpenSIPS restarted: subscriptions and sessions are gone."""
        self.subscribers.clear()
        self.sessions.clear()

    # -- MI -------------------------------------------------------------------------------

    def _handle_mi(self, data: bytes) -> dict[str, Any] | None:
        if self.down:
            return None
        request = json.loads(data)
        self.requests.append(request)
        self.changed.set()
        method, params, rid = request.get("method"), request.get("params"), request.get("id")
        try:
            result = getattr(self, f"_mi_{method}", self._mi_unknown)(params)
        except _MIFailure as exc:
            return {
                "jsonrpc": "2.0",
                "error": {"code": exc.code, "message": exc.message},
                "id": rid,
            }
        return {"jsonrpc": "2.0", "result": result, "id": rid}

    def _session(self, params: dict[str, Any]) -> DoubleSession:
        session = self.sessions.get(params.get("key", ""))
        if session is None:
            raise _MIFailure(500, "Failed to find session")  # what b2b_entities says
        return session

    def _mi_ua_session_reply(self, params: dict[str, Any]) -> str:
        session = self._session(params)
        code = int(params["code"])
        if params.get("method") == "INVITE" and session.state in ("NEW", "CANCELLED"):
            session.replies.append(code)  # the initial INVITE's answer
            if code >= 300:
                session.state = "REJECTED"
            elif code >= 200:
                session.state = "ANSWERED"
            return "OK"
        if session.state in ("ANSWERED", "CONFIRMED"):
            session.replies.append(code)  # an in-dialog request's answer (re-INVITE, NOTIFY)
            return "OK"
        raise _MIFailure(500, "Failed to send reply")

    def _mi_ua_session_terminate(self, params: dict[str, Any]) -> str:
        session = self._session(params)
        if session.state == "NEW":
            raise _MIFailure(500, "Failed to terminate session")  # unanswered INVITE quirk
        if session.state in ("ANSWERED", "CONFIRMED"):
            self.byes_sent.append(session.key)
        del self.sessions[session.key]
        return "OK"

    def _mi_ua_session_update(self, params: dict[str, Any]) -> str:
        session = self._session(params)
        if self.refer_reply is not None and params.get("method") == "REFER":
            asyncio.get_running_loop().call_later(
                0.05,
                self.send,
                "ACK-UPDATED",
                {
                    "key": session.key,
                    "method": "REFER",
                    "status": self.refer_reply,
                    "reason": "Accepted" if self.refer_reply < 300 else "Refused",
                    # a reply to our in-dialog request: ANSWERED (2xx) or REJECTED, as 3.6.8 says
                    "event_type": "ANSWERED" if self.refer_reply < 300 else "REJECTED",
                    "headers": "",
                },
            )
        return "OK"

    def _mi_event_subscribe(self, params: list[Any]) -> str:
        name, sock, expire = params[0], params[1], int(params[2]) if len(params) > 2 else 3600
        if name != "E_UA_SESSION":
            raise _MIFailure(500, "unknown event")
        if expire == 0:
            self.subscribers.pop(sock, None)
        else:
            self.subscribers[sock] = (expire, time.monotonic())
        return "OK"

    def _mi_subscribers_list(self, params: dict[str, Any]) -> dict[str, Any]:
        now = time.monotonic()
        subs = [
            {"socket": s, "expire": e, "ttl": int(e - (now - t))}
            for s, (e, t) in self.subscribers.items()
        ]
        return {"Event": {"name": "E_UA_SESSION", "id": 6, "Subscribers": subs}}

    def _mi_b2be_list(self, params: Any) -> list[dict[str, Any]]:
        """One flat entity per session, as 3.6.8 lists it: the key is the entity's To-tag."""
        return [
            {
                "dlg": i,
                "logic_key": "",
                "mod_name": "b2b_entities",
                "state": {"NEW": 1, "ANSWERED": 4}.get(s.state, 5),
                "last_invite_cseq": 1,
                "last_method": 0,
                "db_flag": 2,
                "ruri": "sip:ai@127.0.0.1:5060",
                "callid": f"{i}-lab@127.0.0.1",
                "from": "",
                "from_uri": "sip:sipp@127.0.0.1:5061",
                "from_tag": f"{i}SIPpTag001",
                "to": "",
                "to_uri": "sip:ai@127.0.0.1:5060",
                "to_tag": s.key,
                "cseq": {"caller": 1, "callee": 1},
                "contact": {"caller": "sip:sipp@127.0.0.1:5061", "callee": "sip:127.0.0.1:5060"},
                "send_sock": "127.0.0.1",
                "tm_tran": "uas",
            }
            for i, s in enumerate(self.sessions.values())
        ]

    def _mi_unknown(self, params: Any) -> Any:
        raise _MIFailure(-32601, "Method not found")

    def mi_calls(self, method: str, key: str | None = None) -> list[dict[str, Any]]:
        """The params of every MI request of `method` (for `key`)."""
        return [
            r["params"]
            for r in self.requests
            if r["method"] == method
            and (key is None or (isinstance(r["params"], dict) and r["params"].get("key") == key))
        ]

    async def wait_for(self, predicate, limit: float = 5.0) -> None:
        """Wait until `predicate()` holds (checked on every MI request and every 20 ms)."""
        deadline = asyncio.get_running_loop().time() + limit
        while not predicate():
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(
                    "condition not reached; MI requests: " + json.dumps(self.requests[-10:])
                )
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), 0.02)
            except TimeoutError:
                pass

    # -- events ---------------------------------------------------------------------------

    def new_key(self) -> str:
        self._counter += 1
        return f"B2B.{self._counter}.{400 + self._counter}.1795486390.{1905228368 + self._counter}"

    def send(self, template: str, overrides: dict[str, Any]) -> None:
        """Send a recorded event, adapted, to every subscriber."""
        params = copy.deepcopy(recorded(template))
        params.update(overrides)
        self.send_raw(
            json.dumps({"jsonrpc": "2.0", "method": "E_UA_SESSION", "params": params}).encode()
        )

    def send_raw(self, datagram: bytes) -> None:
        assert self._event_transport is not None
        for sock in list(self.subscribers):
            _, ip, port = sock.split(":")
            self._event_transport.sendto(datagram, (ip, int(port)))

    def _headers(self, template: str, key: str, to_tag: bool = True, user: str = "ai") -> str:
        headers = recorded(template)["headers"]
        headers = headers.replace("sip:ai@", f"sip:{user}@")
        if ";tag=B2B" in headers:
            start = headers.index(";tag=B2B")
            end = headers.index("\r\n", start)
            headers = headers[:start] + (f";tag={key}" if to_tag else "") + headers[end:]
        return headers.replace("Call-ID: 1-29877@", f"Call-ID: {key}@")

    def invite(
        self, key: str, body: str, user: str = "ai", extra_params: str | None = None
    ) -> None:
        """INVITE/NEW (the recorded one, with this key and SDP)."""
        self.sessions[key] = DoubleSession(key)
        headers = self._headers("INVITE-NEW", key, user=user)
        self.send(
            "INVITE-NEW",
            {"key": key, "body": body, "headers": headers, "extra_params": extra_params},
        )

    def ack(self, key: str) -> None:
        session = self.sessions.get(key)
        if session and session.state == "ANSWERED":
            session.state = "CONFIRMED"
        self.send("ACK-UPDATED", {"key": key, "headers": self._headers("ACK-UPDATED", key)})

    def bye(self, key: str) -> None:
        """Caller BYE: OpenSIPS answers it itself and deletes the session."""
        self.sessions.pop(key, None)
        self.send("BYE-TERMINATED", {"key": key, "headers": self._headers("BYE-TERMINATED", key)})

    def cancel(self, key: str) -> None:
        """Caller CANCEL: OpenSIPS answers the CANCEL, sends no 487; the session stays."""
        if key in self.sessions:
            self.sessions[key].state = "CANCELLED"
        # the recorded CANCEL carries no To-tag: the connector must match by key
        self.send(
            "CANCEL-TERMINATED", {"key": key, "headers": recorded("CANCEL-TERMINATED")["headers"]}
        )

    def reinvite(self, key: str, body: str) -> None:
        """In-dialog INVITE/UPDATED (hold or resume)."""
        self.send(
            "INVITE-UPDATED",
            {"key": key, "body": body, "headers": self._headers("INVITE-UPDATED", key)},
        )


class _MIFailure(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message
