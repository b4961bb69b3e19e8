"""Cold start of the media node: process start → `/readyz` 200, per image flavour.

One command, prints a table and writes benchmarks/results/cold_start.md itself (not a test):
    .venv/bin/python -m benchmarks.cold_start [--runs 3] [--slim-python PYTHON] [--device auto]

  slim  Twilio-only, STT/LLM/TTS remote (the Cloud Run image): only Pipecat + the Silero VAD load
  full  Twilio-only, in-process Whisper tiny.en + Piper joe (the GKE image's model set)
The LLM is a stub answering Ollama's `/api/tags` (readiness needs an LLM that answers); remote
STT/TTS URLs point at it too (reachable is what readiness checks for them). `--slim-python`
measures the slim row with another interpreter, e.g. a venv holding exactly the slim image's
packages. Time to exit after SIGTERM (idle node, drain included) is reported as well.
`--device` places the full node's models (`[stt]`/`[tts] device`).
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

from benchmarks.context import RESULTS_DIR, RunContext, write_results  # noqa: E402
from benchmarks.devices import add_device_argument, describe, node_env  # noqa: E402
from tests.containers.ollama_stub import OllamaStub  # noqa: E402

RESULTS = RESULTS_DIR / "cold_start.md"
TARGET_SLIM_READY_S = 2.0
NODES = {
    "slim": "slim (Twilio-only, remote STT/LLM/TTS)",
    "full": "full (local Whisper tiny.en + Piper)",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def flavours(stub: str, device: str) -> dict[str, dict[str, str]]:
    remote = {
        "VC_STT_MODE": "remote",
        "VC_STT_URL": stub,
        "VC_TTS_MODE": "remote",
        "VC_TTS_URL": stub.replace("http", "ws") + "/tts",
    }
    return {
        "slim": {"VC_LLM_URL": stub, **remote},
        "full": {"VC_LLM_URL": stub, **node_env(device)},
    }


def one_start(python: str, env: dict[str, str]) -> tuple[float, float, float]:
    """(seconds to /healthz, seconds to /readyz 200, seconds from SIGTERM to exit)."""
    port = free_port()
    full_env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "VC_GENERAL_HTTP_HOST": "127.0.0.1",
        "VC_GENERAL_HTTP_PORT": str(port),
        "VC_TRANSPORT_PROVIDERS": "twilio",
        "VC_GENERAL_LOG_LEVEL": "WARNING",
        **env,
    }
    command = [
        python,
        "-c",
        "from media_node.cli import main; raise SystemExit(main(['run', '--no-local-llm']))",
    ]
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=ROOT, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
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


def table(rows: list[tuple[str, list[tuple[float, float, float]]]]) -> str:
    """Median / min seconds per node and phase."""
    lines = [
        "| node | → /healthz | → /readyz 200 | SIGTERM → exit |",
        "|---|---|---|---|",
    ]
    for name, runs in rows:
        cols = []
        for index in range(3):
            values = [run[index] for run in runs]
            cols.append(f"{statistics.median(values):.2f} / {min(values):.2f}")
        lines.append(f"| {NODES[name]} | {' | '.join(cols)} |")
    return "\n".join(lines)


def verdict(rows: list[tuple[str, list[tuple[float, float, float]]]]) -> str:
    ready = statistics.median(run[1] for run in dict(rows)["slim"])
    met = "met" if ready < TARGET_SLIM_READY_S else "not met"
    return (
        f"Target for the slim node: → /readyz 200 under {TARGET_SLIM_READY_S:g} s here "
        f"(Cloud Run's under 5 s): {met}."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--slim-python", default=sys.executable)
    add_device_argument(parser)
    args = parser.parse_args()
    run = RunContext("cold_start")
    stub = OllamaStub(free_port()).start()
    rows = []
    for name, env in flavours(stub.url, args.device).items():
        python = args.slim_python if name == "slim" else sys.executable
        one_start(python, env)  # warm the page cache: measure process start, not disk reads
        rows.append((name, [one_start(python, env) for _ in range(args.runs)]))
    stub.shutdown()
    text = table(rows)
    print(text)
    write_results(
        RESULTS,
        "Cold start",
        run.line(
            f"{args.runs} runs per node after one warm-up start, median / min seconds",
            f"full node {describe(args.device, ('whisper', 'piper'))}",
            *([f"slim row run by {args.slim_python}"] * (args.slim_python != sys.executable)),
        ),
        f"{text}\n\n{verdict(rows)}",
    )


if __name__ == "__main__":
    main()
