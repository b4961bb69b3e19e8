"""Run an ASGI app for real (uvicorn on a free loopback port) from synchronous test code."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import uvicorn


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LoopbackServer:
    """Where a test server listens: `port` on 127.0.0.1, as HTTP and WebSocket base URLs."""

    port: int

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


class ServerThread(LoopbackServer):
    """uvicorn serving `app` on 127.0.0.1 in a background thread with its own event loop."""

    def __init__(
        self, app: Any, ws_max_size: int = 16 * 1024 * 1024, node_settings: Any = None
    ) -> None:
        """`node_settings`: serve with the media node's own HTTP limits (media_node.server)."""
        self.port = free_port()
        self.app = app
        where = {"host": "127.0.0.1", "port": self.port, "log_level": "warning", "lifespan": "on"}
        if node_settings is not None:
            from media_node.server import http_config

            config = http_config(app, node_settings, **where)
        else:
            config = uvicorn.Config(app, ws_max_size=ws_max_size, **where)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self, wait_ready: bool = True, timeout: float = 180.0) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        while wait_ready and httpx.get(f"{self.http}/readyz").status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError(f"not ready: {httpx.get(f'{self.http}/readyz').text}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def run_server(app: Any, **kwargs: Any) -> Iterator[ServerThread]:
    """Generator for fixtures: start, yield, stop."""
    server = ServerThread(app, **kwargs).start()
    try:
        yield server
    finally:
        server.stop()
