"""WebSocket sessions of the JSON-over-WebSocket servers: reading requests, counting sessions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import WebSocket, WebSocketDisconnect

from ai_services.errors import ServiceError
from ai_services.metrics import ServiceMetrics


async def receive_request(ws: WebSocket) -> str | None:
    """The next JSON request's text; None once the client has left.

    A binary frame raises `ServiceError` (the JSON services answer it with an error and go on).
    """
    msg = await ws.receive()
    if msg["type"] == "websocket.disconnect":
        return None
    if msg.get("text") is None:
        raise ServiceError(400, "binary frames are not accepted: send a JSON request")
    return str(msg["text"])


async def run_ws_session(
    ws: WebSocket,
    metrics: ServiceMetrics,
    service: str,
    session: Callable[[WebSocket], Awaitable[None]],
) -> None:
    """Accept, count the connection while `session(ws)` runs; a client leaving is normal."""
    await ws.accept()
    metrics.ws_connections.labels(service).inc()
    try:
        await session(ws)
    except WebSocketDisconnect:
        pass
    finally:
        metrics.ws_connections.labels(service).dec()
