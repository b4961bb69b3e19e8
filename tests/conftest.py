"""Fixtures shared by every test folder: speech clips, the local LLM, a running media node."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import engines
from tests.support.engines import EngineProcess
from tests.support.servers import ServerThread
from tests.support.speech import speak


@pytest.fixture(scope="session")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """`speech("some words")` → a WAV of Piper's joe voice saying them (cached per session)."""
    directory = tmp_path_factory.mktemp("speech")
    return lambda text: speak(text, directory)


def engine(name: str, module: str, *args: str) -> Iterator[EngineProcess]:
    """Generator for fixtures: an AI server in its own process (tests/support/engines.py)."""
    server = EngineProcess(name, module, *args).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def qwen_ollama() -> Iterator[EngineProcess]:
    """The bundled Ollama-API server with the real Qwen2.5-Coder 0.5B (stands in for Ollama)."""
    from voice_connector_core.models import QWEN_MODEL_NAME, qwen_gguf

    yield from engine(
        "ollama-api (qwen)", "ai_services.ollama_api",
        "--gguf", str(qwen_gguf()), "--model-name", QWEN_MODEL_NAME, "--n-ctx", "2048",
    )  # fmt: skip


@pytest.fixture(scope="session")
def smollm_ollama() -> Iterator[EngineProcess]:
    """The Ollama-API server with SmolLM2 135M: fast words for protocol tests."""
    from voice_connector_core.models import smollm2_gguf

    yield from engine(
        "ollama-api (smollm2)", "ai_services.ollama_api", "--gguf", str(smollm2_gguf()),
        "--model-name", "smollm2:135m", "--n-ctx", "2048", "--max-queue", "2",
    )  # fmt: skip


@pytest.fixture(scope="session")
def whisper_server() -> Iterator[EngineProcess]:
    """The Whisper service (tiny.en), one worker."""
    yield from engine(
        "whisper-service", "ai_services.whisper_service",
        "--workers", "1", "--max-queue", "8", "--max-seconds", "20",
    )  # fmt: skip


@pytest.fixture(scope="session")
def vosk_server() -> Iterator[EngineProcess]:
    """The vosk-server-protocol service with the Korean model (dither off: reproducible)."""
    yield from engine(
        "vosk-server", "ai_services.vosk_server", "--max-frame-bytes", str(256 * 1024)
    )


@pytest.fixture(scope="session")
def llama_ws_server() -> Iterator[EngineProcess]:
    """The legacy Llama WebSocket service with SmolLM2."""
    from voice_connector_core.models import smollm2_gguf

    yield from engine(
        "llama-ws-server", "ai_services.llama_ws_server",
        "--gguf", str(smollm2_gguf()), "--n-ctx", "2048",
    )  # fmt: skip


@pytest.fixture(scope="session")
def piper_ws_server() -> Iterator[EngineProcess]:
    """The legacy Piper WebSocket service with the joe voice."""
    yield from engine("piper-ws-server", "ai_services.piper_ws_server", "--max-text-chars", "2000")


@pytest.fixture(autouse=True)
def _fresh_engines() -> None:
    """An engine that died in an earlier test is started again for this one."""
    engines.revive_all()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A test during which an engine process died fails, naming the engine and the signal."""
    outcome = yield
    if call.when != "call":
        return
    crashes = engines.crashes_during_test()
    if crashes:
        report = outcome.get_result()
        report.outcome = "failed"
        report.longrepr = "engine process died during this test:\n" + "\n".join(crashes)


def node_settings(**env: str) -> Any:
    """Settings from the shipped INI file plus `VC_*` overrides (port and LLM URL set by tests)."""
    from voice_connector_core.config import load_settings

    return load_settings("cfg/voice-connector.ini", env=env)


@pytest.fixture
def media_node_factory() -> Iterator[Callable[..., ServerThread]]:
    """Start media nodes in-process: `media_node_factory(settings, services_override=None)`."""
    from media_node.app import create_app

    servers: list[ServerThread] = []

    def start(settings: Any, services_override: Any = None) -> ServerThread:
        """With fake services there is no LLM to be ready for: wait for the server only."""
        app = create_app(settings, services_override)
        server = ServerThread(app, ws_max_size=settings.general.http_ws_max_message_bytes)
        server.start(wait_ready=services_override is None)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
