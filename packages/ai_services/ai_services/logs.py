"""Logging set-up for the servers: every line names the call it belongs to."""

from __future__ import annotations

import logging

from ai_services.call_ids import CALL_ID


class CallIdFilter(logging.Filter):
    """Stamps each log record with the current call id, to follow one call across services."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.call_id = CALL_ID.get()
        return True


def configure_logging(level: str = "info") -> None:
    """Root logging with the call id in every line (uvicorn keeps its own access log format)."""
    handler = logging.StreamHandler()
    handler.addFilter(CallIdFilter())
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s [call_id=%(call_id)s] %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
