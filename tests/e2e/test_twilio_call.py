"""A full Twilio call on local models: real Whisper, real Qwen (through the Ollama API), real Piper.

The caller is the simulated Twilio peer speaking the exact Media Streams protocol over a real
WebSocket; the LLM server stands in for Ollama (same native API, words from a real model).
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from tests.conftest import node_settings
from tests.support.speech import wer
from voice_connector.audio.g711 import ulaw_decode
from voice_connector.caller.twilio_caller import CallerOptions, place_call

pytestmark = pytest.mark.slow

QUESTION = "What is the capital of France?"


@pytest.fixture
def node(media_node_factory, qwen_ollama):  # type: ignore[no-untyped-def]
    settings = node_settings(VC_LLM_URL=qwen_ollama.http, VC_LLM_MAX_TOKENS="40")
    return media_node_factory(settings)


def rms(mulaw: bytes) -> float:
    pcm = ulaw_decode(mulaw).astype(np.float64)
    return float(np.sqrt(np.mean(pcm**2))) if len(pcm) else 0.0


async def test_caller_is_transcribed_and_answered_with_speech(node, speech) -> None:  # type: ignore[no-untyped-def]
    result = await place_call(
        CallerOptions(audio=[speech(QUESTION)], url=f"{node.ws}/twilio/stream", answer_timeout=60)
    )
    assert result.error == ""
    record = result.server_record
    assert record is not None and record["outcome"] != "active"
    turn = record["turns"][0]
    assert wer(QUESTION, turn["user_text"]) <= 0.2, turn["user_text"]
    assert turn["bot_text"].strip(), "the LLM answered nothing"
    assert "paris" in turn["bot_text"].lower()
    # Bot audio came back as valid μ-law media messages that carry sound, after the question.
    assert result.turns[0].first_bot_audio_at is not None
    assert result.bot_media_messages > 10
    assert rms(bytes(result.bot_audio)) > 300
    # Every media message the node sent is one 20 ms frame, as Twilio sends and expects them:
    # 160 bytes of 8 kHz μ-law.
    frame_bytes = {round(seconds * 8000) for _, seconds in result.media_arrivals}
    assert frame_bytes == {160}, frame_bytes


async def test_barge_in_clears_bot_audio_and_answers_the_new_utterance(node, speech) -> None:  # type: ignore[no-untyped-def]
    long_question = "Tell me a long story about a dragon who lives in a castle."
    follow_up = "What is the capital of France?"
    result = await place_call(
        CallerOptions(
            audio=[speech(long_question), speech(follow_up)],
            url=f"{node.ws}/twilio/stream",
            barge_in_after=1.0,
            answer_timeout=60,
        )
    )
    assert result.clears >= 1, "Twilio never got `clear`"
    record = result.server_record
    assert record is not None
    assert record["barge_ins"] >= 1
    interrupted, answered = record["turns"][0], record["turns"][-1]
    assert interrupted["interrupted"] is True
    assert wer(follow_up, answered["user_text"]) <= 0.2, answered["user_text"]
    assert answered["bot_text"].strip()
    assert result.turns[1].first_bot_audio_at is not None


async def test_concurrent_calls_with_different_flavors_are_independent(node, speech) -> None:  # type: ignore[no-untyped-def]
    first, second = "What is the capital of France?", "How many legs does a spider have?"
    default_call, support_call = await asyncio.gather(
        place_call(CallerOptions(audio=[speech(first)], url=f"{node.ws}/twilio/stream")),
        place_call(
            CallerOptions(
                audio=[speech(second)], url=f"{node.ws}/twilio/stream", called="+18005550000"
            )
        ),
    )
    a, b = default_call.server_record, support_call.server_record
    assert a is not None and b is not None
    assert (a["flavor"], b["flavor"]) == ("default", "support")
    assert a["greeting"].startswith("Hello")
    assert b["greeting"].startswith("Support line")
    assert wer(first, a["turns"][0]["user_text"]) <= 0.2
    assert wer(second, b["turns"][0]["user_text"]) <= 0.2
    assert a["turns"][0]["bot_text"] and b["turns"][0]["bot_text"]
