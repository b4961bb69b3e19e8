"""A full SIP call on local models: the OpenSIPS double (standing for OpenSIPS 3.6: recorded
E_UA_SESSION datagrams, MI JSON-RPC) signals, a Python RTP phone speaks PCMU at real-time pace,
and the media node answers with real Whisper, Qwen (Ollama API) and Piper over its own RTP.
"""

from __future__ import annotations

import asyncio
import statistics
from typing import Any

import httpx
import pytest

from tests.conftest import node_settings
from tests.containers.ollama_stub import OllamaStub
from tests.support.servers import free_port
from tests.support.speech import wer
from voice_connector.caller.opensips_double import OpenSIPSDouble
from voice_connector.caller.sip_caller import SimulatedSipCall, SipCallerOptions
from voice_connector.caller.twilio_caller import CallerOptions, place_call

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
    call = SimulatedSipCall(double, SipCallerOptions(audio=[speech(question)], node_http=node.http))
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


async def test_sip_call_takes_its_flavor_from_extra_params(
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


async def ended_record(node_http: str, call_id: str) -> dict[str, Any]:
    """The node's record of `call_id` once the call has ended there."""
    async with httpx.AsyncClient(base_url=node_http) as http:
        for _ in range(100):
            record = (await http.get(f"/calls/{call_id}")).json()
            if record.get("ended_at"):
                return record
            await asyncio.sleep(0.1)
    raise AssertionError(f"call {call_id} never ended on the node")


async def test_a_sip_call_and_a_twilio_call_in_flight_at_once_are_both_answered(
    double, media_node_factory, speech
) -> None:  # type: ignore[no-untyped-def]
    """One node, both providers, one call each at the same moment (the LLM is Ollama's API with
    a canned answer: this is about the two transports sharing a node, not about words)."""
    ollama = OllamaStub(free_port()).start()
    try:
        settings = sip_node_settings(double, ollama.url)
        node = await asyncio.to_thread(media_node_factory, settings)
        peak = 0

        async def watch_active_calls() -> None:
            nonlocal peak
            async with httpx.AsyncClient(base_url=node.http) as http:
                while True:
                    peak = max(peak, (await http.get("/readyz")).json()["active_calls"])
                    await asyncio.sleep(0.1)

        watcher = asyncio.create_task(watch_active_calls())
        sip, twilio = await asyncio.gather(
            SimulatedSipCall(
                double, SipCallerOptions(audio=[speech("Hello there.")], node_http=node.http)
            ).run(),
            place_call(
                CallerOptions(audio=[speech("Good morning.")], url=f"{node.ws}/twilio/stream")
            ),
        )
        watcher.cancel()
    finally:
        ollama.shutdown()
    assert sip.ok, sip.error
    assert twilio.ok, twilio.error
    ids = {"opensips": sip.key, "twilio": twilio.call_sid}
    records = {transport: await ended_record(node.http, key) for transport, key in ids.items()}
    for transport, record in records.items():
        assert record["transport"] == transport
        assert record["turns"][0]["bot_text"] == ollama.reply
    a, b = records["opensips"], records["twilio"]
    assert max(a["started_at"], b["started_at"]) < min(a["ended_at"], b["ended_at"]), "overlap"
    assert peak == 2, "the node ran both calls at the same time"
    assert sip.turns[0].first_bot_audio_at is not None
    assert twilio.turns[0].first_bot_audio_at is not None
