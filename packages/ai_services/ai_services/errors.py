"""Errors a client is meant to see, and the two JSON shapes they are rendered in.

Raise `ServiceError` anywhere in a handler: the app's exception handler (see `service_app`)
answers it with its status and the app's error body (Ollama's or OpenAI's shape).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("ai_services")


class ServiceError(Exception):
    """An error that is the client's to see: rendered as a JSON body with this HTTP status."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind


class QueueFullError(ServiceError):
    """The worker pool and its waiting room are full: the client should retry or go elsewhere."""

    def __init__(self, message: str = "server busy: request queue is full") -> None:
        super().__init__(503, message, kind="server_busy")


def error_message(exc: Exception) -> str:
    """What to tell a client about `exc`; unexpected errors are logged with their traceback."""
    if isinstance(exc, ServiceError):
        return exc.message
    log.error("unexpected error", exc_info=exc)
    return f"internal error: {type(exc).__name__}: {exc}"


ErrorBody = Callable[[ServiceError], dict[str, Any]]


def simple_error_body(err: ServiceError) -> dict[str, Any]:
    """Ollama's (and the legacy servers') error shape: `{"error": "message"}`."""
    return {"error": err.message}


def openai_error_body(err: ServiceError) -> dict[str, Any]:
    """OpenAI's error shape, which OpenAI-style STT clients parse."""
    return {"error": {"message": err.message, "type": err.kind, "code": err.status}}
