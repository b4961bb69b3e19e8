"""The FastAPI app every server starts from: health, readiness, metrics and JSON errors.

`create_app` attaches the service's state (`service`, `model`, `metrics`, `error_body`,
`on_shutdown`) to `app.state`; the health router and the exception handlers below read it from
there, so they are plain functions usable (and testable) on any app carrying that state.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from ai_services.errors import ErrorBody, ServiceError, simple_error_body
from ai_services.metrics import ServiceMetrics
from ai_services.middleware import CallIdMetricsMiddleware
from ai_services.model_slot import ModelSlot

log = logging.getLogger("ai_services")
health_router = APIRouter()


@health_router.get("/healthz")
async def healthz(request: Request) -> dict[str, str]:
    """Liveness: the process serves requests."""
    return {"status": "ok", "service": request.app.state.service}


@health_router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Readiness: 200 only once the model is loaded."""
    model: ModelSlot[Any] = request.app.state.model
    if model.ready:
        return JSONResponse(
            {"status": "ready", "model": model.name, "load_seconds": model.load_seconds}
        )
    state = "failed" if model.error else "loading"
    return JSONResponse(
        {"status": state, "model": model.name, "error": model.error}, status_code=503
    )


@health_router.get("/metrics")
async def prometheus_metrics(request: Request) -> PlainTextResponse:
    metrics: ServiceMetrics = request.app.state.metrics
    return PlainTextResponse(
        generate_latest(metrics.registry).decode(), media_type=CONTENT_TYPE_LATEST
    )


def render(request: Request, err: ServiceError) -> JSONResponse:
    """`err` in the app's error shape (`app.state.error_body`)."""
    error_body: ErrorBody = request.app.state.error_body
    return JSONResponse(error_body(err), status_code=err.status)


async def on_service_error(request: Request, exc: ServiceError) -> JSONResponse:
    """A refusal raised by a handler: expected, so logged without a traceback."""
    log.info("request refused (%s): %s", exc.status, exc.message)
    return render(request, exc)


async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's validation errors as one readable 400 message."""
    parts = []
    for item in exc.errors():
        where = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
        parts.append(f"{where}: {item.get('msg')}" if where else str(item.get("msg")))
    return render(request, ServiceError(400, "invalid request: " + "; ".join(parts)))


async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Starlette's own errors (404 no route, 405 method) in the app's error shape."""
    return render(request, ServiceError(exc.status_code, str(exc.detail)))


async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    """A bug: logged with its traceback, the client only learns the exception's type."""
    log.exception("unexpected error")
    return render(
        request, ServiceError(500, f"internal error: {type(exc).__name__}", "server_error")
    )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start loading the model once the server listens; run the service's clean-up at the end."""
    app.state.model.start()
    yield
    if app.state.on_shutdown is not None:
        app.state.on_shutdown()


def create_app(
    service: str,
    model: ModelSlot[Any],
    metrics: ServiceMetrics,
    *,
    error_body: ErrorBody = simple_error_body,
    on_shutdown: Callable[[], None] | None = None,
) -> FastAPI:
    """A FastAPI app with health, readiness, metrics and JSON errors; add the service's routes."""
    app = FastAPI(title=f"ai_services.{service}", lifespan=lifespan)
    app.state.service = service
    app.state.model = model
    app.state.metrics = metrics
    app.state.error_body = error_body
    app.state.on_shutdown = on_shutdown
    app.add_exception_handler(ServiceError, on_service_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
    app.include_router(health_router)
    app.add_middleware(CallIdMetricsMiddleware, metrics=metrics)
    return app
