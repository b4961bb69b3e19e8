"""Silero voice activity detection for many calls at once.

Pipecat's `SileroVADAnalyzer` gives every call its own ONNX session (~100 ms of CPU and ~10 MB
to create) and its own thread, and hops to that thread for every 20 ms audio frame. With dozens
of calls in one process those threads fight the event loop for the GIL, and that fight, not the
model, is what made the connector's latency climb with load.

Here one process-wide engine owns one ONNX session and one thread. Calls hand it their 32 ms
windows; the thread scores every window waiting at that moment as one batch (Silero's batch axis
keeps each call's recurrent state separate, so a batch scores exactly what single calls would)
and ONNX runs without the GIL, on the second core. Under load, 50 windows cost about as much as
14 scored alone. Volume gating uses the incremental `LoudnessTracker`; the VAD state machine,
the model-reset policy and every parameter are Pipecat's.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from dataclasses import dataclass
from importlib import resources

import numpy as np
from loguru import logger
from pipecat.audio.utils import exp_smoothing
from pipecat.audio.vad import silero as pipecat_silero
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADParams, VADState

from voice_connector.audio.loudness import LoudnessTracker
from voice_connector.services.shared_models import shared

SAMPLE_RATES = (8000, 16000)
GATHER_SECS = 0.004
"""After the first waiting window, how long the engine waits for more to join its batch. Bounds
the delay added to a VAD decision (its own stop wait is 200 ms); below it, batches stay small."""


def window_samples(sample_rate: int) -> int:
    """Samples per Silero window (32 ms) at `sample_rate`; only 8 and 16 kHz are supported."""
    if sample_rate not in SAMPLE_RATES:
        raise ValueError(f"Silero VAD runs at 8000 or 16000 Hz, not {sample_rate}")
    return 512 if sample_rate == 16000 else 256


class SileroStream:
    """One call's Silero state: the recurrent state and the audio context before its next window."""

    def __init__(self, sample_rate: int) -> None:
        self.window = window_samples(sample_rate)
        self._context_size = 64 if sample_rate == 16000 else 32
        self.reset()

    def reset(self) -> None:
        self.state = np.zeros((2, 1, 128), dtype=np.float32)
        self.context = np.zeros((1, self._context_size), dtype=np.float32)

    def model_input(self, window: np.ndarray) -> np.ndarray:
        return np.concatenate((self.context, window[None, :]), axis=1)

    def advance(self, model_input: np.ndarray, state: np.ndarray) -> None:
        self.context = model_input[:, -self._context_size :]
        self.state = state


@dataclass
class _Request:
    stream: SileroStream
    windows: list[np.ndarray]
    future: asyncio.Future[list[float]]
    loop: asyncio.AbstractEventLoop


class SileroBatchEngine:
    """One Silero ONNX session and one thread scoring the windows of every call in the process."""

    def __init__(self, sample_rate: int) -> None:
        import onnxruntime

        window_samples(sample_rate)  # a supported rate
        self.sample_rate = sample_rate
        options = onnxruntime.SessionOptions()
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = 1
        model = resources.files("pipecat.audio.vad.data").joinpath("silero_vad.onnx")
        self._session = onnxruntime.InferenceSession(
            str(model), providers=["CPUExecutionProvider"], sess_options=options
        )
        self._sr = np.array(sample_rate, dtype=np.int64)
        self._pending: list[_Request] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self.batches = 0
        self.windows_scored = 0
        self._closed = False
        self._thread = threading.Thread(
            target=self._serve, name=f"silero-vad-{sample_rate}", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop the thread once what is waiting has been scored (the shared engine never closes)."""
        self._closed = True
        self._wake.set()
        self._thread.join()

    async def score(self, stream: SileroStream, windows: list[np.ndarray]) -> list[float]:
        """Speech confidence of each window of one stream, in order."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[float]] = loop.create_future()
        with self._lock:
            self._pending.append(_Request(stream, windows, future, loop))
        self._wake.set()
        return await future

    def _serve(self) -> None:
        while not self._closed:
            self._wake.wait()
            time.sleep(GATHER_SECS)  # let the other calls' windows join the batch
            self._wake.clear()
            with self._lock:
                batch, self._pending = self._pending, []
            if batch:
                self._run(batch)

    def _run(self, batch: list[_Request]) -> None:
        scores: list[list[float]] = [[] for _ in batch]
        error: Exception | None = None
        try:
            for step in range(max(len(r.windows) for r in batch)):
                live = [i for i, r in enumerate(batch) if step < len(r.windows)]
                confidences = self._infer([batch[i] for i in live], step)
                for i, confidence in zip(live, confidences, strict=True):
                    scores[i].append(confidence)
        except Exception as e:  # a broken model must not take the calls with it
            error = e
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Request, list[float]]]] = {}
        for request, result in zip(batch, scores, strict=True):
            by_loop.setdefault(request.loop, []).append((request, result))
        for loop, results in by_loop.items():
            loop.call_soon_threadsafe(_resolve, results, error)

    def _infer(self, requests: list[_Request], step: int) -> list[float]:
        inputs = [r.stream.model_input(r.windows[step]) for r in requests]
        stacked = np.concatenate(inputs, axis=0)
        states = np.concatenate([r.stream.state for r in requests], axis=1)
        out, new_state = self._session.run(
            None, {"input": stacked, "state": states, "sr": self._sr}
        )
        for i, request in enumerate(requests):
            request.stream.advance(inputs[i], new_state[:, i : i + 1, :])
        self.batches += 1
        self.windows_scored += len(requests)
        return [float(v) for v in out[:, 0]]


def _resolve(results: list[tuple[_Request, list[float]]], error: Exception | None) -> None:
    for request, scores in results:
        if request.future.done():  # the call ended while its window was being scored
            continue
        if error is not None:
            request.future.set_exception(error)
        else:
            request.future.set_result(scores)


def silero_engine(sample_rate: int) -> SileroBatchEngine:
    """The process's engine for `sample_rate` (created on first use)."""
    return shared("silero_vad", (str(sample_rate),), lambda: SileroBatchEngine(sample_rate))


class BatchedSileroVADAnalyzer(VADAnalyzer):
    """Pipecat's Silero VAD, scored by the process-wide `SileroBatchEngine`.

    Drop-in for `SileroVADAnalyzer`: same parameters, state machine and reset policy; no
    per-call session or thread.
    """

    def __init__(self, *, sample_rate: int | None = None, params: VADParams | None = None):
        super().__init__(sample_rate=sample_rate, params=params)
        self._executor.shutdown(wait=False)  # the base class's per-call thread: not used
        self._stream: SileroStream | None = None
        self._loudness: LoudnessTracker | None = None
        self._scores: deque[float] = deque()
        self._windows_since_reset = 0
        self._low_confidence_windows = 0

    def set_sample_rate(self, sample_rate: int) -> None:
        window_samples(self._init_sample_rate or sample_rate)  # refuse other rates at the start
        super().set_sample_rate(sample_rate)
        self._stream = SileroStream(self.sample_rate)
        self._loudness = LoudnessTracker(self.sample_rate)

    def num_frames_required(self) -> int:
        return window_samples(self.sample_rate)

    async def analyze_audio(self, buffer: bytes) -> VADState:
        """Score the whole windows this buffer completes, then run Pipecat's state machine."""
        assert self._stream is not None, "set_sample_rate() comes first (the StartFrame)"
        pending = len(self._vad_buffer) + len(buffer)
        whole = pending // self._vad_frames_num_bytes
        if whole:
            audio = (self._vad_buffer + buffer)[: whole * self._vad_frames_num_bytes]
            samples = np.frombuffer(audio, dtype=np.int16).astype(np.float32) / 32768.0
            windows = list(samples.reshape(whole, self._stream.window))
            try:
                engine = silero_engine(self.sample_rate)
                self._scores.extend(await engine.score(self._stream, windows))
            except Exception as e:
                logger.error(f"Silero VAD failed, scoring the audio as silence: {e}")
                self._scores.extend([0.0] * whole)
        return self._run_analyzer(buffer)

    def voice_confidence(self, buffer: bytes) -> float:
        """The score `analyze_audio` fetched for this window (windows come in order)."""
        confidence = self._scores.popleft() if self._scores else 0.0
        self._maybe_reset_model(confidence)
        return confidence

    def _get_smoothed_volume(self, audio: bytes) -> float:
        assert self._loudness is not None
        return exp_smoothing(
            self._loudness.update(audio), self._prev_volume, self._smoothing_factor
        )

    def _maybe_reset_model(self, confidence: float) -> None:
        """Pipecat's policy: reset the model state every ~2 s of clear non-speech."""
        self._windows_since_reset += 1
        if confidence < pipecat_silero._MODEL_RESET_MAX_CONFIDENCE:
            self._low_confidence_windows += 1
        else:
            self._low_confidence_windows = 0
        assert self._stream is not None
        due = (
            self._windows_since_reset * self._stream.window
            >= pipecat_silero._MODEL_RESET_INTERVAL_SECS * self.sample_rate
        )
        if (
            due
            and self._vad_state == VADState.QUIET
            and self._low_confidence_windows >= pipecat_silero._MODEL_RESET_LOW_CONFIDENCE_WINDOWS
        ):
            self._stream.reset()
            self._windows_since_reset = 0
