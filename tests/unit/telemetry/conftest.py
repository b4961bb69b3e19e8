"""Capture what the telemetry log setup writes, and put loguru/stdlib logging back afterwards."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Callable, Iterator

import pytest
from loguru import logger

from voice_connector_core.logs import setup_logging


@pytest.fixture
def log_capture() -> Iterator[Callable[..., io.StringIO]]:
    """`log_capture(fmt="json", secrets=[...], level="DEBUG")` → the buffer the sink writes to."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level

    def start(
        fmt: str = "json", secrets: tuple[str, ...] = (), level: str = "DEBUG"
    ) -> io.StringIO:
        buffer = io.StringIO()
        setup_logging(level, fmt, secrets, stream=buffer)
        return buffer

    yield start
    logger.remove()
    logger.configure(extra={})
    logger.add(sys.stderr)
    root.handlers[:] = handlers
    root.setLevel(level)
