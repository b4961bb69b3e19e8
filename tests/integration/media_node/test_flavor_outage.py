"""One dead flavor does not take the node out: readiness covers the default flavor; a call of the
dead flavor, Twilio or SIP, hears the spoken apology and ends (counted and logged), the default
flavor answers.

The default flavor runs on the bundled local STT/TTS and an Ollama stand-in; the `retired` flavor
points its LLM at a Llama WebSocket port on loopback where nothing listens (a retired host).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from loguru import logger

from tests.containers.ollama_stub import OllamaStub
from tests.integration.providers.test_calls_on_legacy_stack import hear_mulaw
from tests.support.servers import free_port
from voice_connector.caller.opensips_double import OpenSIPSDouble
from voice_connector.caller.sip_caller import SimulatedSipCall, SipCallerOptions
from voice_connector.caller.twilio_caller import CallerOptions, place_call
from voice_connector.services.outage import APOLOGY
from voice_connector_core.config import load_settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ollama() -> Iterator[OllamaStub]:
    stub = OllamaStub(free_port()).start()
    yield stub
    stub.shutdown()


@pytest.fixture
def warnings() -> Iterator[list[str]]:
    seen: list[str] = []
    sink = logger.add(lambda message: seen.append(str(message)), level="WARNING")
    yield seen
    logger.remove(sink)


def settings_with_retired_flavor(tmp_path: Path, llm_url: str, **env: str) -> Any:
    shipped = Path("cfg/voice-connector.ini").read_text(encoding="utf-8")
    retired = f"ws://127.0.0.1:{free_port()}"  # nothing listens there
    ini = tmp_path / "vc.ini"
    ini.write_text(
        f"{shipped}\n[flavor:retired]\nllm.provider = llama_ws\nllm.url = {retired}\n",
        encoding="utf-8",
    )
    return load_settings(ini, env={"VC_LLM_URL": llm_url, "VC_LLM_MAX_TOKENS": "20", **env})


def unavailable_count(metrics_text: str) -> float:
    pattern = (
        r'voice_connector_flavor_unavailable_calls_total\{flavor="retired",'
        r'transport="twilio"\} ([0-9.]+)'
    )
    match = re.search(pattern, metrics_text)
    return float(match[1]) if match else 0.0


async def test_a_dead_flavor_apologizes_while_the_node_stays_ready(
    tmp_path: Path,
    media_node_factory: Callable[..., Any],
    ollama: OllamaStub,
    speech: Callable[[str], Path],
    warnings: list[str],
) -> None:
    node = media_node_factory(settings_with_retired_flavor(tmp_path, ollama.url))  # waits ready
    http = httpx.AsyncClient(base_url=node.http)
    readiness = (await http.get("/readyz")).json()
    assert readiness["ready"] is True
    assert readiness["checks"]["llm"]["ok"] is True
    assert "llm@retired" not in readiness["checks"], "a flavor's own service does not gate"
    assert readiness["flavors"]["retired"]["ok"] is False
    assert "llm@retired" in readiness["flavors"]["retired"]["detail"]
    assert readiness["flavors"]["support"]["ok"] is True
    before = unavailable_count((await http.get("/metrics")).text)

    dead = await place_call(
        CallerOptions(audio=[speech("Hello?")], url=f"{node.ws}/twilio/stream", flavor="retired")
    )
    assert dead.closed_by_server, "the node ended the call after the apology"
    record = dead.server_record
    assert record is not None
    assert (record["flavor"], record["outcome"]) == ("retired", "flavor_unavailable")
    assert record["greeting"] == APOLOGY and record["turns"] == []
    heard = hear_mulaw(bytes(dead.bot_audio)).lower()
    assert "difficulties" in heard and "call again" in heard, heard
    after = unavailable_count((await http.get("/metrics")).text)
    assert after == before + 1
    assert any("flavor retired is down (llm@retired:" in w for w in warnings), warnings

    alive = await place_call(
        CallerOptions(audio=[speech("What time is it?")], url=f"{node.ws}/twilio/stream")
    )
    record = alive.server_record
    assert record is not None and record["flavor"] == "default"
    assert record["greeting"].startswith("Hello")
    assert record["turns"][0]["bot_text"] == ollama.reply
    await http.aclose()


async def test_a_sip_call_of_the_dead_flavor_hears_the_apology_and_gets_our_bye(
    tmp_path: Path, media_node_factory: Callable[..., Any], ollama: OllamaStub
) -> None:
    double = await OpenSIPSDouble().start()
    try:
        low = free_port() // 2 * 2
        settings = settings_with_retired_flavor(
            tmp_path,
            ollama.url,
            VC_TRANSPORT_PROVIDERS="opensips",
            VC_OPENSIPS_MI_PORT=str(double.mi_port),
            VC_OPENSIPS_EVENT_PORT=str(free_port()),
            VC_OPENSIPS_RTP_IP="127.0.0.1",
            VC_OPENSIPS_RTP_PORT_RANGE=f"{max(low, 20000)}-{max(low, 20000) + 10}",
            VC_OPENSIPS_RESUBSCRIBE_INTERVAL="0.5",
        )
        # Started from a thread: the double answers MI on this test's event loop meanwhile.
        node = await asyncio.to_thread(media_node_factory, settings)
        options = SipCallerOptions(
            audio=[], node_http=node.http, extra_params='{"flavor": "retired"}'
        )
        call = SimulatedSipCall(double, options)
        result = await call.run()
        ended_by_us = double.mi_calls("ua_session_terminate", call.key)
    finally:
        double.close()
    assert result.ok, result.error  # answered, and the apology was audible
    record = result.server_record
    assert record is not None
    assert (record["flavor"], record["outcome"]) == ("retired", "flavor_unavailable")
    assert ended_by_us, "the node sent BYE after the apology"
