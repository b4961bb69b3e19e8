"""Node limits on Twilio streams: capacity, silent streams, message size wiring."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys

import aiohttp
import httpx
import pytest

from tests.conftest import node_settings
from tests.integration.twilio.stream_client import open_stream, start_message
from tests.support.fakes import fake_services
from tests.support.servers import free_port

TRY_AGAIN_LATER = 1013


async def test_call_beyond_capacity_is_refused_politely(media_node_factory) -> None:  # type: ignore[no-untyped-def]
    settings = node_settings(VC_GENERAL_MAX_CALLS="1", VC_LLM_GREETING="")
    node = media_node_factory(settings, services_override=lambda s, info: fake_services())
    url = f"{node.ws}/twilio/stream"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as first:
        await first.send_str(start_message("CA" + "6" * 32))
        async with httpx.AsyncClient() as client:
            for _ in range(200):
                if (await client.get(f"{node.http}/readyz")).json()["active_calls"] >= 1:
                    break
                await asyncio.sleep(0.05)
        refused = await open_stream(url, "CA" + "7" * 32)
        assert refused.close_code == TRY_AGAIN_LATER
        assert not first.closed  # the call in progress is untouched
    async with httpx.AsyncClient() as client:
        record = (await client.get(f"{node.http}/calls/CA{'7' * 32}")).json()
    assert (record["outcome"], record["outcome_detail"]) == ("rejected", "at capacity (1 calls)")
    assert record["turns"] == [] and record["ended_at"] == record["started_at"]  # it never ran


async def test_started_stream_gone_silent_ends_the_call(media_node_factory) -> None:  # type: ignore[no-untyped-def]
    settings = node_settings(VC_TWILIO_IDLE_TIMEOUT_SECONDS="1", VC_LLM_GREETING="")
    node = media_node_factory(settings, services_override=lambda s, info: fake_services())
    call_sid = "CA" + "8" * 32
    url = f"{node.ws}/twilio/stream"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_str(json.dumps({"event": "connected", "protocol": "Call"}))
        await ws.send_str(start_message(call_sid))
        message = await ws.receive(timeout=15)  # then nothing at all: no media, no stop
        while message.type == aiohttp.WSMsgType.TEXT:
            message = await ws.receive(timeout=15)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    async with httpx.AsyncClient() as client:
        for _ in range(100):
            record = (await client.get(f"{node.http}/calls/{call_sid}")).json()
            if record["outcome"] != "active":
                break
            await asyncio.sleep(0.05)
    assert record["outcome"] == "idle_timeout"


@pytest.mark.slow
async def test_real_node_process_enforces_max_message_bytes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`voice-connector run` hands `[general] http_ws_max_message_bytes` to uvicorn
    (ws_max_size)."""
    port = free_port()
    env = {
        **os.environ,
        "VC_GENERAL_HTTP_PORT": str(port),
        "VC_GENERAL_HTTP_HOST": "127.0.0.1",
        "VC_GENERAL_HTTP_WS_MAX_MESSAGE_BYTES": "2048",
    }
    command = [sys.executable, "-m", "media_node.cli", "run", "--no-local-llm"]
    process = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(600):
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
        async with aiohttp.ClientSession() as session:
            url = f"ws://127.0.0.1:{port}/twilio/stream"
            async with session.ws_connect(url) as ws:
                await ws.send_str("x" * 1000)  # under the limit: ignored junk, stream stays
                await ws.send_str("x" * 3000)
                message = await ws.receive(timeout=10)
                assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
                assert ws.close_code == 1009
    finally:
        process.terminate()
        await process.wait()


@pytest.mark.parametrize("size", [4096 + 1, 64 * 1024])
async def test_oversized_message_closes_with_1009(media_node_factory, size: int) -> None:  # type: ignore[no-untyped-def]
    settings = node_settings(VC_GENERAL_HTTP_WS_MAX_MESSAGE_BYTES="4096", VC_LLM_GREETING="")
    node = media_node_factory(settings, services_override=lambda s, info: fake_services())
    url = f"{node.ws}/twilio/stream"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_str("x" * size)
        message = await ws.receive(timeout=10)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == 1009
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{node.http}/healthz")).status_code == 200
