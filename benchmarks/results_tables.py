"""Read figures back out of a results file's Markdown tables, by row label and column header.

Results files change shape (a column added, a baseline side by side, a level not measured), so a
figure is looked up by what it is called, never by position: the row whose first cell is the
label, the column whose header names it. Anything missing reads as None, for the caller to leave
the figure out rather than print a wrong one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Table:
    """One Markdown table: its header cells and its body rows."""

    header: list[str]
    rows: list[list[str]]

    def column(self, wanted: Callable[[str], bool]) -> int | None:
        """Index of the first column whose header satisfies `wanted`."""
        return next((i for i, name in enumerate(self.header) if wanted(name)), None)


def cells(line: str) -> list[str]:
    """`| a | b |` → ["a", "b"] (Markdown emphasis stripped)."""
    return [cell.strip().strip("*").strip() for cell in line.strip().strip("|").split("|")]


def is_rule(line: str) -> bool:
    """The `|---|---:|` line under a table's header."""
    return set(line.replace("|", "").strip()) <= set("-: ") and "-" in line


def tables(text: str) -> list[Table]:
    """Every table in a Markdown text, in order."""
    found: list[Table] = []
    lines = text.splitlines()
    for index, line in enumerate(lines[:-1]):
        if not (line.lstrip().startswith("|") and is_rule(lines[index + 1])):
            continue
        rows = []
        for body in lines[index + 2 :]:
            if not body.lstrip().startswith("|"):
                break
            rows.append(cells(body))
        found.append(Table(cells(line), rows))
    return found


@dataclass(frozen=True)
class ResultsFile:
    """A results file's text, with lookups that answer None for what it lacks."""

    path: Path
    text: str

    @classmethod
    def read(cls, path: Path) -> ResultsFile:
        return cls(path, path.read_text() if path.exists() else "")

    def cell(
        self,
        label: str | Callable[[str], bool],
        column: Callable[[str], bool],
        *,
        where: Callable[[Table, list[str]], bool] | None = None,
    ) -> str | None:
        """The cell in the first row labelled `label` (and matching `where(table, row)`)."""
        is_label = label if callable(label) else (lambda first: first == label)
        for table in tables(self.text):
            index = table.column(column)
            if index is None:
                continue
            for row in table.rows:
                if not is_label(row[0]) or index >= len(row) or not row[index]:
                    continue
                if where is None or where(table, row):
                    return row[index]
        return None

    def line_starting(self, prefix: str) -> str | None:
        """The first line that starts with `prefix` (a verdict such as `Target: …`)."""
        return next((ln for ln in self.text.splitlines() if ln.startswith(prefix)), None)

    def bullets_after(self, prefix: str) -> list[str]:
        """The `- ` list under the first line that starts with `prefix` (verdicts such as
        `Targets (…):` then `- wire voice-to-voice p50 ≤ 800 ms: 716 ms, met`), dashes dropped."""
        lines = self.text.splitlines()
        start = next((i for i, ln in enumerate(lines) if ln.startswith(prefix)), None)
        if start is None:
            return []
        bullets: list[str] = []
        for line in lines[start + 1 :]:
            if line.startswith("- "):
                bullets.append(line[2:])
            elif line.strip() or bullets:
                break
        return bullets


def header_is(*names: str) -> Callable[[str], bool]:
    """A column matcher: the header is one of `names`."""
    return lambda header: header in names


def ours(word: str) -> Callable[[str], bool]:
    """A column matcher: the header mentions `word` and is not a baseline's or a ratio."""
    others = ("baseline", "pipecat", "ratio", "×")
    return lambda header: word in header and not any(o in header.lower() for o in others)


def first_number(cell: str | None) -> str | None:
    """`1.31 / 1.28` → `1.31`; `52.50 ms` → `52.50`; None stays None."""
    if cell is None:
        return None
    token = cell.split("/")[0].split()[0] if cell.split() else ""
    try:
        float(token)
    except ValueError:
        return None
    return token
