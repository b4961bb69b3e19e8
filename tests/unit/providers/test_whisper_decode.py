"""Our Whisper STT decodes with the configured beam, 5 unless told otherwise.

At beam 1 our word error rate was 0.111 on the same calls, at beam 5 0.071, where plain Pipecat
scored 0.087-0.151 (benchmarks/results/word_accuracy.md): the default must stay the accurate one.
"""

from __future__ import annotations

from typing import Any

from voice_connector.services.stt.faster_whisper import _WithDecodeOptions
from voice_connector_core.config import load_settings


class RecordingModel:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def transcribe(self, audio: Any, **kwargs: Any) -> tuple[list[Any], None]:
        self.calls.append(kwargs)
        return [], None


def test_default_beam_is_five_and_reaches_every_transcription() -> None:
    beam = load_settings(None, env={}).stt.beam_size
    assert beam == 5
    model = RecordingModel()
    # Pipecat's run_stt passes language/hotwords/prompt; our decode options ride along.
    _WithDecodeOptions(model, beam_size=beam, vad_filter=False).transcribe(b"", language="en")
    assert model.calls == [{"beam_size": 5, "vad_filter": False, "language": "en"}]


def test_a_configured_beam_wins() -> None:
    assert load_settings(None, env={"VC_STT_BEAM_SIZE": "1"}).stt.beam_size == 1
