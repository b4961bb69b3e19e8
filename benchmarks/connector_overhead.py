"""Connector overhead: what the connector itself adds between the caller and the bot.

Run: `python -m benchmarks.connector_overhead [--calls 50]`. Starts a media node whose STT, LLM and
TTS are instant (`benchmarks.instant_node`) and places that many concurrent Twilio calls with the
load tool. Overhead per turn is measured inside the node, from its call records: end of caller
speech (VAD stop) → first bot audio frame written to the WebSocket, minus the deliberate
turn-end wait (`[transport] user_speech_timeout_secs`); the fakes take microseconds. The load
tool's table (wire voice-to-voice, send jitter, audible gaps, CPU and memory per call) follows.
Target: p99 under 20 ms at 50 concurrent calls. Results: benchmarks/results/connector_overhead.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.voice_to_voice import percentile, wait_ready
from tests.support.servers import free_port
from tests.support.speech import speak
from voice_connector.config import load_settings
from voice_connector.loadtest.runner import LoadOptions, LoadReport, run_load

RESULTS = Path(__file__).parent / "results" / "connector_overhead.md"


def overhead_ms(report: LoadReport, turn_wait_ms: float) -> list[float]:
    values = []
    for result in report.results:
        for turn in (result.server_record or {}).get("turns", []):
            if turn.get("voice_to_voice_ms") is not None:
                values.append(turn["voice_to_voice_ms"] - turn_wait_ms)
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args()
    clip = speak("Hello, how are you today?", Path(tempfile.mkdtemp(prefix="overhead-")))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VC_")}
    node = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.instant_node", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}/healthz", node)
        options = LoadOptions(
            url=f"ws://127.0.0.1:{port}/twilio/stream",
            audio=clip,
            calls=args.calls,
            concurrency=args.calls,
            duration=60,
        )
        report = asyncio.run(run_load(options))
    finally:
        node.terminate()
        node.wait(timeout=30)
    wait_ms = load_settings("cfg/voice-connector.ini", env={}).transport.user_speech_timeout_secs
    values = overhead_ms(report, wait_ms * 1000)
    lines = [
        f"Instant providers, {args.calls} concurrent Twilio calls, one process, "
        f"{os.cpu_count()} cores.",
        "",
        "| connector overhead per turn | n | p50 ms | p99 ms |",
        "|---|---|---|---|",
    ]
    if values:
        p50, p99 = percentile(values, 50), percentile(values, 99)
        lines.append(
            f"| VAD stop → first bot frame − turn wait | {len(values)} | {p50:.1f} | {p99:.1f} |"
        )
    lines += ["", "```", report.table(), "```"]
    text = "\n".join(lines)
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(f"# Connector overhead\n\n{text}\n")


if __name__ == "__main__":
    main()
