"""8 kHz ↔ 16 kHz resampler comparison on 20 ms chunks: latency (group delay) and CPU.

One command, prints a table and writes benchmarks/results/resampler.md itself (not a test):
    .venv/bin/python -m benchmarks.resampler
Latency is measured, not taken from specs: a 20 ms-chunked stream containing a click goes through
the stream resampler; delay = where the click lands in the output stream relative to the input
(group delay) + how much audio the resampler holds back (fed but not yet emitted). CPU is
microseconds per 20 ms chunk, one direction. Alias rejection: a 5 kHz tone at 16 kHz (above the
8 kHz Nyquist) downsampled; the residue in dB below the input.
"""

from __future__ import annotations

import time

import numpy as np
import soxr

from benchmarks.context import RESULTS_DIR, RunContext, write_results
from voice_connector.audio.resample import Downsampler2x, Upsampler2x

RESULTS = RESULTS_DIR / "resampler.md"


class Soxr:
    def __init__(self, rate_in: int, rate_out: int, quality: str) -> None:
        self.s = soxr.ResampleStream(rate_in, rate_out, 1, dtype="int16", quality=quality)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.s.resample_chunk(x)


class Linear:
    def __init__(self, up: bool) -> None:
        self.up, self.last = up, 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if not self.up:
            return x[::2].copy()  # decimation without a filter: what "linear" down amounts to
        prev = np.concatenate(([self.last], x[:-1])).astype(np.int32)
        self.last = int(x[-1])
        out = np.empty(2 * len(x), dtype=np.int16)
        out[0::2] = ((prev + x) // 2).astype(np.int16)
        out[1::2] = x
        return out


class Fir:
    def __init__(self, up: bool, taps: int) -> None:
        self.f = Upsampler2x(taps) if up else Downsampler2x(taps)
        self.up = up

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.up:
            return np.frombuffer(self.f.process(x), dtype=np.int16)
        return self.f.process_array(x)


def _delay_ms(make, rate_in: int, rate_out: int) -> float:
    chunk = rate_in // 50
    x = np.zeros(rate_in, dtype=np.int16)
    click_at = rate_in // 2
    x[click_at] = 20000
    r = make()
    y = np.concatenate([r(x[i : i + chunk]) for i in range(0, len(x), chunk)]).astype(float)
    peak = int(np.argmax(np.abs(y)))
    group = peak / rate_out - click_at / rate_in  # where the click lands in the output stream
    held = len(x) / rate_in - len(y) / rate_out  # audio fed but not yet emitted (steady state)
    return (group + held) * 1000


def _cpu_us(make, rate_in: int) -> float:
    chunk = rate_in // 50
    x = (np.random.default_rng(0).standard_normal(rate_in * 5) * 3000).astype(np.int16)
    best = float("inf")
    for _ in range(3):  # best of 3: the machine may be shared
        r = make()
        t0 = time.perf_counter()
        for i in range(0, len(x), chunk):
            r(x[i : i + chunk])
        best = min(best, time.perf_counter() - t0)
    return best / (len(x) / chunk) * 1e6


def _alias_db(make) -> float:
    t = np.arange(16000) / 16000
    x = (10000 * np.sin(2 * np.pi * 5000 * t)).astype(np.int16)
    r = make()
    y = np.concatenate([r(x[i : i + 320]) for i in range(0, len(x), 320)])[400:]
    return 20 * np.log10(max(np.abs(y).max(), 1) / 10000)


def main() -> None:
    run = RunContext("resampler")
    options = {
        "soxr VHQ (Pipecat default)": (
            lambda: Soxr(8000, 16000, "VHQ"),
            lambda: Soxr(16000, 8000, "VHQ"),
        ),
        "soxr HQ": (lambda: Soxr(8000, 16000, "HQ"), lambda: Soxr(16000, 8000, "HQ")),
        "soxr LQ": (lambda: Soxr(8000, 16000, "LQ"), lambda: Soxr(16000, 8000, "LQ")),
        "soxr QQ (quick)": (lambda: Soxr(8000, 16000, "QQ"), lambda: Soxr(16000, 8000, "QQ")),
        "FIR polyphase 32 taps (ours)": (lambda: Fir(True, 32), lambda: Fir(False, 32)),
        "FIR polyphase 64 taps": (lambda: Fir(True, 64), lambda: Fir(False, 64)),
        "linear / plain decimation": (lambda: Linear(True), lambda: Linear(False)),
    }
    lines = [
        "| resampler | 8→16 delay | 16→8 delay | 8→16 CPU/chunk | 16→8 CPU/chunk "
        "| 5 kHz alias (16→8) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    print("\n".join(lines), flush=True)
    for name, (up, down) in options.items():
        up_ms, down_ms = _delay_ms(up, 8000, 16000), _delay_ms(down, 16000, 8000)
        lines.append(
            f"| {name} | {up_ms:.2f} ms | {down_ms:.2f} ms | {_cpu_us(up, 8000):.1f} µs "
            f"| {_cpu_us(down, 16000):.1f} µs | {_alias_db(down):.0f} dB |"
        )
        print(lines[-1], flush=True)
    write_results(
        RESULTS,
        "8 kHz ↔ 16 kHz resamplers",
        run.line(
            "20 ms chunks; delay = group delay + audio held back by the stream resampler; "
            "CPU = best of 3 passes per 20 ms chunk, one direction; alias = a 5 kHz tone's "
            "residue after 16→8 kHz"
        ),
        "\n".join(lines),
    )


if __name__ == "__main__":
    main()
