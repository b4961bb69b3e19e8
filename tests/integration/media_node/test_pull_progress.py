"""`[llm] pull_missing = true`: the node pulls a missing model from a server that streams pull
progress in Ollama's wire format, logs the progress in percent, and is ready only once it is done.

The server is a small double of Ollama's model API: `/api/tags` lists nothing until a pull has
finished; `/api/pull` streams NDJSON lines (`pulling manifest`, then `pulling <digest>` lines with
`digest`, `total`, `completed`, then `verifying sha256 digest`, `writing manifest`, `success`) over
real time, and holds the last part until the test lets it finish.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from loguru import logger

from media_node.app import create_app
from tests.conftest import node_settings
from tests.support.servers import ServerThread, run_server

pytestmark = pytest.mark.slow

MODEL = "tiny-model:1b"
DIGEST = "sha256:" + "8eeb52dfb3bb" + "0" * 52
TOTAL = 4_000_000


class PullDouble:
    """Ollama's tags and pull endpoints; `release` lets a pull past 50 %."""

    def __init__(self) -> None:
        self.pulled = False
        self.release = threading.Event()
        self.requests: list[dict[str, Any]] = []

    def tags(self) -> dict[str, Any]:
        if not self.pulled:
            return {"models": []}
        details = {"format": "gguf", "family": "llama", "parameter_size": "1B"}
        entry = {
            "name": MODEL,
            "model": MODEL,
            "modified_at": "2026-01-01T00:00:00Z",
            "size": TOTAL,
            "digest": DIGEST.removeprefix("sha256:"),
            "details": details,
        }
        return {"models": [entry]}  # fmt: skip

    async def pull_lines(self) -> AsyncIterator[bytes]:
        def line(value: dict[str, Any]) -> bytes:
            return json.dumps(value).encode() + b"\n"

        yield line({"status": "pulling manifest"})
        layer = {"status": f"pulling {DIGEST[7:19]}", "digest": DIGEST, "total": TOTAL}
        for done in (0, TOTAL // 4, TOTAL // 2):
            await asyncio.sleep(0.1)
            yield line({**layer, "completed": done})
        await asyncio.to_thread(self.release.wait, 30)
        yield line({**layer, "completed": TOTAL})
        for status in ("verifying sha256 digest", "writing manifest"):
            yield line({"status": status})
        self.pulled = True
        yield line({"status": "success"})

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/readyz")
        async def readyz() -> dict[str, str]:
            return {"status": "ready"}

        @app.get("/api/tags")
        async def tags() -> dict[str, Any]:
            return self.tags()

        @app.post("/api/pull")
        async def pull(body: dict[str, Any]) -> StreamingResponse:
            self.requests.append(body)
            return StreamingResponse(self.pull_lines(), media_type="application/x-ndjson")

        return app


@pytest.fixture
def double() -> Iterator[tuple[PullDouble, ServerThread]]:
    pulls = PullDouble()
    for server in run_server(pulls.app()):
        yield pulls, server
        pulls.release.set()


async def until(check: Callable[[], Awaitable[bool]], limit: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.05)


def async_value(predicate: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return predicate()

    return check


async def ready(http: httpx.AsyncClient) -> bool:
    return (await http.get("/readyz")).status_code == 200


async def test_node_pulls_the_missing_model_shows_percent_and_waits_for_it(
    double: tuple[PullDouble, ServerThread],
) -> None:
    pulls, server = double
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(message.record["message"]), level="INFO")
    settings = node_settings(VC_LLM_URL=server.http, VC_LLM_MODEL=MODEL, VC_LLM_PULL_MISSING="true")
    node = ServerThread(create_app(settings)).start(wait_ready=False)
    try:
        async with httpx.AsyncClient(base_url=node.http) as http:
            await until(async_value(lambda: any("50%" in line for line in lines)))
            readiness = await http.get("/readyz")
            assert readiness.status_code == 503, "not ready while the model is being pulled"
            assert readiness.json()["checks"]["llm"]["ok"] is False
            assert pulls.requests and pulls.requests[0]["model"] == MODEL

            pulls.release.set()
            await until(async_value(lambda: pulls.pulled))
            await until(lambda: ready(http))
    finally:
        logger.remove(sink)
        await asyncio.to_thread(node.stop)
    progress = [line for line in lines if line.startswith(f"pull {MODEL}: pulling 8eeb52dfb3bb")]
    assert [p.rsplit(" ", 1)[-1] for p in progress] == ["0%", "25%", "50%", "100%"], progress
    assert any(line == f"pull {MODEL}: success" for line in lines), lines
