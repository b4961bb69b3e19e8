"""The deploy rehearsal's running workloads, started once per session as the cloud would start them.

Order as in the cloud: the GPU services first (Whisper, Ollama), then the nodes that depend on
them; each address a node gets from the program is mapped to the local stand-in (see launch.py).
"""

from __future__ import annotations

import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.rehearsal.launch import Running, plan
from tests.rehearsal.rendered import ROOT, Rendered, rendered
from tests.support.servers import free_port
from voice_infra.conventions import OLLAMA_PORT, WHISPER_PORT
from voice_infra.k8s_manifests import NAMESPACE

START_TIMEOUT = 180.0
STANDIN = """#!/bin/sh
PYTHONPATH={root} exec {python} -m tests.rehearsal.ollama_standin "$@"
"""


@pytest.fixture(scope="session")
def stack() -> Rendered:
    return rendered()


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rehearsal")


def start(launch_root: Path, launch: object) -> Running:
    return Running(launch, launch_root / "out.log")  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def whisper(stack: Rendered, workdir: Path) -> Iterator[Running]:
    """The GKE Whisper Deployment's container (GPU image, `--device auto`: CPU here)."""
    container = stack.containers["gke/whisper/whisper"]
    root = workdir / "whisper"
    process = Running(plan(container, stack, root, free_port()), root / "out.log")
    try:
        process.wait_status(f"http://127.0.0.1:{process.launch.port}/readyz", 200, START_TIMEOUT)
        yield process
    finally:
        process.close()


@pytest.fixture(scope="session")
def ollama(stack: Rendered, workdir: Path) -> Iterator[Running]:
    """The GKE Ollama Deployment's container: the image's entrypoint script, unchanged, with the
    bundled Ollama-API server standing in for the `ollama` binary (ollama_standin.py)."""
    container = stack.containers["gke/ollama/ollama"]
    root = workdir / "ollama"
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True)
    fake = bin_dir / "ollama"
    fake.write_text(STANDIN.format(root=ROOT, python=sys.executable))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    launch = plan(container, stack, root, free_port(), path_first=[bin_dir])
    launch.substitutions["ollama binary"] = "ai_services.ollama_api (ollama_standin.py)"
    process = Running(launch, root / "out.log")
    try:
        process.wait_status(f"http://127.0.0.1:{launch.port}/api/tags", 200, START_TIMEOUT)
        yield process
    finally:
        process.close()


@pytest.fixture(scope="session")
def addresses(stack: Rendered, whisper: Running, ollama: Running) -> dict[str, str]:
    """Every address of the GPU services the program hands out → the local processes."""
    whisper_ip, ollama_ip = stack.outputs["whisper_ip"], stack.outputs["ollama_ip"]
    w, o = f"127.0.0.1:{whisper.launch.port}", f"127.0.0.1:{ollama.launch.port}"
    return {
        f"{whisper_ip}:{WHISPER_PORT}": w,
        f"{ollama_ip}:{OLLAMA_PORT}": o,
        f"whisper.{NAMESPACE}.svc.cluster.local:{WHISPER_PORT}": w,
        f"ollama.{NAMESPACE}.svc.cluster.local:{OLLAMA_PORT}": o,
    }


@pytest.fixture(scope="session")
def cloud_run_node(stack: Rendered, workdir: Path, addresses: dict[str, str]) -> Iterator[Running]:
    """The Cloud Run service's container, started as Cloud Run starts it (the image's CMD).

    Its own public URL (what Twilio signs) maps to where it listens here, like every address."""
    container = stack.containers["cloud-run"]
    root = workdir / "cloud-run"
    port = free_port()
    own = {f"https://{stack.outputs['media_host']}": f"http://127.0.0.1:{port}"}
    process = Running(plan(container, stack, root, port, addresses | own), root / "out.log")
    try:
        url = f"http://127.0.0.1:{process.launch.port}{container.ready_path}"
        process.wait_status(url, 200, START_TIMEOUT)
        yield process
    finally:
        process.close()
