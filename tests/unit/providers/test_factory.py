"""Provider selection: every STT x LLM x TTS combination builds, bad ones are config errors."""

from __future__ import annotations

import itertools

import pytest

from voice_connector.services import factory, shared_models
from voice_connector.services.llm.llama_ws import LlamaWSLLMService
from voice_connector.services.llm.ollama import OllamaLLMService
from voice_connector.services.stt.faster_whisper import FasterWhisperSTTService
from voice_connector.services.stt.vosk import RemoteVoskSTTService, VoskSTTService
from voice_connector.services.stt.whisper_remote import RemoteWhisperSTTService
from voice_connector.services.tts.piper_local import LocalPiperTTSService
from voice_connector.services.tts.piper_ws import RemotePiperTTSService
from voice_connector.services.ws_client import Backoff
from voice_connector_core.config import ConfigError, load_settings

STT = {
    ("faster_whisper", "local"): ({}, FasterWhisperSTTService),
    ("faster_whisper", "remote"): ({"VC_STT_URL": "http://whisper:9000"}, RemoteWhisperSTTService),
    ("vosk", "local"): ({}, VoskSTTService),
    ("vosk", "remote"): ({"VC_STT_URL": "ws://vosk:2700"}, RemoteVoskSTTService),
}
LLM = {
    "ollama": ({"VC_LLM_URL": "http://ollama:11434"}, OllamaLLMService),
    "llama_ws": ({"VC_LLM_URL": "ws://llama:8765"}, LlamaWSLLMService),
}
TTS = {
    "local": ({}, LocalPiperTTSService),
    "remote": ({"VC_TTS_URL": "ws://piper:8000/tts"}, RemotePiperTTSService),
}


def settings(**env: str):  # type: ignore[no-untyped-def]
    return load_settings(None, env=env)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stt", "llm", "tts"), list(itertools.product(STT, LLM, TTS)), ids=lambda v: str(v)
)
def test_every_combination_builds(stt: tuple[str, str], llm: str, tts: str) -> None:
    (stt_env, stt_cls), (llm_env, llm_cls), (tts_env, tts_cls) = STT[stt], LLM[llm], TTS[tts]
    config = settings(
        VC_STT_PROVIDER=stt[0], VC_STT_MODE=stt[1], VC_LLM_PROVIDER=llm, VC_TTS_MODE=tts,
        **stt_env, **llm_env, **tts_env,
    )
    assert isinstance(factory.create_stt(config, "call-1"), stt_cls)
    assert isinstance(factory.create_llm(config, "call-1"), llm_cls)
    assert isinstance(factory.create_tts(config, "call-1"), tts_cls)


@pytest.mark.parametrize(
    ("env", "section", "message"),
    [
        ({"VC_STT_MODE": "remote"}, "stt", "url is required"),
        ({"VC_STT_PROVIDER": "vosk", "VC_STT_MODE": "remote", "VC_STT_URL": "http://v:2700"},
         "stt", "ws://"),
        ({"VC_STT_MODE": "remote", "VC_STT_URL": "ws://whisper:9000"}, "stt", "http://"),
        ({"VC_LLM_PROVIDER": "llama_ws"}, "llm", "ws://"),
        ({"VC_LLM_PROVIDER": "ollama", "VC_LLM_URL": "ws://llama:8765"}, "llm", "http://"),
        ({"VC_TTS_MODE": "remote"}, "tts", "url is required"),
        ({"VC_TTS_MODE": "remote", "VC_TTS_URL": "http://piper:8000/tts"}, "tts", "ws://"),
        ({"VC_STT_PROVIDER": "kaldi"}, "stt", ""),
        ({"VC_TTS_PROVIDER": "espeak"}, "tts", ""),
    ],
)
def test_invalid_provider_settings_name_the_key(env: dict[str, str], section: str, message: str):  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as caught:
        settings(**env)
    [problem] = caught.value.problems
    assert problem.section == section
    assert problem.key in ("url", "provider")
    assert message in problem.message


@pytest.mark.slow
def test_preload_loads_local_vosk() -> None:
    factory.preload(settings(VC_STT_PROVIDER="vosk", VC_TTS_MODE="remote",
                             VC_TTS_URL="ws://piper:8000/tts"))
    assert shared_models.is_loaded("vosk")


def test_backoff_doubles_up_to_its_cap() -> None:
    backoff = Backoff(attempts=5, first_delay=0.2, max_delay=1.0)
    assert [backoff.delay(n) for n in range(1, 5)] == [0.2, 0.4, 0.8, 1.0]
