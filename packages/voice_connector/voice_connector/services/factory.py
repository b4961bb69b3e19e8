"""Provider selection: build the STT, LLM and TTS services one call runs with.

The typed provider settings (`[stt]`, `[llm]`, `[tts]` after the call's flavor overrides, one model
per provider) and their `mode` choose the implementation; every combination of STT
{faster_whisper, vosk} x {local, remote}, LLM {ollama, llama_ws} and TTS piper {local, remote} is
valid. Settings are validated (URL schemes included) when the config loads, so building here cannot
fail on them. Heavy models are shared per process (`shared_models`), so building services per call
is cheap; `preload` warms them at start-up.
"""

from __future__ import annotations

from pathlib import Path

from pipecat.services.llm_service import LLMService
from pipecat.services.stt_service import STTService
from pipecat.services.tts_service import TTSService

from voice_connector_core import models
from voice_connector_core.config import Settings
from voice_connector_core.config.services import FasterWhisperSTT, OllamaLLM, VoskSTT


def whisper_path(settings: Settings) -> Path:
    return settings.stt.model_path or models.whisper_tiny_en()


def vosk_path(settings: Settings) -> Path:
    return settings.stt.model_path or models.vosk_korean()


def piper_paths(settings: Settings) -> tuple[Path, Path]:
    if settings.tts.voice_path is not None:
        voice = settings.tts.voice_path
        return voice, voice.with_name(voice.name + ".json")
    return models.piper_joe_voice()


def create_stt(settings: Settings, call_id: str = "") -> STTService:
    """The speech-to-text service for one call."""
    stt = settings.stt
    if isinstance(stt, FasterWhisperSTT) and stt.mode == "local":
        from voice_connector.services.stt.faster_whisper import FasterWhisperSTTService

        return FasterWhisperSTTService(
            model_path=whisper_path(settings),
            language=stt.language,
            compute_type=stt.compute_type,
            beam_size=stt.beam_size,
            fitted_window=stt.decode_window == "fitted",
            device=stt.device,
        )
    if isinstance(stt, FasterWhisperSTT):
        from voice_connector.services.stt.whisper_remote import RemoteWhisperSTTService

        return RemoteWhisperSTTService(url=stt.url, language=stt.language, call_id=call_id)
    assert isinstance(stt, VoskSTT)
    if stt.mode == "local":
        from voice_connector.services.stt.vosk import VoskSTTService

        return VoskSTTService(model_path=vosk_path(settings), language=stt.language)
    from voice_connector.services.stt.vosk import RemoteVoskSTTService

    return RemoteVoskSTTService(
        url=stt.url, language=stt.language, server_sample_rate=stt.sample_rate, call_id=call_id
    )


def create_llm(settings: Settings, call_id: str = "") -> LLMService:
    """The LLM service for one call (conversation history lives in the pipeline's context)."""
    llm = settings.llm
    if isinstance(llm, OllamaLLM):
        from voice_connector.services.llm.ollama import OllamaLLMService

        return OllamaLLMService(
            host=llm.url,
            model=llm.model,
            system_prompt=llm.system_prompt,
            temperature=llm.temperature,
            max_tokens=llm.max_tokens,
            keep_alive=llm.keep_alive,
            headers={"X-Call-Id": call_id} if call_id else None,
        )
    from voice_connector.services.llm.llama_ws import LlamaWSLLMService

    return LlamaWSLLMService(
        url=llm.url,
        system_prompt=llm.system_prompt,
        temperature=llm.temperature,
        max_tokens=llm.max_tokens,
        call_id=call_id,
    )


def create_tts(settings: Settings, call_id: str = "") -> TTSService:
    """The text-to-speech service for one call."""
    tts = settings.tts
    if tts.mode == "local":
        from voice_connector.services.tts.piper_local import LocalPiperTTSService

        voice, config = piper_paths(settings)
        return LocalPiperTTSService(
            voice_path=voice,
            config_path=config,
            device=tts.device,
            first_chunk_words=tts.first_chunk_words,
        )
    from voice_connector.services.tts.piper_ws import RemotePiperTTSService

    return RemotePiperTTSService(
        url=tts.url, voice=tts.voice, call_id=call_id, first_chunk_words=tts.first_chunk_words
    )


def preload(settings: Settings) -> None:
    """Load the in-process models the configuration (and every flavor) will use, once.

    The VAD engine too: every call uses it, and its ONNX session would otherwise be created by
    the first call, on the event loop. The same for the smart-turn session, when a variant ends
    turns with it.
    """
    from voice_connector.audio.rates import PIPELINE_SAMPLE_RATE
    from voice_connector.audio.vad import silero_engine
    from voice_connector.services import shared_models

    silero_engine(PIPELINE_SAMPLE_RATE)

    variants = [settings] + [settings.for_flavor(name) for name in settings.flavors]
    for variant in variants:
        stt = variant.stt
        if isinstance(stt, FasterWhisperSTT) and stt.mode == "local":
            shared_models.whisper_model(whisper_path(variant), stt.compute_type, stt.device)
        if isinstance(stt, VoskSTT) and stt.mode == "local":
            shared_models.vosk_model(vosk_path(variant))
        if variant.tts.mode == "local":
            shared_models.piper_voice(*piper_paths(variant), variant.tts.device)
        if variant.pipeline.turn_detection == "smart_turn":
            shared_models.smart_turn_session()
