"""README's measured figures are the results files' figures: a re-run without regenerating fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import readme

VOICE_TO_VOICE = """# Voice-to-voice on local models

Written by `python -m benchmarks.voice_to_voice` on 2026-12-02: test CPU.

| stage | n | p50 ms | p95 ms | baseline p50 ms | baseline p95 ms | ratio p50 ×|
|---|---|---|---|---|---|---|
| stt_ms | 6 | 500 | 700 | 900 | 1000 | 0.56 |
| llm_ttft_ms | 6 | 200 | 3000 | 210 | 3100 | 0.95 |
| process start → /readyz 200 | 1 | 2400 | | | | |
"""

SIDE_BY_SIDE = """# Voice-to-voice on local models

| stage | unit | ours | plain Pipecat | ours / Pipecat |
|---|---|---:|---:|---:|
| STT: VAD stop → transcript, p50 | ms | 450 | 600 | 0.75 |
| wire voice-to-voice p50 | ms | 1100 | n/a | n/a |
| process start → ready | ms | n/a | 3000 | n/a |

| milestone | ours p50 | ours p95 |
|---|---:|---:|
| wire voice-to-voice p50 | 1 | 2 |
"""

CONNECTOR = """# Connector overhead

| calls (peak concurrent) | starts | overhead p50 ms | overhead p99 ms | node CPU s per call |
|---|---|---|---|---|
| 10 (10) | over 2 s | 5.0 | 9.0 | 0.30 |
| 25 (25) | over 2 s | - | - | 0.25 |
| 50 (48) | over 2 s | 200.0 | 400.0 | 0.20 |
| 50 (50) | at once | 500.0 | 700.0 | 0.25 |

Target: overhead p99 under 20 ms at 50 concurrent calls: not met; met up to 10 calls.
"""


def block_rows(block: str) -> dict[str, str]:
    """README table rows of a rendered block: measure → result."""
    rows = {}
    for line in block.splitlines():
        parts = [cell.strip() for cell in line.strip("|").split("|")]
        if line.startswith("| ") and len(parts) == 3 and parts[0] != "measure":
            rows[parts[0]] = parts[1]
    return rows


def test_readme_block_is_what_the_results_files_say() -> None:
    text = readme.README.read_text()
    assert readme.rewrite(text, readme.render()) == text, (
        f"README.md's benchmarks block differs from benchmarks/results/: run `{readme.COMMAND}`"
    )


def test_figures_come_from_our_columns_beside_a_baseline(tmp_path: Path) -> None:
    (tmp_path / "voice_to_voice.md").write_text(VOICE_TO_VOICE)
    rows = block_rows(readme.render(tmp_path))
    assert rows["STT: end of caller speech → transcript, p50 / p95"] == "500 / 700 ms"
    assert rows["LLM: transcript → first token, p50 / p95"] == "200 / 3000 ms"
    assert rows["media node start → `/readyz` 200 (full, local models)"] == "2400 ms"


def test_ours_beside_plain_pipecat_keeps_the_baseline_beside_it(tmp_path: Path) -> None:
    (tmp_path / "voice_to_voice.md").write_text(SIDE_BY_SIDE)
    rows = block_rows(readme.render(tmp_path))
    assert rows["STT: VAD stop → transcript, p50"] == "450 ms (plain Pipecat: 600 ms)"
    assert rows["wire voice-to-voice p50"] == "1100 ms"  # no baseline figure: none claimed
    assert "process start → ready" not in rows  # ours not measured: no figure


def test_a_row_the_file_lacks_leaves_its_figure_out(tmp_path: Path) -> None:
    (tmp_path / "voice_to_voice.md").write_text(VOICE_TO_VOICE)
    rows = block_rows(readme.render(tmp_path))
    assert not any("voice-to-voice on the wire" in what for what in rows)
    assert not any("word error rate" in what for what in rows)  # no word_accuracy.md at all


def test_each_figure_names_its_results_file_and_date(tmp_path: Path) -> None:
    (tmp_path / "voice_to_voice.md").write_text(VOICE_TO_VOICE)
    block = readme.render(tmp_path)
    stt = next(line for line in block.splitlines() if line.startswith("| STT"))
    assert stt.endswith("[voice_to_voice.md](benchmarks/results/voice_to_voice.md), 2026-12-02 |")


def test_spread_rows_only_and_the_levels_measured(tmp_path: Path) -> None:
    (tmp_path / "connector_overhead.md").write_text(CONNECTOR)
    block = readme.render(tmp_path)
    rows = block_rows(block)
    what = "connector overhead p99, 10 / 50 concurrent Twilio calls (instant providers)"
    assert rows[what] == "9.0 / 400.0 ms"  # no 25 (not measured); 50 (48) spread, not at once
    assert "not met; met up to 10 calls." in block


def test_no_results_files_give_an_empty_block(tmp_path: Path) -> None:
    assert readme.render(tmp_path) == (
        f"{readme.BEGIN}: written by `{readme.COMMAND}` from benchmarks/results/, do not edit -->\n"
        f"{readme.END}"
    )


def test_rewrite_replaces_only_the_block() -> None:
    text = f"before\n{readme.BEGIN} -->\nold figure\n{readme.END}\nafter\n"
    assert readme.rewrite(text, "NEW") == "before\nNEW\nafter\n"
    with pytest.raises(ValueError, match="benchmarks:begin"):
        readme.rewrite("no markers", "NEW")


def test_check_names_the_command_when_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "README.md"
    stale.write_text(f"{readme.BEGIN} -->\n| old | 1 ms | x |\n{readme.END}\n")
    monkeypatch.setattr(readme, "README", stale)
    assert readme.main(["--check"]) == 1
    assert readme.COMMAND in capsys.readouterr().out
    assert readme.main([]) == 0
    assert readme.main(["--check"]) == 0


def test_a_figure_from_a_busy_run_says_so(tmp_path: Path) -> None:
    busy = VOICE_TO_VOICE.replace("test CPU.", "test CPU (busy: other jobs shared the cores).")
    (tmp_path / "voice_to_voice.md").write_text(busy)
    stt = next(line for line in readme.render(tmp_path).splitlines() if line.startswith("| STT"))
    assert stt.endswith(", 2026-12-02, busy machine |")


def test_every_stated_target_and_its_verdict_reaches_the_readme(tmp_path: Path) -> None:
    (tmp_path / "voice_to_voice.md").write_text(
        SIDE_BY_SIDE
        + "\nTargets (ours, single calls):\n\n"
        + "- wire voice-to-voice p50 ≤ 800 ms: 716 ms, met\n"
        + "- wire voice-to-voice p95 ≤ 1200 ms: 1300 ms, not met\n"
        + "\nwritten to somewhere\n- not a target\n"
    )
    (tmp_path / "word_accuracy.md").write_text(
        "# Word accuracy\n\n"
        "Target: our WER no worse than plain Pipecat's: met (0.04 against 0.1).\n"
    )
    block = readme.render(tmp_path)
    targets = [line for line in block.splitlines() if line.startswith("- [")]
    assert targets == [
        "- [voice_to_voice.md](benchmarks/results/voice_to_voice.md): "
        "wire voice-to-voice p50 ≤ 800 ms: 716 ms, met",
        "- [voice_to_voice.md](benchmarks/results/voice_to_voice.md): "
        "wire voice-to-voice p95 ≤ 1200 ms: 1300 ms, not met",
        "- [word_accuracy.md](benchmarks/results/word_accuracy.md): "
        "Target: our WER no worse than plain Pipecat's: met (0.04 against 0.1).",
    ]
