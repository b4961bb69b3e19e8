"""Whole calls through the media node's pipeline builder (VAD, turn strategy, barge-in) on the
remote/legacy providers: the simulated Twilio caller speaks, real servers answer."""

from __future__ import annotations

import asyncio
import contextlib
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from tests.conftest import node_settings
from tests.integration.providers.harness import RATE, wer
from voice_connector.audio.g711 import ulaw_decode
from voice_connector.caller.twilio_caller import (
    CallerOptions,
    SimulatedTwilioCall,
    call_record_url,
    place_call,
)

pytestmark = pytest.mark.slow
QUESTION = "What is the capital of France?"


def legacy_env(whisper: Any, llama_url: str, piper: Any, **extra: str) -> dict[str, str]:
    return {
        "VC_STT_PROVIDER": "faster_whisper",
        "VC_STT_MODE": "remote",
        "VC_STT_URL": whisper.http,
        "VC_LLM_PROVIDER": "llama_ws",
        "VC_LLM_URL": llama_url,
        "VC_LLM_MAX_TOKENS": "30",
        "VC_TTS_MODE": "remote",
        "VC_TTS_URL": f"{piper.ws}/tts",
        **extra,
    }


def loudness(mulaw: bytes) -> float:
    pcm = ulaw_decode(mulaw).astype(np.float64)
    return float(np.sqrt(np.mean(pcm**2))) if len(pcm) else 0.0


async def test_remote_whisper_llama_ws_piper_ws_call_with_barge_in(
    media_node_factory: Callable[..., Any],
    speech: Callable[[str], Path],
    whisper_server: Any,
    llama_ws_server: Any,
    piper_ws_server: Any,
) -> None:
    node = media_node_factory(
        node_settings(**legacy_env(whisper_server, llama_ws_server.ws, piper_ws_server))
    )
    long_question = "Tell me a long story about a dragon who lives in a castle."
    result = await place_call(
        CallerOptions(
            audio=[speech(long_question), speech(QUESTION)],
            url=f"{node.ws}/twilio/stream",
            barge_in_after=0.5,
            answer_timeout=60,
        )
    )
    assert result.error == ""
    record = result.server_record
    assert record is not None
    assert record["barge_ins"] >= 1
    answered = record["turns"][-1]
    assert wer(QUESTION, answered["user_text"]) <= 0.2, answered["user_text"]
    assert answered["bot_text"].strip()
    assert result.turns[-1].first_bot_audio_at is not None
    assert loudness(bytes(result.bot_audio)) > 300


@pytest.mark.parametrize("mode", ["local", "remote"])
async def test_vosk_final_ends_the_turn(
    mode: str,
    media_node_factory: Callable[..., Any],
    korean_speech: bytes,
    tmp_path: Path,
    vosk_model: Path,
    vosk_server: Any,
    llama_ws_server: Any,
) -> None:
    clip = tmp_path / "ko.wav"
    with wave.open(str(clip), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(korean_speech)
    env = {
        "VC_STT_PROVIDER": "vosk",
        "VC_STT_MODE": mode,
        "VC_STT_URL": vosk_server.ws,
        "VC_STT_MODEL_PATH": str(vosk_model),
        "VC_STT_SAMPLE_RATE": "8000",
        "VC_STT_LANGUAGE": "ko",
        "VC_LLM_PROVIDER": "llama_ws",
        "VC_LLM_URL": llama_ws_server.ws,
        "VC_LLM_MAX_TOKENS": "20",
    }
    node = media_node_factory(node_settings(**env))
    result = await place_call(
        CallerOptions(audio=[clip], url=f"{node.ws}/twilio/stream", answer_timeout=60)
    )
    assert result.error == ""
    record = result.server_record
    assert record is not None
    turn = record["turns"][0]
    assert turn["user_text"].strip(), "the Vosk final reached the context and ended the turn"
    assert turn["bot_text"].strip()
    assert result.turns[0].first_bot_audio_at is not None


async def test_llm_down_at_call_start_caller_hears_apology_and_call_ends(
    media_node_factory: Callable[..., Any],
    speech: Callable[[str], Path],
    whisper_server: Any,
    llama_ws_server: Any,
    piper_ws_server: Any,
    gate: Any,
) -> None:
    await gate.open(llama_ws_server.port)
    settings = node_settings(**legacy_env(whisper_server, gate.ws, piper_ws_server))
    # In a thread: the factory waits for readiness, which needs this loop to run the gate.
    node = await asyncio.to_thread(media_node_factory, settings)
    await gate.shut()  # the node started fine; the LLM service dies before the call
    options = CallerOptions(
        audio=[speech(QUESTION)], url=f"{node.ws}/twilio/stream", answer_timeout=30
    )
    call = SimulatedTwilioCall(options)
    # The simulated caller may still be writing silence when the connector hangs up.
    with contextlib.suppress(aiohttp.ClientConnectionResetError):
        await asyncio.wait_for(call.run(), 90)
    result = call.result
    assert result.closed_by_server, "the connector ended the call; the caller did not hang up"
    heard = hear_mulaw(bytes(result.bot_audio)).lower()
    assert "difficulties" in heard and "call again" in heard, heard
    async with aiohttp.ClientSession() as session:
        async with session.get(call_record_url(options.url, options.call_sid)) as response:
            record = await response.json()
    assert record["outcome"] != "active"


def hear_mulaw(mulaw: bytes) -> str:
    """What Whisper tiny.en hears in the bot's 8 kHz μ-law audio."""
    import soxr

    from voice_connector.services import shared_models
    from voice_connector_core import models

    pcm = ulaw_decode(mulaw).astype(np.float32) / 32768.0
    audio = soxr.resample(pcm, 8000, 16000).astype(np.float32)
    model = shared_models.whisper_model(models.whisper_tiny_en(), "int8")
    segments, _ = model.transcribe(audio, language="en", beam_size=1)
    return " ".join(s.text.strip() for s in segments)
