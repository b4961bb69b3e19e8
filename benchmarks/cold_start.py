"""Cold start of the media node: process start → `/readyz` 200, per image flavour.

One command, prints a table (a benchmark, not a test):
    .venv/bin/python benchmarks/cold_start.py [--runs 5] [--slim-python /path/to/venv/bin/python]

  slim  Twilio-only, STT/LLM/TTS remote (the Cloud Run image): only Pipecat + the Silero VAD load
  full  Twilio-only, in-process Whisper tiny.en + Piper joe (the GKE image's model set)
The LLM is a stub answering Ollama's `/api/tags` (readiness needs an LLM that answers); remote
STT/TTS URLs point at it too (reachable is what readiness checks for them). `--slim-python`
measures the slim row with another interpreter, e.g. a venv holding exactly the slim image's
packages. Time to exit after SIGTERM (idle node, drain included) is reported as well.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.containers.ollama_stub import OllamaStub  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def flavours(stub: str) -> dict[str, dict[str, str]]:
    remote = {"VC_STT_MODE": "remote", "VC_STT_URL": stub,
              "VC_TTS_MODE": "remote", "VC_TTS_URL": stub.replace("http", "ws") + "/tts"}
    return {"slim": {"VC_LLM_URL": stub, **remote}, "full": {"VC_LLM_URL": stub}}


def one_start(python: str, env: dict[str, str]) -> tuple[float, float, float]:
    """(seconds to /healthz, seconds to /readyz 200, seconds from SIGTERM to exit)."""
    port = free_port()
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "VC_GENERAL_HTTP_HOST": "127.0.0.1",
                "VC_GENERAL_HTTP_PORT": str(port), "VC_TRANSPORT_PROVIDERS": "twilio",
                "VC_GENERAL_LOG_LEVEL": "WARNING", **env}
    command = [python, "-c", "from media_node.cli import main; "
               "raise SystemExit(main(['run', '--no-local-llm']))"]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=full_env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    alive = ready = None
    try:
        while ready is None:
            if process.poll() is not None:
                raise RuntimeError(f"node exited {process.returncode}")
            if time.perf_counter() - started > 120:
                raise RuntimeError("not ready in 120 s")
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code
            except httpx.HTTPError:
                status = None
            now = time.perf_counter() - started
            if status is not None and alive is None:
                alive = now
            if status == 200:
                ready = now
            time.sleep(0.01)
        stop = time.perf_counter()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        return alive or ready, ready, time.perf_counter() - stop
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--slim-python", default=sys.executable)
    args = parser.parse_args()
    stub = OllamaStub(free_port()).start()
    rows = []
    for name, env in flavours(stub.url).items():
        python = args.slim_python if name == "slim" else sys.executable
        one_start(python, env)  # warm the page cache: measure process start, not disk reads
        runs = [one_start(python, env) for _ in range(args.runs)]
        rows.append((name, python, runs))
    stub.shutdown()
    print(f"cold start, {args.runs} runs each, {os.cpu_count()} cores (median / min, seconds)")
    print(f"{'node':<6} {'→ /healthz':>12} {'→ /readyz 200':>15} {'SIGTERM → exit':>16}  python")
    for name, python, runs in rows:
        cols = []
        for index in range(3):
            values = [run[index] for run in runs]
            cols.append(f"{statistics.median(values):.2f} / {min(values):.2f}")
        print(f"{name:<6} {cols[0]:>12} {cols[1]:>15} {cols[2]:>16}  {python}")


if __name__ == "__main__":
    main()
