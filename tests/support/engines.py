"""AI servers with native engines, each in its own process, so a native crash fails one test.

llama.cpp, CTranslate2, ONNX Runtime and Kaldi are native code: a SIGILL (a build with
instructions this CPU lacks) or a SIGSEGV in a server running as a thread of the pytest process
kills the whole run and hides every later result. Here each server is `python -m ai_services.X`
on a free loopback port. When one dies, the test that was running fails with the signal's name
and the tail of the server's log (tests/conftest.py's report hook), and the next test that uses
it gets a fresh process on the same port.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.support.servers import LoopbackServer, free_port
from voice_connector.services.llm.local_server import exit_reason

RUNNING: list[EngineProcess] = []
"""Every engine process started in this session (for the crash report hook)."""


class EngineProcess(LoopbackServer):
    """One `ai_services` server in a child process; `.http`, `.ws`, `.port` as for a thread."""

    def __init__(self, name: str, module: str, *args: str, start_timeout: float = 300.0) -> None:
        self.name = name
        self.command = [sys.executable, "-m", module, "--host", "127.0.0.1"]
        self.args = list(args)
        self.port = free_port()
        self.start_timeout = start_timeout
        self.log = Path(tempfile.mkdtemp(prefix=f"engine-{name}-")) / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.reported = False

    def start(self) -> EngineProcess:
        """Start and wait for `/readyz` 200 (its model loaded)."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*self.command, "--port", str(self.port), "--log-level", "warning", *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.reported = False
        if self not in RUNNING:
            RUNNING.append(self)
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} {self.death()} while starting:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.http}/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not ready in {self.start_timeout} s")
            time.sleep(0.1)

    def death(self) -> str:
        """How the process ended, or '' while it runs."""
        if self.process is None or self.process.poll() is None:
            return ""
        return exit_reason(self.process.returncode)

    def unreported_death(self) -> str:
        """Its death, once (the test during which it died is the one that fails)."""
        death = self.death()
        if not death or self.reported:
            return ""
        self.reported = True
        return death

    def revive(self) -> None:
        """A fresh process on the same port if this one died."""
        if self.death():
            self.start()

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self in RUNNING:
            RUNNING.remove(self)


def crashes_during_test() -> list[str]:
    """One line per engine that died since the last call, with its log's tail."""
    return [
        f"{engine.name} {death}\n{engine.log_tail()}"
        for engine in list(RUNNING)
        if (death := engine.unreported_death())
    ]


def revive_all() -> None:
    for engine in list(RUNNING):
        engine.revive()
