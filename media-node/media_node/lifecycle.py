"""Process lifecycle: SIGTERM drains calls instead of cutting them.

uvicorn's own SIGTERM handling stops the server at once and closes every WebSocket (a Twilio call
is one), so a scale-down would drop live calls. `DrainingServer` turns the first SIGTERM/SIGINT
into a drain: `/readyz` answers 503, new calls are refused, active calls may finish for up to
`[general] drain_grace_seconds`, and only then does uvicorn shut down; the process exits 0. A
second signal falls back to uvicorn's immediate exit.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Awaitable, Callable
from types import FrameType

import uvicorn
from loguru import logger

Drain = Callable[[float], Awaitable[bool]]
"""`drain(grace_seconds)`: refuse new work, wait for active work; True if it all ended."""

SHUTDOWN_SECONDS_AFTER_DRAIN = 5
"""uvicorn's own graceful-shutdown timeout, once our drain is over (closes what is left)."""


class DrainingServer(uvicorn.Server):
    """A uvicorn server whose first SIGTERM/SIGINT runs `drain` before shutting down."""

    def __init__(self, config: uvicorn.Config, drain: Drain, grace_seconds: float) -> None:
        super().__init__(config)
        self._drain = drain
        self._grace = grace_seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain_task: asyncio.Task[None] | None = None
        self.drained: bool | None = None
        """None until a drain ran; then whether every active call ended within the grace."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Signal handler (main thread): first signal starts the drain, a second one forces."""
        if self._loop is None or self._drain_task is not None or self.should_exit:
            super().handle_exit(sig, frame)
            return
        # Not recorded in _captured_signals: uvicorn would re-raise it on exit (exit code != 0).
        logger.info(f"{signal.Signals(sig).name}: draining (up to {self._grace:g} s)")
        self._loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        if self._drain_task is None:
            self._drain_task = asyncio.get_running_loop().create_task(self._run_drain())

    async def _run_drain(self) -> None:
        try:
            self.drained = await self._drain(self._grace)
        except Exception:  # a failing drain must still let the process stop
            logger.exception("drain failed")
            self.drained = False
        logger.info("drain finished" if self.drained else "drain grace over: stopping anyway")
        self.should_exit = True


def serve(
    config: uvicorn.Config,
    drain: Drain,
    grace_seconds: float,
    sockets: list[socket.socket] | None = None,
) -> bool:
    """Serve `config.app` until a signal and its drain are over; True if no call was cut short.

    `sockets`: an already bound listening socket (a worker of a multi-process node)."""
    if config.timeout_graceful_shutdown is None:
        config.timeout_graceful_shutdown = SHUTDOWN_SECONDS_AFTER_DRAIN
    server = DrainingServer(config, drain, grace_seconds)
    server.run(sockets=sockets)
    return server.drained is not False
