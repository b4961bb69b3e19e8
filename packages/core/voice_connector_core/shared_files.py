"""Files the worker processes of one node share (`[general] workers`).

Three shapes recur: a file named after an arbitrary key (call id, token nonce), a JSON document
replaced atomically so a reader never sees half of it, and expired files swept away, at most
once a minute so the sweep never lands on every call.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SWEEP_INTERVAL_SECS = 60.0


def key_path(directory: Path, key: str, suffix: str = "") -> Path:
    """The file for `key` in `directory` (hashed: any key is a safe file name)."""
    return directory / f"{hashlib.sha256(key.encode()).hexdigest()}{suffix}"


def write_json(path: Path, data: Any) -> None:
    """Replace `path` with `data` as JSON, atomically (other processes read it meanwhile)."""
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data))
    temporary.replace(path)


def read_json(path: Path) -> Any | None:
    """The JSON document at `path`; None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class ExpirySweeper:
    """Removes the files of a directory whose modification time lies before a cutoff."""

    def __init__(
        self,
        directory: Path,
        interval: float = SWEEP_INTERVAL_SECS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self.interval = interval
        self._clock = clock
        self._next = 0.0

    def sweep(self, cutoff: float) -> None:
        """Remove files older than `cutoff`, unless a sweep ran less than `interval` ago."""
        now = self._clock()
        if now < self._next:
            return
        self._next = now + self.interval
        for path in self.directory.iterdir():
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
