"""Connector overhead: what the connector itself adds between the caller and the bot.

Run: `python -m benchmarks.connector_overhead [--calls 1,10,25,50]`. For each level, starts a
media node whose STT, LLM and TTS are instant (`tests.support.instant_node`) and places that many
concurrent Twilio calls with the load tool (a second process on the same cores), their starts
spread evenly over `--spread` seconds as real arrivals are (0: all at once, so every caller stops
speaking in the same instant: the worst case, reported as its own row). Overhead per
turn is measured inside the node, from its call records: end of caller speech (VAD stop) → first
bot audio frame written to the WebSocket, minus the deliberate turn-end wait
(`[pipeline] user_speech_timeout_secs`; the node ends turns by that fixed silence, `FIXED_TURNS`,
so the wait is known: smart-turn, the default, ends them sooner by a judgment whose cost
benchmarks.voice_to_voice measures); the fakes take microseconds. The load tool adds the
caller's view: wire voice-to-voice, send jitter, audible gaps, node CPU per call.
Target: p99 under 20 ms at 50 concurrent calls. Results: benchmarks/results/connector_overhead.md
(`--workers N`: connector_overhead_Nw.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.context import RESULTS_DIR, RunContext, write_results
from benchmarks.voice_to_voice import wait_ready
from tests.support.servers import free_port
from tests.support.speech import speak
from voice_connector.loadtest.runner import LoadOptions, LoadReport, percentile, run_load
from voice_connector_core.config import load_settings

RESULTS = RESULTS_DIR / "connector_overhead.md"
TARGET_P99_MS, TARGET_CALLS = 20.0, 50
HEADER = (
    "| calls (peak concurrent) | starts | overhead p50 ms | overhead p99 ms "
    "| wire voice-to-voice p50 ms "
    "| send jitter p50 / p99 ms | audible gaps / frames | node CPU s per call |\n"
    "|---|---|---|---|---|---|---|---|"
)


def overhead_ms(report: LoadReport, turn_wait_ms: float) -> list[float]:
    values = []
    for result in report.results:
        for turn in (result.server_record or {}).get("turns", []):
            if turn.get("voice_to_voice_ms") is not None:
                values.append(turn["voice_to_voice_ms"] - turn_wait_ms)
    return values


FIXED_TURNS = {"VC_PIPELINE_TURN_DETECTION": "timeout"}
"""The node's turns end after `user_speech_timeout_secs` of silence: a wait to subtract."""


def load_node(calls: int, clip: Path, spread: float, workers: int = 1) -> LoadReport:
    """One level: a fresh instant-provider node, `calls` Twilio calls started over `spread` s."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VC_")} | FIXED_TURNS
    command = [sys.executable, "-m", "tests.support.instant_node", "--port", str(port)]
    node = subprocess.Popen(
        [*command, "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}/healthz", node)
        options = LoadOptions(
            url=f"ws://127.0.0.1:{port}/twilio/stream",
            audio=clip,
            calls=calls,
            concurrency=calls,
            duration=60,
            rate=calls / spread if spread > 0 else 0.0,
        )
        return asyncio.run(run_load(options))
    finally:
        node.terminate()
        node.wait(timeout=30)


def row(calls: int, spread: float, report: LoadReport, turn_wait_ms: float) -> str:
    values = overhead_ms(report, turn_wait_ms)
    v2v = report.voice_to_voice_ms()
    jitter, late, checked = report.jitter_ms()
    cpu = report.after.cpu_seconds - report.before.cpu_seconds
    done = len(report.completed)

    def pct(xs: list[float], p: float) -> str:
        return f"{percentile(xs, p):.1f}" if xs else "-"

    starts = f"over {spread:g} s" if spread > 0 else "at once"
    return (
        f"| {calls} ({report.peak_concurrency}) | {starts} "
        f"| {pct(values, 50)} | {pct(values, 99)} | {pct(v2v, 50)} "
        f"| {pct(jitter, 50)} / {pct(jitter, 99)} | {late} / {checked} "
        f"| {cpu / done if done else float('nan'):.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", default="1,10,25,50", help="concurrency levels, comma-separated")
    parser.add_argument("--spread", type=float, default=2.0, help="seconds over which calls start")
    parser.add_argument(
        "--burst", type=int, default=50, help="also this many calls at once (0: skip)"
    )
    parser.add_argument("--workers", type=int, default=1, help="node worker processes")
    args = parser.parse_args()
    run = RunContext("connector_overhead")
    clip = speak("Hello, how are you today?", Path(tempfile.mkdtemp(prefix="overhead-")))
    settings = load_settings("cfg/voice-connector.ini", env=FIXED_TURNS)
    wait_ms = 1000 * settings.pipeline.user_speech_timeout_secs
    print(HEADER, flush=True)
    rows = []
    levels = [(int(c), args.spread) for c in args.calls.split(",")]
    if args.burst:
        levels.append((args.burst, 0.0))
    met: list[int] = []
    for calls, spread in levels:
        report = load_node(calls, clip, spread, args.workers)
        rows.append(row(calls, spread, report, wait_ms))
        print(rows[-1], flush=True)
        values = overhead_ms(report, wait_ms)
        if spread > 0 and values and percentile(values, 99) < TARGET_P99_MS:
            met.append(calls)
    verdict = (
        f"Target: overhead p99 under {TARGET_P99_MS:g} ms at {TARGET_CALLS} concurrent calls: "
    )
    if TARGET_CALLS in met:
        verdict += "met."
    else:
        verdict += f"not met; met up to {max(met)} calls." if met else "not met at any level."
    print(verdict)
    results = RESULTS if args.workers == 1 else RESULTS.with_stem(f"{RESULTS.stem}_{args.workers}w")
    write_results(
        results,
        "Connector overhead",
        run.line(
            f"instant providers, Twilio calls, {args.workers} node worker process(es); the "
            "callers (the load tool) share the cores"
        ),
        "\n".join([HEADER, *rows, "", verdict]),
    )


if __name__ == "__main__":
    main()
