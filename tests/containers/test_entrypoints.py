"""Every image's entry point exists and starts: the same command, run here on a free port.

Each target's CMD/ENTRYPOINT (and the image's ENV) is read from its Dockerfile and run with this
venv until `/healthz` answers; then the image's own HEALTHCHECK command must pass (the model is
loaded, dependencies answer), and SIGTERM must stop it.
"""

from __future__ import annotations

import signal
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.containers.dockerfiles import ROOT, Stage, local_argv, parse, with_port
from tests.containers.ollama_stub import OllamaStub
from tests.containers.procs import Process, run
from tests.support.servers import free_port

pytestmark = pytest.mark.slow

AI_TARGETS = ["whisper-service", "vosk-server", "piper-ws-server", "llama-ws-server", "ollama-api"]
NODE_TARGETS = ["slim", "full"]


@pytest.fixture(scope="module")
def llm_stub() -> Iterator[OllamaStub]:
    stub = OllamaStub(free_port()).start()
    yield stub
    stub.shutdown()


def _run_target(stage: Stage, env: dict[str, str], port: int, tmp_path: Path) -> None:
    """Start the stage's command, wait for /healthz then for its HEALTHCHECK, then SIGTERM it."""
    argv = with_port(local_argv(stage, stage.argv), "127.0.0.1", port)
    process = Process(argv, env, tmp_path / "out.log")
    try:
        process.wait_status(f"http://127.0.0.1:{port}/healthz", 200)
        healthcheck = local_argv(stage, stage.healthcheck)
        process.wait_until(lambda: run(healthcheck, env).returncode == 0, "HEALTHCHECK passes")
        process.signal(signal.SIGTERM)
        code = process.wait_exit(30)
        # uvicorn re-raises SIGTERM after its shutdown: death by that signal is a clean stop.
        assert code in (0, -signal.SIGTERM), process.output()
    finally:
        process.close()


@pytest.mark.parametrize("target", AI_TARGETS)
def test_ai_service_image_command_starts(target: str, tmp_path: Path) -> None:
    stage = parse(ROOT / "packages" / "ai_services" / "Dockerfile")[target]
    port = free_port()
    _run_target(stage, {**stage.env, "PORT": str(port)}, port, tmp_path)


@pytest.mark.parametrize("target", NODE_TARGETS)
def test_media_node_image_command_starts(
    target: str, llm_stub: OllamaStub, tmp_path: Path
) -> None:
    stage = parse(ROOT / "media-node" / "Dockerfile")[target]
    port = free_port()
    env = {
        **stage.env,
        "VC_GENERAL_HTTP_HOST": "127.0.0.1",
        "VC_GENERAL_HTTP_PORT": str(port),
        "VC_LLM_URL": llm_stub.url,
        # remote STT/TTS answer on the stub's port: reachable is what readiness can check
        "VC_STT_URL": llm_stub.url,
        "VC_TTS_URL": llm_stub.url.replace("http", "ws") + "/tts",
    }
    if target == "full":
        env["VC_TRANSPORT_PROVIDERS"] = "twilio"  # OpenSIPS itself is another container
    _run_target(stage, env, port, tmp_path)


def test_slim_image_without_service_urls_refuses_to_start() -> None:
    """Fail fast (config check, exit 2) rather than run a node that can never be ready."""
    stage = parse(ROOT / "media-node" / "Dockerfile")["slim"]
    result = run(local_argv(stage, stage.argv), {**stage.env, "VC_STT_URL": "", "VC_TTS_URL": ""})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "url is required when mode = remote" in result.stderr


FAKE_OLLAMA = """#!{python}
\"\"\"Stands in for the ollama binary: `serve` runs the stub, `list` reads /api/tags.\"\"\"
import json, os, sys, urllib.request
port = int(os.environ["OLLAMA_HOST"].rsplit(":", 1)[1])
command = sys.argv[1]
if command == "serve":
    os.execv(sys.executable, [sys.executable, "-m", "tests.containers.ollama_stub",
                              "--port", str(port), "--model", os.environ["OLLAMA_MODEL"]])
if command == "list":
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{{port}}/api/tags", timeout=2) as r:
            models = json.load(r)["models"]
    except OSError:
        sys.exit(1)
    print("NAME ID SIZE MODIFIED")
    for model in models:
        print(model["name"], "0123", "491 MB", "now")
    sys.exit(0)
if command == "pull":
    sys.exit(0)
sys.exit(2)
"""


def test_ollama_image_entrypoint_serves_and_reports_the_model(tmp_path: Path) -> None:
    """The entrypoint script starts `ollama serve`, and its health check needs the model listed."""
    stage = parse(ROOT / "docker" / "ollama" / "Dockerfile")[""]
    fake = tmp_path / "bin" / "ollama"
    fake.parent.mkdir()
    fake.write_text(FAKE_OLLAMA.format(python=sys.executable))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    port = free_port()
    env = {
        **stage.env,
        "OLLAMA_HOST": f"127.0.0.1:{port}",
        "OLLAMA_MODEL": "qwen2.5-coder:0.5b",
        "PATH": f"{fake.parent}:/usr/bin:/bin",
    }
    server = Process(local_argv(stage, stage.argv), env, tmp_path / "out.log")
    try:
        server.wait_status(f"http://127.0.0.1:{port}/api/tags", 200)
        healthcheck = local_argv(stage, stage.healthcheck)
        server.wait_until(lambda: run(healthcheck, env).returncode == 0, "HEALTHCHECK passes")
        missing = run(healthcheck, {**env, "OLLAMA_MODEL": "llama3:8b"})
        assert missing.returncode != 0, "healthy although the model is missing"
        server.signal(signal.SIGTERM)
        server.wait_exit(30)
    finally:
        server.close()


def test_opensips_image_command_checks_its_config() -> None:
    stage = parse(ROOT / "media-node" / "opensips" / "Dockerfile")[""]
    argv = local_argv(stage, stage.argv)
    if not Path(argv[-1]).exists():
        pytest.skip("media-node/opensips/opensips.cfg is not written yet")
    import shutil

    if shutil.which(argv[0]) is None:
        pytest.skip("no opensips binary here (not in Debian bookworm; the image installs it)")
    result = run([argv[0], "-C", *argv[2:]], {})
    assert result.returncode == 0, result.stdout + result.stderr
