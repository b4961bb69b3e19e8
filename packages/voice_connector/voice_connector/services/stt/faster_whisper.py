"""In-process faster-whisper STT: one transcription per VAD-segmented utterance.

Pipecat's `WhisperSTTService` loads a model per instance, i.e. per call; this subclass takes the
process-wide shared model instead, from a local path (never a hub name: sites are offline).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipecat.services.whisper.stt import WhisperSTTService

from voice_connector.services import shared_models
from voice_connector_core.devices import Device


class _WithDecodeOptions:
    """The shared model, with our decode options (`[stt] beam_size`) on every `transcribe` call.

    Pipecat's `run_stt` calls `transcribe` with faster-whisper's default beam of 5. A beam of 1
    decodes faster, but on a phone line's short VAD segments and digit strings it lost words the
    beam keeps: WER 0.111 at beam 1, 0.071 at beam 5 on the same calls, where plain Pipecat
    (beam 5) scored 0.087-0.151 over four runs (benchmarks/results/word_accuracy.md).
    """

    def __init__(self, model: Any, **options: Any) -> None:
        self._model = model
        self._options = options

    def transcribe(self, audio: Any, **kwargs: Any) -> Any:
        return self._model.transcribe(audio, **{**self._options, **kwargs})

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


class FasterWhisperSTTService(WhisperSTTService):
    """Buffered Whisper STT on the shared, already-loaded model."""

    def __init__(
        self,
        *,
        model_path: Path,
        language: str = "en",
        compute_type: str = "int8",
        beam_size: int = 5,
        device: Device = "auto",
        **kwargs: object,
    ) -> None:
        self._model_path = model_path
        self._beam_size = beam_size
        super().__init__(
            device=device,
            compute_type=compute_type,
            settings=WhisperSTTService.Settings(model=str(model_path), language=language),
            **kwargs,
        )

    def _load(self) -> None:
        model = shared_models.whisper_model(self._model_path, self._compute_type, self._device)
        self._model = _WithDecodeOptions(model, beam_size=self._beam_size, vad_filter=False)
        unsupported = self._unsupported_language()
        if unsupported:
            raise ValueError(unsupported)
