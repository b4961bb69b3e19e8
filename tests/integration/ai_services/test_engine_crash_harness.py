"""The test harness survives a native crash: the test during which an engine died fails, naming
the signal; the run goes on and the next test gets a fresh engine.

Runs an inner pytest session (its own process) with the repository's fixtures and report hook,
on the real Piper WebSocket server, which the inner test kills with SIGILL, as a faulting
llama.cpp or CTranslate2 kernel would die.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

INNER_CONFTEST = """
from tests.conftest import _fresh_engines, piper_ws_server, pytest_runtest_makereport  # noqa: F401
"""
INNER_TESTS = """
import os, signal, time
import httpx

def test_a_kills_its_engine(piper_ws_server):
    os.kill(piper_ws_server.process.pid, signal.SIGILL)
    piper_ws_server.process.wait(timeout=10)

def test_b_gets_a_fresh_engine(piper_ws_server):
    assert httpx.get(piper_ws_server.http + "/readyz", timeout=5).status_code == 200
"""


def test_a_crash_fails_one_test_and_the_run_goes_on(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(INNER_CONFTEST)
    (tmp_path / "test_inner.py").write_text(INNER_TESTS)
    repo = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
         "-o", "asyncio_default_fixture_loop_scope=function", str(tmp_path)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert "1 failed, 1 passed" in out, out
    assert "piper-ws-server killed by SIGILL (signal 4)" in out, out
    assert "FAILED test_inner.py::test_a_kills_its_engine" in out, out
