"""Hostile Twilio Media Streams messages: into the serializer, and over a WebSocket on loopback.

Mid-call, every message is either used or dropped and counted: the call goes on, takes audio
afterwards, and nothing is logged as a traceback. Before `start`, on a node that validates, junk
never becomes a call and every connection is closed within its deadline, leaving no state behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from types import SimpleNamespace

import aiohttp
import httpx
import pytest
from pipecat.frames.frames import InputAudioRawFrame, InputDTMFFrame

from media_node.app import create_app
from tests.conftest import node_settings
from tests.fuzz.app_inputs import twilio_message
from tests.fuzz.sip_media_inputs import fuzz_count, fuzz_rng
from tests.integration.twilio.hostile import closed_within, connect, media, node_log, started
from tests.support.fakes import fake_services
from tests.support.servers import ServerThread
from voice_connector.transports.twilio.serializer import TwilioStreamSerializer

AUTH_TOKEN = "tw-fuzz-token-5e2b"


def serve(**env: str) -> ServerThread:
    settings = node_settings(VC_LLM_GREETING="", **env)
    app = create_app(settings, services_override=lambda s, info: fake_services())
    return ServerThread(app, node_settings=settings).start(wait_ready=False)


@pytest.fixture
def open_node() -> Iterator[ServerThread]:
    server = serve()
    yield server
    server.stop()


@pytest.fixture
def signed_node() -> Iterator[ServerThread]:
    server = serve(
        VC_TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        VC_TWILIO_START_TIMEOUT_SECONDS="1",
        VC_TWILIO_MAX_PENDING_PER_SOURCE="50",
    )
    yield server
    server.stop()


async def test_the_serializer_uses_or_drops_every_message() -> None:
    rng, seed = fuzz_rng("twilio-serializer")
    serializer = TwilioStreamSerializer(stream_sid="MZ1", call_sid="CA1")
    await serializer.setup(SimpleNamespace(audio_in_sample_rate=16000))  # type: ignore[arg-type]
    for index in range(fuzz_count(3_000)):
        message = twilio_message(rng)
        try:
            frame = await serializer.deserialize(message)
        except Exception as exc:  # the point of the test
            raise AssertionError(f"seed {seed}, input {index}: {exc!r}") from exc
        assert frame is None or isinstance(frame, InputAudioRawFrame | InputDTMFFrame)


async def test_a_call_survives_hostile_messages(open_node) -> None:  # type: ignore[no-untyped-def]
    rng, seed = fuzz_rng("twilio-call")
    call_sid = "CA" + "f" * 32
    with node_log() as log:
        async with aiohttp.ClientSession() as session:
            ws = await started(session, f"{open_node.ws}/twilio/stream", call_sid)
            for index in range(fuzz_count(600)):
                message = twilio_message(rng, call_sid)
                if isinstance(message, bytes):
                    await ws.send_bytes(message)
                else:
                    await ws.send_str(message)
                if index % 100 == 0:
                    await asyncio.sleep(0.01)
            for _ in range(10):  # and real-time audio after it
                await ws.send_str(media(b"\xff" * 160))
                await asyncio.sleep(0.02)
            assert not await closed_within(ws, 0.2), f"seed {seed}: the call was ended"
            async with httpx.AsyncClient() as client:
                record = (await client.get(f"{open_node.http}/calls/{call_sid}")).json()
                assert (await client.get(f"{open_node.http}/healthz")).status_code == 200
            await ws.close()
        text = log.getvalue()
    assert record["outcome"] == "active", f"seed {seed}: {record['outcome']}"
    assert "Traceback" not in text, f"seed {seed}"


async def test_junk_before_start_never_becomes_a_call(signed_node) -> None:  # type: ignore[no-untyped-def]
    rng, seed = fuzz_rng("twilio-prestart")
    url = f"{signed_node.ws}/twilio/stream"
    provider = signed_node.app.state.providers[0]
    sent = 0

    async def one(session: aiohttp.ClientSession) -> None:
        nonlocal sent
        ws = await connect(session, url)
        for _ in range(rng.randrange(1, 6)):
            message = twilio_message(rng)
            try:
                await (ws.send_bytes if isinstance(message, bytes) else ws.send_str)(message)
            except ConnectionResetError:
                break
            sent += 1
        assert await closed_within(ws, 3.0), f"seed {seed}: a pre-start stream stayed open"
        await ws.close()

    total = fuzz_count(200)
    with node_log() as log:
        async with aiohttp.ClientSession() as session:
            while sent < total:
                await asyncio.gather(*(one(session) for _ in range(20)))
        text = log.getvalue()
    await asyncio.sleep(0.1)
    assert provider._pending.counts == {}, f"seed {seed}: pending streams left behind"
    registry = signed_node.app.state.registry
    assert registry.count == 0 and not registry.recent, f"seed {seed}: junk became a call"
    assert "Traceback" not in text, f"seed {seed}"
