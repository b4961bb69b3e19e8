"""The OpenSIPS AI Voice Connector's shipped INI files, byte for byte, each run a node that
answers a SIP call through the legacy Vosk, Llama WebSocket and Piper WebSocket servers.

The file is not edited. What a compose network resolves (the `opensips`, `vosk-server`,
`llm-turkish-server` and `piper-tts-server` hostnames) is pointed at loopback servers through the
environment, and its fixed MI/event ports at free ones, as a deployment would (the main file also
advertises a LAN address in SDP, pointed at loopback); everything else (RTP
range, addresses, voice, VAD and interruption settings) is read from the file as it is. The Piper
server serves the file's voice name, `tr_TR-dfki-medium` (the bundled joe voice under that name).
"""

from __future__ import annotations

import asyncio
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.providers.harness import RATE
from tests.support.legacy_ini import ORIGINAL_DOCKER_INI, ORIGINAL_INI
from tests.support.servers import ServerThread, free_port, run_server
from voice_connector.caller.opensips_double import OpenSIPSDouble
from voice_connector.caller.sip_caller import SimulatedSipCall, SipCallerOptions
from voice_connector.transports.opensips.sdp import parse_offer
from voice_connector_core.config import load_settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def piper_named_as_in_the_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    from ai_services.piper_ws_server import Settings, build_app
    from voice_connector_core.models import piper_joe_voice

    onnx, config = piper_joe_voice()
    directory = tmp_path_factory.mktemp("voices")
    (directory / "tr_TR-dfki-medium.onnx").symlink_to(onnx)
    (directory / "tr_TR-dfki-medium.onnx.json").symlink_to(config)
    settings = Settings(
        directory / "tr_TR-dfki-medium.onnx", directory / "tr_TR-dfki-medium.onnx.json"
    )
    yield from run_server(build_app(settings))


@pytest.fixture
async def double():  # type: ignore[no-untyped-def]
    double = await OpenSIPSDouble().start()
    yield double
    double.close()


# The main file advertises its author's LAN address in SDP ([rtp] ip = 192.168.1.120): like the
# hostnames, a fact of that deployment, pointed at loopback so no test traffic leaves this host.
FILES = {
    "docker": (ORIGINAL_DOCKER_INI, {}),
    "main": (ORIGINAL_INI, {"VC_OPENSIPS_PUBLIC_IP": "127.0.0.1"}),
}


@pytest.mark.parametrize("name", list(FILES))
async def test_original_ini_answers_a_sip_call_on_the_legacy_servers(
    name: str,
    tmp_path: Path,
    double: OpenSIPSDouble,
    media_node_factory: Callable[..., Any],
    korean_speech: bytes,
    vosk_server: ServerThread,
    llama_ws_server: ServerThread,
    piper_named_as_in_the_file: ServerThread,
) -> None:
    text, deployment = FILES[name]
    ini = tmp_path / "opensips-ai-voice-connector.ini"
    ini.write_text(text, encoding="utf-8")
    network = {
        **deployment,
        "VC_OPENSIPS_MI_IP": "127.0.0.1",
        "VC_OPENSIPS_MI_PORT": str(double.mi_port),
        "VC_OPENSIPS_EVENT_PORT": str(free_port()),
        "VC_OPENSIPS_RESUBSCRIBE_INTERVAL": "0.5",
        "VC_STT_URL": vosk_server.ws,
        "VC_LLM_URL": llama_ws_server.ws,
        "VC_TTS_URL": f"{piper_named_as_in_the_file.ws}/tts",
    }
    settings = load_settings(ini, env=network)
    assert settings.deprecations, "read as the OpenSIPS AI Voice Connector format"
    low, high = settings.opensips.ports  # from the file: 35000-35003 (docker), 35000-35100
    # Started from a thread: the double answers MI on this test's event loop meanwhile.
    node = await asyncio.to_thread(media_node_factory, settings)

    clip = tmp_path / "ko.wav"
    with wave.open(str(clip), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(korean_speech)
    call = SimulatedSipCall(double, SipCallerOptions(audio=[clip], node_http=node.http))
    result = await call.run()

    assert result.ok, result.error
    answer = next(r for r in double.mi_calls("ua_session_reply", call.key) if r["code"] == 200)
    assert low <= parse_offer(answer["body"]).port <= high, "RTP from the file's range"
    record = result.server_record
    assert record is not None and record["transport"] == "opensips"
    assert record["providers"] == {"stt": "vosk", "llm": "llama_ws", "tts": "piper"}
    turn = record["turns"][0]
    assert turn["user_text"].strip(), "the Vosk server transcribed the caller"
    assert turn["bot_text"].strip(), "the Llama WebSocket server answered"
    assert result.turns[0].first_bot_audio_at is not None, "the Piper server's audio came back"
