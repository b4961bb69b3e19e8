"""A results file's context line names the command, the machine and how busy it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import context


@pytest.fixture
def two_cores(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Two cores; the load average reads the list's values in turn."""
    loads = [0.5, 0.7]
    monkeypatch.setattr(context, "cores", lambda: 2)
    monkeypatch.setattr(context, "cpu_model", lambda: "Test CPU")
    monkeypatch.setattr(context, "load_average", lambda: loads.pop(0))
    return loads


def test_an_idle_run_names_command_date_machine_and_load(two_cores: list[float]) -> None:
    run = context.RunContext("cold_start", ["--runs", "3"], date="2026-12-01")
    assert run.line("3 runs", "device cpu") == (
        "Written by `python -m benchmarks.cold_start --runs 3` on 2026-12-01: Test CPU, 2 cores, "
        "load average 0.50 at start / 0.70 at end; 3 runs; device cpu."
    )


def test_a_load_above_the_cores_marks_the_run_busy(two_cores: list[float]) -> None:
    two_cores[1] = 5.0
    line = context.RunContext("resampler", [], date="2026-12-01").line()
    assert "load average 0.50 at start / 5.00 at end (busy:" in line


def test_the_file_is_title_context_body(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(context, "RESULTS_DIR", tmp_path / "benchmarks" / "results")
    path = context.RESULTS_DIR / "x.md"
    context.write_results(path, "X", "Written by ….", "\n| a |\n|---|\n")
    assert path.read_text() == "# X\n\nWritten by ….\n\n| a |\n|---|\n"
