"""Fixtures shared by every test folder: speech clips, the local LLM, a running media node."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import ServerThread, run_server
from tests.support.speech import speak


@pytest.fixture(scope="session")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """`speech("some words")` → a WAV of Piper's joe voice saying them (cached per session)."""
    directory = tmp_path_factory.mktemp("speech")
    return lambda text: speak(text, directory)


@pytest.fixture(scope="session")
def qwen_ollama() -> Iterator[ServerThread]:
    """The bundled Ollama-API server with the real Qwen2.5 0.5B model (stands in for Ollama)."""
    from ai_services.ollama_api import build_app
    from voice_connector.models import qwen_gguf

    yield from run_server(build_app(qwen_gguf(), "qwen2.5:0.5b", n_ctx=2048))


def node_settings(**env: str) -> Any:
    """Settings from the shipped INI file plus `VC_*` overrides (port and LLM URL set by tests)."""
    from voice_connector.config import load_settings

    return load_settings("cfg/voice-connector.ini", env=env)


@pytest.fixture
def media_node_factory() -> Iterator[Callable[..., ServerThread]]:
    """Start media nodes in-process: `media_node_factory(settings, services_override=None)`."""
    from media_node.app import create_app

    servers: list[ServerThread] = []

    def start(settings: Any, services_override: Any = None) -> ServerThread:
        """With fake services there is no LLM to be ready for: wait for the server only."""
        app = create_app(settings, services_override)
        server = ServerThread(app, ws_max_size=settings.twilio.max_message_bytes)
        server.start(wait_ready=services_override is None)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
