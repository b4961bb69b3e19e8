"""The setup self-test: a real decode passes; a child killed by a signal fails with a way out."""

from __future__ import annotations

import signal
import sys

import pytest

from ai_services import selftest


def dies_with(sig: signal.Signals, system_info: str) -> list[str]:
    """A child that reports what it was compiled with, then dies as a faulting decode would."""
    code = (
        "import json, os, signal; "
        f"print(json.dumps({{'system_info': {system_info!r}}}), flush=True); "
        f"os.kill(os.getpid(), {int(sig)})"
    )
    return [sys.executable, "-c", code]


def test_a_sigill_names_the_signal_the_build_and_the_rebuild_command(tmp_path) -> None:
    info = "CPU : AVX2 = 1 | AVX512 = 1 | AMX_INT8 = 1 |"
    passed, message = selftest.run(
        tmp_path / "m.gguf", "native", command=dies_with(signal.SIGILL, info)
    )
    assert not passed
    assert "SIGILL (signal 4)" in message
    assert info in message
    assert "make setup LLAMA_VARIANT=avx2" in message


def test_a_segfault_before_the_report_still_fails_clearly(tmp_path) -> None:
    command = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"]
    passed, message = selftest.run(tmp_path / "m.gguf", "avx2", command=command)
    assert not passed
    assert "SIGSEGV (signal 11)" in message
    assert "died before printing" in message


def test_a_hung_child_fails_after_the_timeout(tmp_path) -> None:
    command = [sys.executable, "-c", "import time; time.sleep(30)"]
    passed, message = selftest.run(tmp_path / "m.gguf", "avx2", timeout=0.5, command=command)
    assert not passed and "no answer within" in message


@pytest.mark.slow
def test_the_installed_build_decodes_a_realistic_prompt() -> None:
    """The check `make setup` runs, on the small test model: several hundred tokens decoded."""
    from voice_connector_core.models import smollm2_gguf

    passed, message = selftest.run(smollm2_gguf(), "installed")
    assert passed, message
    tokens = int(message.split(": ")[1].split("-token")[0])
    assert tokens >= selftest.MIN_PROMPT_TOKENS
