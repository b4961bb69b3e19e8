"""The media node's uvicorn settings: limits that keep slow or greedy clients from holding it.

uvicorn bounds idle keep-alive connections but not the time a client takes to send its request
headers: a client trickling a header byte at a time held a connection for ever. `HeaderTimeout`
(uvicorn's h11 protocol with a deadline) closes a connection whose headers are not complete within
`[general] http_header_timeout_seconds`, on every request of a keep-alive connection.
`limit_concurrency` answers 503 beyond `[general] http_max_connections`; header size is h11's
bound; `X-Forwarded-*` are ours to judge (`[general] trusted_proxies`), so uvicorn's own proxy
header handling (which trusts 127.0.0.1) is off.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from voice_connector_core.config import Settings

MAX_HEADER_BYTES = 16 * 1024
"""Largest request head (request line and headers) h11 buffers before answering 400."""


class HeaderTimeout(H11Protocol):
    """h11 protocol that closes connections whose request headers arrive too slowly."""

    header_timeout: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._header_deadline is None and self.conn.their_state == h11.IDLE:
            self._arm()  # the next request of a keep-alive connection begins
        super().data_received(data)
        if self.conn.their_state != h11.IDLE:
            self._disarm()  # headers complete: the request runs under its own rules

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._header_deadline = self.loop.call_later(self.header_timeout, self._headers_late)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_late(self) -> None:
        self._header_deadline = None
        if self.conn.their_state == h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def header_timeout_protocol(seconds: float) -> type[HeaderTimeout]:
    """`HeaderTimeout` with `seconds` as its deadline (uvicorn instantiates the class)."""
    return type("HeaderTimeoutProtocol", (HeaderTimeout,), {"header_timeout": seconds})


def http_config(app: Any, settings: Settings, **overrides: Any) -> uvicorn.Config:
    """uvicorn.Config for the media node with its limits; `overrides` win (host, port...)."""
    general = settings.general
    options: dict[str, Any] = {
        "host": general.http_host,
        "port": general.http_port,
        "http": header_timeout_protocol(general.http_header_timeout_seconds),
        "ws_max_size": general.http_ws_max_message_bytes,
        "limit_concurrency": general.http_max_connections,
        "timeout_keep_alive": general.http_keep_alive_seconds,
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
        "proxy_headers": False,
        "log_config": None,
    }
    return uvicorn.Config(app, **{**options, **overrides})
