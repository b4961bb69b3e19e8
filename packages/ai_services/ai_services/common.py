"""Plumbing shared by every AI service server, so each server module only holds its own protocol.

- `create_app`: FastAPI app with `GET /healthz`, `GET /readyz`, `GET /metrics`, JSON errors and the
  call-id / metrics ASGI middleware (pure ASGI: streaming responses still see client disconnects).
- `ModelSlot`: loads a model once, in a thread, after the server is listening; readiness follows it.
- `WorkQueue`: a worker pool with bounded admission: when full it answers "busy", not slowly.
- `ServiceError`: raise it anywhere in a handler to answer with a JSON error body.
- `base_parser` / `serve`: the common command line (`--host/--port/--log-level`) and uvicorn start.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, Generic, TypeVar

import uvicorn
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

T = TypeVar("T")
log = logging.getLogger("ai_services")

CALL_ID: contextvars.ContextVar[str] = contextvars.ContextVar("call_id", default="-")
CALL_ID_HEADER = "x-call-id"
MAX_CALL_ID_LEN = 128


# --------------------------------------------------------------------------- logging / call ids


class CallIdFilter(logging.Filter):
    """Stamps each log record with the current call id, to follow one call across services."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.call_id = CALL_ID.get()
        return True


def configure_logging(level: str = "info") -> None:
    """Root logging with the call id in every line (uvicorn keeps its own access log format)."""
    handler = logging.StreamHandler()
    handler.addFilter(CallIdFilter())
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s [call_id=%(call_id)s] %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def set_call_id(value: object) -> str:
    """Adopt a client-supplied correlation id (bounded, printable) for the current task."""
    text = "".join(ch for ch in str(value) if ch.isprintable())[:MAX_CALL_ID_LEN] or "-"
    CALL_ID.set(text)
    return text


# --------------------------------------------------------------------------- errors


class ServiceError(Exception):
    """An error that is the client's to see: rendered as a JSON body with this HTTP status."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind


class QueueFullError(ServiceError):
    """The worker pool and its waiting room are full: the client should retry or go elsewhere."""

    def __init__(self, message: str = "server busy: request queue is full") -> None:
        super().__init__(503, message, kind="server_busy")


def error_message(exc: Exception) -> str:
    """What to tell a client about `exc`; unexpected errors are logged with their traceback."""
    if isinstance(exc, ServiceError):
        return exc.message
    log.error("unexpected error", exc_info=exc)
    return f"internal error: {type(exc).__name__}: {exc}"


ErrorBody = Callable[[ServiceError], dict[str, Any]]


def simple_error_body(err: ServiceError) -> dict[str, Any]:
    """Ollama's (and the legacy servers') error shape: `{"error": "message"}`."""
    return {"error": err.message}


def openai_error_body(err: ServiceError) -> dict[str, Any]:
    """OpenAI's error shape, which OpenAI-style STT clients parse."""
    return {"error": {"message": err.message, "type": err.kind, "code": err.status}}


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds `limit` bytes (even if chunked)."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise ServiceError(413, f"request body larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise ServiceError(413, f"request body larger than {limit} bytes")
    return bytes(body)


async def read_json(request: Request, limit: int = 32 << 20) -> dict[str, Any]:
    """A JSON object body, or a 400 `ServiceError` saying what is wrong with it."""
    body = await read_body(request, limit)
    if not body.strip():
        raise ServiceError(400, "missing request body")
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise ServiceError(400, f"invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ServiceError(400, "request body must be a JSON object")
    return data


# --------------------------------------------------------------------------- metrics


class ServiceMetrics:
    """Per-app Prometheus registry (several services may share one process, e.g. in tests)."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ai_service_requests",
            "Requests and WebSocket messages handled, by endpoint and outcome.",
            ["service", "endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ai_service_request_seconds",
            "Time to serve one request (HTTP) or one unit of work (WebSocket).",
            ["service", "endpoint"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.first_output = Histogram(
            "ai_service_first_output_seconds",
            "Time from request to the first streamed token / audio chunk.",
            ["service", "endpoint"],
            buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 5, 10),
            registry=self.registry,
        )
        self.model_load_seconds = Gauge(
            "ai_service_model_load_seconds",
            "Seconds the model took to load.",
            ["service"],
            registry=self.registry,
        )
        self.model_ready = Gauge(
            "ai_service_model_ready",
            "1 once the model is loaded.",
            ["service"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "ai_service_queue_depth",
            "Jobs running or waiting for a worker.",
            ["service"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "ai_service_rejected",
            "Jobs refused because the queue was full.",
            ["service"],
            registry=self.registry,
        )
        self.ws_connections = Gauge(
            "ai_service_websocket_connections",
            "Open WebSocket connections.",
            ["service"],
            registry=self.registry,
        )
        self.tokens = Counter(
            "ai_service_generated_tokens",
            "Tokens generated by the LLM.",
            ["service"],
            registry=self.registry,
        )

    def observe(self, endpoint: str, status: int | str, seconds: float | None = None) -> None:
        """Count one finished request or message and record its duration (if it did work)."""
        self.requests.labels(self.service, endpoint, str(status)).inc()
        if seconds is not None:
            self.latency.labels(self.service, endpoint).observe(seconds)


# --------------------------------------------------------------------------- model loading


class ModelSlot(Generic[T]):
    """Holds one model, loaded once in a thread after start-up; `/readyz` reports its state.

    Requests that arrive while it loads wait for it (like Ollama loading on first use) instead of
    failing; a load failure is reported to them as 503 with the reason.
    """

    def __init__(self, name: str, loader: Callable[[], T], metrics: ServiceMetrics) -> None:
        self.name = name
        self._loader = loader
        self._metrics = metrics
        self._task: asyncio.Task[T | None] | None = None
        self._value: T | None = None
        self.error: str | None = None
        self.load_seconds: float | None = None

    def start(self) -> None:
        """Begin loading in the background (idempotent)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._load())

    async def _load(self) -> T | None:
        started = time.perf_counter()
        try:
            value = await asyncio.to_thread(self._loader)
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("loading model %s failed", self.name)
            return None
        self.load_seconds = time.perf_counter() - started
        self._value = value
        self._metrics.model_load_seconds.labels(self._metrics.service).set(self.load_seconds)
        self._metrics.model_ready.labels(self._metrics.service).set(1)
        log.info("model %s loaded in %.2f s", self.name, self.load_seconds)
        return value

    @property
    def ready(self) -> bool:
        return self._value is not None

    async def get(self) -> T:
        """The loaded model; waits while it loads, raises a 503 `ServiceError` if loading failed."""
        if self._value is not None:
            return self._value
        if self._task is None:
            self.start()
        assert self._task is not None
        value = await asyncio.shield(self._task)
        if value is None:
            raise ServiceError(503, f"model {self.name} failed to load: {self.error}")
        return value


# --------------------------------------------------------------------------- worker pool


class WorkQueue:
    """Runs blocking model calls on `workers` threads; admits at most `max_queue` waiting jobs.

    Bounding the waiting room turns overload into an immediate, explicit "busy" answer that a
    load balancer or client can act on, rather than ever-growing latency for every caller.
    """

    def __init__(self, workers: int, max_queue: int, metrics: ServiceMetrics, name: str) -> None:
        if workers < 1 or max_queue < 0:
            raise ValueError("workers must be >= 1 and max_queue >= 0")
        self.workers = workers
        self.max_queue = max_queue
        self._metrics = metrics
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._pending = 0

    @property
    def pending(self) -> int:
        return self._pending

    def admit(self) -> None:
        """Reserve a place or raise `QueueFullError`; pair with `release()`."""
        if self._pending >= self.workers + self.max_queue:
            self._metrics.rejected.labels(self._metrics.service).inc()
            raise QueueFullError()
        self._pending += 1
        self._metrics.queue_depth.labels(self._metrics.service).set(self._pending)

    def release(self) -> None:
        self._pending -= 1
        self._metrics.queue_depth.labels(self._metrics.service).set(self._pending)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Admit, run `fn(*args)` on a worker thread (with the caller's call id), release.

        The place is released when the thread is done, not when a cancelled caller gives up:
        a thread cannot be interrupted, and the bound must count the work really in progress.
        """
        self.admit()
        try:
            future = self.submit_raw(fn, *args)
        except BaseException:
            self.release()
            raise
        future.add_done_callback(lambda _: self.release())
        return await asyncio.shield(future)

    def submit_raw(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run on the pool without admission control (caller already holds a place)."""
        ctx = contextvars.copy_context()
        return asyncio.get_running_loop().run_in_executor(self._executor, ctx.run, fn, *args)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def stream_from_thread(
    produce: Callable[[Callable[[T], None], threading.Event], None],
    run: Callable[[Callable[[], None]], Awaitable[None]],
) -> AsyncIterator[T]:
    """Bridge a blocking producer (running on a worker thread) to an async iterator.

    `produce(emit, stop)` calls `emit(item)` per item and should return soon after `stop` is set;
    `run(job)` schedules `job` on a worker. Closing the iterator early (a client went away) sets
    `stop`, and the iterator waits for the producer to finish so serialized resources (llama.cpp)
    are free again before the next job starts.
    """

    async def iterate() -> AsyncIterator[T]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stop = threading.Event()

        def emit(item: T) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, ("item", item))

        def job() -> None:
            try:
                produce(emit, stop)
            except BaseException as exc:
                loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))
            else:
                loop.call_soon_threadsafe(queue.put_nowait, ("done", None))

        worker = asyncio.ensure_future(run(job))
        try:
            while True:
                kind, value = await queue.get()
                if kind == "item":
                    yield value
                elif kind == "error":
                    raise value
                else:
                    return
        finally:
            stop.set()
            # Wait for the producer even if we are being cancelled: the model is busy until then.
            await asyncio.shield(worker)

    return iterate()


# --------------------------------------------------------------------------- ASGI middleware


class CallIdMetricsMiddleware:
    """Adopts `X-Call-Id`, echoes it, logs errors with it and records request metrics (HTTP only).

    Pure ASGI rather than BaseHTTPMiddleware: the latter hides client disconnects from streaming
    responses, and a generation must stop when its client goes away.
    """

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        raw = headers.get(CALL_ID_HEADER.encode())
        call_id = set_call_id(raw.decode("latin-1")) if raw else set_call_id("-")
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if raw:
                    message.setdefault("headers", [])
                    message["headers"] = [
                        *message["headers"],
                        (CALL_ID_HEADER.encode(), call_id.encode()),
                    ]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            if endpoint not in ("/metrics", "/healthz", "/readyz"):
                self.metrics.observe(endpoint, status, time.perf_counter() - started)


# --------------------------------------------------------------------------- app factory


def create_app(
    service: str,
    model: ModelSlot[Any],
    metrics: ServiceMetrics,
    *,
    error_body: ErrorBody = simple_error_body,
    on_shutdown: Callable[[], None] | None = None,
) -> FastAPI:
    """A FastAPI app with health, readiness, metrics and JSON errors; add the service's routes."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        model.start()
        yield
        if on_shutdown is not None:
            on_shutdown()

    app = FastAPI(title=f"ai_services.{service}", lifespan=lifespan)
    app.state.metrics = metrics
    app.state.model = model

    def render(err: ServiceError) -> JSONResponse:
        return JSONResponse(error_body(err), status_code=err.status)

    @app.exception_handler(ServiceError)
    async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
        log.info("request refused (%s): %s", exc.status, exc.message)
        return render(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for item in exc.errors():
            where = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
            parts.append(f"{where}: {item.get('msg')}" if where else str(item.get("msg")))
        return render(ServiceError(400, "invalid request: " + "; ".join(parts)))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return render(ServiceError(exc.status_code, str(exc.detail)))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return render(ServiceError(500, f"internal error: {type(exc).__name__}", "server_error"))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: the process serves requests."""
        return {"status": "ok", "service": service}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """Readiness: 200 only once the model is loaded."""
        if model.ready:
            return JSONResponse(
                {"status": "ready", "model": model.name, "load_seconds": model.load_seconds}
            )
        state = "failed" if model.error else "loading"
        return JSONResponse(
            {"status": state, "model": model.name, "error": model.error}, status_code=503
        )

    @app.get("/metrics")
    async def prometheus_metrics() -> PlainTextResponse:
        return PlainTextResponse(
            generate_latest(metrics.registry).decode(), media_type=CONTENT_TYPE_LATEST
        )

    app.add_middleware(CallIdMetricsMiddleware, metrics=metrics)
    return app


# --------------------------------------------------------------------------- command line


def base_parser(prog: str, description: str, default_port: int) -> argparse.ArgumentParser:
    """The options every server shares; each module adds its model options."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--host", default="127.0.0.1", help="bind address (0.0.0.0 in containers)")
    parser.add_argument("--port", type=int, default=default_port)
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    parser.add_argument(
        "--ws-max-size",
        type=int,
        default=16 * 1024 * 1024,
        help="largest WebSocket message accepted, bytes (bigger ones close the connection)",
    )
    return parser


def serve(app: FastAPI, args: argparse.Namespace) -> None:
    """Run `app` with uvicorn using the common options."""
    configure_logging(args.log_level)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        ws_max_size=args.ws_max_size,
        log_config=None,
    )


async def receive_request(ws: WebSocket) -> str | None:
    """The next JSON request's text; None once the client has left.

    A binary frame raises `ServiceError` (the JSON services answer it with an error and go on).
    """
    msg = await ws.receive()
    if msg["type"] == "websocket.disconnect":
        return None
    if msg.get("text") is None:
        raise ServiceError(400, "binary frames are not accepted: send a JSON request")
    return str(msg["text"])


async def run_ws_session(
    ws: WebSocket,
    metrics: ServiceMetrics,
    service: str,
    session: Callable[[WebSocket], Awaitable[None]],
) -> None:
    """Accept, count the connection while `session(ws)` runs; a client leaving is normal."""
    await ws.accept()
    metrics.ws_connections.labels(service).inc()
    try:
        await session(ws)
    except WebSocketDisconnect:
        pass
    finally:
        metrics.ws_connections.labels(service).dec()
