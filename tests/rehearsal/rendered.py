"""What the Pulumi program renders for each workload, read from the program run under mocks.

Nothing here is retyped from `infra/`: commands, args, env, probes, images and function archives
are the program's own values, from one mocked `pulumi up` of a stack with the shipped INI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from tests.infra.harness import Stack, resolve, run_stack

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_INI = ROOT / "cfg" / "voice-connector.ini"
REGISTRY_PATH = "/voice-connector/"


def image_name(reference: str) -> str:
    """`REGION-docker.pkg.dev/P/voice-connector/media-node:TAG` → `media-node`."""
    return reference.split(REGISTRY_PATH, 1)[1].rsplit(":", 1)[0]


@dataclass
class Container:
    """One container as the platform would start it (Kubernetes / Cloud Run semantics)."""

    workload: str
    image: str
    command: list[str] | None
    """Replaces the image's ENTRYPOINT when set (and then its CMD too)."""
    args: list[str] | None
    """Replaces the image's CMD when set."""
    env: dict[str, str]
    secrets: dict[str, str]
    """Env var → secret id (unprefixed, e.g. `twilio-auth-token`)."""
    working_dir: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    """Container path → content of mounted files (ConfigMap volumes)."""
    empty_dirs: list[str] = field(default_factory=list)
    mounted_secrets: list[str] = field(default_factory=list)
    """Secret ids mounted as files (Cloud Run secret volumes)."""
    port: int = 0
    ready_path: str = ""


@dataclass
class Function:
    name: str
    archive: Path
    env: dict[str, str]
    secrets: dict[str, str]


@dataclass
class Rendered:
    stack: Stack
    prefix: str
    containers: dict[str, Container]
    init_containers: dict[str, Container]
    functions: dict[str, Function]
    outputs: dict[str, str]
    """Resolved outputs: function URLs (`url:<name>`), `media_host`, `whisper_ip`, `ollama_ip`."""
    secrets: dict[str, str]
    """Secret id → the value Secret Manager holds (what the platform injects)."""

    def secret_value(self, secret_id: str) -> str:
        return self.secrets[secret_id]

    def env_of(self, item: Container | Function) -> dict[str, str]:
        """Plain env plus secret env, as the process receives it."""
        return {**item.env, **{k: self.secret_value(s) for k, s in item.secrets.items()}}


def _unprefix(prefix: str, secret: str) -> str:
    return secret.removeprefix(f"{prefix}-")


def _probe(container: dict[str, Any], key: str) -> tuple[int, str]:
    probe = container.get(key) or {}
    http = probe.get("httpGet") or probe.get("http_get") or {}
    return int(http.get("port", 0)), str(http.get("path", ""))


def _cloud_run(stack: Stack, prefix: str, secrets: dict[str, str]) -> Container:
    template = stack.one("gcp:cloudrunv2/service:Service").inputs["template"]
    container = template["containers"][0]
    volumes = {v["name"]: v for v in template.get("volumes", [])}
    files, mounted = {}, []
    for mount in container.get("volumeMounts", []):
        secret = volumes[mount["name"]]["secret"]
        mounted.append(_unprefix(prefix, secret["secret"]))
        for item in secret["items"]:
            files[f"{mount['mountPath']}/{item['path']}"] = secrets[mounted[-1]]
    env, secrets = {}, {}
    for item in container.get("envs", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
        else:
            ref = item["valueSource"]["secretKeyRef"]["secret"]
            secrets[item["name"]] = _unprefix(prefix, ref)
    _, path = _probe(container, "startupProbe")
    return Container(
        workload="cloud-run",
        image=image_name(container["image"]),
        command=container.get("commands"),
        args=container.get("args"),
        env=env,
        secrets=secrets,
        working_dir=container.get("workingDir"),
        files=files,
        mounted_secrets=mounted,
        port=int(container["ports"]["containerPort"]),
        ready_path=path,
    )


def _k8s_container(
    deployment: dict[str, Any], container: dict[str, Any], config_maps: dict[str, dict]
) -> Container:
    spec = deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    files: dict[str, str] = {}
    empty: list[str] = []
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "configMap" in volume:
            data = config_maps[volume["configMap"]["name"]]
            files |= {f"{mount['mountPath']}/{name}": text for name, text in data.items()}
        elif "emptyDir" in volume:
            empty.append(mount["mountPath"])
    env, secrets = {}, {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
        else:
            secrets[item["name"]] = item["valueFrom"]["secretKeyRef"]["key"]
    ports = container.get("ports") or [{"containerPort": 0}]
    _, ready = _probe(container, "readinessProbe")
    return Container(
        workload=f"gke/{deployment['metadata']['name']}/{container['name']}",
        image=image_name(container["image"]),
        command=container.get("command"),
        args=container.get("args"),
        env=env,
        secrets=secrets,
        working_dir=container.get("workingDir"),
        files=files,
        empty_dirs=empty,
        port=int(ports[0]["containerPort"]),
        ready_path=ready,
    )


def _functions(stack: Stack, prefix: str) -> dict[str, Function]:
    objects = {
        r.inputs["name"]: Path(r.inputs["source"].path)
        for r in stack.of_type("gcp:storage/bucketObject:BucketObject")
    }
    functions = {}
    for record in stack.of_type("gcp:cloudfunctionsv2/function:Function"):
        build, service = record.inputs["buildConfig"], record.inputs["serviceConfig"]
        name = build["entryPoint"]
        functions[name] = Function(
            name=name,
            archive=objects[build["source"]["storageSource"]["object"]],
            env={k: str(v) for k, v in service.get("environmentVariables", {}).items()},
            secrets={
                s["key"]: _unprefix(prefix, s["secret"])
                for s in service.get("secretEnvironmentVariables", [])
            },
        )
    return functions


def render_stack(stack_name: str = "dev", **config: str) -> Rendered:
    """One mocked `pulumi up` with the shipped INI, and every workload it declares."""
    stack = run_stack(stack_name, config, SHIPPED_INI.read_text(encoding="utf-8"))
    prefix = f"vc-{stack_name}"
    manifests = stack.deployment.workloads.manifests
    config_maps = {m["metadata"]["name"]: m["data"] for m in manifests if m["kind"] == "ConfigMap"}
    deployment = stack.deployment
    secrets = {
        key: str(resolve(deployment.secrets.data(key))[0]) for key in deployment.secrets.secrets
    }
    containers = {"cloud-run": _cloud_run(stack, prefix, secrets)}
    init: dict[str, Container] = {}
    for manifest in (m for m in manifests if m["kind"] == "Deployment"):
        spec = manifest["spec"]["template"]["spec"]
        for c in spec["containers"]:
            found = _k8s_container(manifest, c, config_maps)
            containers[found.workload] = found
        for c in spec.get("initContainers", []):
            found = _k8s_container(manifest, c, config_maps)
            init[found.workload] = found
    assert deployment.functions and deployment.cloud_run and deployment.network
    outputs = {f"url:{name}": url for name, url in deployment.functions.urls.items()}
    outputs |= {
        "media_host": deployment.cloud_run.host,
        "whisper_ip": deployment.network.whisper_ip.address,
        "ollama_ip": deployment.network.ollama_ip.address,
    }
    return Rendered(
        stack,
        prefix,
        containers,
        init,
        _functions(stack, prefix),
        {key: str(resolve(value)[0]) for key, value in outputs.items()},
        secrets,
    )


REHEARSED_CONFIG = {"twilioPhoneNumber": "+15550100200"}
"""The dev stack as a team would configure it: with the caller id outbound calls use."""


@cache
def rendered(stack_name: str = "dev") -> Rendered:
    """The rehearsed stack, rendered once per session."""
    return render_stack(stack_name, **REHEARSED_CONFIG)
