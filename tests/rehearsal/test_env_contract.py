"""One contract between infra and the apps: every env var a workload gets from the program is one
its code reads, and the connector's config loader accepts every `VC_*` value as rendered.

Both ends are the deployed artifacts: the env from the program under mocks, the code and INI
from what runs (the function archive; the image's packages and INI; the ConfigMap on GKE).
"""

from __future__ import annotations

import ast
import re
import zipfile
from pathlib import Path

import pytest

from tests.rehearsal.launch import image_stage
from tests.rehearsal.rendered import ROOT, Container, Function, render_stack, rendered
from voice_connector_core.config import ConfigError, load_settings
from voice_connector_core.config.loader import DEFAULT_CONFIG_PATH, env_name
from voice_connector_core.config.sections import SECTIONS, section_keys

NODE_CODE = [
    ROOT / "packages" / "core",
    ROOT / "packages" / "voice_connector",
    ROOT / "media-node" / "media_node",
]
AI_CODE = [ROOT / "packages" / "ai_services" / "ai_services"]
OLLAMA_READS = {"OLLAMA_HOST", "OLLAMA_KEEP_ALIVE", "OLLAMA_MODELS", "OLLAMA_MODEL"}
"""Ollama's own documented server settings, and OLLAMA_MODEL (docker/ollama/entrypoint.sh)."""
STACK = rendered()


def literals(paths: list[Path]) -> set[str]:
    """String constants in the Python sources under `paths` (names the code can read)."""
    found: set[str] = set()
    for base in paths:
        for file in [base] if base.is_file() else base.rglob("*.py"):
            for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    found.add(node.value)
    return found


def check_connector_env(env: dict[str, str], ini: Path | None, where: str) -> None:
    try:
        load_settings(ini, env=env)
    except ConfigError as exc:
        pytest.fail(f"{where}: the config loader refuses the rendered env:\n{exc}")


NODES = {k: c for k, c in STACK.containers.items() if c.image == "media-node"}


@pytest.mark.parametrize("workload", sorted(NODES))
def test_media_node_env_is_accepted_by_its_config_loader(workload: str, tmp_path: Path) -> None:
    container = NODES[workload]
    env = STACK.env_of(container)
    ini = _node_ini(container, tmp_path)
    check_connector_env(env, ini, workload)
    code = literals(NODE_CODE)
    for name in env:
        if not name.startswith("VC_"):
            assert name in code, f"{workload}: {name} is set but nothing in the image reads it"


@pytest.mark.parametrize("workload", sorted(NODES))
def test_media_nodes_read_the_stack_ini_not_the_image_copy(workload: str) -> None:
    """The INI is mounted where the node looks for it (its working directory's cfg/), so its
    flavors are the functions' and the other platform's."""
    container = NODES[workload]
    _, stage = image_stage(container.image)
    workdir = container.working_dir or stage.workdir
    expected = f"{workdir.rstrip('/')}/{DEFAULT_CONFIG_PATH}"
    assert expected in container.files, (expected, list(container.files))
    shipped = (ROOT / "cfg" / "voice-connector.ini").read_text()
    assert container.files[expected] == shipped  # the rehearsed stack's configFile


def _node_ini(container: Container, tmp_path: Path) -> Path:
    """The INI the node reads: the mounted ConfigMap (GKE) or the image's copy (Cloud Run)."""
    mounted = [text for path, text in container.files.items() if path.endswith(".ini")]
    if mounted:
        ini = tmp_path / "voice-connector.ini"
        ini.write_text(mounted[0])
        return ini
    _, stage = image_stage(container.image)
    return ROOT / stage.copies[f"{stage.workdir}/{DEFAULT_CONFIG_PATH}"]  # the image's own copy


@pytest.mark.parametrize("name", sorted(STACK.functions))
def test_function_env_is_read_by_the_uploaded_code(name: str, tmp_path: Path) -> None:
    function: Function = STACK.functions[name]
    with zipfile.ZipFile(function.archive) as archive:
        archive.extractall(tmp_path)
    for wheel in (tmp_path / "wheels").glob("*.whl"):  # what pip puts in site-packages
        with zipfile.ZipFile(wheel) as installed:
            installed.extractall(tmp_path / "site-packages")
    env = STACK.env_of(function)
    check_connector_env(env, tmp_path / "cfg" / "voice-connector.ini", name)
    code = literals([tmp_path])
    for var in env:
        if not var.startswith("VC_"):
            assert var in code, f"{name}: {var} is set but the uploaded function never reads it"
    # ... and every variable the function itself needs (its *_ENV constants) is set.
    main = ast.parse((tmp_path / "main.py").read_text())
    needed = {
        node.value.value
        for node in main.body
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Constant)
        and any(isinstance(t, ast.Name) and t.id.endswith("_ENV") for t in node.targets)
    }
    assert needed <= set(env), f"{name} reads {needed - set(env)}, which the program never sets"


def test_gpu_services_env_is_what_they_read() -> None:
    for workload, container in STACK.containers.items():
        env = STACK.env_of(container)
        if container.image.startswith("whisper-service"):
            code = literals(AI_CODE)
            assert set(env) <= code, (workload, set(env) - code)
        elif container.image == "ollama":
            assert set(env) <= OLLAMA_READS, (workload, set(env) - OLLAMA_READS)


def test_every_workload_is_covered() -> None:
    """Adding a workload to the program without a contract check fails here."""
    images = {c.image for c in STACK.containers.values()}
    assert images <= {"media-node", "opensips", "whisper-service-gpu", "ollama"}, images
    assert set(STACK.functions) == {"twilio_voice", "twilio_status", "outbound_call"}


def _readers(image: str) -> str:
    """Everything in an image that reads env: its Python packages' string constants, its start
    scripts, and (Ollama) the server's documented settings."""
    scripts = {
        "opensips": ["media-node/opensips/opensips-env"],
        "sip-edge": ["media-node/opensips/opensips-env", "sip-edge/entrypoint.sh"],
        "ollama": ["docker/ollama/entrypoint.sh"],
    }
    text = "\n".join((ROOT / path).read_text() for path in scripts.get(image, []))
    if image == "media-node":  # literals, and the `VC_<SECTION>_<KEY>` names its loader knows
        text += "".join(f"\n{literal}" for literal in literals(NODE_CODE))
        for section in SECTIONS:
            text += "".join(f"\n{env_name(section, key)}" for key in section_keys(section))
    elif image.startswith("whisper-service"):
        text += "".join(f"\n{literal}" for literal in literals(AI_CODE))
    elif image == "ollama":
        text += "".join(f"\n{name}" for name in OLLAMA_READS)
    return text


def test_every_kubernetes_container_env_is_read_by_its_image() -> None:
    """Every Deployment the program declares (every optional component on, the SIP edge's too):
    each variable it sets is read by something in the container's image."""
    stack = render_stack("dev", sipEdgeTrunks='["198.51.100.0/24"]').stack
    seen = 0
    for record in stack.of_type("kubernetes:apps/v1:Deployment"):
        for container in record.inputs["spec"]["template"]["spec"]["containers"]:
            image = container["image"].split("/voice-connector/")[1].rsplit(":", 1)[0]
            readers = _readers(image)
            for item in container.get("env", []):
                seen += 1
                name = item["name"]
                found = re.search(rf"\b{re.escape(name)}\b", readers)
                assert found, f"{record.name}/{container['name']}: {name} is never read"
    assert seen > 20


def test_the_call_token_key_is_the_one_both_ends_get() -> None:
    """The function signs call tokens with the auth token; the node checks them with its own."""
    voice = STACK.env_of(STACK.functions["twilio_voice"])["VC_TWILIO_AUTH_TOKEN"]
    for workload, container in NODES.items():
        assert STACK.env_of(container)["VC_TWILIO_AUTH_TOKEN"] == voice, workload


def test_every_secret_is_injected_somewhere() -> None:
    """A secret no workload receives is a secret nobody uses (or a wiring that was forgotten)."""
    items = [*STACK.containers.values(), *STACK.functions.values()]
    used = {secret for item in items for secret in item.secrets.values()}
    used |= {secret for c in STACK.containers.values() for secret in c.mounted_secrets}
    assert used == set(STACK.secrets), set(STACK.secrets) - used


