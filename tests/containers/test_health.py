"""Readiness probes: which dependencies a configuration has, and how their state is reported."""

from __future__ import annotations

import pytest

from media_node.health import DependencyMonitor, dependency_probes, probe_service, readyz_url
from tests.conftest import node_settings
from tests.containers.ollama_stub import OllamaStub
from tests.support.servers import free_port


def test_remote_providers_are_probed_once_each_local_ones_not_at_all() -> None:
    local = dependency_probes(node_settings())
    assert set(local) == {"llm"}
    remote = dependency_probes(node_settings(
        VC_STT_MODE="remote", VC_STT_URL="http://whisper:9000",
        VC_TTS_MODE="remote", VC_TTS_URL="ws://piper:8000/tts",
        VC_FLAVOR_SUPPORT_LLM_MODEL="other:1b",
    ))
    assert set(remote) == {"llm", "stt", "tts", "llm@support"}


def test_readyz_url_is_on_the_service_port() -> None:
    assert readyz_url("ws://piper:8000/tts") == "http://piper:8000/readyz"
    assert readyz_url("wss://stt.example.com/v1") == "https://stt.example.com/readyz"


async def test_probe_reports_unreachable_then_reachable() -> None:
    port = free_port()
    ok, why = await probe_service(f"ws://127.0.0.1:{port}/tts")
    assert not ok and "unreachable" in why
    stub = OllamaStub(port).start()
    try:
        ok, why = await probe_service(f"ws://127.0.0.1:{port}/tts")  # no /readyz: 404
        assert ok and "reachable" in why
    finally:
        stub.shutdown()
        stub.server_close()


async def test_monitor_reports_each_probe_and_a_failing_one_is_not_ready() -> None:
    state: dict[str, tuple[bool, str]] = {}
    answers = {"llm": (True, "ok"), "stt": (False, "down")}

    async def llm() -> tuple[bool, str]:
        return answers["llm"]

    async def stt() -> tuple[bool, str]:
        return answers["stt"]

    async def broken() -> tuple[bool, str]:
        raise RuntimeError("boom")

    monitor = DependencyMonitor({"llm": llm, "stt": stt, "tts": broken},
                                lambda name, ok, why: state.__setitem__(name, (ok, why)))
    assert state == {name: (False, "checking") for name in ("llm", "stt", "tts")}
    assert await monitor.check_once() is False
    assert state["llm"] == (True, "ok") and state["stt"] == (False, "down")
    assert state["tts"][0] is False and "boom" in state["tts"][1]
    answers["llm"] = (False, "gone")
    await monitor.check_once()
    assert state["llm"] == (False, "gone")


@pytest.mark.parametrize("model,ready", [("qwen2.5-coder:0.5b", True), ("llama3:8b", False)])
async def test_ollama_probe_needs_the_model(model: str, ready: bool) -> None:
    stub = OllamaStub(free_port()).start()
    try:
        probes = dependency_probes(node_settings(VC_LLM_URL=stub.url, VC_LLM_MODEL=model))
        ok, why = await probes["llm"]()
        assert ok is ready, why
    finally:
        stub.shutdown()
        stub.server_close()


def test_slim_node_loads_no_local_model_runtime() -> None:
    """A Twilio-only node with remote providers never imports faster-whisper/Piper/Vosk/torch."""
    import subprocess
    import sys

    from tests.containers.dockerfiles import ROOT

    code = (
        "import sys\n"
        "from tests.conftest import node_settings\n"
        "from media_node.app import create_app\n"
        "from voice_connector.services import factory\n"
        "s = node_settings(VC_STT_MODE='remote', VC_STT_URL='http://w:9000', VC_TTS_MODE='remote',"
        " VC_TTS_URL='ws://p:8000/tts')\n"
        "create_app(s); factory.preload(s)\n"
        "heavy = {'faster_whisper', 'ctranslate2', 'piper', 'vosk', 'torch', 'llama_cpp',"
        " 'aiortc'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
