"""The bundled Ollama-API server (llama.cpp), started when no Ollama answers, and kept running.

`make run` must work with no Ollama installed, so the node starts `ai_services.ollama_api` on the
configured loopback port. A native engine can die (a bad build's SIGILL, the OOM killer's
SIGKILL); then the node must not go on admitting calls into silence: `status()` says why it is
down (the node's `/readyz` shows it and new calls are refused), the server is restarted with
backoff, and readiness comes back by itself once it answers again.

The child gets only the environment it needs: never the node's secrets (`VC_*`, Twilio).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from urllib.parse import urlparse

from loguru import logger

from voice_connector_core.config import Settings

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
START_TIMEOUT_SECS = 120.0
BACKOFF_SECS: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
STABLE_SECS = 60.0
"""Up this long after a restart: the next death starts the backoff from its first step again."""

ENV_NAMES = {
    "PATH", "HOME", "USER", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "PYTHONPATH",
    "PYTHONHOME", "VIRTUAL_ENV", "LD_LIBRARY_PATH", "VOICE_CONNECTOR_MODEL_CACHE",
}  # fmt: skip
ENV_PREFIXES = ("OMP_", "OPENBLAS_", "GGML_", "LLAMA_", "CUDA_", "NVIDIA_")


def child_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """What the model server needs from the node's environment: paths, locale, engine knobs."""
    source = os.environ if environ is None else environ
    return {
        name: value
        for name, value in source.items()
        if name in ENV_NAMES or name.startswith(ENV_PREFIXES)
    }


def ollama_answers(url: str, timeout: float = 1.0) -> bool:
    """True if something speaking Ollama's API answers `GET /api/version` at `url`."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/api/version", timeout=timeout) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def exit_reason(returncode: int) -> str:
    """'killed by SIGILL (signal 4)' / 'exited with code 1', from a Popen return code."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name} (signal {-returncode})"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"


def server_command(settings: Settings) -> list[str]:
    """`python -m ai_services.ollama_api` serving `[llm] model` (from `model_path` if set)."""
    llm = settings.llm
    port = str(urlparse(llm.url).port or 11434)
    command = [sys.executable, "-m", "ai_services.ollama_api", "--host", "127.0.0.1"]
    command += ["--port", port, "--model-name", llm.model]
    if llm.model_path:
        command += ["--gguf", llm.model_path]
    command += ["--threads", str(llm.server_threads or default_threads())]
    return [*command, "--device", llm.device]


def default_threads() -> int:
    """llama.cpp threads when `[llm] server_threads` is 0: every core but one (at least one).

    The node's own Whisper, Piper and VAD run while the model generates (Piper speaks the first
    chunk as the rest of the answer is written), and llama.cpp's threads wait for each other at
    every step: with a thread on every core, one descheduled thread stalls all the others. On 2
    cores shared with other jobs (load average 2-7), called alternately on the same questions,
    one thread gave wire voice-to-voice p50 2.1 s against 3.2 s with two, p95 10.8 s against
    18.6 s. On the idle machine the two are about level (two runs, one thread against two: p50
    2.08 / 1.53 s against 1.76 / 1.52 s, p95 2.5 / 2.0 s against 4.3 / 1.8 s) and one thread
    costs less CPU per call (6.0 against 7.0 s). `benchmarks.voice_to_voice --variant
    threads2:VC_LLM_SERVER_THREADS=2` measures both side by side.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


def wanted(settings: Settings) -> bool:
    """True when the node should serve its own LLM: Ollama on loopback, and none answers there."""
    llm = settings.llm
    if llm.provider != "ollama" or urlparse(llm.url).hostname not in LOCAL_HOSTS:
        return False
    if ollama_answers(llm.url):
        logger.info(f"using the Ollama at {llm.url}")
        return False
    if importlib.util.find_spec("ai_services") is None:
        logger.warning("no Ollama answers and ai_services is not installed: LLM not ready")
        return False
    return True


class LocalLLMServer:
    """Starts the server, restarts it with backoff when it dies, and reports its state."""

    def __init__(
        self,
        command: Sequence[str],
        url: str,
        *,
        backoff: Sequence[float] = BACKOFF_SECS,
        start_timeout: float = START_TIMEOUT_SECS,
        answers: Callable[[str], bool] = ollama_answers,
    ) -> None:
        self.command = list(command)
        self.url = url
        self.backoff = tuple(backoff)
        self.start_timeout = start_timeout
        self._answers = answers
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._state: tuple[bool, str] = (False, "starting the bundled LLM server")
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._watcher: threading.Thread | None = None

    @classmethod
    def for_settings(cls, settings: Settings) -> LocalLLMServer:
        return cls(server_command(settings), settings.llm.url)

    def status(self) -> tuple[bool, str]:
        """(up, why not): a readiness check of the node."""
        with self._lock:
            return self._state

    def _set(self, up: bool, detail: str) -> None:
        with self._lock:
            self._state = (up, detail)

    def start(self) -> LocalLLMServer:
        """Start the server, wait until it answers (or gives up), then watch it in a thread."""
        logger.info(f"starting the bundled local LLM ({' '.join(self.command[2:])})")
        self._launch()
        self._watcher = threading.Thread(target=self._watch, name="llm-server", daemon=True)
        self._watcher.start()
        return self

    def _launch(self) -> None:
        self.process = subprocess.Popen(self.command, env=child_environment())
        deadline = time.monotonic() + self.start_timeout
        while not self._stopping.is_set() and time.monotonic() < deadline:
            if self.process.poll() is not None:
                return  # the watcher reports and restarts it
            if self._answers(self.url):
                self._set(True, "ok")
                return
            self._stopping.wait(0.25)
        if not self._stopping.is_set():
            self._set(False, f"the bundled LLM server did not answer within {self.start_timeout} s")
            logger.error("the bundled local LLM did not come up; the node reports not ready")

    def _watch(self) -> None:
        step = 0
        while not self._stopping.is_set():
            assert self.process is not None
            started = time.monotonic()
            returncode = self.process.wait()
            if self._stopping.is_set():
                return
            if time.monotonic() - started > STABLE_SECS:
                step = 0
            delay = self.backoff[min(step, len(self.backoff) - 1)]
            step += 1
            reason = f"the bundled LLM server {exit_reason(returncode)}"
            self._set(False, f"{reason}; restarting in {delay:g} s")
            logger.error(f"{reason}; restarting it in {delay:g} s (restart {self.restarts + 1})")
            if self._stopping.wait(delay):
                return
            self.restarts += 1
            self._launch()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop watching and end the server (SIGTERM, then SIGKILL)."""
        self._stopping.set()
        process = self.process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._watcher is not None:
            self._watcher.join(timeout=timeout)
