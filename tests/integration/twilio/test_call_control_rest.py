"""Hang-up, transfer and the call time limit over a real stream, against Twilio's REST double.

The node's REST calls go through the real `twilio` client and Pipecat's serializer, pointed at
the double by `[twilio] api_base_url`; the caller is the simulated Twilio peer, which echoes each
`mark` only once the audio before it has played.
"""

from __future__ import annotations

import wave
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import node_settings
from tests.integration.twilio.conftest import ACCOUNT_SID, AUTH_TOKEN
from tests.support.fakes import FakeLLM, FakeSTT, ToneTTS
from voice_connector.caller.twilio_caller import CallerOptions, place_call
from voice_connector.pipeline.builder import CallServices
from voice_connector.pipeline.call_control import GOODBYE_AT_LIMIT

SUPPORT_NUMBER = "+18005550000"  # the shipped INI's support flavor, transfer_target +15550100


def start_node(media_node_factory, twilio_rest, answer: str, **env: str):  # type: ignore[no-untyped-def]
    """A node whose LLM always answers `answer`; returns (node, the LLMs it built)."""
    _double, rest_server = twilio_rest
    llms: list[FakeLLM] = []

    def services(settings, info):  # type: ignore[no-untyped-def]
        llms.append(FakeLLM(answer))
        return CallServices(stt=FakeSTT(), llm=llms[-1], tts=ToneTTS())

    settings = node_settings(
        VC_TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        VC_TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        VC_TWILIO_VALIDATE_SIGNATURES="false",  # REST credentials only: streams bring no token
        VC_TWILIO_API_BASE_URL=rest_server.http,
        VC_LLM_TOOLS="false",
        VC_LLM_GREETING="Hi.",
        **env,
    )
    return media_node_factory(settings, services_override=services), llms


def keypad_call(node, digits: str, called: str = "") -> CallerOptions:  # type: ignore[no-untyped-def]
    """A caller who presses `digits` at once (`#` sends them) and listens until the bot is done."""
    return CallerOptions(
        audio=[],
        url=f"{node.ws}/twilio/stream",
        dtmf=digits,
        called=called,
        wait_for_greeting=False,
        answer_timeout=20,
    )


def call_path(sid: str) -> str:
    return f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{sid}.json"


async def test_bot_hangup_after_its_goodbye_was_heard(media_node_factory, twilio_rest) -> None:  # type: ignore[no-untyped-def]
    double, _ = twilio_rest
    goodbye = "Thanks for calling, goodbye! [hangup]"
    node, llms = start_node(media_node_factory, twilio_rest, goodbye)
    options = keypad_call(node, "1#")
    double.add_call(options.call_sid)
    result = await place_call(options)

    assert result.closed_by_server
    # Exactly the documented request: update the call with Status=completed, authenticated.
    hangups = [r for r in double.requests if r.path == call_path(options.call_sid)]
    assert [(r.method, r.form, r.authorized) for r in hangups] == [
        ("POST", {"Status": "completed"}, True)
    ]
    assert double.calls[options.call_sid]["status"] == "completed"
    # The goodbye was spoken without the marker, and its marks were echoed (heard) first.
    record = result.server_record
    assert record is not None
    assert (record["outcome"], record["outcome_detail"]) == ("bot_hangup", "conversation")
    assert "[hangup]" not in " ".join(t["bot_text"] for t in record["turns"])
    assert result.marks_echoed and result.clears == 0
    # The key press reached the LLM as a user message.
    assert {"role": "user", "content": "The caller pressed 1"} in llms[0].contexts[-1]


async def test_transfer_redirects_the_call_with_dial(media_node_factory, twilio_rest) -> None:  # type: ignore[no-untyped-def]
    double, _ = twilio_rest
    node, _ = start_node(media_node_factory, twilio_rest, "Connecting you to a person. [transfer]")
    options = keypad_call(node, "0#", called=SUPPORT_NUMBER)
    double.add_call(options.call_sid)
    result = await place_call(options)

    updates = double.updates(options.call_sid)
    assert len(updates) == 1, updates  # no Status=completed after the transfer
    assert set(updates[0]) == {"Twiml"}
    dial = ET.fromstring(updates[0]["Twiml"]).find("Dial")
    assert dial is not None and dial.text == "+15550100"
    record = result.server_record
    assert record is not None
    assert (record["outcome"], record["outcome_detail"]) == ("transferred", "+15550100")
    assert record["flavor"] == "support"


def silence_wav(path: Path, seconds: float) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\x00\x00" * int(8000 * seconds))
    return path


@pytest.mark.slow
async def test_call_time_limit_says_goodbye_then_hangs_up(  # type: ignore[no-untyped-def]
    media_node_factory, twilio_rest, tmp_path
) -> None:
    double, _ = twilio_rest
    node, _ = start_node(
        media_node_factory, twilio_rest, "unused", VC_PIPELINE_MAX_CALL_SECONDS="2"
    )
    options = CallerOptions(
        audio=[silence_wav(tmp_path / "quiet.wav", 8.0)],
        url=f"{node.ws}/twilio/stream",
        answer_timeout=20,
    )
    double.add_call(options.call_sid)
    result = await place_call(options)

    assert result.closed_by_server
    assert double.updates(options.call_sid) == [{"Status": "completed"}]
    record = result.server_record
    assert record is not None and record["outcome"] == "max_duration"
    spoken = " ".join([record["greeting"], *(t["bot_text"] for t in record["turns"])])
    assert GOODBYE_AT_LIMIT.split(",")[0] in spoken
