"""Every Kubernetes object of the deployment, as plain dicts.

Pure functions: the GKE component hands these dicts to pulumi_kubernetes, and the tests validate
the very same dicts with `kubernetes-validate --strict`. Values may be Pulumi Inputs (reserved IPs,
secrets); the tests pass strings.
"""

from __future__ import annotations

import configparser
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from voice_infra.config import StackConfig, sip_edge_trunks
from voice_infra.conventions import (
    CONNECTOR_SECRET_ENV,
    HTTP_PORT,
    MAX_STREAM_SECONDS,
    OLLAMA_PORT,
    SIP_PORT,
    WHISPER_PORT,
    connector_env,
)
from voice_infra.network import PODS_CIDR

Manifest = dict[str, Any]

NAMESPACE = "voice-connector"
PART_OF = {"app.kubernetes.io/part-of": "voice-connector"}
POOL_LABEL = "voice-connector/pool"  # node label set on every node pool we create
MEDIA_TAINT = {"key": "voice-connector/media", "value": "true", "effect": "NoSchedule"}
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}

DEFAULT_LLM_MODEL = "qwen2.5-coder:0.5b"
"""`[llm] model` when the INI names none (the connector's schema default)."""
SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"
"""`"false"` on media pods: the cluster autoscaler would evict them on scale-down after at most
10 minutes, whatever their grace period; calls end only through the HPA and PDB."""
CONNECTOR_SECRET = "voice-connector-secrets"
CONFIG_DIR = "/etc/voice-connector"  # working dir: the node reads cfg/voice-connector.ini from it
NODE_ENV_DIR = "/run/voice-connector"
NODE_ENV_FILE = f"{NODE_ENV_DIR}/node.env"
MEDIA_NODE_CPUS = 2
"""Cores a media node pod requests; it runs one worker process per core ([general] workers)."""
PRESTOP_SECONDS = 5  # endpoints and the load balancer stop sending new work before SIGTERM

# Images start through this wrapper so VC_OPENSIPS_PUBLIC_IP (written by the init container) is in
# their environment; `exec` keeps the real process as the container's signal receiver.
ENV_WRAPPER = ["/bin/sh", "-c", f'set -a; . {NODE_ENV_FILE}; set +a; exec "$@"', "--"]
CONNECTOR_COMMAND = ["python", "-m", "media_node"]
# `-p opensips-env` (in the image) advertises VC_OPENSIPS_PUBLIC_IP in Via/Contact at start.
OPENSIPS_COMMAND = [
    "opensips",
    "-F",
    "-f",
    "/etc/opensips/opensips.cfg",
    "-p",
    "/usr/local/bin/opensips-env",
]

# The pod's host IP is the node's internal address; the external one (what SDP must advertise)
# only the metadata server knows. hostNetwork pods reach the GCE metadata server directly.
PUBLIC_IP_SCRIPT = f"""\
import pathlib, urllib.request
url = ("http://metadata.google.internal/computeMetadata/v1/instance/"
       "network-interfaces/0/access-configs/0/external-ip")
request = urllib.request.Request(url, headers={{"Metadata-Flavor": "Google"}})
ip = urllib.request.urlopen(request, timeout=5).read().decode().strip()
if not ip:
    raise SystemExit("this node has no external IP: media nodes must be public for RTP")
pathlib.Path("{NODE_ENV_FILE}").write_text(f"VC_OPENSIPS_PUBLIC_IP={{ip}}\\n")
print("advertising", ip)
"""

# OpenSIPS must outlive the connector so in-flight dialogs still get their BYE: wait until no
# media_node process is left in the (shared) process namespace. `[m]` keeps grep off itself.
OPENSIPS_PRESTOP = (
    f"sleep {PRESTOP_SECONDS}; while grep -qs '[m]edia_node' /proc/[0-9]*/cmdline; do sleep 1; done"
)


@dataclass(frozen=True)
class Endpoints:
    """Addresses decided outside Kubernetes (reserved by the network component)."""

    whisper_ip: Any
    ollama_ip: Any
    ingress_address_name: str


def labels(app: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": app, **PART_OF}


def metadata(name: str, app: str, **extra: Any) -> Manifest:
    return {"name": name, "namespace": NAMESPACE, "labels": labels(app), **extra}


def http_probe(path: str, port: int, *, period: int = 10, failures: int = 3) -> Manifest:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": 3,
    }


def _ini(ini_text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(ini_text)
    return parser


def llm_models(ini_text: str) -> list[str]:
    """Every Ollama model the nodes ask for: `[llm] model` and each flavor's `llm.model`.

    The Ollama image pulls exactly these (`OLLAMA_MODEL`); a node whose model is missing there
    is never ready (it checks the model, and does not pull it by default).
    """
    parser = _ini(ini_text)
    models = [parser.get("llm", "model", fallback=DEFAULT_LLM_MODEL)]
    models += [
        parser.get(section, "llm.model")
        for section in parser.sections()
        if section.startswith("flavor:") and parser.has_option(section, "llm.model")
    ]
    return list(dict.fromkeys(m.strip() for m in models if m.strip()))


def namespace() -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": NAMESPACE, "labels": dict(PART_OF)},
    }


def connector_config_map(ini_text: str) -> Manifest:
    """The INI file verbatim; per-environment differences come as VC_* env in the Deployment."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata("voice-connector-config", "media-node"),
        "data": {"voice-connector.ini": ini_text},
    }


def connector_secret(values: Mapping[str, Any]) -> Manifest:
    """Mirror of the Secret Manager versions (keys are the Secret Manager secret ids)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(CONNECTOR_SECRET, "media-node"),
        "type": "Opaque",
        "stringData": dict(values),
    }


def media_node_env(cfg: StackConfig) -> list[Manifest]:
    """Environment of the full media node on GKE; AI services by their cluster DNS names."""
    svc = f"{NAMESPACE}.svc.cluster.local"
    plain = connector_env(
        "opensips,twilio",
        stt_url=f"http://whisper.{svc}:{WHISPER_PORT}",
        llm_url=f"http://ollama.{svc}:{OLLAMA_PORT}",
        project=cfg.project,
    )
    plain |= {
        # /metrics and /readyz details: Managed Prometheus scrapes from its pods on the node.
        "VC_GENERAL_PRIVATE_NETWORKS": f"127.0.0.0/8,::1/128,{PODS_CIDR}",
        "VC_OPENSIPS_RTP_PORT_RANGE": cfg.rtp_range_text,
        # SIGTERM comes after the preStop sleep; exit before the kubelet's SIGKILL.
        "VC_GENERAL_DRAIN_GRACE_SECONDS": str(cfg.drain_grace_seconds - 2 * PRESTOP_SECONDS),
        # one node process per requested core: one event loop saturates at ~40-60 calls
        "VC_GENERAL_WORKERS": str(MEDIA_NODE_CPUS),
    }
    if cfg.ingress_domain:
        # The URL Twilio signs for streams through the Ingress (TLS ends at the load balancer).
        plain["VC_GENERAL_PUBLIC_URL"] = f"https://{cfg.ingress_domain}"
    env: list[Manifest] = [{"name": key, "value": value} for key, value in plain.items()]
    env += [
        {"name": var, "valueFrom": {"secretKeyRef": {"name": CONNECTOR_SECRET, "key": key}}}
        for var, key in CONNECTOR_SECRET_ENV.items()
    ]
    return env


def media_node_deployment(cfg: StackConfig, ini_text: str) -> Manifest:
    """One pod per media node: hostNetwork (RTP ranges cannot be a Service), OpenSIPS + connector.

    A Deployment rather than a DaemonSet so an HPA can scale it on active calls; required pod
    anti-affinity keeps one pod per node and the cluster autoscaler adds nodes for pending pods.
    """
    app = "media-node"
    env_mount = {"name": "node-env", "mountPath": NODE_ENV_DIR}
    checksum = hashlib.sha256(ini_text.encode()).hexdigest()
    connector = {
        "name": "connector",
        "image": cfg.image("media-node"),
        "command": ENV_WRAPPER,
        "args": CONNECTOR_COMMAND,
        "workingDir": CONFIG_DIR,
        "env": media_node_env(cfg),
        "ports": [{"name": "http", "containerPort": HTTP_PORT, "hostPort": HTTP_PORT}],
        "startupProbe": http_probe("/healthz", HTTP_PORT, period=5, failures=60),
        "readinessProbe": http_probe("/readyz", HTTP_PORT, period=5),
        "livenessProbe": http_probe("/healthz", HTTP_PORT),
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(PRESTOP_SECONDS)]}}},
        "resources": {
            "requests": {"cpu": str(MEDIA_NODE_CPUS), "memory": "4Gi"},
            "limits": {"memory": "8Gi"},
        },
        "volumeMounts": [
            {"name": "config", "mountPath": f"{CONFIG_DIR}/cfg", "readOnly": True},
            env_mount,
        ],
    }
    opensips = {
        "name": "opensips",
        "image": cfg.image("opensips"),
        "command": ENV_WRAPPER,
        "args": OPENSIPS_COMMAND,
        "ports": [
            {"name": "sip-udp", "containerPort": SIP_PORT, "hostPort": SIP_PORT, "protocol": "UDP"},
            {"name": "sip-tcp", "containerPort": SIP_PORT, "hostPort": SIP_PORT, "protocol": "TCP"},
        ],
        "livenessProbe": {"tcpSocket": {"port": SIP_PORT}, "periodSeconds": 10},
        "lifecycle": {"preStop": {"exec": {"command": ["/bin/sh", "-c", OPENSIPS_PRESTOP]}}},
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}},
        "volumeMounts": [env_mount],
    }
    if sip_edge_trunks():  # behind the SIP edge: its pods are the only SIP sources (opensips-env)
        opensips["env"] = [{"name": "SIP_TRUSTED_SOURCES", "value": PODS_CIDR}]
    public_ip = {
        "name": "public-ip",
        "image": cfg.image("media-node"),
        "command": ["python", "-c", PUBLIC_IP_SCRIPT],
        "volumeMounts": [env_mount],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(app, app),
        "spec": {
            "replicas": cfg.media_node_count,
            "selector": {"matchLabels": labels(app)},
            # Never below capacity during a rollout: the autoscaler adds a node for the surge pod.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {
                    "labels": labels(app),
                    "annotations": {
                        "voice-connector/config-sha256": checksum,
                        SAFE_TO_EVICT: "false",
                    },
                },
                "spec": {
                    "hostNetwork": True,
                    "dnsPolicy": "ClusterFirstWithHostNet",  # resolve whisper.*.svc from the host
                    "shareProcessNamespace": True,  # OpenSIPS' preStop watches the connector
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": cfg.drain_grace_seconds,
                    "nodeSelector": {POOL_LABEL: "media"},
                    "tolerations": [{"operator": "Equal", **MEDIA_TAINT}],
                    "affinity": {
                        "podAntiAffinity": {
                            "requiredDuringSchedulingIgnoredDuringExecution": [
                                {
                                    "labelSelector": {"matchLabels": labels(app)},
                                    "topologyKey": "kubernetes.io/hostname",
                                }
                            ]
                        }
                    },
                    "initContainers": [public_ip],
                    "containers": [opensips, connector],
                    "volumes": [
                        {
                            "name": "config",
                            "configMap": {"name": "voice-connector-config"},
                        },
                        {"name": "node-env", "emptyDir": {"medium": "Memory"}},
                    ],
                },
            },
        },
    }


def media_node_pdb() -> Manifest:
    """Voluntary disruptions (upgrades, scale-down) take one media node at a time."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata("media-node", "media-node"),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels("media-node")}},
    }


def media_node_hpa(cfg: StackConfig) -> Manifest:
    """Scale on CPU, a metric every GKE cluster serves (metrics-server).

    Active calls per pod would be the better signal, but the HPA reads custom metrics only through
    an adapter this program does not install; an HPA whose metric cannot be read stops scaling
    down (docs/cloud-deployment.md says how to add it). Scale-down is slow: each removed pod
    drains its calls for the grace period.
    """
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata("media-node", "media-node"),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "media-node"},
            "minReplicas": cfg.media_node_count,
            "maxReplicas": cfg.media_node_max_count,
            "metrics": [cpu_metric(65)],
            "behavior": {
                "scaleUp": {
                    "stabilizationWindowSeconds": 0,
                    "policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}],
                },
                "scaleDown": {
                    "stabilizationWindowSeconds": 600,
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 300}],
                },
            },
        },
    }


def cpu_metric(utilization: int) -> Manifest:
    return {
        "type": "Resource",
        "resource": {
            "name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": utilization},
        },
    }


def media_node_service() -> Manifest:
    """HTTP/WS entry for the Ingress (container-native NEG; BackendConfig sets WS timeouts)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(
            "media-node",
            "media-node",
            annotations={
                "cloud.google.com/neg": json.dumps({"ingress": True}),
                "cloud.google.com/backend-config": json.dumps({"default": "media-node"}),
            },
        ),
        "spec": {
            "type": "ClusterIP",
            "selector": labels("media-node"),
            "ports": [{"name": "http", "port": 80, "targetPort": HTTP_PORT, "protocol": "TCP"}],
        },
    }


def media_node_backend_config(cfg: StackConfig) -> Manifest:
    """A Twilio stream lives for the whole call: the LB must not cut the WebSocket at 30 s."""
    return {
        "apiVersion": "cloud.google.com/v1",
        "kind": "BackendConfig",
        "metadata": metadata("media-node", "media-node"),
        "spec": {
            "timeoutSec": MAX_STREAM_SECONDS,
            "connectionDraining": {"drainingTimeoutSec": min(cfg.drain_grace_seconds, 3600)},
            "healthCheck": {
                "type": "HTTP",
                "requestPath": "/readyz",
                "port": HTTP_PORT,
                "checkIntervalSec": 10,
            },
        },
    }


PUBLIC_PATHS = (("/twilio/", "Prefix"), ("/healthz", "Exact"))
"""What the internet may reach on a media node: Twilio's webhooks and streams, and liveness.
`/calls`, `/metrics` and `/readyz` details stay inside (probes and scrapes go to the pod)."""


def media_node_ingress(cfg: StackConfig, endpoints: Endpoints) -> Manifest:
    """Only `PUBLIC_PATHS` are routed; anything else gets the load balancer's own 404."""
    annotations = {
        "kubernetes.io/ingress.class": "gce",
        "kubernetes.io/ingress.global-static-ip-name": endpoints.ingress_address_name,
    }
    backend = {"service": {"name": "media-node", "port": {"number": 80}}}
    paths = [{"path": p, "pathType": kind, "backend": backend} for p, kind in PUBLIC_PATHS]
    rule: Manifest = {"http": {"paths": paths}}
    if cfg.ingress_domain:
        annotations["networking.gke.io/managed-certificates"] = "media-node"
        annotations["kubernetes.io/ingress.allow-http"] = "false"  # Twilio streams need wss://
        rule = {"host": cfg.ingress_domain, **rule}
    spec: Manifest = {"rules": [rule]}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata("media-node", "media-node", annotations=annotations),
        "spec": spec,
    }


def managed_certificate(domain: str) -> Manifest:
    return {
        "apiVersion": "networking.gke.io/v1",
        "kind": "ManagedCertificate",
        "metadata": metadata("media-node", "media-node"),
        "spec": {"domains": [domain]},
    }


@dataclass(frozen=True)
class GpuService:
    """An AI service on its own GPU pool, reached through an internal load balancer."""

    name: str
    image: str
    port: int
    ready_path: str
    live_path: str
    env: Mapping[str, str]


def gpu_services(ini_text: str = "") -> tuple[GpuService, ...]:
    """Whisper and Ollama; Ollama serves (and pulls) the models the connector's INI asks for."""
    return (
        # The CUDA variant: `--device auto` takes the pool's GPU.
        GpuService("whisper", "whisper-service-gpu", WHISPER_PORT, "/readyz", "/healthz", {}),
        GpuService(
            "ollama",
            "ollama",
            OLLAMA_PORT,
            "/api/tags",
            "/api/tags",
            {
                "OLLAMA_HOST": f"0.0.0.0:{OLLAMA_PORT}",
                "OLLAMA_KEEP_ALIVE": "30m",
                "OLLAMA_MODEL": ",".join(llm_models(ini_text)),
            },
        ),
    )


def gpu_scale(cfg: StackConfig) -> tuple[int, int]:
    """(replicas, most replicas) of each GPU service, one GPU node each: prod never runs one."""
    return (2, 3) if cfg.is_prod else (1, 1)


def gpu_strategy(cfg: StackConfig) -> Manifest:
    """Replace pods without an extra GPU: a surge pod would wait for a node the pool cannot add.

    One replica: Recreate (the only way without a spare GPU). Several: one at a time, never a
    surge, so the others keep serving while it restarts.
    """
    replicas, _ = gpu_scale(cfg)
    if replicas == 1:
        return {"type": "Recreate"}
    return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}


def gpu_deployment(cfg: StackConfig, service: GpuService) -> Manifest:
    """One GPU per pod, pinned to its pool; the toleration matches the pool's GPU taint."""
    container = {
        "name": service.name,
        "image": cfg.image(service.image),
        "ports": [{"name": "http", "containerPort": service.port}],
        "env": [{"name": key, "value": value} for key, value in service.env.items()],
        # Models load before the first answer: allow up to 10 minutes.
        "startupProbe": http_probe(service.ready_path, service.port, period=10, failures=60),
        "readinessProbe": http_probe(service.ready_path, service.port),
        "livenessProbe": http_probe(service.live_path, service.port, period=20),
        "resources": {
            "requests": {"cpu": "2", "memory": "8Gi"},
            "limits": {"nvidia.com/gpu": "1", "memory": "24Gi"},
        },
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(service.name, service.name),
        "spec": {
            "replicas": gpu_scale(cfg)[0],
            "selector": {"matchLabels": labels(service.name)},
            "strategy": gpu_strategy(cfg),
            "template": {
                "metadata": {"labels": labels(service.name)},
                "spec": {
                    "automountServiceAccountToken": False,
                    "nodeSelector": {
                        POOL_LABEL: service.name,
                        "cloud.google.com/gke-accelerator": cfg.gpu_type,
                    },
                    "tolerations": [{"operator": "Equal", **GPU_TAINT}],
                    "containers": [container],
                },
            },
        },
    }


def gpu_autoscaling(cfg: StackConfig, service: GpuService) -> list[Manifest]:
    """With room for more than one replica: an HPA on CPU (served by every cluster; the process
    feeding the GPU is busy while it is) and a PDB that keeps one serving during node upgrades."""
    replicas, most = gpu_scale(cfg)
    if most <= 1:
        return []
    target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": service.name}
    return [
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": metadata(service.name, service.name),
            "spec": {
                "scaleTargetRef": target,
                "minReplicas": replicas,
                "maxReplicas": most,
                "metrics": [cpu_metric(70)],
            },
        },
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": metadata(service.name, service.name),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels(service.name)}},
        },
    ]


def internal_lb_service(service: GpuService, ip: Any) -> Manifest:
    """Internal passthrough LB on a reserved VPC address: Cloud Run reaches it via Direct VPC."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(
            service.name,
            service.name,
            annotations={"networking.gke.io/load-balancer-type": "Internal"},
        ),
        "spec": {
            "type": "LoadBalancer",
            "loadBalancerIP": ip,
            "selector": labels(service.name),
            "ports": [
                {
                    "name": "http",
                    "port": service.port,
                    "targetPort": service.port,
                    "protocol": "TCP",
                }
            ],
        },
    }


def render_all(
    cfg: StackConfig, ini_text: str, secrets: Mapping[str, Any], endpoints: Endpoints
) -> list[Manifest]:
    """The whole cluster state, namespace first (apply order)."""
    ips = {"whisper": endpoints.whisper_ip, "ollama": endpoints.ollama_ip}
    manifests = [
        namespace(),
        connector_config_map(ini_text),
        connector_secret(secrets),
        media_node_deployment(cfg, ini_text),
        media_node_pdb(),
        media_node_hpa(cfg),
        media_node_service(),
        media_node_backend_config(cfg),
        media_node_ingress(cfg, endpoints),
    ]
    if cfg.ingress_domain:
        manifests.append(managed_certificate(cfg.ingress_domain))
    for service in gpu_services(ini_text):
        manifests += [gpu_deployment(cfg, service), internal_lb_service(service, ips[service.name])]
        manifests += gpu_autoscaling(cfg, service)
    return manifests
