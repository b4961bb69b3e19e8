"""Malformed Twilio Media Streams input never crashes the node or disturbs other calls.

The peer is a raw WebSocket client sending Twilio's message shapes, broken on purpose; a
well-behaved simulated caller runs beside it. STT/LLM/TTS are instant fakes: this is about the
transport, not the models.
"""

from __future__ import annotations

import asyncio
import base64
import json

import aiohttp
import httpx
import pytest

from tests.conftest import node_settings
from tests.support.fakes import fake_services
from voice_connector.caller.twilio_caller import CallerOptions, load_mulaw, place_call

JUNK = [
    "this is not json",
    "[1, 2, 3]",
    json.dumps({"event": "nonsense"}),
    json.dumps({"event": "media"}),
    json.dumps({"event": "media", "media": {"payload": "!!!not-base64!!!"}}),
    json.dumps({"event": "media", "media": "wrong type"}),
    json.dumps({"event": "dtmf", "dtmf": {}}),
    json.dumps({"event": "mark"}),
    json.dumps({"event": "start"}),
]


@pytest.fixture
def node(media_node_factory):  # type: ignore[no-untyped-def]
    settings = node_settings(
        VC_GENERAL_HTTP_WS_MAX_MESSAGE_BYTES="4096", VC_TWILIO_IDLE_TIMEOUT_SECONDS="5"
    )
    return media_node_factory(settings, services_override=lambda s, info: fake_services())


def start_message(call_sid: str) -> str:
    return json.dumps(
        {
            "event": "start",
            "sequenceNumber": "1",
            "streamSid": "MZbad",
            "start": {
                "streamSid": "MZbad",
                "callSid": call_sid,
                "accountSid": "AC0",
                "tracks": ["inbound"],
                "customParameters": {},
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        }
    )


def media(chunk: bytes) -> str:
    return json.dumps(
        {
            "event": "media",
            "streamSid": "MZbad",
            "media": {"track": "inbound", "payload": base64.b64encode(chunk).decode()},
        }
    )


async def bad_call(url: str, speech_mulaw: bytes) -> dict[str, int]:
    """Junk before and after `start`, then real speech; counts what the node sends back."""
    got = {"media": 0, "media_after_speech": 0, "clear": 0}
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_str(media(b"\xff" * 160))  # media before start
        await ws.send_str("garbage before start")
        await ws.send_str(start_message("CAbadinput"))
        for junk in JUNK:
            await ws.send_str(junk)

        async def receive() -> None:
            async for msg in ws:
                event = json.loads(msg.data).get("event")
                got[event] = got.get(event, 0) + 1

        receiver = asyncio.create_task(receive())
        for offset in range(0, len(speech_mulaw), 160):
            await ws.send_str(media(speech_mulaw[offset : offset + 160]))
            await asyncio.sleep(0.02)
        got["media_after_speech"] = -got["media"]
        for _ in range(150):  # silence while the (fake) bot answers
            await ws.send_str(media(b"\xff" * 160))
            await asyncio.sleep(0.02)
        got["media_after_speech"] += got["media"]
        await ws.close()
        receiver.cancel()
    return got


async def test_junk_messages_are_ignored_and_the_call_goes_on(node, speech) -> None:  # type: ignore[no-untyped-def]
    clip = load_mulaw(speech("Hello, I would like some help please."))
    got = await bad_call(f"{node.ws}/twilio/stream", clip)
    assert got["media_after_speech"] > 0, "the bot did not answer after the junk"
    async with httpx.AsyncClient() as client:
        record = (await client.get(f"{node.http}/calls/CAbadinput")).json()
        health = await client.get(f"{node.http}/healthz")
    assert record["turns"] and record["turns"][0]["bot_text"]
    assert health.status_code == 200


async def test_bad_call_does_not_disturb_a_concurrent_good_call(node, speech) -> None:  # type: ignore[no-untyped-def]
    clip = load_mulaw(speech("Hello, I would like some help please."))
    good, bad = await asyncio.gather(
        place_call(
            CallerOptions(
                audio=[speech("What time is it?")],
                url=f"{node.ws}/twilio/stream",
                answer_timeout=20,
            )
        ),
        bad_call(f"{node.ws}/twilio/stream", clip),
    )
    assert good.error == "" and good.server_record is not None
    assert good.server_record["turns"][0]["bot_text"] == "You said hello there."
    assert bad["media_after_speech"] > 0


async def test_oversized_frame_ends_only_that_call(node, speech) -> None:  # type: ignore[no-untyped-def]
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{node.ws}/twilio/stream") as ws,
    ):
        await ws.send_str(start_message("CAoversized"))
        await ws.send_str(media(b"\xff" * 8000))  # > 4096-byte message limit
        message = await ws.receive(timeout=10)
        while message.type == aiohttp.WSMsgType.TEXT:
            message = await ws.receive(timeout=10)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == 1009
    follow = await place_call(
        CallerOptions(
            audio=[speech("Are you still there?")],
            url=f"{node.ws}/twilio/stream",
            answer_timeout=20,
        )
    )
    assert follow.error == "" and follow.bot_media_messages > 0


async def test_stream_that_never_starts_is_closed_after_idle_timeout(node) -> None:  # type: ignore[no-untyped-def]
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{node.ws}/twilio/stream") as ws,
    ):
        await ws.send_str(
            json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        )
        message = await ws.receive(timeout=15)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{node.http}/healthz")).status_code == 200
