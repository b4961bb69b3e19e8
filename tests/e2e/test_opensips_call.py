"""A full SIP call on local models: the OpenSIPS double (standing for OpenSIPS 3.6: recorded
E_UA_SESSION datagrams, MI JSON-RPC) signals, a Python RTP phone speaks PCMU at real-time pace,
and the media node answers with real Whisper, Qwen (Ollama API) and Piper over its own RTP.
"""

from __future__ import annotations

import asyncio
import statistics

import pytest

from tests.conftest import node_settings
from tests.support.servers import free_port
from tests.support.speech import wer
from voice_connector.caller.opensips_double import OpenSIPSDouble
from voice_connector.caller.sip_caller import SimulatedSipCall, SipCallerOptions

pytestmark = pytest.mark.slow


@pytest.fixture
async def double():  # type: ignore[no-untyped-def]
    double = await OpenSIPSDouble().start()
    yield double
    double.close()


def sip_node_settings(double: OpenSIPSDouble, llm_url: str, **extra: str):  # type: ignore[no-untyped-def]
    low = free_port() // 2 * 2
    return node_settings(
        VC_TRANSPORT_PROVIDERS="opensips, twilio",
        VC_OPENSIPS_MI_PORT=str(double.mi_port),
        VC_OPENSIPS_EVENT_PORT=str(free_port()),
        VC_OPENSIPS_RTP_IP="127.0.0.1",
        VC_OPENSIPS_RTP_PORT_RANGE=f"{max(low, 20000)}-{max(low, 20000) + 40}",
        VC_OPENSIPS_RESUBSCRIBE_INTERVAL="0.5",
        VC_LLM_URL=llm_url,
        VC_LLM_MAX_TOKENS="40",
        **extra,
    )


async def test_sip_caller_is_transcribed_and_answered_over_rtp(
    double, media_node_factory, qwen_ollama, speech
) -> None:  # type: ignore[no-untyped-def]
    # Started from a thread: the double answers MI on this test's event loop meanwhile.
    node = await asyncio.to_thread(media_node_factory, sip_node_settings(double, qwen_ollama.http))
    question = "What is the capital of France?"
    call = SimulatedSipCall(
        double, SipCallerOptions(audio=[speech(question)], node_http=node.http)
    )
    result = await call.run()
    assert result.ok, result.error
    record = result.server_record
    assert record is not None and record["transport"] == "opensips"
    turn = record["turns"][0]
    assert wer(question, turn["user_text"]) <= 0.2, turn["user_text"]
    assert "paris" in turn["bot_text"].lower()
    assert result.turns[0].first_bot_audio_at is not None
    # The bot's RTP is paced at 20 ms for the whole call (speech and silence fill alike).
    gaps = [b - a for a, b in zip(result.arrivals, result.arrivals[1:], strict=False)]
    assert abs(statistics.mean(gaps) - 0.020) <= 0.001
    # The call ended with our BYE: nothing left in the double's sessions.
    assert call.key not in double.sessions


async def test_sip_and_twilio_calls_in_one_node_with_flavor_from_extra_params(
    double, media_node_factory, qwen_ollama, speech
) -> None:  # type: ignore[no-untyped-def]
    # Started from a thread: the double answers MI on this test's event loop meanwhile.
    node = await asyncio.to_thread(media_node_factory, sip_node_settings(double, qwen_ollama.http))
    call = SimulatedSipCall(
        double,
        SipCallerOptions(
            audio=[speech("How many legs does a spider have?")],
            node_http=node.http,
            extra_params='{"flavor": "support"}',
        ),
    )
    result = await call.run()
    assert result.ok, result.error
    record = result.server_record
    assert record is not None
    assert record["flavor"] == "support"
    assert record["greeting"].startswith("Support line")
