"""Barge-in over a real stream: Twilio gets `clear`, and the LLM later sees only what was heard."""

from __future__ import annotations

import pytest

from tests.conftest import node_settings
from tests.support.fakes import FakeLLM, FakeSTT, ToneTTS
from voice_connector.caller.twilio_caller import CallerOptions, place_call
from voice_connector.pipeline.builder import CallServices

pytestmark = pytest.mark.slow

SENTENCES = [
    "Sure, here is the plan.",
    "First we check the account.",
    "Then we look at the last bill.",
    "After that we compare the prices.",
    "Finally we decide together what to do next.",
]
ANSWER = " ".join(SENTENCES)


async def test_interrupted_answer_is_trimmed_to_the_heard_sentences(  # type: ignore[no-untyped-def]
    media_node_factory, speech
) -> None:
    llms: list[FakeLLM] = []

    def services(settings, info):  # type: ignore[no-untyped-def]
        llms.append(FakeLLM(ANSWER))
        return CallServices(stt=FakeSTT(), llm=llms[-1], tts=ToneTTS())

    node = media_node_factory(node_settings(VC_LLM_GREETING=""), services_override=services)
    clip = speech("Hello, can you help me with my bill?")
    result = await place_call(
        CallerOptions(
            audio=[clip, clip],
            url=f"{node.ws}/twilio/stream",
            barge_in_after=2.5,
            wait_for_greeting=False,
            answer_timeout=30,
        )
    )
    assert result.clears >= 1, "Twilio never got `clear`"
    record = result.server_record
    assert record is not None and record["barge_ins"] >= 1
    # The LLM run after the barge-in saw the interrupted answer only as far as it was heard.
    later = llms[0].contexts[-1]
    assistant = [m["content"] for m in later if m["role"] == "assistant"]
    heard = assistant[0] if assistant else ""
    assert heard != ANSWER
    assert ANSWER.startswith(heard)
    assert heard in ("", *(" ".join(SENTENCES[:n]) for n in range(1, len(SENTENCES))))
