"""Run the media node process; start the bundled local LLM when no Ollama answers.

`make run` must work on a laptop with no Ollama installed: if `[llm] provider = ollama` points at
this machine and nothing answers there, the bundled Ollama-API server (llama.cpp + a small model
from a registry package) is started on that port for the node's lifetime. A running Ollama is
always preferred.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import urlparse

from loguru import logger

from voice_connector.config import Settings
from voice_connector.telemetry.logging import config_secrets, setup_logging

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
LLM_START_TIMEOUT_SECS = 120.0


def ollama_answers(url: str) -> bool:
    """True if something speaking Ollama's API answers `GET /api/version` at `url`."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/api/version", timeout=1.0) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def start_local_llm(settings: Settings) -> subprocess.Popen[bytes] | None:
    """Start `ai_services.ollama_api` on the configured local port if nothing answers there."""
    llm = settings.llm
    parsed = urlparse(llm.url)
    if llm.provider != "ollama" or parsed.hostname not in LOCAL_HOSTS:
        return None
    if ollama_answers(llm.url):
        logger.info(f"using the Ollama at {llm.url}")
        return None
    if importlib.util.find_spec("ai_services") is None:
        logger.warning("no Ollama answers and ai_services is not installed: LLM not ready")
        return None
    port = str(parsed.port or 11434)
    command = [sys.executable, "-m", "ai_services.ollama_api"]
    command += ["--host", "127.0.0.1", "--port", port, "--model-name", llm.model]
    logger.info(f"no Ollama at {llm.url}: starting the bundled local LLM ({' '.join(command[2:])})")
    process = subprocess.Popen(command, env={**os.environ})
    deadline = time.monotonic() + LLM_START_TIMEOUT_SECS
    while time.monotonic() < deadline and process.poll() is None:
        if ollama_answers(llm.url):
            return process
        time.sleep(0.25)
    logger.error("the bundled local LLM did not come up; the node will report not ready")
    return process


def run_node(settings: Settings, *, start_local_llm_server: bool = True) -> int:
    """Serve the media node until SIGTERM/SIGINT and its call drain are over; returns 0.

    `[general] workers` > 1: that many worker processes share the port (media_node.workers)."""
    import uvicorn

    from media_node import lifecycle
    from media_node.app import create_app

    setup_logging(settings.general.log_level, settings.general.log_format, config_secrets(settings))
    llm_process = start_local_llm(settings) if start_local_llm_server else None
    try:
        if settings.general.workers > 1:
            from media_node.workers import Supervisor

            return Supervisor(settings).run()
        app = create_app(settings)
        config = uvicorn.Config(
            app,
            host=settings.general.http_host,
            port=settings.general.http_port,
            ws_max_size=settings.twilio.max_message_bytes,
            log_config=None,
        )
        lifecycle.serve(config, app.state.drain, settings.general.drain_grace_seconds)
    finally:
        if llm_process is not None and llm_process.poll() is None:
            llm_process.terminate()
            llm_process.wait(timeout=10)
    return 0
