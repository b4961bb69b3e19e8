"""ASGI middleware adopting the call id and recording per-request metrics."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ai_services.call_ids import CALL_ID_HEADER, set_call_id
from ai_services.metrics import ServiceMetrics


class CallIdMetricsMiddleware:
    """Adopts `X-Call-Id`, echoes it, logs errors with it and records request metrics (HTTP only).

    Pure ASGI rather than BaseHTTPMiddleware: the latter hides client disconnects from streaming
    responses, and a generation must stop when its client goes away.
    """

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        raw = headers.get(CALL_ID_HEADER.encode())
        call_id = set_call_id(raw.decode("latin-1")) if raw else set_call_id("-")
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if raw:
                    message.setdefault("headers", [])
                    message["headers"] = [
                        *message["headers"],
                        (CALL_ID_HEADER.encode(), call_id.encode()),
                    ]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            if endpoint not in ("/metrics", "/healthz", "/readyz"):
                self.metrics.observe(endpoint, status, time.perf_counter() - started)
