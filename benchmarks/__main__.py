"""`python -m benchmarks [--device auto|cpu|cuda]` (or `make bench`): run every benchmark.

Each one prints its table and writes its results file; README's figures are regenerated from
those files at the end. Each also runs alone: `python -m benchmarks.<name>`. Run them on an
otherwise idle machine: they measure time, and a busy CPU moves every number.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from benchmarks.devices import add_device_argument

BENCHMARKS = [
    ("voice_to_voice", "voice-to-voice on local models, and node start → ready"),
    ("connector_overhead", "what the connector adds, 1 to 50 concurrent calls, instant providers"),
    ("rtp_concurrency", "SIP/RTP calls per process: send jitter, latency, CPU"),
    ("word_accuracy", "WER of our call path vs a plain Pipecat bot on the same Whisper model"),
    ("resampler", "8 kHz ↔ 16 kHz resampler options: delay and CPU"),
    ("providers", "each provider local vs remote; Whisper service throughput"),
    ("cold_start", "slim and full media node: process start → /readyz 200"),
    ("sip_edge", "calls/s through the SIP edge; INVITE → 200 when a node refuses or is dead"),
    ("llama_builds", "llama.cpp build variants: prompt eval and generation tokens/s"),
]
MODEL_RUNNING = {"voice_to_voice", "cold_start", "providers"}
"""Benchmarks that take `--device` (benchmarks.devices); the others run no model or pick none."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_device_argument(parser)
    args = parser.parse_args(argv)
    failed = []
    for name, what in BENCHMARKS:
        print(f"\n## {name}: {what}\n", flush=True)
        device = ["--device", args.device] if name in MODEL_RUNNING else []
        if subprocess.run([sys.executable, "-m", f"benchmarks.{name}", *device]).returncode != 0:
            failed.append(name)
    subprocess.run([sys.executable, "-m", "benchmarks.readme"], check=False)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
