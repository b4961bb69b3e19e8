"""The media node's HTTP server: Twilio routes, health, readiness, metrics, call records.

Start-up loads the in-process models (once, shared by all calls) and checks the LLM in the
background; `/readyz` says 503 until both are done, while draining, and while any provider (e.g.
the OpenSIPS subscription) is unhealthy.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse, PlainTextResponse
from loguru import logger
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from media_node.calls import CallRegistry
from voice_connector.config import Settings
from voice_connector.services import factory
from voice_connector.services.llm.ollama_models import ensure_model
from voice_connector.transports.base import TransportProvider
from voice_connector.transports.factory import TransportFactory


class NodeState:
    """What `/readyz` reports: each dependency's status, by name."""

    def __init__(self) -> None:
        self.checks: dict[str, tuple[bool, str]] = {"models": (False, "loading")}

    def set(self, name: str, ok: bool, why: str = "ok") -> None:
        self.checks[name] = (ok, why)

    def ready(self, providers: list[TransportProvider], registry: CallRegistry) -> dict[str, Any]:
        checks = dict(self.checks)
        for provider in providers:
            checks[f"transport:{provider.name}"] = provider.readiness()
        checks["draining"] = (not registry.draining, "draining" if registry.draining else "ok")
        return {
            "ready": all(ok for ok, _ in checks.values()),
            "checks": {name: {"ok": ok, "detail": why} for name, (ok, why) in checks.items()},
            "active_calls": registry.count,
        }


async def _check_llm(settings: Settings, state: NodeState) -> None:
    llm = settings.llm
    if llm.provider != "ollama":
        state.set("llm", True, f"{llm.provider} (connects per call)")
        return
    ok, why = await ensure_model(llm.url, llm.model, llm.pull_missing)
    state.set("llm", ok, why)
    if not ok:
        logger.warning(f"LLM not ready: {why}")


def create_app(settings: Settings, services_override: object | None = None) -> FastAPI:
    """The FastAPI app of one media node process."""
    registry = CallRegistry(settings, services_override)
    providers = TransportFactory(settings).create_all()
    state = NodeState()

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        loading = asyncio.create_task(asyncio.to_thread(factory.preload, settings))
        loading.add_done_callback(
            lambda t: state.set("models", t.exception() is None, repr(t.exception() or "ok"))
        )
        state.set("llm", False, "checking")
        llm_check = asyncio.create_task(_check_llm(settings, state))
        for provider in providers:
            await provider.start(registry.handle)
        try:
            yield
        finally:
            for provider in providers:
                await provider.stop()
            llm_check.cancel()

    app = FastAPI(title="voice-connector media node", lifespan=lifespan)
    app.state.registry = registry
    app.state.node = state
    app.state.providers = providers

    for provider in providers:
        for router in provider.routers():
            app.include_router(router)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        if not state.checks.get("llm", (True, ""))[0] and state.checks["llm"][1] != "checking":
            await _check_llm(settings, state)
        body = state.ready(providers, registry)
        return JSONResponse(body, status_code=200 if body["ready"] else 503)

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/calls/{call_id}")
    async def call_record(call_id: str) -> dict[str, Any]:
        record = registry.get(call_id)
        if record is None:
            raise HTTPException(404, f"no call {call_id}")
        return record.to_json()

    return app
