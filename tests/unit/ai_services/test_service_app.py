"""The base app's pieces alone: health router, error handlers, metrics of included routers."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from ai_services import ollama_api, openai_compat
from ai_services.errors import ServiceError, openai_error_body
from ai_services.metrics import ServiceMetrics
from ai_services.model_slot import ModelSlot
from ai_services.served_model import ServedModel, served_model
from ai_services.service_app import create_app, health_router, on_service_error
from tests.unit.ai_services.llm_double import ScriptedEngine


def http(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc")


async def test_health_router_reports_the_model_slot_in_app_state() -> None:
    release = threading.Event()
    metrics = ServiceMetrics("bare")
    slot: ModelSlot[str] = ModelSlot("tiny", lambda: "model" if release.wait(5) else "", metrics)
    app = FastAPI()
    app.state.service, app.state.model, app.state.metrics = "bare", slot, metrics
    app.include_router(health_router)
    async with http(app) as client:
        slot.start()
        loading = await client.get("/readyz")
        release.set()
        await slot.get()
        ready = await client.get("/readyz")
        alive = await client.get("/healthz")
        exported = await client.get("/metrics")
    assert (loading.status_code, loading.json()["status"]) == (503, "loading")
    assert (ready.status_code, ready.json()["model"]) == (200, "tiny")
    assert alive.json() == {"status": "ok", "service": "bare"}
    assert 'ai_service_model_ready{service="bare"} 1.0' in exported.text


async def test_service_errors_take_the_shape_the_app_state_names() -> None:
    router = APIRouter()

    @router.get("/refuse")
    async def refuse() -> None:
        raise ServiceError(413, "too big")

    app = FastAPI()
    app.state.error_body = openai_error_body
    app.add_exception_handler(ServiceError, on_service_error)  # type: ignore[arg-type]
    app.include_router(router)
    async with http(app) as client:
        resp = await client.get("/refuse")
    assert resp.status_code == 413
    assert resp.json() == {
        "error": {"message": "too big", "type": "invalid_request_error", "code": 413}
    }


async def test_requests_to_included_routes_are_counted_by_their_path() -> None:
    metrics = ServiceMetrics("counted")
    app = create_app("counted", ModelSlot("m", lambda: "m", metrics), metrics)
    router = APIRouter()

    @router.get("/api/items/{item}")
    async def item(item: str) -> dict[str, str]:
        return {"item": item}

    app.include_router(router)
    async with http(app) as client:
        await client.get("/api/items/7", headers={"X-Call-Id": "call-1"})
        exported = (await client.get("/metrics")).text
    line = 'ai_service_requests_total{endpoint="/api/items/{item}",service="counted",status="200"}'
    assert f"{line} 1.0" in exported


async def test_a_handler_s_served_model_can_be_swapped_by_dependency_override(
    tmp_path: Path,
) -> None:
    """`served_model` is an ordinary FastAPI dependency: overriding it replaces the state."""
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    app = FastAPI()
    app.include_router(openai_compat.router)
    stand_in = ServedModel(ScriptedEngine(gguf), "stand-in:1b")
    app.dependency_overrides[served_model] = lambda: stand_in
    async with http(app) as client:
        resp = await client.get("/v1/models")
    assert [m["id"] for m in resp.json()["data"]] == ["stand-in:1b"]


@pytest.mark.filterwarnings("ignore:Duplicate Operation ID")  # GET+HEAD `/`, as before
def test_build_app_assembles_every_route_around_one_served_model(tmp_path: Path) -> None:
    app = ollama_api.build_app(tmp_path / "never-loaded.gguf", "qwen2.5-coder:0.5b", n_ctx=1024)
    served = app.state.served
    assert (served.name, served.engine.n_ctx) == ("qwen2.5-coder:0.5b", 1024)
    assert set(app.openapi()["paths"]) == {
        "/healthz",
        "/readyz",
        "/metrics",
        "/",
        "/api/version",
        "/api/tags",
        "/api/ps",
        "/api/show",
        "/api/pull",
        "/api/chat",
        "/api/generate",
        "/v1/models",
        "/v1/chat/completions",
    }
