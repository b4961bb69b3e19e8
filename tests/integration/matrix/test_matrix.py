"""The integration matrix: a scripted two-turn conversation through every supported combination.

transport {Twilio, OpenSIPS} × STT {faster-whisper local/remote, Vosk local/remote}
× LLM {Ollama API, Llama WS} × TTS {Piper local/remote} = 32 calls, real models, real sockets.

One media node runs both transports and carries every STT × LLM × TTS combination as a flavor,
so the matrix also proves provider switching by flavor within one running node. Peers: the
simulated Twilio caller (Twilio's exact Media Streams messages) and the OpenSIPS double (standing
for OpenSIPS 3.6) with a Python RTP phone. Servers: the project's own Whisper, Vosk, Llama-WS and
Piper-WS services and the Ollama-API server (standing for Ollama), all with real models.
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import ServerThread, free_port
from tests.support.speech import wer
from voice_connector.caller.opensips_double import OpenSIPSDouble
from voice_connector.caller.sip_caller import SimulatedSipCall, SipCallerOptions
from voice_connector.caller.twilio_caller import CallerOptions, place_call
from voice_connector_core.config import load_settings

pytestmark = pytest.mark.slow

STT = ["whisper-local", "whisper-remote", "vosk-local", "vosk-remote"]
LLM = ["ollama", "llamaws"]
TTS = ["piper-local", "piper-remote"]
SYSTEM_PROMPT = (
    "You are a phone assistant. Whatever the caller says, even if it makes no sense, reply with "
    "one short friendly English sentence. Never end or transfer the call."
)
"""Vosk's Korean model turns any audio into Korean words; the answer must not depend on them."""
ENGLISH = ["What is the capital of France?", "Please call me back tomorrow morning."]


@dataclass(frozen=True)
class Combo:
    transport: str
    stt: str
    llm: str
    tts: str

    @property
    def flavor(self) -> str:
        return f"{self.stt}.{self.llm}.{self.tts}"


def flavor_section(stt: str, llm: str, tts: str, servers: dict[str, ServerThread]) -> str:
    lines = [f"[flavor:{stt}.{llm}.{tts}]"]
    provider, mode = stt.split("-")
    lines.append(f"stt.provider = {'faster_whisper' if provider == 'whisper' else 'vosk'}")
    lines.append(f"stt.mode = {mode}")
    if provider == "vosk":
        lines.append("stt.language = ko")
    if mode == "remote":
        server = servers["whisper" if provider == "whisper" else "vosk"]
        lines.append(f"stt.url = {server.http if provider == 'whisper' else server.ws}")
    if llm == "ollama":
        lines += ["llm.provider = ollama", f"llm.url = {servers['ollama'].http}"]
    else:
        lines += ["llm.provider = llama_ws", f"llm.url = {servers['llama'].ws}"]
    if tts == "piper-remote":
        lines += ["tts.mode = remote", f"tts.url = {servers['piper'].ws}/tts"]
    return "\n".join(lines)


def matrix_config(tmp: Path, double: OpenSIPSDouble, servers: dict[str, ServerThread]) -> Path:
    low = 21000 + free_port() % 2000 * 10
    flavors = [flavor_section(s, m, t, servers) for s, m, t in itertools.product(STT, LLM, TTS)]
    text = f"""
[general]
max_calls = 50
[transport]
providers = opensips, twilio
[opensips]
mi_port = {double.mi_port}
event_port = {free_port()}
rtp_ip = 127.0.0.1
rtp_port_range = {low}-{low + 60}
resubscribe_interval = 0.5
[llm]
url = {servers["ollama"].http}
max_tokens = 24
greeting =
system_prompt = {SYSTEM_PROMPT}
{chr(10).join(flavors)}
"""
    path = tmp / "matrix.ini"
    path.write_text(text)
    return path


@pytest.fixture
def matrix_servers(  # type: ignore[no-untyped-def]
    whisper_server, vosk_server, llama_ws_server, piper_ws_server, qwen_ollama
) -> dict[str, ServerThread]:
    return {
        "whisper": whisper_server,
        "vosk": vosk_server,
        "llama": llama_ws_server,
        "piper": piper_ws_server,
        "ollama": qwen_ollama,
    }


@pytest.fixture(scope="session")
def korean_speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Korean speech for the Korean Vosk model (espeak-ng; the only Vosk model installable here)."""
    path = tmp_path_factory.mktemp("ko") / "korean.wav"
    subprocess.run(
        ["espeak-ng", "-v", "ko", "-w", str(path), "하나 둘 셋 넷 다섯 오늘 날씨가 좋네요"],
        check=True,
    )
    return path


@pytest.fixture
async def double():  # type: ignore[no-untyped-def]
    double = await OpenSIPSDouble().start()
    yield double
    double.close()


async def converse(
    combo: Combo, node: ServerThread, double: OpenSIPSDouble, clips: list[Path]
) -> dict[str, Any]:
    """Place the two-turn call; return the node's record of it."""
    if combo.transport == "twilio":
        result = await place_call(
            CallerOptions(
                audio=clips,
                url=f"{node.ws}/twilio/stream",
                flavor=combo.flavor,
                wait_for_greeting=False,
                answer_timeout=90,
            )
        )
        assert result.error == "", f"{combo}: {result.error}"
        record = result.server_record
    else:
        call = SimulatedSipCall(
            double,
            SipCallerOptions(
                audio=clips,
                node_http=node.http,
                extra_params=f'{{"flavor": "{combo.flavor}"}}',
                answer_timeout=90,
                wait_for_greeting=False,
            ),
        )
        sip = await call.run()
        assert sip.answered, f"{combo}: {sip.error}"
        record = sip.server_record
    assert record is not None, f"{combo}: no call record"
    return record


def check(combo: Combo, record: dict[str, Any]) -> None:
    assert record["flavor"] == combo.flavor
    assert record["transport"] == combo.transport
    turns = [t for t in record["turns"] if t["user_text"]]
    assert len(turns) >= 2, f"{combo} ({record['outcome']}): {record['turns']}"
    for index, turn in enumerate(turns[:2]):
        if combo.stt.startswith("whisper"):
            assert wer(ENGLISH[index], turn["user_text"]) <= 0.25, f"{combo}: {turn['user_text']}"
        assert turn["bot_text"].strip(), f"{combo}: no answer to turn {index + 1}"
        assert turn["bot_audio_at"] is not None, f"{combo}: no bot audio in turn {index + 1}"


@pytest.mark.parametrize(("transport", "stt"), itertools.product(["twilio", "opensips"], STT))
async def test_each_combination_holds_a_two_turn_conversation(
    transport, stt, tmp_path, media_node_factory, speech, korean_speech_wav, double, matrix_servers
) -> None:  # type: ignore[no-untyped-def]
    """One node, one transport and STT; the four LLM × TTS flavors converse at once."""
    settings = load_settings(matrix_config(tmp_path, double, matrix_servers), env={})
    node = await asyncio.to_thread(media_node_factory, settings)
    clips = (
        [korean_speech_wav, korean_speech_wav]
        if stt.startswith("vosk")
        else [speech(text) for text in ENGLISH]
    )
    combos = [Combo(transport, stt, llm, tts) for llm, tts in itertools.product(LLM, TTS)]
    failures: list[str] = []

    async def run(combo: Combo) -> None:
        try:
            check(combo, await converse(combo, node, double, clips))
        except AssertionError as exc:
            failures.append(str(exc))

    await asyncio.gather(*(run(combo) for combo in combos))
    assert not failures, "\n".join(failures)
