"""Routers of the Ollama-API server on bare FastAPI apps, served by `ScriptedEngine`."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from ai_services.errors import ServiceError, simple_error_body
from ai_services.served_model import ServedModel
from ai_services.service_app import on_service_error
from tests.unit.ai_services.llm_double import GGUF_MTIME, MODEL, ScriptedEngine


@pytest.fixture
def gguf(tmp_path: Path) -> Path:
    path = tmp_path / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    path.write_bytes(b"GGUF")
    os.utime(path, (GGUF_MTIME, GGUF_MTIME))
    return path


@pytest.fixture
def engine(gguf: Path) -> ScriptedEngine:
    return ScriptedEngine(gguf)


def bare_app(engine: ScriptedEngine, *routers: APIRouter) -> FastAPI:
    """Only `routers`, the served model in `app.state` and the `ServiceError` handler."""
    app = FastAPI()
    app.state.served = ServedModel(engine, MODEL)
    app.state.error_body = simple_error_body
    app.add_exception_handler(ServiceError, on_service_error)  # type: ignore[arg-type]
    for router in routers:
        app.include_router(router)
    return app


@pytest.fixture
def client(engine: ScriptedEngine) -> Callable[..., httpx.AsyncClient]:
    """`async with client(router, ...) as http:` an httpx client of a bare app with them,
    served by the `engine` fixture unless another engine is given."""

    def make(*routers: APIRouter, served_by: ScriptedEngine | None = None) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=bare_app(served_by or engine, *routers))
        return httpx.AsyncClient(transport=transport, base_url="http://ollama")

    return make
