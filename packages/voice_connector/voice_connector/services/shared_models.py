"""Process-wide model cache: heavy models load once per process and are shared by all calls.

Loading is thread-safe and timed (the load time is exported as a metric and shown in /readyz),
so the media node can preload at start-up and every later call finds the model warm.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from loguru import logger

from voice_connector_core.devices import Device, resolve

T = TypeVar("T")

_lock = threading.Lock()
_models: dict[tuple[str, ...], Any] = {}
load_seconds: dict[str, float] = {}
"""Seconds each model took to load, by kind ("whisper", "piper", "vosk", "smart_turn"): for
metrics/readiness."""


def shared(kind: str, key: tuple[str, ...], load: Callable[[], T]) -> T:
    """Return the model cached under (kind, *key), loading it once with `load()`."""
    cache_key = (kind, *key)
    model = _models.get(cache_key)
    if model is not None:
        return model
    with _lock:
        model = _models.get(cache_key)
        if model is None:
            started = time.perf_counter()
            model = load()
            elapsed = time.perf_counter() - started
            load_seconds[kind] = elapsed
            logger.info(f"loaded {kind} model {key[0]} in {elapsed:.2f} s")
            _models[cache_key] = model
    return model


def is_loaded(kind: str) -> bool:
    """Whether any model of this kind is in the cache."""
    return any(key[0] == kind for key in _models)


def whisper_model(path: Path, compute_type: str, device: Device = "auto") -> Any:
    """The faster-whisper model at `path`, shared; `auto`: on the GPU when CUDA sees one.

    CTranslate2 resolves `auto` itself (and refuses `cuda` without a device).
    """
    from faster_whisper import WhisperModel

    return shared(
        "whisper",
        (str(path), compute_type, device),
        lambda: WhisperModel(str(path), device=device, compute_type=compute_type),
    )


def piper_voice(model: Path, config: Path, device: Device = "auto") -> Any:
    """The Piper voice at `model` (+ its json config), shared; on CUDA when onnxruntime can."""
    from piper import PiperVoice

    use_cuda = resolve(device, "piper") == "cuda"
    return shared(
        "piper",
        (str(model), str(use_cuda)),
        lambda: PiperVoice.load(str(model), config_path=str(config), use_cuda=use_cuda),
    )


def vosk_model(path: Path) -> Any:
    """The Vosk model directory at `path`, shared; Kaldi's random dither off (reproducible)."""
    import vosk

    from voice_connector_core.models import with_dither

    vosk.SetLogLevel(-1)
    return shared("vosk", (str(path),), lambda: vosk.Model(str(with_dither(path, 0.0))))


def smart_turn_session() -> Any:
    """One onnxruntime session of Pipecat's bundled smart-turn model, shared by every call.

    Pipecat's `LocalSmartTurnAnalyzerV3` builds its own session per call (~30 MB and a model
    load each); this is the session of one such analyzer, built once (its model, its options:
    each inference costs the same). onnxruntime's `InferenceSession.run` is thread-safe: the
    calls' analyzer threads may run it at the same time, each on its own inputs.
    """
    from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3

    return shared(
        "smart_turn", ("smart-turn-v3.2-cpu",), lambda: LocalSmartTurnAnalyzerV3()._session
    )
