"""Health and drain of the real media node process (`voice-connector run`), as a pod sees it.

SIGTERM during a call: `/readyz` turns 503, a new call is refused, the active call is answered
to its end, and the process exits 0. Readiness follows the LLM: 503 while it is unreachable.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import httpx
import pytest

from tests.containers.ollama_stub import OllamaStub
from tests.containers.procs import Process
from tests.support.servers import free_port
from voice_connector.caller.twilio_caller import CallerOptions, SimulatedTwilioCall

pytestmark = pytest.mark.slow

CLOSE_TRY_AGAIN_LATER = 1013


@pytest.fixture
def llm_stub() -> Iterator[OllamaStub]:
    stub = OllamaStub(free_port()).start()
    yield stub
    stub.shutdown()


@pytest.fixture
def start_node(tmp_path: Path) -> Iterator[Callable[..., tuple[Process, str]]]:
    """`start_node(**VC_env)` → (process, base URL): `voice-connector run`, Twilio only."""
    processes: list[Process] = []

    def start(**env: str) -> tuple[Process, str]:
        port = free_port()
        command = [str(Path(sys.executable).parent / "voice-connector"), "run", "--no-local-llm"]
        process = Process(
            command,
            {"VC_GENERAL_HTTP_HOST": "127.0.0.1", "VC_GENERAL_HTTP_PORT": str(port),
             "VC_TRANSPORT_PROVIDERS": "twilio", **env},
            tmp_path / f"node-{len(processes)}.log",
        )
        processes.append(process)
        base = f"http://127.0.0.1:{port}"
        process.wait_status(f"{base}/healthz", 200)
        return process, base

    yield start
    for process in processes:
        process.close()


def readyz(base: str) -> dict:
    return httpx.get(f"{base}/readyz", timeout=5).json()


async def refused(base: str) -> int | None:
    """Open a new Twilio stream; the close code the node answers with."""
    call = SimulatedTwilioCall(CallerOptions(audio=[]))
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(base.replace("http", "ws") + "/twilio/stream")
        await ws.send_str(json.dumps({"event": "connected", "protocol": "Call"}))
        await ws.send_str(call.start_message())
        message = await asyncio.wait_for(ws.receive(), timeout=15)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), message
        return ws.close_code


async def test_sigterm_drains_the_active_call_then_exits_zero(start_node, llm_stub, speech) -> None:  # type: ignore[no-untyped-def]
    node, base = start_node(VC_LLM_URL=llm_stub.url, VC_GENERAL_DRAIN_GRACE_SECONDS="60")
    await asyncio.to_thread(node.wait_status, f"{base}/readyz", 200)

    options = CallerOptions(audio=[speech("Hello, can you hear me?")],
                            url=base.replace("http", "ws") + "/twilio/stream", answer_timeout=30)
    call = asyncio.create_task(SimulatedTwilioCall(options).run())
    await asyncio.to_thread(node.wait_until, lambda: readyz(base)["active_calls"] == 1,
                            "the call is active")

    node.signal(signal.SIGTERM)
    await asyncio.to_thread(node.wait_status, f"{base}/readyz", 503, 10)
    body = readyz(base)
    assert body["checks"]["draining"]["ok"] is False
    assert await refused(base) == CLOSE_TRY_AGAIN_LATER

    result = await asyncio.wait_for(call, timeout=90)
    assert result.error == "", result.error
    assert result.turns[0].first_bot_audio_at is not None, "no answer during the drain"
    assert await asyncio.to_thread(node.wait_exit, 30) == 0, node.output()
    assert "drain finished" in node.output()


async def test_drain_grace_ends_a_call_that_outlasts_it(start_node, llm_stub, speech) -> None:  # type: ignore[no-untyped-def]
    node, base = start_node(VC_LLM_URL=llm_stub.url, VC_GENERAL_DRAIN_GRACE_SECONDS="1")
    await asyncio.to_thread(node.wait_status, f"{base}/readyz", 200)
    options = CallerOptions(audio=[speech("Tell me a long story please.")] * 3,
                            url=base.replace("http", "ws") + "/twilio/stream", answer_timeout=30)
    call = asyncio.create_task(SimulatedTwilioCall(options).run())
    await asyncio.to_thread(node.wait_until, lambda: readyz(base)["active_calls"] == 1,
                            "the call is active")
    node.signal(signal.SIGTERM)
    assert await asyncio.to_thread(node.wait_exit, 30) == 0, node.output()
    assert "drain grace over" in node.output()
    call.cancel()
    await asyncio.gather(call, return_exceptions=True)


def test_idle_node_exits_zero_at_once_on_sigterm(start_node, llm_stub) -> None:  # type: ignore[no-untyped-def]
    node, base = start_node(VC_LLM_URL=llm_stub.url)
    node.wait_status(f"{base}/readyz", 200)
    node.signal(signal.SIGTERM)
    assert node.wait_exit(15) == 0, node.output()


def test_readiness_follows_the_llm(start_node) -> None:  # type: ignore[no-untyped-def]
    """Not ready while nothing answers at the LLM URL; ready once it does; liveness throughout."""
    port = free_port()
    node, base = start_node(VC_LLM_URL=f"http://127.0.0.1:{port}")
    node.wait_until(lambda: readyz(base)["checks"]["models"]["ok"], "models loaded")
    body = readyz(base)
    assert httpx.get(f"{base}/readyz").status_code == 503
    assert body["checks"]["llm"]["ok"] is False and "unreachable" in body["checks"]["llm"]["detail"]
    assert httpx.get(f"{base}/healthz").status_code == 200

    stub = OllamaStub(port).start()
    try:
        node.wait_status(f"{base}/readyz", 200, timeout=20)
    finally:
        stub.shutdown()
        stub.server_close()
