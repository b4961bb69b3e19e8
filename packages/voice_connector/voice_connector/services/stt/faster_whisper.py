"""In-process faster-whisper STT: one transcription per VAD-segmented utterance.

Pipecat's `WhisperSTTService` loads a model per instance, i.e. per call; this subclass takes the
process-wide shared model instead, from a local path (never a hub name: sites are offline), and
decodes with our options: `[stt] beam_size` (Pipecat's `run_stt` would use faster-whisper's beam
of 5 always) and `[stt] decode_window` (services/stt/fitted_window.py).
"""

from __future__ import annotations

from pathlib import Path

from pipecat.services.whisper.stt import WhisperSTTService

from voice_connector.services import shared_models
from voice_connector.services.stt.fitted_window import FittedWindowWhisper
from voice_connector_core.devices import Device


class FasterWhisperSTTService(WhisperSTTService):
    """Buffered Whisper STT on the shared, already-loaded model."""

    def __init__(
        self,
        *,
        model_path: Path,
        language: str = "en",
        compute_type: str = "int8",
        beam_size: int = 5,
        fitted_window: bool = True,
        device: Device = "auto",
        **kwargs: object,
    ) -> None:
        self._model_path = model_path
        self._beam_size = beam_size
        self._fitted_window = fitted_window
        super().__init__(
            device=device,
            compute_type=compute_type,
            settings=WhisperSTTService.Settings(model=str(model_path), language=language),
            **kwargs,
        )

    def _load(self) -> None:
        model = shared_models.whisper_model(self._model_path, self._compute_type, self._device)
        self._model = FittedWindowWhisper(
            model, beam_size=self._beam_size, fitted=self._fitted_window
        )
        unsupported = self._unsupported_language()
        if unsupported:
            raise ValueError(unsupported)
