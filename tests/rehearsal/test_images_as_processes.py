"""Each image runs as its workload is deployed: the rendered command, args and env, in an
environment holding only the image's Python distributions, and becomes ready."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.rehearsal.launch import Running, plan
from tests.rehearsal.rendered import Container, Rendered
from tests.support.servers import free_port


def test_whisper_service_as_deployed_is_ready(whisper: Running) -> None:
    """`--device auto` on a machine without CUDA: the model loads on the CPU."""
    response = httpx.get(f"http://127.0.0.1:{whisper.launch.port}/readyz")
    assert response.status_code == 200, whisper.output()


def test_ollama_image_entrypoint_serves_the_models_the_nodes_ask_for(
    stack: Rendered, ollama: Running
) -> None:
    tags = httpx.get(f"http://127.0.0.1:{ollama.launch.port}/api/tags").json()
    served = {m["name"] for m in tags["models"]}
    asked = {stack.containers["cloud-run"].env.get("VC_LLM_MODEL") or ""} - {""}
    from voice_connector_core.config import load_settings

    settings = load_settings(Path(__file__).resolve().parents[2] / "cfg" / "voice-connector.ini")
    asked |= {settings.llm.model}
    asked |= {settings.for_flavor(name).llm.model for name in settings.flavors}
    assert asked <= served, (asked, served)


def test_cloud_run_node_as_deployed_is_ready(cloud_run_node: Running) -> None:
    """The startup probe's path answers 200: the Service would take traffic."""
    response = httpx.get(f"http://127.0.0.1:{cloud_run_node.launch.port}/readyz")
    assert response.status_code == 200 and response.json()["ready"], cloud_run_node.output()


LEGACY = ["vosk-server", "llama-ws-server", "piper-ws-server"]


@pytest.mark.parametrize("image", LEGACY)
def test_legacy_server_image_runs_ready(image: str, tmp_path: Path) -> None:
    """Built and pushed, deployed by no stack (compose / self-hosting): the image's own CMD."""
    container = Container(workload=image, image=image, command=None, args=None, env={}, secrets={})
    launch = plan(container, None, tmp_path, free_port())
    process = Running(launch, tmp_path / "out.log")
    try:
        process.wait_status(f"http://127.0.0.1:{launch.port}/readyz", 200, 180)
    finally:
        process.close()


LOCAL_ENGINES = {("tts", "piper"): "piper-tts", ("stt", "faster_whisper"): "faster-whisper",
                 ("stt", "vosk"): "vosk"}  # fmt: skip
"""In-process engine → the distribution it imports."""


@pytest.mark.parametrize("workload", ["cloud-run", "gke/media-node/connector"])
def test_in_process_engines_the_env_asks_for_are_in_the_image(
    stack: Rendered, workload: str
) -> None:
    """A node asked for local TTS/STT by its env, in an image without the engine, never becomes
    ready (the engine's import fails at preload): caught here without starting it."""
    from tests.rehearsal.image_contents import installed
    from tests.rehearsal.launch import image_stage
    from voice_connector_core.config import load_settings

    container = stack.containers[workload]
    build, _ = image_stage(container.image)
    settings = load_settings(env=stack.env_of(container))
    have = installed(build)
    for kind in ("stt", "tts"):
        section = getattr(settings, kind)
        if section.mode == "local":
            needed = LOCAL_ENGINES[(kind, section.provider)]
            assert needed in have, f"{workload}: {kind} local needs {needed}, not in {build.image}"
