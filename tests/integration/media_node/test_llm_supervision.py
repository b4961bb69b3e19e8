"""The bundled LLM server dies mid-call (SIGILL as a bad native build would, SIGKILL as the OOM
killer would): the caller hears the apology and the call ends; the node says why it is not ready
and refuses new calls; the server is restarted and readiness comes back with no manual step.

Real parts: the node app on uvicorn, the bundled Ollama-API server as a child process (SmolLM2,
through `[llm] model_path`), local Whisper and Piper, the simulated Twilio caller.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import node_settings
from tests.support.servers import ServerThread, free_port
from voice_connector.caller.twilio_caller import CallerOptions, place_call
from voice_connector.services.llm.local_server import LocalLLMServer
from voice_connector.services.outage import APOLOGY

pytestmark = pytest.mark.slow

RESTART_AFTER_SECS = 20.0
"""Long enough that the server is still down when the caller's question reaches the LLM."""


@pytest.fixture
def supervised() -> Iterator[tuple[ServerThread, LocalLLMServer]]:
    from media_node.app import create_app
    from voice_connector_core.models import smollm2_gguf

    settings = node_settings(
        VC_LLM_URL=f"http://127.0.0.1:{free_port()}",
        VC_LLM_MODEL="smollm2:135m",
        VC_LLM_MODEL_PATH=str(smollm2_gguf()),
        VC_LLM_MAX_TOKENS="24",
    )
    llm = LocalLLMServer.for_settings(settings)
    llm.backoff = (RESTART_AFTER_SECS,)
    llm.start()
    node = ServerThread(create_app(settings, checks={"llm-server": llm.status}))
    node.start()
    yield node, llm
    node.stop()
    llm.stop()


def readyz(node: ServerThread) -> tuple[int, dict[str, Any]]:
    reply = httpx.get(f"{node.http}/readyz", timeout=5)
    return reply.status_code, reply.json()


async def wait_for(predicate: Any, limit: float) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("sig", [signal.SIGILL, signal.SIGKILL])
async def test_llm_server_dies_mid_call(supervised, speech, sig: int) -> None:  # type: ignore[no-untyped-def]
    node, llm = supervised
    assert readyz(node)[0] == 200
    first = llm.process
    assert first is not None
    call = asyncio.create_task(
        place_call(
            CallerOptions(
                audio=[speech("What is the capital of France?")],
                url=f"{node.ws}/twilio/stream",
                answer_timeout=60,
            )
        )
    )
    registry = node.app.state.registry
    await wait_for(lambda: registry.count == 1, 30)
    os.kill(first.pid, sig)

    await wait_for(lambda: not llm.status()[0], 10)
    status, body = readyz(node)
    assert status == 503
    assert f"killed by {signal.Signals(sig).name}" in body["checks"]["llm-server"]["detail"]

    refused = await place_call(
        CallerOptions(audio=[], url=f"{node.ws}/twilio/stream", answer_timeout=10)
    )
    assert refused.closed_by_server and refused.bot_media_messages == 0, "a new call was taken"

    result = await asyncio.wait_for(call, 60)
    assert result.error == ""
    assert result.closed_by_server, "the node ended the call (after its apology)"
    assert result.turns[0].first_bot_audio_at is not None, "silence after the question"
    record = result.server_record
    assert record is not None and record["outcome"] != "active"
    assert APOLOGY in json.dumps(record), record

    await wait_for(lambda: readyz(node)[0] == 200, RESTART_AFTER_SECS + 60)
    assert llm.restarts == 1 and llm.process is not first
