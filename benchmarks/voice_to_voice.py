"""Voice-to-voice latency of scripted Twilio calls on local models, and node start → ready.

Run: `python -m benchmarks.voice_to_voice [--calls 3]`. Starts the bundled Ollama-API server
(Qwen2.5-Coder 0.5B) and the media node (local Whisper tiny.en + Piper joe) as real processes,
places scripted two-turn calls with the simulated Twilio caller, and prints per-stage latencies:

- STT: end of caller speech (VAD stop) → transcript
- LLM TTFT: transcript → first token
- TTS first audio: first token → first synthesized audio
- voice-to-voice (wire): caller's last audio frame sent → first bot audio frame received

Results are written to benchmarks/results/voice_to_voice.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.support.servers import free_port
from tests.support.speech import speak
from voice_connector.caller.twilio_caller import CallerOptions, place_call
from voice_connector.loadtest.runner import percentile

RESULTS = Path(__file__).parent / "results" / "voice_to_voice.md"
QUESTIONS = [
    ("What is the capital of France?", "How many days are in a week?"),
    ("Can you recommend a good book?", "What color is the sky?"),
    ("What is two plus two?", "Say goodbye to me please."),
]
STAGES = ["stt_ms", "llm_ttft_ms", "tts_first_audio_ms", "voice_to_voice_ms"]


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


def table(samples: dict[str, list[float]], ready_s: float, calls: int) -> str:
    lines = [
        f"Scripted calls: {calls} × {len(QUESTIONS[0])} turns on this machine "
        f"({os.cpu_count()} cores), Whisper tiny.en int8 + Qwen2.5-Coder 0.5B Q4_K_M + Piper joe.",
        "",
        "| stage | n | p50 ms | p95 ms | max ms |",
        "|---|---|---|---|---|",
    ]
    for stage in [*STAGES, "wire_voice_to_voice_ms"]:
        values = samples.get(stage, [])
        if values:
            lines.append(
                f"| {stage} | {len(values)} | {statistics.median(values):.0f} | "
                f"{percentile(values, 95):.0f} | {max(values):.0f} |"
            )
    lines.append(f"| process start → /readyz 200 | 1 | {ready_s * 1000:.0f} | | |")
    return "\n".join(lines)


async def run_calls(url: str, clips: list[list[Path]]) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {}
    for audio in clips:
        result = await place_call(CallerOptions(audio=audio, url=url, answer_timeout=60))
        record = result.server_record or {}
        for turn in record.get("turns", []):
            for stage in STAGES:
                if turn.get(stage) is not None:
                    samples.setdefault(stage, []).append(turn[stage])
        for turn in result.turns:
            if turn.voice_to_voice_ms is not None:
                samples.setdefault("wire_voice_to_voice_ms", []).append(turn.voice_to_voice_ms)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--vad-stop-secs", type=float, default=None, help="override the config")
    parser.add_argument("--turn-timeout-secs", type=float, default=None, help="override the config")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="v2v-"))
    clips = [[speak(q, work) for q in QUESTIONS[i % len(QUESTIONS)]] for i in range(args.calls)]
    llm_port, node_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VC_")}
    llm = subprocess.Popen(
        [sys.executable, "-m", "ai_services.ollama_api", "--port", str(llm_port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    node = None
    try:
        wait_ready(f"http://127.0.0.1:{llm_port}/readyz", llm)
        node_env = {
            **env,
            "VC_GENERAL_HTTP_PORT": str(node_port),
            "VC_GENERAL_LOG_LEVEL": "WARNING",
            "VC_LLM_URL": f"http://127.0.0.1:{llm_port}",
        }
        if args.vad_stop_secs is not None:
            node_env["VC_TRANSPORT_VAD_STOP_SECS"] = str(args.vad_stop_secs)
        if args.turn_timeout_secs is not None:
            node_env["VC_TRANSPORT_USER_SPEECH_TIMEOUT_SECS"] = str(args.turn_timeout_secs)
        node = subprocess.Popen(
            [sys.executable, "-m", "media_node.cli", "run", "--no-local-llm"],
            env=node_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        ready_s = wait_ready(f"http://127.0.0.1:{node_port}/readyz", node)
        samples = asyncio.run(run_calls(f"ws://127.0.0.1:{node_port}/twilio/stream", clips))
    finally:
        for process in (node, llm):
            if process is not None:
                process.terminate()
                process.wait(timeout=30)
    report = table(samples, ready_s, args.calls)
    if args.vad_stop_secs is not None or args.turn_timeout_secs is not None:
        report = (
            f"VAD stop {args.vad_stop_secs} s, turn timeout {args.turn_timeout_secs} s\n\n" + report
        )
    print(report)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(f"# Voice-to-voice on local models\n\n{report}\n")


if __name__ == "__main__":
    main()
