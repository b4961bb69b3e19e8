"""Log setup: console lines locally, Cloud Logging JSON in the cloud, secrets always scrubbed.

Redaction happens in the sink, on the final text, so a secret is removed whichever library
logged it and however it was formatted.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from loguru import logger

REDACTED = "********"
SEVERITY = {
    "TRACE": "DEBUG",
    "DEBUG": "DEBUG",
    "INFO": "INFO",
    "SUCCESS": "INFO",
    "WARNING": "WARNING",
    "ERROR": "ERROR",
    "CRITICAL": "CRITICAL",
}


class Redactor:
    """Replaces every known secret value in a string."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text


def _json_line(record: dict[str, Any], redact: Redactor) -> str:
    extra = record["extra"]
    labels = {k: str(v) for k, v in extra.items() if k in ("call_id", "flavor", "transport")}
    entry: dict[str, Any] = {
        "severity": SEVERITY.get(record["level"].name, "DEFAULT"),
        "message": redact(record["message"]),
        "time": record["time"].astimezone(UTC).isoformat(),
        "logger": record["name"],
        "logging.googleapis.com/sourceLocation": {
            "file": record["file"].path,
            "line": record["line"],
            "function": record["function"],
        },
    }
    if labels:
        entry["logging.googleapis.com/labels"] = labels
    if extra.get("trace"):
        entry["logging.googleapis.com/trace"] = extra["trace"]
    if record["exception"] is not None:
        entry["message"] += "\n" + redact(str(record["exception"]))
    return json.dumps(entry, ensure_ascii=False)


def setup_logging(level: str = "INFO", fmt: str = "console", secrets: Iterable[str] = ()) -> None:
    """Replace loguru's sinks (Pipecat logs through loguru too) with one scrubbing sink."""
    redact = Redactor(secrets)
    logger.remove()
    if fmt == "json":

        def sink(message: Any) -> None:
            sys.stderr.write(_json_line(message.record, redact) + "\n")

        logger.add(sink, level=level, format="{message}")
    else:

        def console_sink(message: Any) -> None:
            sys.stderr.write(redact(str(message)))

        logger.add(
            console_sink,
            level=level,
            format="{time:HH:mm:ss.SSS} | {level: <7} | {extra[call_id]: <12} | {message}",
        )
    logger.configure(extra={"call_id": "-"})


def now_iso() -> str:
    return datetime.now(UTC).isoformat()
