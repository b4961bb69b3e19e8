"""Run the media node process; start and supervise the bundled local LLM when no Ollama answers.

`make run` must work on a laptop with no Ollama installed: if `[llm] provider = ollama` points at
this machine and nothing answers there, the bundled Ollama-API server (llama.cpp + a small model
from a registry package) is started on that port for the node's lifetime and restarted if it
dies (services/llm/local_server.py). A running Ollama is always preferred.
"""

from __future__ import annotations

from media_node import lifecycle
from media_node.app import create_app
from media_node.server import http_config
from voice_connector.services.llm import local_server
from voice_connector_core.config import Settings
from voice_connector_core.logs import config_secrets, setup_logging


def run_node(settings: Settings, *, start_local_llm_server: bool = True) -> int:
    """Serve the media node until SIGTERM/SIGINT and its call drain are over; returns 0.

    `[general] workers` > 1: that many worker processes share the port (media_node.workers).
    With one process the bundled LLM server's state is a readiness check of its own (why it is
    down, at once); worker processes see it through their LLM probe."""
    setup_logging(settings.general.log_level, settings.general.log_format, config_secrets(settings))
    llm_server = None
    if start_local_llm_server and local_server.wanted(settings):
        llm_server = local_server.LocalLLMServer.for_settings(settings).start()
    try:
        if settings.general.workers > 1:
            from media_node.workers import Supervisor

            return Supervisor(settings).run()
        checks = {"llm-server": llm_server.status} if llm_server else None
        app = create_app(settings, checks=checks)
        config = http_config(app, settings)  # the node's HTTP limits (media_node.server)
        lifecycle.serve(config, app.state.drain, settings.general.drain_grace_seconds)
    finally:
        if llm_server is not None:
            llm_server.stop()
    return 0
