"""What the connector and its OpenSIPS say to each other, recorded on the wire, so a scenario
run against the OpenSIPS double and against the real OpenSIPS can be held to one expected trace.

`WireTap` sits between the connector and OpenSIPS' MI socket (a transparent UDP relay: the
connector's `mi_port` is the tap's) and subscribes its own socket to `E_UA_SESSION` (OpenSIPS
sends every event to every subscriber, so it sees exactly what the connector sees). It works the
same in front of either peer; only how it subscribes differs (`subscribe`).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

SESSION_COMMANDS = ("ua_session_reply", "ua_session_terminate", "ua_session_update", "b2be_list")


class _Relay(asyncio.DatagramProtocol):
    """Requests from the connector go upstream from a socket of their own; replies come back."""

    def __init__(self, tap: WireTap) -> None:
        self.tap = tap
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        asyncio.get_running_loop().create_task(self.tap._forward(data, addr))


class WireTap:
    def __init__(self, upstream_mi_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_mi_port)
        self.port = 0
        self.event_port = 0
        self.mi: list[tuple[dict[str, Any], dict[str, Any] | None]] = []  # (request, reply)
        self.events: list[dict[str, Any]] = []
        self._relay: asyncio.DatagramTransport | None = None
        self._events: asyncio.DatagramTransport | None = None

    async def start(self) -> WireTap:
        loop = asyncio.get_running_loop()
        self._relay, _ = await loop.create_datagram_endpoint(
            lambda: _Relay(self), local_addr=("127.0.0.1", 0)
        )
        self.port = self._relay.get_extra_info("sockname")[1]
        tap = self

        class _Events(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr) -> None:
                tap.events.append(json.loads(data)["params"])

        self._events, _ = await loop.create_datagram_endpoint(_Events, local_addr=("127.0.0.1", 0))
        self.event_port = self._events.get_extra_info("sockname")[1]
        return self

    @property
    def event_socket(self) -> str:
        return f"udp:127.0.0.1:{self.event_port}"

    async def subscribe_real(self) -> None:
        """Subscribe through OpenSIPS' own MI (what the connector does)."""
        request = ["E_UA_SESSION", self.event_socket, 3600]
        reply = await self._exchange(
            json.dumps({"jsonrpc": "2.0", "method": "event_subscribe", "params": request, "id": 1})
        )
        assert reply.get("result") == "OK", reply

    def subscribe_double(self, double) -> None:
        double.subscribers[self.event_socket] = (3600, time.monotonic())

    async def command(self, method: str, params: Any = None) -> Any:
        """An MI command of the test's own, through the tap (recorded like the connector's)."""
        request: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": 1}
        if params is not None:
            request["params"] = params
        reply = await self._exchange(json.dumps(request))
        self.mi.append((request, reply))
        return reply["result"]

    async def _exchange(self, request: str) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes] = loop.create_future()

        class _Once(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr) -> None:
                if not future.done():
                    future.set_result(data)

        transport, _ = await loop.create_datagram_endpoint(
            _Once, remote_addr=self.upstream, local_addr=("127.0.0.1", 0)
        )
        try:
            transport.sendto(request.encode())
            return json.loads(await asyncio.wait_for(future, 2.0))
        finally:
            transport.close()

    async def _forward(self, data: bytes, addr) -> None:
        request = json.loads(data)
        entry: tuple[dict[str, Any], dict[str, Any] | None] = (request, None)
        index = len(self.mi)
        self.mi.append(entry)
        try:
            reply = await self._exchange(data.decode())
        except TimeoutError:
            self.mi[index] = (request, {"timeout": True})  # the connector times out as it would
            return
        self.mi[index] = (request, reply)
        assert self._relay is not None
        self._relay.sendto(json.dumps(reply).encode(), addr)

    def close(self) -> None:
        for transport in (self._relay, self._events):
            if transport is not None:
                transport.close()

    # -- the trace ------------------------------------------------------------------------

    def keys(self) -> list[str]:
        """Session keys in the order their INVITE/NEW arrived."""
        return [e["key"] for e in self.events if e["event_type"] == "NEW"]

    def event_trace(self, key: str) -> list[str]:
        """`METHOD/EVENT_TYPE[/status]` of every event of `key` (status only on replies)."""
        return [
            "/".join([e["method"], e["event_type"]] + ([str(e["status"])] if e["status"] else []))
            for e in self.events
            if e["key"] == key
        ]

    def mi_trace(self, key: str | None = None) -> list[str]:
        """`command[ code|method]=outcome` for every answered session command (about `key`);
        outcome `none`: OpenSIPS never answered."""
        out = []
        for request, reply in self.mi:
            method, params = request["method"], request.get("params")
            if method not in SESSION_COMMANDS or reply is None:
                continue  # not a session command, or its answer is still on the way
            if key is not None and (not isinstance(params, dict) or params.get("key") != key):
                continue
            detail = ""
            if isinstance(params, dict) and "code" in params:
                detail = f" {params['code']}"
            elif isinstance(params, dict) and "method" in params:
                detail = f" {params['method']}"
            outcome = "none" if "timeout" in reply else "error" if "error" in reply else "ok"
            out.append(f"{method}{detail}={outcome}")
        return out

    def event_fields(self) -> set[str]:
        return {name for event in self.events for name in event}
