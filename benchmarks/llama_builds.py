"""llama.cpp build variants on this machine: prompt-eval and generation tokens/s, side by side.

One command, prints a table and writes benchmarks/results/llama_builds.md itself:
    .venv/bin/python -m benchmarks.llama_builds [--variants avx2,avx512] [--runs 3]

Each variant's wheel comes from scripts/llama-wheel.sh (built once, cached by its flags; about
10 minutes on 2 cores when missing). It is unpacked into its own directory and run in a child
process with the bundled Qwen2.5-Coder 0.5B on every core this process may use: the setup
self-test's first-turn prompt (system prompt + call-control tools + question, ~500 tokens) is
decoded, then 64 tokens generated, `--runs` times. A variant that dies (SIGILL: instructions this
CPU does not run) is reported as such: the probe the build choice needs.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from benchmarks.context import RESULTS_DIR, RunContext, write_results

ROOT = Path(__file__).resolve().parents[1]
RESULTS = RESULTS_DIR / "llama_builds.md"
GENERATE_TOKENS = 64

CHILD = r"""
import json, sys, time
import llama_cpp
from ai_services.llm_engine import available_cores
from ai_services.selftest import QUESTION, SYSTEM_PROMPT, TOOLS
print(json.dumps({"system_info": llama_cpp.llama_print_system_info().decode().strip()}), flush=True)
llm = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=4096, n_threads=available_cores(),
                      verbose=False)
messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": QUESTION}]
for run in range(int(sys.argv[2])):
    llm.reset()
    start = time.perf_counter()
    out = llm.create_chat_completion(messages=messages, tools=TOOLS, max_tokens=1, temperature=0)
    prompt_s = time.perf_counter() - start
    start = time.perf_counter()
    gen = llm.create_completion("Once upon a time", max_tokens=int(sys.argv[3]), temperature=0,
                                seed=1)
    gen_s = time.perf_counter() - start
    print(json.dumps({
        "prompt_tokens": out["usage"]["prompt_tokens"], "prompt_s": prompt_s,
        "gen_tokens": gen["usage"]["completion_tokens"], "gen_s": gen_s,
    }), flush=True)
"""


def wheel_for(variant: str) -> Path:
    """The variant's wheel, built by scripts/llama-wheel.sh if it is not cached yet."""
    done = subprocess.run(
        [str(ROOT / "scripts" / "llama-wheel.sh"), variant],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(done.stdout.strip().splitlines()[-1])


def run_variant(variant: str, unpacked: str, gguf: Path, runs: int) -> tuple[int, list[dict]]:
    """(return code, JSON lines) of one child process timing one unpacked build."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([unpacked, str(ROOT)])}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(gguf), str(runs), str(GENERATE_TOKENS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode > 0:
        lines.append({"error": done.stderr.strip()[-200:]})
    return done.returncode, lines


def summarize(variant: str, returncode: int, lines: list[dict]) -> dict[str, object]:
    """Medians over the samples of one variant; a fatal signal is a result too."""
    info = next((line["system_info"] for line in lines if "system_info" in line), "")
    samples = [line for line in lines if "prompt_s" in line]
    if returncode != 0 or not samples:
        if returncode < 0:
            why = f"died: {signal.Signals(-returncode).name}"
        else:
            why = f"failed: {next((x['error'] for x in lines if 'error' in x), '')}"
        return {"variant": variant, "status": why, "system_info": info}
    prompt = [s["prompt_tokens"] / s["prompt_s"] for s in samples]
    generation = [s["gen_tokens"] / s["gen_s"] for s in samples]
    return {
        "variant": variant,
        "status": "ok",
        "system_info": info,
        "prompt_tokens": samples[0]["prompt_tokens"],
        "prompt_tps": statistics.median(prompt),
        "gen_tps": statistics.median(generation),
        "first_turn_ms": 1000 * statistics.median(s["prompt_s"] for s in samples),
    }


def measure(variants: list[str], gguf: Path, runs: int) -> list[dict[str, object]]:
    """Every variant, one run each in turn (so a busy spell hits all alike), `runs` rounds."""
    with tempfile.TemporaryDirectory(prefix="llama-builds-") as tmp:
        unpacked: dict[str, str] = {}
        for variant in variants:
            target = Path(tmp) / variant
            with zipfile.ZipFile(wheel_for(variant)) as archive:
                archive.extractall(target)
            for library in target.rglob("*.so*"):
                library.chmod(0o755)
            unpacked[variant] = str(target)
        codes: dict[str, int] = dict.fromkeys(variants, 0)
        lines: dict[str, list[dict]] = {v: [] for v in variants}
        for _ in range(runs):
            for variant in variants:
                if codes[variant] != 0:
                    continue  # it died: once is the answer
                codes[variant], got = run_variant(variant, unpacked[variant], gguf, 1)
                lines[variant] += got
    return [summarize(v, codes[v], lines[v]) for v in variants]


def table(rows: list[dict[str, object]]) -> str:
    base = next((r for r in rows if r["variant"] == "avx2" and r["status"] == "ok"), None)
    out = [
        "| variant | prompt eval (tok/s) | generation (tok/s) | first-turn prompt (ms) "
        "| vs avx2 (generation) | status |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row["status"] != "ok":
            out.append(f"| {row['variant']} | - | - | - | - | {row['status']} |")
            continue
        ratio = f"{row['gen_tps'] / base['gen_tps']:.2f}×" if base else "-"
        out.append(
            f"| {row['variant']} | {row['prompt_tps']:.0f} | {row['gen_tps']:.1f} "
            f"| {row['first_turn_ms']:.0f} | {ratio} | ok |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="avx2,avx512", help="comma-separated")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    run = RunContext("llama_builds", sys.argv[1:] if argv is None else argv)
    sys.path.insert(0, str(ROOT))
    from voice_connector_core.models import qwen_gguf

    gguf = qwen_gguf()
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    rows = measure(variants, gguf, args.runs)
    text = table(rows)
    print(text)
    if not args.no_write:
        infos = "\n".join(f"- {r['variant']}: `{r['system_info']}`" for r in rows)
        write_results(
            RESULTS,
            "llama.cpp build variants",
            run.line(
                "a llama.cpp thread per core, Qwen2.5-Coder 0.5B Q4_K_M, median of "
                f"{args.runs} runs taken in turn. Prompt = the setup self-test's first turn "
                f"({rows[0].get('prompt_tokens', '?')} tokens); generation = {GENERATE_TOKENS} "
                "tokens"
            ),
            f"{text}\n\nWhat each build has compiled in (llama.cpp's system info):\n{infos}",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
