"""Voice-to-voice latency of scripted Twilio calls: our media node against plain Pipecat.

Run: `python -m benchmarks.voice_to_voice [--calls 5] [--env VC_KEY=VALUE ...] [--no-baseline]`.
Starts, as real processes, our media node as `make run` does (local Whisper tiny.en + Piper joe;
the bundled Ollama-API server on Qwen2.5-Coder 0.5B, which the node starts itself) and the plain
Pipecat bot of `benchmarks.pipecat_baseline` on the same models (with its own Ollama-API server
at that server's defaults, so neither evicts the other's prompt cache). The
simulated Twilio caller places the same scripted calls into both, alternating (ours first on even
calls, the baseline first on odd ones), and each turn is timed on one clock (both servers and the
caller read the machine's monotonic clock) along the chain:

    caller's last speech frame → VAD stop → turn end → transcript → first LLM token
    → first clause to synthesis → first TTS audio → first frame written → first frame at the caller

The table gives each stage for ours / baseline / ratio: STT (VAD stop → transcript), LLM first
token (turn end → first token) on first and later turns, TTS first audio (first token → audio),
wire voice-to-voice (caller's last speech frame → first bot audio received), greeting (call
start → first bot audio), CPU seconds per call and RSS (server + its LLM server). Results are
written to benchmarks/results/voice_to_voice.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks.context import RESULTS_DIR, RunContext, write_results
from tests.support.servers import free_port
from tests.support.speech import speak
from voice_connector.caller.twilio_caller import CallerOptions, CallResult, place_call
from voice_connector.loadtest.runner import percentile

RESULTS = RESULTS_DIR / "voice_to_voice.md"
QUESTIONS = [
    ("What is the capital of France?", "How many days are in a week?"),
    ("Can you recommend a good book?", "What color is the sky?"),
    ("What is two plus two?", "What is the biggest animal?"),
    ("Where do penguins live?", "How far away is the moon?"),
    ("What do bees make?", "Why is the ocean salty?"),
]
CHAIN = [
    ("speech_end", "caller's last speech frame"),
    ("speech_stopped", "VAD stop"),
    ("transcript_at", "transcript"),
    ("turn_end_at", "turn end"),
    ("llm_first_token_at", "first LLM token"),
    ("first_clause_at", "first clause to TTS"),
    ("tts_first_audio_at", "first TTS audio"),
    ("bot_audio_at", "first frame written"),
    ("heard", "first frame at the caller"),
]
"""Turn milestones, by when they happen in a turn of ours (Whisper runs from VAD stop, the turn
ends after a further silence)."""
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 300) -> float:
    """Seconds until `url` answers 200 (the process must stay alive)."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(url)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by `pids` (Linux /proc)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def rss_mb(pids: list[int]) -> float:
    """Resident memory of `pids`, MB."""
    pages = sum(int(Path(f"/proc/{pid}/statm").read_text().split()[1]) for pid in pids)
    return pages * PAGE / 1e6


class PeakRss:
    """Samples the RSS of `pids` every 50 ms while in use; `peak` is the highest seen."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.peak = rss_mb(pids)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, rss_mb(self.pids))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Server:
    """One side of the comparison: a call URL and the processes that serve its calls."""

    name: str
    url: str
    processes: list[subprocess.Popen[bytes]]
    ready_s: float = 0.0
    turns: list[dict[str, float | None]] = field(default_factory=list)
    """Per caller turn: milestone → ms after the caller's last speech frame, plus `first`."""
    greeting_ms: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    rss_peak_mb: list[float] = field(default_factory=list)
    rss_added_mb: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    extra_pids: list[int] = field(default_factory=list)
    """Processes the server started itself (our node's bundled LLM server)."""

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes] + self.extra_pids


STARTED: list[subprocess.Popen[bytes]] = []
"""Every process this benchmark started, ended at its end (even one that never became ready)."""


def start(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    STARTED.append(process)
    return process


CHILDREN: list[int] = []
"""Processes those started (our node's LLM server): ended too if their parent left them."""


def stop_all() -> None:
    for process in STARTED:
        process.terminate()
    for process in STARTED:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for pid in CHILDREN:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def start_llm(env: dict[str, str], extra: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    """A bundled Ollama-API server (llama.cpp on Qwen2.5-Coder 0.5B), once ready; and its URL."""
    port = free_port()
    process = start(
        [sys.executable, "-m", "ai_services.ollama_api", "--port", str(port), *extra], env
    )
    wait_ready(f"http://127.0.0.1:{port}/readyz", process)
    return process, f"http://127.0.0.1:{port}"


def wait_warm(llm_url: str, timeout: float = 300) -> None:
    """Until the node's LLM warm-up has run (one generation finished on its LLM server).

    The node is ready before its warm-up ends (a call arriving sooner queues behind it); the
    benchmark measures the node warmed, as every call after its first seconds finds it.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = httpx.get(f"{llm_url}/metrics", timeout=5).text
        done = [line for line in text.splitlines() if line.startswith("ai_service_requests_total")]
        if any('endpoint="generation"' in line for line in done):
            return
        time.sleep(0.2)
    raise TimeoutError(f"{llm_url}: no warm-up generation within {timeout} s")


def children(pid: int) -> list[int]:
    """The child processes of `pid` (Linux /proc)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def start_ours(env: dict[str, str], overrides: dict[str, str], name: str = "ours") -> Server:
    """The media node as `make run` starts it: it serves its own LLM (the bundled server, its
    child process, with the node's thread default) on a free loopback port."""
    port, llm_port = free_port(), free_port()
    llm_url = f"http://127.0.0.1:{llm_port}"
    node_env = {
        **env,
        "VC_GENERAL_HTTP_PORT": str(port),
        "VC_GENERAL_LOG_LEVEL": "WARNING",
        "VC_LLM_URL": llm_url,
        **overrides,
    }
    node = start([sys.executable, "-m", "media_node", "run"], node_env)
    server = Server(name, f"ws://127.0.0.1:{port}/twilio/stream", [node])
    server.ready_s = wait_ready(f"http://127.0.0.1:{port}/readyz", node)
    wait_warm(llm_url)
    server.extra_pids = children(node.pid)
    CHILDREN.extend(server.extra_pids)
    return server


def start_baseline(env: dict[str, str], llm_args: list[str]) -> Server:
    llm, llm_url = start_llm(env, llm_args)
    port = free_port()
    command = [sys.executable, "-m", "benchmarks.pipecat_baseline", "--port", str(port)]
    bot = start([*command, "--llm-url", llm_url, *llm_args], env)  # its Whisper's device
    server = Server("baseline", f"ws://127.0.0.1:{port}/ws", [bot, llm])
    server.ready_s = wait_ready(f"http://127.0.0.1:{port}/healthz", bot)
    return server


def answering_turn(server_turns: list[dict[str, Any]], start: float, end: float) -> dict | None:
    """The server's turn for caller speech sent in [start, end): the last one begun then (a pause
    inside the utterance may have made two)."""
    inside = [t for t in server_turns if t.get("speech_started") and start <= t["speech_started"]]
    inside = [t for t in inside if t["speech_started"] < end]
    return inside[-1] if inside else None


def turn_milestones(result: CallResult) -> list[dict[str, float | None]]:
    """Per caller turn: each `CHAIN` milestone in ms after the caller's last speech frame."""
    server_turns = (result.server_record or {}).get("turns", [])
    rows = []
    for index, turn in enumerate(result.turns):
        end = result.turns[index + 1].sent_at if index + 1 < len(result.turns) else float("inf")
        server = answering_turn(server_turns, turn.sent_at, end) or {}
        row: dict[str, float | None] = {"first": float(index == 0)}
        for key, _ in CHAIN:
            at = {"speech_end": turn.speech_end_at, "heard": turn.first_bot_audio_at}.get(
                key, server.get(key)
            )
            row[key] = None if at is None else (at - turn.speech_end_at) * 1000
        rows.append(row)
    return rows


async def place(server: Server, audio: list[Path]) -> None:
    """One call into `server`: its turns, greeting time, CPU and memory."""
    before_cpu, before_rss = cpu_seconds(server.pids), rss_mb(server.pids)
    with PeakRss(server.pids) as rss:
        result = await place_call(CallerOptions(audio=audio, url=server.url, answer_timeout=60))
    server.cpu_s.append(cpu_seconds(server.pids) - before_cpu)
    server.rss_peak_mb.append(rss.peak)
    server.rss_added_mb.append(rss.peak - before_rss)
    if not result.ok:
        server.failures.append(result.error or "no bot audio")
    if result.first_audio_at is not None:
        server.greeting_ms.append((result.first_audio_at - result.started_at) * 1000)
    server.turns += turn_milestones(result)


def between(turns: list[dict], start: str, end: str, first: bool | None = None) -> list[float]:
    """Milliseconds from milestone `start` to `end` over `turns` (first turns only, later only)."""
    return [
        t[end] - t[start]
        for t in turns
        if t.get(start) is not None
        and t.get(end) is not None
        and (first is None or bool(t["first"]) == first)
    ]


def llm_start(turn: dict) -> str:
    """The LLM starts at the turn's end (at its transcript where no turn end was seen)."""
    return "turn_end_at" if turn.get("turn_end_at") is not None else "transcript_at"


def llm_first_token(turns: list[dict], first: bool) -> list[float]:
    return [
        t["llm_first_token_at"] - t[llm_start(t)]
        for t in turns
        if t.get("llm_first_token_at") is not None
        and t.get(llm_start(t)) is not None
        and bool(t["first"]) == first
    ]


def p50(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def p95(values: list[float]) -> float | None:
    return percentile(values, 95) if values else None


Row = tuple[str, str, Callable[[Server], float | None]]


def stage(start: str, end: str, pct: int = 50) -> Callable[[Server], float | None]:
    """p50 (or p95) of milestone `start` → `end` over a server's turns."""
    return lambda s: (p50 if pct == 50 else p95)(between(s.turns, start, end))


def median_of(values: Callable[[Server], list[float]]) -> Callable[[Server], float | None]:
    return lambda s: p50(values(s))


def first_to_later(s: Server) -> float | None:
    first, later = p50(llm_first_token(s.turns, True)), p50(llm_first_token(s.turns, False))
    return first / later if first is not None and later else None


def rows() -> list[Row]:
    """(label, unit, value of one server) of the comparison table."""
    return [
        ("STT: VAD stop → transcript, p50", "ms", stage("speech_stopped", "transcript_at")),
        ("turn end after VAD stop, p50", "ms", stage("speech_stopped", "turn_end_at")),
        (
            "LLM first token, first turn (turn end → token), p50",
            "ms",
            median_of(lambda s: llm_first_token(s.turns, True)),
        ),
        (
            "LLM first token, later turns, p50",
            "ms",
            median_of(lambda s: llm_first_token(s.turns, False)),
        ),
        ("first-turn LLM first token ÷ later turns", "×", first_to_later),
        (
            "first token → first clause to TTS, p50",
            "ms",
            stage("llm_first_token_at", "first_clause_at"),
        ),
        (
            "TTS first audio (first token → audio), p50",
            "ms",
            stage("llm_first_token_at", "tts_first_audio_at"),
        ),
        ("wire voice-to-voice p50", "ms", stage("speech_end", "heard")),
        ("wire voice-to-voice p95", "ms", stage("speech_end", "heard", 95)),
        ("greeting after connect, p50", "ms", median_of(lambda s: s.greeting_ms)),
        ("CPU per call (server + its LLM server), p50", "s", median_of(lambda s: s.cpu_s)),
        (
            "RSS during a call (server + its LLM server), p50",
            "MB",
            median_of(lambda s: s.rss_peak_mb),
        ),
        ("RSS added by a call, p50", "MB", median_of(lambda s: s.rss_added_mb)),
        ("process start → ready", "ms", lambda s: s.ready_s * 1000),
    ]


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "×":
        return f"{value:.2f}"
    return f"{value:.1f}" if unit == "s" else f"{value:.0f}"


def comparison(servers: list[Server]) -> list[str]:
    """One column per server; the last column is ours ÷ plain Pipecat when it ran."""
    base = next((s for s in servers if s.name == "baseline"), None)
    names = ["plain Pipecat" if s is base else s.name for s in servers]
    head = "| stage | unit | " + " | ".join(names) + " |" + (" ours / Pipecat |" if base else "")
    lines = [head, "|---|---|" + "---:|" * (len(servers) + (1 if base else 0))]
    for label, unit, value in rows():
        values = [value(s) for s in servers]
        cells = [label, unit, *(fmt(v, unit) for v in values)]
        if base is not None:
            mine, theirs = values[0], value(base)
            cells.append(f"{mine / theirs:.2f}" if mine is not None and theirs else "n/a")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


TARGETS = (
    ("wire voice-to-voice p50", 800.0, "ms"),
    ("wire voice-to-voice p95", 1200.0, "ms"),
    ("first-turn LLM first token ÷ later turns", 1.3, "×"),
)
"""The goals for a single call on this 2-core machine (WER: benchmarks/results/word_accuracy.md)."""


def verdicts(ours: Server) -> list[str]:
    """Each target against our node's figure: met or not."""
    values = {label: value for label, _, value in rows()}
    lines = []
    for label, limit, unit in TARGETS:
        figure = values[label](ours)
        verdict = "n/a" if figure is None else "met" if figure <= limit else "not met"
        lines.append(
            f"- {label} ≤ {fmt(limit, unit)} {unit}: {fmt(figure, unit)} {unit}, {verdict}"
        )
    return lines


def profile(servers: list[Server]) -> list[str]:
    """Each milestone's p50 / p95 after the caller's last speech frame, per server."""
    head = "| milestone | " + " | ".join(f"{s.name} p50 | {s.name} p95" for s in servers) + " |"
    lines = [head, "|---|" + "---:|---:|" * len(servers)]
    for key, label in CHAIN[1:]:
        cells = []
        for server in servers:
            values = between(server.turns, "speech_end", key)
            cells += [fmt(p50(values), "ms"), fmt(p95(values), "ms")]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def add_device_flag(parser: argparse.ArgumentParser) -> Callable[[Any], tuple[dict, list, str]]:
    """`--device` where `benchmarks.devices` is available: (node env, server args, context).

    `auto` is what the servers do unasked, so only an explicit device is passed on.
    """
    try:
        from benchmarks import devices
    except ImportError:
        return lambda _args: ({}, [], "")
    devices.add_device_argument(parser)
    return lambda args: (
        {} if args.device == "auto" else devices.node_env(args.device),
        [] if args.device == "auto" else devices.server_args(args.device),
        f", {devices.describe(args.device)}",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=5, help="calls into each server")
    parser.add_argument("--env", action="append", default=[], help="VC_KEY=VALUE for our node")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="NAME:VC_KEY=VALUE,... another configuration of our node, called in turn with the "
        "others",
    )
    parser.add_argument("--no-baseline", action="store_true", help="our node alone")
    parser.add_argument("--no-write", action="store_true", help="print only (experiments)")
    device_options = add_device_flag(parser)
    args = parser.parse_args()
    overrides = dict(kv.split("=", 1) for kv in args.env)
    device_env, device_args, device_text = device_options(args)
    work = Path(tempfile.mkdtemp(prefix="v2v-"))
    clips = [[speak(q, work) for q in QUESTIONS[i % len(QUESTIONS)]] for i in range(args.calls)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("VC_")}
    llm_args = device_args
    run_context = RunContext("voice_to_voice")
    servers: list[Server] = []
    try:
        servers.append(start_ours(env, {**device_env, **overrides}))
        for spec in args.variant:
            name, _, assignments = spec.partition(":")
            settings = dict(kv.split("=", 1) for kv in assignments.split(",") if kv)
            servers.append(start_ours(env, {**device_env, **overrides, **settings}, name))
        if not args.no_baseline:
            servers.append(start_baseline(env, llm_args))

        async def run() -> None:
            for index, audio in enumerate(clips):
                order = servers if index % 2 == 0 else servers[::-1]
                for server in order:
                    await place(server, audio)
                load = os.getloadavg()[0]
                print(f"  call {index + 1}/{len(clips)} done (load {load:.2f})", flush=True)

        asyncio.run(run())
    finally:
        stop_all()
    turns = len(servers[0].turns)
    context = run_context.line(
        f"{args.calls} scripted calls × {len(QUESTIONS[0])} turns into each server ({turns} turns "
        "of ours), alternating one call at a time",
        f"Whisper tiny.en int8 + Qwen2.5-Coder 0.5B Q4_K_M + Piper joe{device_text}",
        *([f"ours with {overrides}"] if overrides else []),
        *([f"variants {args.variant}"] if args.variant else []),
    )
    failures = [f"{s.name}: {f}" for s in servers for f in s.failures]
    body = "\n".join(
        [
            *comparison(servers),
            "",
            "Where the time goes: each milestone after the caller's last speech frame (ms).",
            "",
            *profile(servers),
            *(["", f"Failed calls: {failures}"] if failures else []),
            "",
            "Targets (ours, single calls):",
            "",
            *verdicts(servers[0]),
        ]
    )
    print(f"{context}\n\n{body}")
    if not args.no_write:
        title = "Voice-to-voice: our node and plain Pipecat on local models"
        write_results(RESULTS, title, context, body)


if __name__ == "__main__":
    main()
