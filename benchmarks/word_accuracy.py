"""Word accuracy (WER) of our call path against a plain Pipecat bot on the same Whisper model.

Run: `python -m benchmarks.word_accuracy [--only N] [--no-factors] [--device D] [--env K=V ...]`.

Utterances: the recorded speech of Debian's `pocketsphinx-testdata` (LibriVox read speech and
spoken card names, with their reference transcripts), plus a few espeak-ng and Piper sentences.
Each is sent, 8 kHz μ-law in 20 ms chunks at real-time pace, by the simulated Twilio caller as
one call to two servers started here, turn by turn alternately:

- ours: the media node (Twilio transport, VAD, our STT service on Whisper tiny.en int8) with an
  instant LLM and TTS (`tests.support.instant_node --real-stt`), as configured (smart-turn,
  fitted Whisper window), on faster-whisper's full 30 s window, and with turns ended by a fixed
  silence (`OUR_VARIANTS`);
- baseline: `benchmarks.pipecat_baseline`, Pipecat's own Twilio serializer and WhisperSTTService.

WER is jiwer's over the normalized words (case and punctuation ignored), per utterance and for the
whole set. The factor tables decode the same 8 kHz audio straight through the model, to separate
the causes: upsampler (with its measured delay) × decode beam, and the decode window; no VAD,
no call.
Results: benchmarks/results/word_accuracy.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jiwer
import numpy as np

from benchmarks.context import RESULTS_DIR, RunContext, write_results
from benchmarks.devices import add_device_argument, describe
from benchmarks.voice_to_voice import wait_ready
from tests.support.servers import free_port
from tests.support.speech import normalize, speak
from voice_connector.audio.g711 import ulaw_decode, ulaw_encode
from voice_connector.caller.twilio_caller import CallerOptions, load_mulaw, place_call, write_wav

RESULTS = RESULTS_DIR / "word_accuracy.md"
OUR_VARIANTS = {
    "ours": {},
    "ours, full window": {"VC_STT_DECODE_WINDOW": "full"},
    "ours, timeout turns": {"VC_PIPELINE_TURN_DETECTION": "timeout"},
}
"""Our node as configured, with Whisper on its full 30 s window (`[stt] decode_window`), and
with turns ended by a fixed silence instead of smart-turn (`[pipeline] turn_detection`)."""
EARLY_CUTS: dict[str, list[bool]] = {}
"""Per server, per utterance: whether the turn was cut early (see `transcribe_call`)."""
POCKETSPHINX = Path("/usr/share/pocketsphinx/test/data")
SYNTHETIC = [
    ("piper", "What is the capital of France?"),
    ("piper", "How many days are in a week?"),
    ("piper", "Can you recommend a good book?"),
    ("espeak", "Please transfer me to the billing department."),
    ("espeak", "My account number is four five six seven."),
]
LEAD_IN_SECS = 1.5
"""Line silence before each utterance, as a caller's pause after the call connects (the plain bot
loads its Whisper model per call and misses speech that starts sooner)."""
SPOKEN_FORMS = {
    **dict(
        zip(
            "0 1 2 3 4 5 6 7 8 9 10".split(),
            "zero one two three four five six seven eight nine ten".split(),
            strict=True,
        )
    ),
    "mr": "mister",
}
"""Whisper writes numbers as digits, the references spell them: one form for both sides."""


@dataclass
class Utterance:
    name: str
    reference: str
    wav: Path


def _transcripts(listing: Path) -> list[tuple[str, str]]:
    """(file id, reference) from a Sphinx `.transcription` file: `<s> words </s> (id)`."""
    pairs = []
    for line in listing.read_text().splitlines():
        match = re.match(r"<s>\s*(.*?)\s*</s>\s*\((.*)\)", line)
        if match:
            pairs.append((match[2], match[1]))
    return pairs


def _espeak(text: str, path: Path) -> Path:
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(path), text], check=True)
    return path


def utterances(work: Path) -> list[Utterance]:
    """The fixed set, each written as an 8 kHz WAV with a short lead-in of silence."""
    sources: list[tuple[str, str, Path]] = []
    for folder, listing in (("librivox", "transcription"), ("cards", "cards.transcription")):
        for file_id, reference in _transcripts(POCKETSPHINX / folder / listing):
            sources.append(
                (f"{folder}/{file_id[-4:]}", reference, POCKETSPHINX / folder / f"{file_id}.wav")
            )
    if not sources:
        raise SystemExit(
            "pocketsphinx-testdata is missing: apt-get install -y pocketsphinx-testdata"
        )
    for index, (engine, text) in enumerate(SYNTHETIC):
        if engine == "piper":
            path = speak(text, work / "piper")
        elif shutil.which("espeak-ng"):
            path = _espeak(text, work / f"espeak-{index}.wav")
        else:
            continue
        sources.append((f"{engine}/{index}", text, path))
    lead_in = ulaw_encode(np.zeros(int(8000 * LEAD_IN_SECS), dtype=np.int16))
    result = []
    for name, reference, source in sources:
        wav = work / (re.sub(r"\W+", "-", name) + ".wav")
        write_wav(wav, lead_in + load_mulaw(source))
        result.append(Utterance(name, reference, wav))
    return result


def words(text: str) -> str:
    """Normalized words (tests.support.speech), digits and "Mr" spelled out."""
    return " ".join(SPOKEN_FORMS.get(w, w) for w in normalize(text).split())


def corpus_wer(references: list[str], hypotheses: list[str]) -> float:
    return jiwer.wer([words(r) for r in references], [words(h) or "<empty>" for h in hypotheses])


async def transcribe_call(url: str, wav: Path, early_cuts: list[bool]) -> str:
    """One Twilio call speaking `wav`; what the server heard (all its turns, in order).

    Whether the server cut the turn early goes to `early_cuts`: its answer began before the
    caller finished the utterance, or it made more than one turn of it.
    """
    result = await place_call(
        CallerOptions(audio=[wav], url=url, wait_for_greeting=False, answer_timeout=8)
    )
    turns = (result.server_record or {}).get("turns", [])
    finished = result.turns[0].last_frame_at if result.turns else 0.0
    answered_early = any(at < finished for at, _ in result.media_arrivals)
    early_cuts.append(answered_early or len(turns) > 1)
    return " ".join(t.get("user_text") or "" for t in turns).strip()


def start(command: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    """A server process, once it answers (`/healthz`: our node's readiness would wait for an
    LLM it does not use here)."""
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_ready(f"http://127.0.0.1:{port}/healthz", process)
    return process


def call_path(
    items: list[Utterance], extra_env: dict[str, str], device: str = "auto"
) -> dict[str, list[str]]:
    """Each utterance called into every variant of our node, then the baseline; what each
    heard, by server name (`OUR_VARIANTS` keys and "baseline")."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VC_")}
    urls: dict[str, str] = {}
    processes = []
    try:
        for name, variant_env in OUR_VARIANTS.items():
            port = free_port()
            command = [sys.executable, "-m", "tests.support.instant_node", "--real-stt"]
            node_env = {
                **env,
                "VC_LLM_GREETING": "",
                "VC_STT_DEVICE": device,
                **variant_env,
                **extra_env,
            }
            processes.append(start([*command, "--port", str(port)], node_env, port))
            urls[name] = f"ws://127.0.0.1:{port}/twilio/stream"
        port = free_port()
        command = [sys.executable, "-m", "benchmarks.pipecat_baseline", "--port", str(port)]
        command += ["--device", device]
        processes.append(start(command, env, port))
        urls["baseline"] = f"ws://127.0.0.1:{port}/ws"
        heard: dict[str, list[str]] = {name: [] for name in urls}

        async def run() -> None:
            for item in items:
                for name, url in urls.items():
                    cuts = EARLY_CUTS.setdefault(name, [])
                    heard[name].append(await transcribe_call(url, item.wav, cuts))
                said = " ".join(f"{name} [{texts[-1]}]" for name, texts in heard.items())
                print(f"  {item.name}: {said}", flush=True)

        asyncio.run(run())
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
    return heard


def upsampled(
    items: list[Utterance], make: Callable[[], Callable[[np.ndarray], np.ndarray]] | None = None
) -> list[np.ndarray]:
    """Each utterance's 8 kHz audio upsampled to 16 kHz in 20 ms chunks by a fresh `make()`
    (default: our 32-tap FIR, as our node hands it to Whisper), float, with 0.5 s of line
    silence after it."""
    from benchmarks.resampler import Fir

    result = []
    for item in items:
        x = ulaw_decode(load_mulaw(item.wav)).astype(np.int16)
        up = make() if make else Fir(True, 32)
        y = np.concatenate([up(x[i : i + 160]) for i in range(0, len(x), 160)])
        result.append(np.concatenate([y.astype(np.float32) / 32768, np.zeros(8000, np.float32)]))
    return result


def windows(items: list[Utterance], device: str) -> list[str]:
    """WER and decode time on faster-whisper's full 30 s window and on our fitted one
    (`[stt] decode_window`), beam 5, and how many fitted decodes were redone on the full one."""
    from voice_connector.services import shared_models
    from voice_connector.services.stt.fitted_window import FittedWindowWhisper
    from voice_connector_core import models

    model = shared_models.whisper_model(models.whisper_tiny_en(), "int8", device)
    references = [i.reference for i in items]
    audio = upsampled(items)
    lines = [
        "| decode window | WER | decode p50 | decode p95 | redone on 30 s |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, fitted in (("full 30 s (faster-whisper)", False), ("fitted (ours)", True)):
        whisper = FittedWindowWhisper(model, beam_size=5, fitted=fitted)
        hypotheses, seconds = [], []
        for clip in audio:
            started = time.perf_counter()
            segments, _ = whisper.transcribe(clip, language="en")
            seconds.append(time.perf_counter() - started)
            hypotheses.append(" ".join(s.text for s in segments))
        p50, p95 = (float(np.percentile(seconds, q)) * 1000 for q in (50, 95))
        lines.append(
            f"| {name} | {corpus_wer(references, hypotheses):.3f} | {p50:.0f} ms | {p95:.0f} ms "
            f"| {whisper.fallbacks}/{len(audio)} |"
        )
    return lines


def factors(items: list[Utterance], device: str = "auto") -> list[str]:
    """WER decoding the 8 kHz audio straight through the model: upsampler × beam, with the
    upsampler's delay and the decode time (median per utterance, this busy machine)."""
    from benchmarks.resampler import Fir, Soxr, _delay_ms
    from voice_connector.services import shared_models
    from voice_connector_core import models

    model = shared_models.whisper_model(models.whisper_tiny_en(), "int8", device)
    upsamplers: dict[str, Callable[[], Callable[[np.ndarray], np.ndarray]]] = {
        "soxr VHQ (Pipecat)": lambda: Soxr(8000, 16000, "VHQ"),
        "FIR 32 taps (ours)": lambda: Fir(True, 32),
        "FIR 64 taps": lambda: Fir(True, 64),
    }
    references = [i.reference for i in items]
    lines = [
        "| upsampler 8→16 kHz | delay | WER beam 1 | decode beam 1 | WER beam 5 | decode beam 5 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, make in upsamplers.items():
        row = [name, f"{_delay_ms(make, 8000, 16000):.1f} ms"]
        clips = upsampled(items, make)
        for beam in (1, 5):
            hypotheses, seconds = [], []
            for audio in clips:
                started = time.perf_counter()
                segments, _ = model.transcribe(
                    audio, language="en", beam_size=beam, vad_filter=False
                )
                hypotheses.append(" ".join(s.text for s in segments))
                seconds.append(time.perf_counter() - started)
            row += [
                f"{corpus_wer(references, hypotheses):.3f}",
                f"{statistics.median(seconds) * 1000:.0f} ms",
            ]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def details(items: list[Utterance], extra_env: dict[str, str], device_text: str) -> list[str]:
    """What the context line says about this run, after the machine."""
    said = [
        f"{len(items)} utterances, one Twilio call each (8 kHz μ-law, real time), Whisper "
        f"tiny.en int8, {device_text}"
    ]
    return said + ([f"ours with {extra_env}"] if extra_env else [])


def report(items: list[Utterance], heard: dict[str, list[str]]) -> list[str]:
    references = [i.reference for i in items]
    base = corpus_wer(references, heard["baseline"])
    ours = corpus_wer(references, heard["ours"])
    verdict = "met" if ours <= base else "not met"
    lines = [
        f"Target: our WER no worse than plain Pipecat's on the same calls: {verdict} "
        f"({ours:.3f} against {base:.3f}).",
        "",
        "| server | WER | ratio to plain Pipecat | exactly right | early cuts |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, texts in heard.items():
        wer = corpus_wer(references, texts)
        exact = sum(words(h) == words(r) for h, r in zip(texts, references, strict=True))
        ratio = f"{wer / base:.2f}" if base else "n/a"
        cuts = sum(EARLY_CUTS.get(name, []))
        label = "plain Pipecat" if name == "baseline" else name
        lines.append(
            f"| {label} | {wer:.3f} | {ratio} | {exact}/{len(items)} | {cuts}/{len(items)} |"
        )
    lines += [
        "",
        "Early cut: the server's answer began before the caller finished the utterance, or it "
        "made several turns of it (the turn ended while the caller had more to say).",
        "",
        "| utterance | reference | " + " | ".join(f"{n} | WER" for n in heard) + " |",
        "|---|---|" + "---|---:|" * len(heard),
    ]
    for index, item in enumerate(items):
        cells = [
            f"{texts[index]} | {corpus_wer([item.reference], [texts[index]]):.2f}"
            for texts in heard.values()
        ]
        lines.append(f"| {item.name} | {item.reference} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", type=int, default=0, help="the first N utterances (a short run)")
    parser.add_argument("--no-factors", action="store_true", help="skip the factor table")
    parser.add_argument("--env", action="append", default=[], help="VC_KEY=VALUE for our node")
    add_device_argument(parser)
    args = parser.parse_args()
    run = RunContext("word_accuracy")
    extra_env = dict(kv.split("=", 1) for kv in args.env)
    work = Path(tempfile.mkdtemp(prefix="wer-"))
    items = utterances(work)[: args.only or None]
    heard = call_path(items, extra_env, args.device)
    lines = report(items, heard)
    if not args.no_factors:
        lines += [
            "",
            "Straight through the model (no VAD, no call), same audio:",
            "",
            *factors(items, args.device),
            "",
            *windows(items, args.device),
        ]
    text = "\n".join(lines)
    print(text)
    context = run.line(*details(items, extra_env, describe(args.device, ("whisper",))))
    write_results(RESULTS, "Word accuracy: ours vs plain Pipecat", context, text)


if __name__ == "__main__":
    main()
