"""`[stt]`, `[llm]`, `[tts]` are one model per provider: a key of another provider is an error
(ignored with a warning at its default, as copies of the flat template carry), flavors switch
provider, and the code reads typed settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.legacy_ini import ORIGINAL_INI
from tests.unit.config.ini_files import problems, write
from voice_connector_core.config import load_settings
from voice_connector_core.config.services import (
    FasterWhisperSTT,
    LlamaWSLLM,
    OllamaLLM,
    PiperTTS,
    VoskSTT,
)


def test_defaults_are_the_typed_models_of_the_default_providers() -> None:
    settings = load_settings(None, env={})
    assert isinstance(settings.stt, FasterWhisperSTT) and settings.stt.beam_size >= 1
    assert isinstance(settings.llm, OllamaLLM) and settings.llm.model
    assert isinstance(settings.tts, PiperTTS)


def test_the_provider_picks_its_model(tmp_path: Path) -> None:
    text = (
        "[stt]\nprovider = vosk\nsample_rate = 8000\n[llm]\nprovider = llama_ws\nurl = ws://x:1\n"
    )
    settings = load_settings(write(tmp_path, text), env={})
    assert isinstance(settings.stt, VoskSTT) and settings.stt.sample_rate == 8000
    assert isinstance(settings.llm, LlamaWSLLM) and not hasattr(settings.llm, "model")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[stt]\nprovider = vosk\nbeam_size = 1\n",
            "[stt] beam_size: not a setting of provider vosk",
        ),
        (
            "[stt]\nsample_rate = 8000\n",
            "[stt] sample_rate: not a setting of provider faster_whisper",
        ),
        (
            "[llm]\nprovider = llama_ws\nurl = ws://x:1\nmodel = llama3\n",
            "[llm] model: not a setting of provider llama_ws (only of ollama)",
        ),
        (
            "[stt]\nprovider = deepgram\n",
            "[stt] provider: input should be 'faster_whisper' or 'vosk'",
        ),
        ("[stt]\nbeam_sise = 1\n", "[stt] beam_sise: unknown key"),
    ],
)
def test_a_key_of_another_provider_is_an_error(tmp_path: Path, text: str, expected: str) -> None:
    found = problems(write(tmp_path, text))
    assert any(expected in p for p in found), found


def test_a_key_of_another_provider_set_by_env_is_an_error() -> None:
    (problem,) = problems(None, {"VC_STT_PROVIDER": "vosk", "VC_STT_BEAM_SIZE": "1"})
    assert (
        problem == "env VC_STT_BEAM_SIZE: [stt] beam_size: not a setting of provider vosk "
        "(only of faster_whisper)"
    )


def test_another_providers_key_at_its_default_is_ignored_with_a_warning(tmp_path: Path) -> None:
    """The flat template had every provider's keys: such copies keep loading."""
    text = "[stt]\nprovider = vosk\ncompute_type = int8\nbeam_size = 5\ndevice = auto\n"
    settings = load_settings(write(tmp_path, text), env={})
    assert isinstance(settings.stt, VoskSTT)
    assert len(settings.deprecations) == 3
    assert all("is not a setting of provider vosk" in w for w in settings.deprecations)


FLAVORS = """\
[stt]
beam_size = 1
[flavor:korean]
stt.provider = vosk
stt.mode = remote
stt.url = ws://vosk:2700
[flavor:legacy_llm]
llm.provider = llama_ws
llm.url = ws://llama:8765
[flavor:wider]
stt.beam_size = 3
"""


def test_flavor_overrides_switch_provider_keeping_only_shared_keys(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, FLAVORS), env={})
    korean = settings.for_flavor("korean").stt
    assert isinstance(korean, VoskSTT) and korean.url == "ws://vosk:2700"
    assert korean.language == settings.stt.language
    assert isinstance(settings.for_flavor("legacy_llm").llm, LlamaWSLLM)
    assert settings.for_flavor("legacy_llm").llm.greeting == settings.llm.greeting
    assert settings.for_flavor("wider").stt.beam_size == 3  # type: ignore[union-attr]
    assert settings.stt.beam_size == 1  # type: ignore[union-attr]


def test_a_flavor_override_of_another_providers_key_is_an_error(tmp_path: Path) -> None:
    text = FLAVORS + "[flavor:bad]\nstt.provider = vosk\nstt.beam_size = 2\n"
    (problem,) = problems(write(tmp_path, text))
    assert "[flavor:bad] stt.beam_size: not a setting of provider vosk" in problem


def test_legacy_llm_model_of_a_llama_ws_service_is_ignored_with_its_reason(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ORIGINAL_INI, "old.ini"), env={})
    assert isinstance(settings.llm, LlamaWSLLM)
    (warning,) = [w for w in settings.deprecations if w.startswith("[llm] model ")]
    assert "no longer used (not a setting of provider llama_ws)" in warning
