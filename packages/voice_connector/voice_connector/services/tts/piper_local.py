"""In-process Piper TTS on the shared voice, streamed sentence by sentence.

Pipecat's `PiperTTSService` downloads and loads its voice per instance (per call); this subclass
keeps its synthesis loop but takes the process-wide voice from a local path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipecat.services.piper.tts import PiperTTSService
from pipecat.services.tts_service import TTSService

from voice_connector.services import shared_models
from voice_connector.services.tts.first_clause import speak_first_clause_early
from voice_connector_core.devices import Device


class LocalPiperTTSService(PiperTTSService):
    """Piper in this process; the voice is loaded once and shared by all calls."""

    def __init__(
        self,
        *,
        voice_path: Path,
        config_path: Path,
        device: Device = "auto",
        first_chunk_words: int = 0,
        **kwargs: Any,
    ) -> None:
        # Skip PiperTTSService.__init__ (it downloads and loads a voice per instance).
        TTSService.__init__(
            self,
            push_start_frame=True,
            push_stop_frames=True,
            settings=PiperTTSService.Settings(model=None, voice=voice_path.stem, language=None),
            **kwargs,
        )
        self._voice = shared_models.piper_voice(voice_path, config_path, device)
        speak_first_clause_early(self, first_chunk_words)
