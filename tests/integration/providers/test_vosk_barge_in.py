"""Barge-in on the streaming STT: a Twilio caller interrupts the bot's answer while the remote
Vosk server transcribes; the bot stops (Twilio gets `clear`) and answers the new utterance.

Korean speech (espeak-ng) for the Korean Vosk model; the legacy Llama WebSocket server answers.
"""

from __future__ import annotations

import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import node_settings
from tests.integration.providers.harness import RATE
from tests.support.speech import espeak_korean
from voice_connector.caller.twilio_caller import CallerOptions, place_call

pytestmark = pytest.mark.slow


def wav(path: Path, pcm: bytes) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm)
    return path


async def test_caller_interrupts_the_bot_while_vosk_streams(
    tmp_path: Path,
    media_node_factory: Callable[..., Any],
    korean_speech: bytes,
    vosk_server: Any,
    llama_ws_server: Any,
) -> None:
    first = wav(tmp_path / "first.wav", korean_speech)
    second = wav(tmp_path / "second.wav", espeak_korean("안녕하세요 감사합니다", tmp_path, RATE))
    env = {
        "VC_STT_PROVIDER": "vosk",
        "VC_STT_MODE": "remote",
        "VC_STT_URL": vosk_server.ws,
        "VC_STT_SAMPLE_RATE": "8000",
        "VC_STT_LANGUAGE": "ko",
        "VC_LLM_PROVIDER": "llama_ws",
        "VC_LLM_URL": llama_ws_server.ws,
        "VC_LLM_MAX_TOKENS": "60",
        "VC_LLM_SYSTEM_PROMPT": "Answer every message with a long story of five sentences.",
    }
    node = media_node_factory(node_settings(**env))
    result = await place_call(
        CallerOptions(
            audio=[first, second],
            url=f"{node.ws}/twilio/stream",
            barge_in_after=0.5,
            answer_timeout=60,
        )
    )
    assert result.error == ""
    assert result.clears >= 1, "Twilio never got `clear`"
    record = result.server_record
    assert record is not None and record["providers"]["stt"] == "vosk"
    assert record["barge_ins"] >= 1
    interrupted, answered = record["turns"][0], record["turns"][-1]
    assert interrupted["interrupted"] is True
    assert answered["user_text"].strip(), "Vosk transcribed the utterance that interrupted"
    assert answered["bot_text"].strip()
    assert result.turns[-1].first_bot_audio_at is not None
