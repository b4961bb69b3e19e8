"""An Ollama-API stand-in built on the AI services' own app factory (call-id middleware, logging).

It answers `/api/chat` instantly with a fixed sentence, so a call exercises the real provider
client (`OllamaLLMService` from the services factory) and the real AI-service correlation
plumbing without loading a model.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator

import pytest
from fastapi import Request
from fastapi.responses import StreamingResponse

from ai_services.logs import CallIdFilter
from ai_services.metrics import ServiceMetrics
from ai_services.model_slot import ModelSlot
from ai_services.service_app import create_app
from tests.support.servers import ServerThread, run_server

ANSWER = "Sure, the store opens at nine in the morning on weekdays."
log = logging.getLogger("ai_services.fake_ollama")


class Records(logging.Handler):
    """Keeps the AI service's log records, stamped with its call id as its own handler does."""

    def __init__(self) -> None:
        super().__init__()
        self.addFilter(CallIdFilter())
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def fake_ollama_app():  # type: ignore[no-untyped-def]
    metrics = ServiceMetrics("fake_ollama")
    app = create_app("fake_ollama", ModelSlot("fake", lambda: object(), metrics), metrics)

    @app.get("/api/version")
    async def version() -> dict[str, str]:
        return {"version": "0.12.0"}

    @app.post("/api/chat")
    async def chat(request: Request) -> StreamingResponse:
        body = await request.json()
        log.info("chat request: %d messages for %s", len(body["messages"]), body["model"])

        async def lines() -> AsyncIterator[bytes]:
            for word in ANSWER.split(" "):
                piece = {
                    "model": body["model"],
                    "created_at": "2024-01-01T00:00:00Z",
                    "message": {"role": "assistant", "content": word + " "},
                    "done": False,
                }
                yield (json.dumps(piece) + "\n").encode()
            done = {
                "model": body["model"],
                "created_at": "2024-01-01T00:00:00Z",
                "message": {"role": "assistant", "content": ""},
                "done": True,
                "done_reason": "stop",
            }
            yield (json.dumps(done) + "\n").encode()  # fmt: skip

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    return app


@pytest.fixture
def ai_service_logs() -> Iterator[Records]:
    handler = Records()
    service_log = logging.getLogger("ai_services")
    service_log.addHandler(handler)
    service_log.setLevel(logging.INFO)
    yield handler
    service_log.removeHandler(handler)


@pytest.fixture
def fake_ollama() -> Iterator[ServerThread]:
    yield from run_server(fake_ollama_app())
