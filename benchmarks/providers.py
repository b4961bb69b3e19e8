"""Provider latency benchmark: local (in-process) vs remote (network service) for each provider.

One command, prints a table and writes benchmarks/results/providers.md itself (not a test):
    .venv/bin/python -m benchmarks.providers [--repeat 3] [--llm qwen] [--device auto]
The remote services are the real servers from `ai_services`, each started as its own process on a
free loopback port (so their CPU is not billed to this one); the local runs use the same models
in this process. Per provider it reports the latency a caller feels:
  STT      final transcript after the end of speech (Whisper: the whole decode, it is buffered;
           Vosk: the flush, the audio was recognized while it streamed in at real-time pace)
  LLM      time to first token (TTFT) and tokens/s of streamed answers
  TTS      time to the first audio chunk of a sentence
and the Whisper service's throughput with 1, 4 and 16 concurrent requests on this machine.
`--device` places Whisper, llama.cpp and Piper, local and remote alike (Vosk runs on the CPU).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import httpx  # noqa: E402
import numpy as np  # noqa: E402
import websockets  # noqa: E402

from benchmarks.context import RESULTS_DIR, RunContext, write_results  # noqa: E402
from benchmarks.devices import add_device_argument, describe, server_args  # noqa: E402
from tests.support.servers import free_port  # noqa: E402

SENTENCES = [
    "Please transfer me to the billing department.",
    "I would like to book a table for two people tomorrow evening.",
    "What time does the pharmacy open on Sunday?",
]
KOREAN = "하나 둘 셋 넷 다섯 오늘 날씨가 좋네요"
QUESTIONS = ["What is the capital of France?", "Give me one tip for sleeping better."]
RESULTS = RESULTS_DIR / "providers.md"
RATE = 16000
CHUNK = RATE // 10 * 2  # 100 ms of PCM16, as the Vosk client sends


@contextmanager
def service(module: str, *args: str) -> Iterator[str]:
    """`python -m ai_services.<module>` on a free port until ready; yields host:port."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", f"ai_services.{module}", "--port", str(port), "--log-level",
         "warning", *args],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{module} did not become ready")
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def stats(values: list[float]) -> str:
    """`p50 / max` in ms."""
    return f"{statistics.median(values) * 1000:.0f} / {max(values) * 1000:.0f}"


# --------------------------------------------------------------------------- speech


def english() -> list[bytes]:
    from piper import SynthesisConfig

    from ai_services.audio import resample_pcm16
    from voice_connector.services import shared_models
    from voice_connector_core import models

    voice = shared_models.piper_voice(*models.piper_joe_voice())
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    out = []
    for text in SENTENCES:
        pcm = b"".join(c.audio_int16_bytes for c in voice.synthesize(text, config))
        out.append(resample_pcm16(pcm, voice.config.sample_rate, RATE) + b"\0" * RATE)
    return out


def korean() -> bytes:
    import wave

    from ai_services.audio import resample_pcm16

    path = Path("/tmp/vc-bench-ko.wav")
    subprocess.run(["espeak-ng", "-v", "ko", "-s", "150", "-w", str(path), KOREAN], check=True)
    with wave.open(str(path), "rb") as wav:
        return resample_pcm16(wav.readframes(wav.getnframes()), wav.getframerate(), RATE)


# --------------------------------------------------------------------------- STT


def whisper_local(clips: list[bytes], repeat: int, device: str) -> list[float]:
    from voice_connector.services import shared_models
    from voice_connector_core import models

    model = shared_models.whisper_model(models.whisper_tiny_en(), "int8", device)
    list(model.transcribe(np.zeros(RATE, dtype=np.float32), language="en")[0])  # warm-up
    times = []
    for _ in range(repeat):
        for pcm in clips:
            audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
            started = time.perf_counter()
            list(model.transcribe(audio, language="en", beam_size=1, vad_filter=False)[0])
            times.append(time.perf_counter() - started)
    return times


async def whisper_http(base: str, clips: list[bytes], repeat: int) -> list[float]:
    times = []
    async with aiohttp.ClientSession() as session:
        for _ in range(repeat):
            for pcm in clips:
                started = time.perf_counter()
                async with session.post(
                    f"http://{base}/v1/audio/transcriptions", data=pcm,
                    params={"sample_rate": str(RATE), "language": "en"},
                    headers={"Content-Type": "audio/pcm", "X-Call-Id": "bench"},
                ) as response:
                    await response.json()
                times.append(time.perf_counter() - started)
    return times


async def whisper_ws(base: str, clips: list[bytes], repeat: int) -> list[float]:
    """Audio streamed while "speaking"; timed from end_of_utterance to the transcript."""
    times = []
    async with websockets.connect(f"ws://{base}/v1/audio/stream") as ws:
        await ws.send(json.dumps({"sample_rate": RATE, "language": "en"}))
        for _ in range(repeat):
            for pcm in clips:
                for i in range(0, len(pcm), CHUNK):
                    await ws.send(pcm[i : i + CHUNK])
                started = time.perf_counter()
                await ws.send(json.dumps({"type": "end_of_utterance"}))
                await ws.recv()
                times.append(time.perf_counter() - started)
    return times


def vosk_local(model_dir: Path, pcm: bytes, repeat: int) -> list[float]:
    from vosk import KaldiRecognizer

    from voice_connector.services import shared_models

    model = shared_models.vosk_model(model_dir)
    times = []
    for _ in range(repeat):
        rec = KaldiRecognizer(model, float(RATE))
        for i in range(0, len(pcm), CHUNK):
            rec.AcceptWaveform(pcm[i : i + CHUNK])
        started = time.perf_counter()
        rec.FinalResult()
        times.append(time.perf_counter() - started)
    return times


async def vosk_remote(base: str, pcm: bytes, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        async with websockets.connect(f"ws://{base}/") as ws:
            await ws.send(json.dumps({"config": {"sample_rate": RATE}}))
            for i in range(0, len(pcm), CHUNK):
                await ws.send(pcm[i : i + CHUNK])
                await ws.recv()  # one reply per chunk: the recognizer has caught up
            started = time.perf_counter()
            await ws.send('{"reset" : 1}')
            await ws.recv()
            times.append(time.perf_counter() - started)
            await ws.send('{"eof" : 1}')
            await ws.recv()
    return times


async def whisper_throughput(base: str, clip: bytes, concurrency: int) -> tuple[float, float]:
    """(requests/s, p50 latency s) with `concurrency` clients, 2 requests each."""
    latencies: list[float] = []

    async def client(session: aiohttp.ClientSession) -> None:
        for _ in range(2):
            started = time.perf_counter()
            async with session.post(
                f"http://{base}/v1/audio/transcriptions", data=clip,
                params={"sample_rate": str(RATE), "language": "en"},
                headers={"Content-Type": "audio/pcm"},
            ) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"whisper answered {response.status}")
            latencies.append(time.perf_counter() - started)

    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return len(latencies) / wall, statistics.median(latencies)


# --------------------------------------------------------------------------- LLM


async def timed_stream(chunks: Callable[[], Awaitable[list[float]]]) -> tuple[float, float]:
    """(TTFT, tokens/s) from the arrival times of a stream's chunks, relative to its request."""
    arrivals = await chunks()
    ttft = arrivals[0]
    rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else 0.0
    return ttft, rate


async def llama_ws_turn(base: str, question: str) -> list[float]:
    async with websockets.connect(f"ws://{base}/") as ws:
        started = time.perf_counter()
        await ws.send(json.dumps({
            "messages": [{"role": "user", "content": question}], "temperature": 0.2,
            "max_tokens": 60, "stream": True,
        }))
        arrivals = []
        while True:
            data = json.loads(await ws.recv())
            if data.get("done") or "error" in data:
                return arrivals
            if data.get("chunk"):
                arrivals.append(time.perf_counter() - started)


async def ollama_turn(base: str, model: str, question: str) -> list[float]:
    import ollama

    client = ollama.AsyncClient(host=f"http://{base}")
    started = time.perf_counter()
    arrivals = []
    async for chunk in await client.chat(
        model=model, messages=[{"role": "user", "content": question}], stream=True,
        options={"temperature": 0.2, "num_predict": 60},
    ):
        if chunk.message.content:
            arrivals.append(time.perf_counter() - started)
    return arrivals


async def llm_rows(
    gguf: Path, label: str, repeat: int, device: str
) -> list[tuple[str, str, str, str]]:
    rows = []
    for name, module, args in (
        ("Ollama API", "ollama_api", ["--gguf", str(gguf), "--model-name", "bench"]),
        ("Llama WS", "llama_ws_server", ["--gguf", str(gguf)]),
    ):
        with service(module, *args, *server_args(device)) as base:
            results = []
            for _ in range(repeat):
                for question in QUESTIONS:
                    if module == "ollama_api":
                        turn = lambda q=question: ollama_turn(base, "bench", q)  # noqa: E731
                    else:
                        turn = lambda q=question: llama_ws_turn(base, q)  # noqa: E731
                    results.append(await timed_stream(turn))
        ttfts = [t for t, _ in results]
        rates = [r for _, r in results]
        rows.append((f"{name} ({label})", "remote", f"TTFT {stats(ttfts)}",
                     f"{statistics.median(rates):.0f} tok/s"))
    return rows


# --------------------------------------------------------------------------- TTS


def piper_local_first_audio(repeat: int, device: str) -> list[float]:
    from voice_connector.services import shared_models
    from voice_connector_core import models

    voice = shared_models.piper_voice(*models.piper_joe_voice(), device)
    list(voice.synthesize("Warm up."))
    times = []
    for _ in range(repeat):
        for text in SENTENCES:
            started = time.perf_counter()
            next(iter(voice.synthesize(text)))
            times.append(time.perf_counter() - started)
    return times


async def piper_ws_first_audio(base: str, repeat: int) -> list[float]:
    times = []
    async with websockets.connect(f"ws://{base}/tts") as ws:
        for _ in range(repeat):
            for text in SENTENCES:
                started = time.perf_counter()
                await ws.send(json.dumps({"text": text, "format": "pcm16"}))
                first = None
                while True:
                    message = await ws.recv()
                    if isinstance(message, bytes):
                        first = first or time.perf_counter() - started
                    elif json.loads(message).get("type") in ("end", "error"):
                        break
                assert first is not None
                times.append(first)
    return times


# --------------------------------------------------------------------------- main


def vosk_dither_off() -> Path:
    """The bundled Korean model with `--dither=0` (reproducible decodes), linked into /tmp."""
    from voice_connector_core.models import vosk_korean

    source, target = vosk_korean(), Path("/tmp/vc-bench-vosk-model")
    if not target.exists():
        (target / "conf").mkdir(parents=True)
        for item in source.iterdir():
            if item.name != "conf":
                (target / item.name).symlink_to(item.resolve())
        for item in (source / "conf").iterdir():
            text = item.read_text() + ("--dither=0\n" if item.name == "mfcc.conf" else "")
            (target / "conf" / item.name).write_text(text)
    return target


def table(rows: list[tuple[str, str, str, str]]) -> str:
    lines = ["| provider | mode | latency, ms p50 / max | notes |", "|---|---|---|---|"]
    return "\n".join([*lines, *(f"| {' | '.join(row)} |" for row in rows)])


async def measure(
    repeat: int, llm_model: str, device: str
) -> tuple[list[tuple[str, str, str, str]], str]:
    """(latency rows, the Whisper service's throughput table)."""
    from voice_connector_core import models

    rows: list[tuple[str, str, str, str]] = []
    clips, ko = english(), korean()
    vosk_dir = vosk_dither_off()
    on = server_args(device)

    rows.append(("faster-whisper tiny.en", "local",
                 f"final {stats(whisper_local(clips, repeat, device))}",
                 "buffered: decode after the VAD"))
    with service("whisper_service", "--language", "en", "--max-queue", "64", *on) as base:
        await whisper_http(base, clips[:1], 1)  # warm-up
        rows.append(("faster-whisper tiny.en", "remote HTTP",
                     f"final {stats(await whisper_http(base, clips, repeat))}",
                     "raw PCM per utterance (the client)"))
        rows.append(("faster-whisper tiny.en", "remote WS",
                     f"final {stats(await whisper_ws(base, clips, repeat))}",
                     "audio streamed during speech"))
        seconds = len(clips[2]) / 2 / RATE
        throughput = [
            f"Whisper service throughput (tiny.en, 1 worker, a {seconds:.1f} s utterance per "
            "request, 2 requests per client, queue 64):",
            "",
            "| concurrent clients | requests/s | latency p50 s |",
            "|---:|---:|---:|",
        ]
        for n in (1, 4, 16):
            rps, p50 = await whisper_throughput(base, clips[2], n)
            throughput.append(f"| {n} | {rps:.2f} | {p50:.1f} |")
    rows.append(("Vosk ko", "local", f"final {stats(vosk_local(vosk_dir, ko, repeat * 3))}",
                 "flush after real-time streaming"))
    with service("vosk_server", "--model", str(vosk_dir)) as base:
        rows.append(("Vosk ko", "remote", f"final {stats(await vosk_remote(base, ko, repeat * 3))}",
                     "`{\"reset\" : 1}` round trip"))

    gguf = models.qwen_gguf() if llm_model == "qwen" else models.smollm2_gguf()
    rows.extend(await llm_rows(gguf, llm_model, repeat, device))

    rows.append(("Piper joe-medium", "local",
                 f"first audio {stats(piper_local_first_audio(repeat, device))}", "22050 Hz"))
    with service("piper_ws_server", *on) as base:
        await piper_ws_first_audio(base, 1)
        rows.append(("Piper joe-medium", "remote WS",
                     f"first audio {stats(await piper_ws_first_audio(base, repeat))}", "22050 Hz"))
    return rows, "\n".join(throughput)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="rounds over the test utterances")
    parser.add_argument("--llm", choices=["qwen", "smollm2"], default="qwen", help="GGUF served")
    add_device_argument(parser)
    args = parser.parse_args()
    run = RunContext("providers")
    rows, throughput = asyncio.run(measure(args.repeat, args.llm, args.device))
    text = f"{table(rows)}\n\n{throughput}"
    print(text)
    write_results(
        RESULTS,
        "Providers: local vs remote",
        run.line(
            f"{args.repeat} rounds, warm models; remote = the real ai_services servers, each in "
            "its own process on loopback (same cores); the latency a caller feels, ms p50 / max",
            describe(args.device),
        ),
        text,
    )


if __name__ == "__main__":
    main()
