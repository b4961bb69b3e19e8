"""Stack configuration: read every `voice-connector:*` key, validate all of them, fail early.

`__main__` calls `load_config()` before declaring any resource, so a typo in a stack file is a
one-line error naming the key instead of a half-applied deployment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pulumi

NAMESPACE = "voice-connector"

# GPU type → (machine type able to host one such GPU, short label used in resource names).
GPU_MACHINES: dict[str, str] = {
    "nvidia-l4": "g2-standard-8",
    "nvidia-tesla-t4": "n1-standard-8",
}

# Ports the media node's host network namespace already uses (hostNetwork pods share the node's
# ports): SIP, the HTTP server / OpenSIPS MI datagram, the connector's event socket, kubelet and
# kube-proxy. An RTP range covering any of them would make binds fail at random under load.
RESERVED_PORTS: dict[int, str] = {
    5060: "SIP (OpenSIPS)",
    8080: "media node HTTP / OpenSIPS MI datagram",
    50060: "connector event socket",
    10250: "kubelet",
    10255: "kubelet read-only",
    10256: "kube-proxy health",
}
NODE_PORT_RANGE = (30000, 32767)  # kube-proxy opens NodePorts on every node

MONITORING_KEYS = {"voiceToVoiceP95TargetMs", "providerErrorsPerTurn"}
"""Alert thresholds, read by voice_infra.monitoring."""
SIP_EDGE_KEYS = {"sipEdgeTrunks"}
"""Trunk CIDRs of the SIP edge (absent: no edge, media nodes take SIP from anyone)."""


def sip_edge_trunks() -> list[str]:
    """`sipEdgeTrunks` of the stack: with trunks, SIP reaches media nodes only via the edge."""
    return list(pulumi.Config(NAMESPACE).get_object("sipEdgeTrunks") or [])


KNOWN_KEYS = {
    "project",
    "region",
    "zone",
    "gpuType",
    "mediaNodeCount",
    "mediaNodeMaxCount",
    "mediaMachineType",
    "rtpPortRange",
    "cloudRunMinInstances",
    "cloudRunMaxConcurrency",
    "clusterVersion",
    "imageTag",
    "twilioPhoneNumber",
    "notificationEmail",
    "drainGraceSeconds",
    "ingressDomain",
    "githubOwner",
    "githubRepo",
    "configFile",
    "streamTarget",
    "phase",
}
SECRET_KEYS = ("twilioAuthToken", "twilioAccountSid", "outboundCallToken")
PROD_STACKS = {"prod"}
STREAM_TARGETS = ("cloudrun", "gke")  # who serves wss://HOST/twilio/stream
PHASES = ("bootstrap", "full")
"""`bootstrap`: what images need before they exist (APIs, registry, accounts, secrets, build
triggers); `full`: everything, from images tagged `imageTag` (docs/cloud-deployment.md)."""
MUTABLE_TAGS = {"latest", "stable", "main", "dev"}
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


class ConfigError(pulumi.RunError):
    """Every problem in the stack configuration, one line each; RunError hides the traceback."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"invalid stack configuration:\n{lines}")


@dataclass(frozen=True)
class StackConfig:
    """Validated, typed stack settings shared by every component."""

    stack: str
    project: str
    region: str
    zone: str
    gpu_type: str
    media_node_count: int
    media_node_max_count: int
    media_machine_type: str
    rtp_port_range: tuple[int, int]
    cloud_run_min_instances: int
    cloud_run_max_concurrency: int
    cluster_version: str
    image_tag: str
    drain_grace_seconds: int
    twilio_phone_number: str | None = None
    notification_email: str | None = None
    ingress_domain: str | None = None
    github_owner: str | None = None
    github_repo: str = "voice-connector"
    config_file: str = "../cfg/voice-connector.ini"
    stream_target: str = "cloudrun"
    phase: str = "full"

    @property
    def bootstrap(self) -> bool:
        """Only what images need before they exist; no workload references an image yet."""
        return self.phase == "bootstrap"

    @property
    def prefix(self) -> str:
        """Resource name prefix: two stacks may share one project without collisions."""
        return f"vc-{self.stack}"

    @property
    def gpu_machine_type(self) -> str:
        return GPU_MACHINES[self.gpu_type]

    @property
    def rtp_range_text(self) -> str:
        return f"{self.rtp_port_range[0]}-{self.rtp_port_range[1]}"

    @property
    def kubernetes_minor(self) -> str:
        """`1.30` from `1.30.5-gke.1014001`: what schema validators and GKE channels speak."""
        major, minor = self.cluster_version.split(".")[:2]
        return f"{major}.{minor}"

    @property
    def is_prod(self) -> bool:
        return self.stack in PROD_STACKS

    def image(self, name: str) -> str:
        """Artifact Registry image reference, the convention every Dockerfile and build follows."""
        return (
            f"{self.region}-docker.pkg.dev/{self.project}/voice-connector/{name}:{self.image_tag}"
        )

    def read_config_file(self, base: Path) -> str:
        """The connector's INI file as text (rendered into a ConfigMap verbatim)."""
        path = (base / self.config_file).resolve()
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise ConfigError([f"configFile: {path} does not exist"]) from exc


_INT = re.compile(r"^-?\d+$")
_VERSION = re.compile(r"^1\.\d{2}(\.\d+(-gke\.\d+)?)?$")
_RANGE = re.compile(r"^(\d+)-(\d+)$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PROJECT = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")


def parse_rtp_range(text: str) -> tuple[int, int]:
    """`LOW-HIGH` → (low, high); refuses ranges that collide with ports the node already uses."""
    match = _RANGE.match(text.strip())
    if not match:
        raise ValueError(f"'{text}' is not LOW-HIGH (e.g. 35000-35999)")
    low, high = int(match.group(1)), int(match.group(2))
    if not 1024 <= low <= high <= 65535:
        raise ValueError(f"'{text}' must satisfy 1024 <= LOW <= HIGH <= 65535")
    clashes = [f"{port} ({what})" for port, what in RESERVED_PORTS.items() if low <= port <= high]
    if clashes:
        raise ValueError(f"'{text}' overlaps {', '.join(clashes)}")
    if low <= NODE_PORT_RANGE[1] and high >= NODE_PORT_RANGE[0]:
        raise ValueError(
            f"'{text}' overlaps the Kubernetes NodePort range "
            f"{NODE_PORT_RANGE[0]}-{NODE_PORT_RANGE[1]}"
        )
    return low, high


def parse_stack_config(raw: Mapping[str, str], stack: str) -> StackConfig:
    """Validate raw strings (as Pulumi stores them); ConfigError lists every problem."""
    problems: list[str] = []
    unknown = sorted(set(raw) - KNOWN_KEYS - MONITORING_KEYS - SIP_EDGE_KEYS - set(SECRET_KEYS))
    problems += [f"{NAMESPACE}:{key}: unknown key" for key in unknown]

    def text(key: str, default: str | None = None) -> str | None:
        value = raw.get(key)
        return value.strip() if value is not None and value.strip() else default

    def integer(key: str, default: int, low: int, high: int) -> int:
        value = text(key)
        if value is None:
            return default
        if not _INT.match(value) or not low <= int(value) <= high:
            problems.append(f"{NAMESPACE}:{key}: '{value}' must be an integer in {low}..{high}")
            return default
        return int(value)

    project = text("project")
    if project is None:
        problems.append(f"{NAMESPACE}:project: required (the GCP project id to deploy into)")
        project = ""
    elif not _PROJECT.match(project):
        problems.append(f"{NAMESPACE}:project: '{project}' is not a valid GCP project id")

    region = text("region", "us-central1") or ""
    zone = text("zone", f"{region}-a") or ""
    if not zone.startswith(f"{region}-"):
        problems.append(f"{NAMESPACE}:zone: '{zone}' is not in region '{region}'")

    gpu_type = text("gpuType", "nvidia-l4") or ""
    if gpu_type not in GPU_MACHINES:
        problems.append(
            f"{NAMESPACE}:gpuType: unknown GPU type '{gpu_type}' "
            f"(choose one of: {', '.join(GPU_MACHINES)})"
        )
        gpu_type = "nvidia-l4"

    rtp_text = text("rtpPortRange", "35000-35999") or ""
    rtp_range = (35000, 35999)
    try:
        rtp_range = parse_rtp_range(rtp_text)
    except ValueError as exc:
        problems.append(f"{NAMESPACE}:rtpPortRange: {exc}")

    nodes = integer("mediaNodeCount", 1, 1, 100)
    max_nodes = integer("mediaNodeMaxCount", max(3, 2 * nodes), 1, 500)
    if max_nodes < nodes:
        problems.append(
            f"{NAMESPACE}:mediaNodeMaxCount: {max_nodes} is below mediaNodeCount {nodes}"
        )

    min_instances = integer("cloudRunMinInstances", 1 if stack in PROD_STACKS else 0, 0, 100)
    if stack in PROD_STACKS and min_instances < 1:
        problems.append(
            f"{NAMESPACE}:cloudRunMinInstances: must be >= 1 in stack '{stack}' "
            "(a cold start drops the first Twilio stream)"
        )

    version = text("clusterVersion", "1.30") or ""
    if not _VERSION.match(version):
        problems.append(
            f"{NAMESPACE}:clusterVersion: '{version}' is not a GKE version like 1.30 or "
            "1.30.5-gke.1014001"
        )
        version = "1.30"

    phone = text("twilioPhoneNumber")
    if phone is not None and not _E164.match(phone):
        problems.append(f"{NAMESPACE}:twilioPhoneNumber: '{phone}' is not E.164 (+15551234567)")
    email = text("notificationEmail")
    if email is not None and not _EMAIL.match(email):
        problems.append(f"{NAMESPACE}:notificationEmail: '{email}' is not an e-mail address")

    domain = text("ingressDomain")
    target = text("streamTarget", "cloudrun") or ""
    if target not in STREAM_TARGETS:
        problems.append(
            f"{NAMESPACE}:streamTarget: '{target}' is not one of {', '.join(STREAM_TARGETS)}"
        )
    elif target == "gke" and domain is None:
        problems.append(
            f"{NAMESPACE}:streamTarget: 'gke' needs {NAMESPACE}:ingressDomain "
            "(Twilio streams need wss:// with a certificate)"
        )

    phase = text("phase", "full") or ""
    if phase not in PHASES:
        problems.append(f"{NAMESPACE}:phase: '{phase}' is not one of {', '.join(PHASES)}")
    image_tag = text("imageTag", "") or ""
    if image_tag in MUTABLE_TAGS:
        problems.append(
            f"{NAMESPACE}:imageTag: '{image_tag}' is a moving tag: deploy the commit Cloud Build "
            "pushed (its short SHA), so every pod and revision runs the same image"
        )
    elif image_tag and not _TAG.match(image_tag):
        problems.append(f"{NAMESPACE}:imageTag: '{image_tag}' is not a Docker tag")
    if phase == "bootstrap" and image_tag:
        # Images exist, so workloads may too: a bootstrap run would plan to delete them all.
        problems.append(
            f"{NAMESPACE}:phase: 'bootstrap' with an imageTag: this stack has images; "
            f"pulumi config rm {NAMESPACE}:phase"
        )

    config = StackConfig(
        stack=stack,
        project=project,
        region=region,
        zone=zone,
        gpu_type=gpu_type,
        media_node_count=nodes,
        media_node_max_count=max_nodes,
        media_machine_type=text("mediaMachineType", "n2-standard-8") or "",
        rtp_port_range=rtp_range,
        cloud_run_min_instances=min_instances,
        cloud_run_max_concurrency=integer("cloudRunMaxConcurrency", 20, 1, 1000),
        cluster_version=version,
        image_tag=image_tag,
        drain_grace_seconds=integer("drainGraceSeconds", 300, 30, 86400),
        twilio_phone_number=phone,
        notification_email=email,
        ingress_domain=domain,
        github_owner=text("githubOwner"),
        github_repo=text("githubRepo", "voice-connector") or "",
        config_file=text("configFile", "../cfg/voice-connector.ini") or "",
        stream_target=target,
        phase=phase,
    )
    if problems:
        raise ConfigError(problems)
    return config


def check_deployable(cfg: StackConfig) -> None:
    """Phase `full` names images: refuse to declare it without the tag they were pushed under."""
    if cfg.phase == "full" and not cfg.image_tag:
        raise ConfigError(
            [
                f"{NAMESPACE}:imageTag: required: the tag Cloud Build pushed "
                f"(pulumi up -c {NAMESPACE}:imageTag=$(pulumi stack output imageTag)); on a new "
                f"project run with {NAMESPACE}:phase=bootstrap first (docs/cloud-deployment.md)"
            ]
        )


def raw_config() -> dict[str, str]:
    """The current stack's `voice-connector:*` values as Pulumi holds them (unvalidated)."""
    from pulumi.runtime.config import CONFIG, get_config_env

    prefix = f"{NAMESPACE}:"
    every = {**get_config_env(), **CONFIG.get()}
    return {key[len(prefix) :]: value for key, value in every.items() if key.startswith(prefix)}


def load_config() -> StackConfig:
    """Read the current stack's `voice-connector:*` values from Pulumi and validate them."""
    return parse_stack_config(raw_config(), pulumi.get_stack())


@dataclass(frozen=True)
class SecretValues:
    """Secret stack values (`pulumi config set --secret`), kept as secret Outputs end to end."""

    twilio_auth_token: pulumi.Output[str]
    twilio_account_sid: pulumi.Output[str]
    outbound_call_token: pulumi.Output[str]


def load_secrets() -> SecretValues:
    """Required secret values; missing ones fail with the key to set."""
    cfg = pulumi.Config(NAMESPACE)
    missing = [key for key in SECRET_KEYS if cfg.get(key) is None]
    if missing:
        raise ConfigError(
            [
                f"{NAMESPACE}:{key}: required secret "
                f"(pulumi config set --secret {NAMESPACE}:{key} ...)"
                for key in missing
            ]
        )
    return SecretValues(*(cfg.require_secret(key) for key in SECRET_KEYS))
