"""The greeting the caller heard is the first assistant turn of the LLM's context."""

from __future__ import annotations

import pytest

from tests.conftest import node_settings
from tests.support.fakes import FakeLLM, FakeSTT, ToneTTS
from voice_connector.caller.twilio_caller import CallerOptions, place_call
from voice_connector.pipeline.builder import CallServices

pytestmark = pytest.mark.slow


async def test_the_llm_knows_what_the_greeting_said(media_node_factory, speech) -> None:  # type: ignore[no-untyped-def]
    llms: list[FakeLLM] = []

    def services(settings, info):  # type: ignore[no-untyped-def]
        llms.append(FakeLLM("Fine."))
        return CallServices(stt=FakeSTT("can you help me"), llm=llms[-1], tts=ToneTTS())

    greeting = "Hello, this is Ada from the help desk."
    node = media_node_factory(node_settings(VC_LLM_GREETING=greeting), services_override=services)
    clip = speech("Hello, can you help me?")
    result = await place_call(
        CallerOptions(audio=[clip], url=f"{node.ws}/twilio/stream", answer_timeout=30)
    )
    assert result.server_record is not None and result.server_record["greeting"] == greeting
    first = llms[0].contexts[0]
    assert first[0] == {"role": "assistant", "content": greeting}
    assert first[-1]["role"] == "user" and "can you help me" in first[-1]["content"]
