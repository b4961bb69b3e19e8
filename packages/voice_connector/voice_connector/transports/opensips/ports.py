"""RTP port allocation from `rtp_port_range`, so every call end path can give its port back."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import TypeVar

from loguru import logger

P = TypeVar("P", bound=asyncio.DatagramProtocol)


class PortPool:
    """Even ports (RTP convention; RTCP would be +1) handed out round-robin.

    Round-robin rather than lowest-free keeps a just-released port idle for a while, so late
    packets of the previous call do not land in the next one.
    """

    def __init__(self, low: int, high: int) -> None:
        start = low + (low % 2)
        self._ports = list(range(start, high + 1, 2))
        self._next = 0
        self._in_use: set[int] = set()

    @property
    def in_use(self) -> frozenset[int]:
        """Ports currently held by calls (the port-leak tests read this)."""
        return frozenset(self._in_use)

    @property
    def capacity(self) -> int:
        """How many calls the range can carry."""
        return len(self._ports)

    async def open(
        self, bind_ip: str, protocol_factory: Callable[[socket.socket], P], call_id: str
    ) -> tuple[asyncio.DatagramTransport, P, int]:
        """Bind a UDP endpoint on a free port; returns (transport, protocol, port).

        The factory gets the bound socket: the pacing clock thread sends on it directly.
        """
        loop = asyncio.get_running_loop()
        for _ in range(len(self._ports)):
            port = self._ports[self._next]
            self._next = (self._next + 1) % len(self._ports)
            if port in self._in_use:
                continue
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 18)
                sock.bind((bind_ip, port))
            except OSError:
                sock.close()
                continue  # taken by another process
            sock.setblocking(False)
            self._in_use.add(port)
            try:
                transport, protocol = await loop.create_datagram_endpoint(
                    lambda s=sock: protocol_factory(s), sock=sock
                )
            except Exception:
                self._in_use.discard(port)
                sock.close()
                raise
            return transport, protocol, port
        logger.error(f"[{call_id}] no free RTP port in the range")
        raise OSError("no free RTP port")

    def release(self, port: int) -> None:
        """Give a port back (idempotent)."""
        self._in_use.discard(port)
