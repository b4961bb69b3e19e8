"""RTP port allocation from `rtp_port_range`, so every call end path can give its port back."""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections import deque
from collections.abc import Callable
from typing import TypeVar

from loguru import logger

P = TypeVar("P", bound=asyncio.DatagramProtocol)


class PortPool:
    """Even ports (RTP convention; RTCP would be +1), each drawn at random from the free ones.

    Random, so the port of the next call cannot be guessed from the last one (an outsider who
    knows it could race the caller's media to it). A released port cools down behind the others
    (up to a quarter of the range) before it can be drawn again, so late packets of the previous
    call do not land in the next one.
    """

    def __init__(self, low: int, high: int) -> None:
        start = low + (low % 2)
        self._ports = list(range(start, high + 1, 2))
        self._free = list(self._ports)
        self._cooling: deque[int] = deque()
        self._cool_max = len(self._ports) // 4
        self._in_use: set[int] = set()

    @property
    def in_use(self) -> frozenset[int]:
        """Ports currently held by calls (the port-leak tests read this)."""
        return frozenset(self._in_use)

    @property
    def capacity(self) -> int:
        """How many calls the range can carry."""
        return len(self._ports)

    def _draw(self) -> int | None:
        """A random free port, removed from the free list (O(1)); None when all are held."""
        if not self._free:
            self._free.extend(self._cooling)
            self._cooling.clear()
        if not self._free:
            return None
        i = secrets.randbelow(len(self._free))
        self._free[i], self._free[-1] = self._free[-1], self._free[i]
        return self._free.pop()

    async def open(
        self, bind_ip: str, protocol_factory: Callable[[socket.socket], P], call_id: str
    ) -> tuple[asyncio.DatagramTransport, P, int]:
        """Bind a UDP endpoint on a free port; returns (transport, protocol, port).

        The factory gets the bound socket: the pacing clock thread sends on it directly.
        """
        loop = asyncio.get_running_loop()
        busy: list[int] = []  # bound by another process: tried once per call, then put back
        try:
            while (port := self._draw()) is not None:
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 18)
                    sock.bind((bind_ip, port))
                except OSError:
                    sock.close()
                    busy.append(port)
                    continue
                sock.setblocking(False)
                self._in_use.add(port)
                try:
                    transport, protocol = await loop.create_datagram_endpoint(
                        lambda s=sock: protocol_factory(s), sock=sock
                    )
                except Exception:
                    self.release(port)
                    sock.close()
                    raise
                return transport, protocol, port
        finally:
            self._free.extend(busy)
        logger.error(f"[{call_id}] no free RTP port in the range")
        raise OSError("no free RTP port")

    def release(self, port: int) -> None:
        """Give a port back (idempotent)."""
        if port not in self._in_use:
            return
        self._in_use.discard(port)
        self._cooling.append(port)
        while len(self._cooling) > self._cool_max:
            self._free.append(self._cooling.popleft())
