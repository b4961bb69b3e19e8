"""The node warms the LLM's prompt cache with exactly the prefix a call's first turn sends.

An Ollama stand-in records every `/api/chat` body (stream or not) and answers at once; the node
is real (local Whisper, Piper), the caller is the simulated Twilio peer. The warm-up must be a
prefix of the first real request (same model, system prompt, tools, greeting), or llama.cpp's
prefix reuse would find nothing to reuse.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from tests.conftest import node_settings
from tests.support.servers import ServerThread, run_server
from voice_connector.caller.twilio_caller import CallerOptions, place_call

pytestmark = pytest.mark.slow


def recording_ollama(bodies: list[dict[str, Any]]) -> FastAPI:
    app = FastAPI()

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    @app.get("/api/version")
    async def version() -> dict[str, str]:
        return {"version": "0.12.0"}

    @app.get("/api/tags")
    async def tags() -> dict[str, Any]:
        return {"models": [{"name": "qwen2.5-coder:0.5b", "model": "qwen2.5-coder:0.5b"}]}

    @app.post("/api/chat")
    async def chat(request: Request) -> Any:
        body = await request.json()
        bodies.append(body)
        final = {
            "model": body["model"], "created_at": "2024-01-01T00:00:00Z", "done": True,
            "message": {"role": "assistant", "content": "Paris."}, "done_reason": "stop",
            "prompt_eval_count": 321,
        }  # fmt: skip
        if not body.get("stream", True):
            return JSONResponse(final)

        async def lines() -> AsyncIterator[bytes]:
            yield (json.dumps(final) + "\n").encode()

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    return app


@pytest.fixture
def recorder() -> Iterator[tuple[ServerThread, list[dict[str, Any]]]]:
    bodies: list[dict[str, Any]] = []
    for server in run_server(recording_ollama(bodies)):
        yield server, bodies


async def test_first_turn_hits_the_warmed_prefix(recorder, media_node_factory, speech) -> None:  # type: ignore[no-untyped-def]
    ollama, bodies = recorder
    node = media_node_factory(node_settings(VC_LLM_URL=ollama.http))
    deadline = time.monotonic() + 30
    while not bodies:
        assert time.monotonic() < deadline, "no warm-up request"
        await asyncio.sleep(0.1)
    result = await place_call(
        CallerOptions(
            audio=[speech("What is the capital of France?")], url=f"{node.ws}/twilio/stream"
        )
    )
    assert result.error == ""
    # One warm-up per distinct prefix (the shipped config has flavors); the server keeps only the
    # last one evaluated, so the default flavor's, which calls start with, comes last.
    turns = [i for i, b in enumerate(bodies) if b.get("stream", True)]
    warm_ups = bodies[: turns[0]]
    assert len(warm_ups) == len({repr(b["messages"]) for b in warm_ups}) >= 1
    warm = warm_ups[-1]
    assert warm["stream"] is False and warm["options"]["num_predict"] == 1
    assert warm["messages"][0]["role"] == "system"
    assert warm["tools"], "the call-control tools are part of the prefix"
    first_turn = bodies[turns[0]]
    assert first_turn["model"] == warm["model"]
    assert first_turn["tools"] == warm["tools"]
    assert first_turn["messages"][: len(warm["messages"])] == warm["messages"]
    assert first_turn["messages"][len(warm["messages"])]["role"] == "user"
