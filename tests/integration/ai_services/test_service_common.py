"""Shared service plumbing: readiness follows model loading, bounded queue, call ids, CLI."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from ai_services.errors import QueueFullError, ServiceError
from ai_services.metrics import ServiceMetrics
from ai_services.model_slot import ModelSlot
from ai_services.service_app import create_app
from ai_services.work_queue import WorkQueue


def gated_app(release: threading.Event, fail: bool = False):
    """An app whose 'model' loads when `release` is set (or fails to)."""
    metrics = ServiceMetrics("gated")

    def load() -> str:
        release.wait(30)
        if fail:
            raise RuntimeError("weights are corrupt")
        return "model"

    slot = ModelSlot("gated-model", load, metrics)
    app = create_app("gated", slot, metrics)

    @app.get("/use")
    async def use() -> dict:
        return {"model": await slot.get()}

    @app.get("/boom")
    async def boom() -> dict:
        raise ServiceError(418, "no coffee here")

    return app


async def test_readyz_is_503_until_the_model_is_loaded(start_server):
    release = threading.Event()
    server = start_server(gated_app(release), wait_ready=False)
    async with httpx.AsyncClient(base_url=server.http, timeout=30) as http:
        assert (await http.get("/healthz")).status_code == 200
        loading = await http.get("/readyz")
        assert loading.status_code == 503 and loading.json()["status"] == "loading"
        waiting = asyncio.create_task(http.get("/use"))  # waits for the model, no error
        release.set()
        assert (await waiting).json() == {"model": "model"}
        ready = await http.get("/readyz")
        assert ready.status_code == 200 and ready.json()["model"] == "gated-model"
        metrics = (await http.get("/metrics")).text
    assert 'ai_service_model_ready{service="gated"} 1.0' in metrics


async def test_failed_load_is_reported_not_hidden(start_server):
    release = threading.Event()
    release.set()
    server = start_server(gated_app(release, fail=True), wait_ready=False)
    async with httpx.AsyncClient(base_url=server.http, timeout=30) as http:
        for _ in range(200):
            body = (await http.get("/readyz")).json()
            if body["status"] != "loading":
                break
            await asyncio.sleep(0.02)
        assert body["status"] == "failed" and "weights are corrupt" in body["error"]
        use = await http.get("/use")
        assert use.status_code == 503 and "weights are corrupt" in use.json()["error"]
        boom = await http.get("/boom")
        assert boom.status_code == 418 and boom.json() == {"error": "no coffee here"}
        missing = await http.get("/nope")
        assert missing.status_code == 404 and "error" in missing.json()


async def test_work_queue_refuses_beyond_workers_plus_waiting_room():
    metrics = ServiceMetrics("q")
    queue = WorkQueue(workers=1, max_queue=1, metrics=metrics, name="q")
    gate = threading.Event()
    running = [asyncio.ensure_future(queue.run(gate.wait, 10)) for _ in range(2)]
    await asyncio.sleep(0)
    with pytest.raises(QueueFullError) as err:
        await queue.run(gate.wait, 10)
    assert err.value.status == 503
    gate.set()
    assert await asyncio.gather(*running) == [True, True]
    assert queue.pending == 0 and await queue.run(lambda: 7) == 7
    queue.shutdown()


async def test_call_id_reaches_worker_thread_logs(caplog):
    from ai_services.call_ids import set_call_id
    from ai_services.logs import CallIdFilter

    metrics = ServiceMetrics("ids")
    queue = WorkQueue(workers=1, max_queue=0, metrics=metrics, name="ids")
    logger = logging.getLogger("ai_services.test_ids")
    caplog.handler.addFilter(CallIdFilter())
    set_call_id("call-\x00abc")  # control characters are dropped
    with caplog.at_level(logging.INFO, logger="ai_services.test_ids"):
        await queue.run(logger.info, "in the worker")
    assert [r.call_id for r in caplog.records] == ["call-abc"]
    queue.shutdown()


@pytest.mark.parametrize(
    "module",
    ["ollama_api", "whisper_service", "vosk_server", "llama_ws_server", "piper_ws_server"],
)
def test_every_server_has_a_cli(module):
    out = subprocess.run(
        [sys.executable, "-m", f"ai_services.{module}", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert "--host" in out and "--port" in out


@pytest.mark.slow
def test_whisper_service_runs_as_a_module():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "ai_services.whisper_service", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/readyz").status_code
            except httpx.TransportError:
                status = None
            if status == 200:
                break
            time.sleep(0.1)
        assert status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
