"""README.md's measured figures, generated from benchmarks/results/: no number copied by hand.

    .venv/bin/python -m benchmarks.readme            # rewrite README's benchmarks block
    .venv/bin/python -m benchmarks.readme --check    # exit 1 when the block is stale

The block between `<!-- benchmarks:begin … -->` and `<!-- benchmarks:end -->` is replaced whole.
Each figure names its results file (and that file's date); a figure whose rows a results file
lacks is left out, so a benchmark that changes its table's shape costs a line, not the README.
A unit test fails when the block differs from what this module would write now.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from benchmarks.results_tables import ResultsFile, Table, first_number, header_is, ours

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RESULTS = ROOT / "benchmarks" / "results"
BEGIN = "<!-- benchmarks:begin"
END = "<!-- benchmarks:end -->"
COMMAND = "python -m benchmarks.readme"
DATE = re.compile(r"\b(\d{4}-\d{2}-\d{2})\b")
BUSY = "(busy:"
"""What a context line says when the run shared its cores (benchmarks.context)."""


@dataclass(frozen=True)
class Figure:
    """One README row: what was measured, the value, the results file it comes from."""

    what: str
    value: str
    source: ResultsFile

    def row(self) -> str:
        name = self.source.path.name
        date = DATE.search(self.source.text)
        when = f", {date.group(1)}" if date else ""
        if BUSY in self.source.text:
            when += ", busy machine"
        return f"| {self.what} | {self.value} | [{name}](benchmarks/results/{name}){when} |"


def joined(values: list[str | None], unit: str) -> str | None:
    """`a / b unit`, or None when any value is missing."""
    if any(value is None for value in values):
        return None
    return " / ".join(v for v in values if v is not None) + unit


def per_level(
    source: ResultsFile,
    what: str,
    levels: tuple[int, ...],
    lookup: Callable[[int], str | None],
    unit: str,
) -> Iterator[Figure]:
    """One figure over the levels the file measured (`25 / 50 calls: 0.3 / 3.6 ms`)."""
    found = [(n, value) for n in levels if (value := lookup(n)) is not None]
    if found:
        counts = " / ".join(str(n) for n, _ in found)
        values = " / ".join(value for _, value in found)
        yield Figure(what.format(counts=counts), values + unit, source)


COMPARED = (
    "STT: VAD stop → transcript, p50",
    "LLM first token, first turn (turn end → token), p50",
    "LLM first token, later turns, p50",
    "TTS first audio (first token → audio), p50",
    "wire voice-to-voice p50",
    "wire voice-to-voice p95",
    "process start → ready",
)
"""Rows README takes from voice_to_voice.md's side-by-side table (ours beside plain Pipecat)."""
STAGES = (
    ("stt_ms", "STT: end of caller speech → transcript"),
    ("llm_ttft_ms", "LLM: transcript → first token"),
    ("tts_first_audio_ms", "TTS: first token → first audio"),
    ("wire_voice_to_voice_ms", "wire voice-to-voice (caller's last frame → first bot frame)"),
)
"""Rows README takes from voice_to_voice.md's one-server stage table (p50 and p95 columns)."""


def side_by_side(source: ResultsFile) -> Iterator[Figure]:
    """`| stage | unit | ours | plain Pipecat | … |`: ours, with the baseline beside it."""
    for label in COMPARED:
        mine = source.cell(label, header_is("ours"))
        unit = source.cell(label, header_is("unit")) or ""
        if mine is None or first_number(mine) is None:
            continue
        theirs = first_number(source.cell(label, header_is("plain Pipecat")))
        beside = f" (plain Pipecat: {theirs} {unit})" if theirs else ""
        yield Figure(label, f"{mine} {unit}{beside}", source)


def stages(source: ResultsFile) -> Iterator[Figure]:
    """`| stage | n | p50 ms | p95 ms | … |`: p50 / p95 per stage."""
    for label, what in STAGES:
        value = joined([source.cell(label, ours("p50")), source.cell(label, ours("p95"))], " ms")
        if value:
            yield Figure(f"{what}, p50 / p95", value, source)
    ready = source.cell("process start → /readyz 200", ours("p50"))
    if ready:
        yield Figure("media node start → `/readyz` 200 (full, local models)", f"{ready} ms", source)


def voice_to_voice(source: ResultsFile) -> Iterator[Figure]:
    compared = list(side_by_side(source))
    yield from compared or stages(source)


def word_accuracy(source: ResultsFile) -> Iterator[Figure]:
    wer = joined(
        [source.cell("ours", header_is("WER")), source.cell("plain Pipecat", header_is("WER"))], ""
    )
    if wer:
        yield Figure(
            "word error rate, ours / a plain Pipecat bot (same Whisper model and calls)",
            wer,
            source,
        )


def spread_row(table: Table, row: list[str]) -> bool:
    """A connector-overhead row whose calls started spread out (not all at once)."""
    starts = table.column(header_is("starts"))
    return starts is None or row[starts].startswith("over")


def calls(n: int) -> Callable[[str], bool]:
    """Matches `50` and `50 (48)` (calls, peak concurrent)."""
    return lambda first: first.split(" (")[0] == str(n)


def connector_overhead(source: ResultsFile) -> Iterator[Figure]:
    levels = (10, 25, 50)
    yield from per_level(
        source,
        "connector overhead p99, {counts} concurrent Twilio calls (instant providers)",
        levels,
        lambda n: first_number(
            source.cell(calls(n), header_is("overhead p99 ms"), where=spread_row)
        ),
        " ms",
    )
    yield from per_level(
        source,
        "node CPU per Twilio call (≈ 7 s call), {counts} concurrent calls",
        levels,
        lambda n: first_number(
            source.cell(calls(n), header_is("node CPU s per call"), where=spread_row)
        ),
        " s",
    )


def rtp_concurrency(source: ResultsFile) -> Iterator[Figure]:
    yield from per_level(
        source,
        "SIP/RTP send jitter p99, {counts} calls on one process (echo pipeline)",
        (25, 50, 75, 100),
        lambda n: first_number(source.cell(str(n), header_is("send jitter p99"))),
        " ms",
    )


def cold_start(source: ResultsFile) -> Iterator[Figure]:
    def ready(node: str) -> str | None:
        cell = source.cell(lambda first: first.startswith(node), header_is("→ /readyz 200"))
        return first_number(cell)

    value = joined([ready("slim"), ready("full")], " s")
    if value:
        yield Figure("cold start → `/readyz` 200, slim / full node (median)", value, source)


def resampler(source: ResultsFile) -> Iterator[Figure]:
    def delay(label: str) -> str | None:
        return first_number(source.cell(label, header_is("8→16 delay")))

    value = joined(
        [delay("FIR polyphase 32 taps (ours)"), delay("soxr VHQ (Pipecat default)")], " ms"
    )
    if value:
        yield Figure("resampling delay, 8 → 16 kHz (ours / Pipecat's soxr VHQ)", value, source)


FIGURES: dict[str, Callable[[ResultsFile], Iterator[Figure]]] = {
    "voice_to_voice.md": voice_to_voice,
    "connector_overhead.md": connector_overhead,
    "rtp_concurrency.md": rtp_concurrency,
    "cold_start.md": cold_start,
    "resampler.md": resampler,
    "word_accuracy.md": word_accuracy,
}
"""Results file → the figures README takes from it, in README order."""
TARGETS = ("connector_overhead.md", "rtp_concurrency.md", "cold_start.md", "word_accuracy.md")
"""Results files that state a target and whether it is met (their `Target:` line)."""
TARGET_LISTS = ("voice_to_voice.md",)
"""Results files that state several targets, one per `- ` line under their `Targets` line."""


def render(results: Path = RESULTS) -> str:
    """The whole block, markers included, from the results files in `results`."""
    files = {name: ResultsFile.read(results / name) for name in FIGURES}
    rows = [figure.row() for name, figures in FIGURES.items() for figure in figures(files[name])]
    files |= {name: ResultsFile.read(results / name) for name in TARGET_LISTS if name not in files}
    targets = [
        f"- [{name}](benchmarks/results/{name}): {target}"
        for name in TARGET_LISTS
        for target in files[name].bullets_after("Targets")
    ]
    targets += [
        f"- [{name}](benchmarks/results/{name}): {line}"
        for name in TARGETS
        if (line := files[name].line_starting("Target"))
    ]
    lines = [f"{BEGIN}: written by `{COMMAND}` from benchmarks/results/, do not edit -->"]
    if rows:
        lines += ["| measure | result | results file |", "|---|---|---|", *rows]
    if targets:
        lines += ["", "Targets, as the results files state them:", "", *targets]
    return "\n".join([*lines, END])


def rewrite(readme: str, block: str) -> str:
    """`readme` with its benchmarks block replaced by `block`."""
    start, end = readme.find(BEGIN), readme.find(END)
    if start < 0 or end < start:
        raise ValueError(f"README has no {BEGIN} … {END} block")
    return readme[:start] + block + readme[end + len(END) :]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if README is stale")
    args = parser.parse_args(argv)
    current = README.read_text()
    wanted = rewrite(current, render())
    if args.check:
        if wanted != current:
            print(f"README.md's benchmarks block is stale: run `{COMMAND}`")
            return 1
        return 0
    README.write_text(wanted)
    print("README.md benchmarks block " + ("unchanged" if wanted == current else "rewritten"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
