"""Real processes for the container tests: start a command, wait for an HTTP answer, signal it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.containers.dockerfiles import ROOT


class Process:
    """A subprocess whose output goes to a log file (read back in assertion messages)."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.argv = argv
        self.log = log
        self._log_file = log.open("wb")
        self.popen = subprocess.Popen(
            argv, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            stdout=self._log_file, stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        self._log_file.flush()
        return self.log.read_text(errors="replace")[-4000:]

    def wait_until(self, check: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
        """Poll `check` until true; fail with the log if the process dies or time runs out."""
        deadline = time.monotonic() + timeout
        while not check():
            if self.popen.poll() is not None:
                raise AssertionError(f"{what}: process exited {self.popen.returncode}\n"
                                     f"{self.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout} s\n{self.output()}")
            time.sleep(0.1)

    def wait_status(self, url: str, status: int, timeout: float = 120.0) -> None:
        self.wait_until(lambda: http_status(url) == status, f"GET {url} -> {status}", timeout)

    def signal(self, sig: int = signal.SIGTERM) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)

    def wait_exit(self, timeout: float = 60.0) -> int:
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"did not exit within {timeout} s\n{self.output()}") from None

    def close(self) -> None:
        """Test teardown: never leave the process behind."""
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=10)
        self._log_file.close()


def run(argv: list[str], env: dict[str, str], timeout: float = 60.0) -> subprocess.CompletedProcess:
    """Run a short command (a health check, a config check) to its end; output captured."""
    return subprocess.run(
        argv, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True, text=True, timeout=timeout, check=False,
    )


def http_status(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=2.0).status_code
    except httpx.HTTPError:
        return None
