"""The context a results file opens with, and the one way a benchmark writes its results file.

A number without its machine is not a result: every file in benchmarks/results/ is written whole
by its benchmark (title, context line, tables), never edited by hand, and its context line names
the command, the date, the CPU model, the cores and how busy the machine was (the load average
at the start and the end of the run, since the cores may be shared).
"""

from __future__ import annotations

import os
import platform
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or what the platform says)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def cores() -> int:
    """Cores this process may run on (its affinity mask, e.g. a container's cpuset)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def load_average() -> float:
    """The 1-minute load average: above the core count, the run shared its CPU."""
    return os.getloadavg()[0]


@dataclass
class RunContext:
    """Taken when a benchmark starts; `line()` at its end describes the whole run."""

    name: str
    argv: list[str] = field(default_factory=lambda: sys.argv[1:])
    date: str = field(default_factory=lambda: time.strftime("%Y-%m-%d"))
    load_at_start: float = field(default_factory=lambda: load_average())

    @property
    def command(self) -> str:
        return shlex.join(["python", "-m", f"benchmarks.{self.name}", *self.argv])

    def line(self, *details: str) -> str:
        """`Written by `CMD` on DATE: CPU, N cores, load average A at start / B at end; …`.

        A load above the core count at either end marks the run as busy: its figures measure
        the neighbours as much as the code.
        """
        load_at_end = load_average()
        machine = (
            f"{cpu_model()}, {cores()} cores, load average {self.load_at_start:.2f} at start "
            f"/ {load_at_end:.2f} at end"
        )
        if max(self.load_at_start, load_at_end) > cores():
            machine += " (busy: other jobs shared the cores, not reference figures)"
        return "; ".join([f"Written by `{self.command}` on {self.date}: {machine}", *details]) + "."


def write_results(path: Path, title: str, context_line: str, body: str) -> None:
    """The whole results file: `# title`, the context line, then the body (tables, verdicts)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# {title}\n\n{context_line}\n\n{body.strip()}\n")
    print(f"\nwritten to {path.relative_to(RESULTS_DIR.parent.parent)}")
