"""The call id: one correlation id per call, carried across services to follow it in their logs.

A client sends it as `X-Call-Id` (HTTP, WebSocket upgrade) or in a WebSocket request; it lives
in a context variable so every log line and worker thread of that request can read it.
"""

from __future__ import annotations

import contextvars

CALL_ID: contextvars.ContextVar[str] = contextvars.ContextVar("call_id", default="-")
CALL_ID_HEADER = "x-call-id"
MAX_CALL_ID_LEN = 128


def set_call_id(value: object) -> str:
    """Adopt a client-supplied correlation id (bounded, printable) for the current task."""
    text = "".join(ch for ch in str(value) if ch.isprintable())[:MAX_CALL_ID_LEN] or "-"
    CALL_ID.set(text)
    return text
