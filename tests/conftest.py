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
    """The bundled Ollama-API server with the real Qwen2.5-Coder 0.5B model (stands in for Ollama)."""
    from ai_services.ollama_api import build_app
    from voice_connector.models import qwen_gguf

    yield from run_server(build_app(qwen_gguf(), "qwen2.5-coder:0.5b", n_ctx=2048))


@pytest.fixture(scope="session")
def smollm_ollama() -> Iterator[ServerThread]:
    """The Ollama-API server with SmolLM2 135M: fast words for protocol tests."""
    from ai_services.ollama_api import build_app
    from voice_connector.models import smollm2_gguf

    yield from run_server(build_app(smollm2_gguf(), "smollm2:135m", n_ctx=2048, max_queue=2))


@pytest.fixture(scope="session")
def whisper_server() -> Iterator[ServerThread]:
    """The Whisper service (tiny.en), one worker."""
    from ai_services.whisper_service import Settings, build_app
    from voice_connector.models import whisper_tiny_en

    settings = Settings(whisper_tiny_en(), workers=1, max_queue=8, max_seconds=20.0)
    yield from run_server(build_app(settings))


@pytest.fixture(scope="session")
def vosk_server() -> Iterator[ServerThread]:
    """The vosk-server-protocol service with the Korean model (dither off: reproducible)."""
    from ai_services.vosk_server import Settings, build_app
    from voice_connector.models import vosk_korean

    yield from run_server(build_app(Settings(vosk_korean(), max_frame_bytes=256 * 1024)))


@pytest.fixture(scope="session")
def llama_ws_server() -> Iterator[ServerThread]:
    """The legacy Llama WebSocket service with SmolLM2."""
    from ai_services.llama_ws_server import build_app
    from voice_connector.models import smollm2_gguf

    yield from run_server(build_app(smollm2_gguf(), n_ctx=2048))


@pytest.fixture(scope="session")
def piper_ws_server() -> Iterator[ServerThread]:
    """The legacy Piper WebSocket service with the joe voice."""
    from ai_services.piper_ws_server import Settings, build_app
    from voice_connector.models import piper_joe_voice

    onnx, config = piper_joe_voice()
    yield from run_server(build_app(Settings(onnx, config, max_text_chars=2000)))


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
