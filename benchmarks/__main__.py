"""`python -m benchmarks` (or `make bench`): run every benchmark, each printing its table.

Each one also runs alone: `python -m benchmarks.<name>`. Run them on an otherwise idle machine:
they measure time, and a busy CPU moves every number.
"""

from __future__ import annotations

import subprocess
import sys

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


def main() -> int:
    failed = []
    for name, what in BENCHMARKS:
        print(f"\n## {name}: {what}\n", flush=True)
        if subprocess.run([sys.executable, "-m", f"benchmarks.{name}"]).returncode != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
