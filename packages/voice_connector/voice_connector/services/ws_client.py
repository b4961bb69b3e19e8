"""WebSocket plumbing shared by the remote provider clients (Vosk, Llama WS, Piper WS).

- `ReconnectingSocket`: one connection per call, (re)opened with exponential backoff; when every
  attempt fails it raises `ProviderUnavailable`, so the service can end the call instead of hanging.
- `ResponseChannel`: for the legacy request/response protocols that have no request id and no
  cancel (Llama WS, Piper WS): requests are serialized, and a response abandoned half-way (barge-in)
  is drained in the background up to its terminal message, so its stale tail never leaks into the
  next answer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from loguru import logger
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

Message = str | bytes


class ProviderUnavailable(ConnectionError):
    """A remote provider could not be reached after every retry."""


class ConnectionLost(ConnectionError):
    """The connection dropped in the middle of a response."""


@dataclass(frozen=True)
class Backoff:
    """Retry schedule: `attempts` tries, waiting first_delay, 2x, 4x ... (capped) in between."""

    attempts: int = 4
    first_delay: float = 0.2
    max_delay: float = 2.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        return min(self.first_delay * 2 ** (attempt - 1), self.max_delay)


class ReconnectingSocket:
    """A client WebSocket that reconnects on demand, with backoff, and says when it gives up."""

    def __init__(
        self,
        url: str,
        *,
        name: str,
        call_id: str = "",
        backoff: Backoff | None = None,
        open_timeout: float = 3.0,
        max_size: int | None = 16 * 1024 * 1024,
    ) -> None:
        self.url = url
        self.name = name
        self._headers = {"X-Call-Id": call_id} if call_id else {}
        self._backoff = backoff or Backoff()
        self._open_timeout = open_timeout
        self._max_size = max_size
        self._ws: ClientConnection | None = None
        self._lock = asyncio.Lock()
        self.connects = 0
        """Successful connections so far (1 + reconnections): for logs and tests."""

    @property
    def connection(self) -> ClientConnection | None:
        """The open connection, or None."""
        if self._ws is not None and self._ws.close_code is None:
            return self._ws
        return None

    async def connect(self) -> ClientConnection:
        """The open connection; opens a new one (with backoff) when there is none."""
        async with self._lock:
            if self.connection is not None:
                assert self._ws is not None
                return self._ws
            last: Exception | None = None
            for attempt in range(1, self._backoff.attempts + 1):
                try:
                    self._ws = await connect(
                        self.url,
                        additional_headers=self._headers,
                        open_timeout=self._open_timeout,
                        close_timeout=1.0,
                        max_size=self._max_size,
                        ping_interval=20,
                        ping_timeout=20,
                    )
                    self.connects += 1
                    if self.connects > 1:
                        logger.info(f"{self.name}: reconnected to {self.url}")
                    return self._ws
                except (OSError, TimeoutError, InvalidHandshake) as exc:
                    last = exc
                    logger.warning(f"{self.name}: connect to {self.url} failed ({attempt}): {exc}")
                    if attempt < self._backoff.attempts:
                        await asyncio.sleep(self._backoff.delay(attempt))
            raise ProviderUnavailable(f"{self.name} unreachable at {self.url}: {last}") from last

    async def close(self) -> None:
        """Close the connection (no reconnect until `connect` is called again)."""
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()

    def drop(self) -> None:
        """Forget a connection known to be unusable (the next `connect` opens a new one)."""
        ws, self._ws = self._ws, None
        if ws is not None and ws.close_code is None:
            ws.transport.abort()


class ResponseChannel:
    """Serialized request → streamed response on a `ReconnectingSocket`, with stale-tail draining.

    `is_last(message)` says whether a message ends a response (`done`, `end`, `error`...).
    """

    def __init__(
        self,
        socket: ReconnectingSocket,
        is_last: Callable[[Message], bool],
        *,
        drain_timeout: float = 20.0,
    ) -> None:
        self.socket = socket
        self._is_last = is_last
        self._drain_timeout = drain_timeout
        self._lock = asyncio.Lock()
        self._drain: asyncio.Task[None] | None = None
        self.discarded = 0
        """Messages of abandoned responses thrown away so far: for logs and tests."""

    async def request(self, message: str) -> AsyncIterator[Message]:
        """Send `message` and yield its response messages, the terminal one included.

        Raises `ProviderUnavailable` (cannot connect) or `ConnectionLost` (dropped mid-response).
        Use with `contextlib.aclosing`: closing early (barge-in) starts the drain.
        """
        async with self._lock:
            await self.wait_drained()
            ws = await self.socket.connect()
            finished = False
            try:
                try:
                    await ws.send(message)
                except ConnectionClosed:  # a stale connection: one fresh attempt
                    self.socket.drop()
                    ws = await self.socket.connect()
                    await ws.send(message)
                while True:
                    try:
                        reply = await ws.recv()
                    except ConnectionClosed as exc:
                        self.socket.drop()
                        finished = True
                        raise ConnectionLost(f"{self.socket.name}: connection lost: {exc}") from exc
                    last = self._is_last(reply)
                    finished = last
                    yield reply
                    if last:
                        return
            finally:
                if not finished:
                    self._drain = asyncio.get_running_loop().create_task(self._drain_tail(ws))

    async def wait_drained(self) -> None:
        """Wait until an abandoned response's tail has been thrown away."""
        task, self._drain = self._drain, None
        if task is not None:
            await task

    async def _drain_tail(self, ws: ClientConnection) -> None:
        try:
            async with asyncio.timeout(self._drain_timeout):
                while not self._is_last(await ws.recv()):
                    self.discarded += 1
        except (TimeoutError, ConnectionClosed) as exc:
            logger.warning(f"{self.socket.name}: dropping the connection while draining: {exc!r}")
            self.socket.drop()
        else:
            self.discarded += 1  # the terminal message of the abandoned response
            logger.debug(f"{self.socket.name}: stale response drained")

    async def close(self) -> None:
        """Stop draining and close the socket."""
        if self._drain is not None:
            self._drain.cancel()
            with contextlib.suppress(BaseException):
                await self._drain
            self._drain = None
        await self.socket.close()
