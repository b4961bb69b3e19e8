"""Every Kubernetes object of the stack: schema-valid for the configured version, and right."""

from __future__ import annotations

import configparser
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from tests.infra.harness import INI_TEXT, Stack
from voice_infra import k8s_manifests as km
from voice_infra.config import StackConfig, parse_stack_config
from voice_infra.monitoring import pod_monitorings

ENDPOINTS = km.Endpoints("10.10.0.21", "10.10.0.22", "vc-dev-ingress")
SECRETS = {"twilio-auth-token": "token", "twilio-account-sid": "AC123"}

# kubernetes-validate knows only built-in kinds: GKE's CRDs get the subset of their published
# schemas that we use, closed (additionalProperties: false) like --strict.
STRICT_OBJECT: dict[str, Any] = {"type": "object", "additionalProperties": False}
METADATA = {
    **STRICT_OBJECT,
    "required": ["name", "namespace"],
    "properties": {
        "name": {"type": "string"},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}
CRD_SCHEMAS: dict[str, dict[str, Any]] = {
    "BackendConfig": {
        **STRICT_OBJECT,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "cloud.google.com/v1"},
            "kind": {"const": "BackendConfig"},
            "metadata": METADATA,
            "spec": {
                **STRICT_OBJECT,
                "properties": {
                    "timeoutSec": {"type": "integer", "minimum": 1, "maximum": 86400},
                    "connectionDraining": {
                        **STRICT_OBJECT,
                        "properties": {
                            "drainingTimeoutSec": {"type": "integer", "minimum": 0, "maximum": 3600}
                        },
                    },
                    "healthCheck": {
                        **STRICT_OBJECT,
                        "properties": {
                            "type": {"enum": ["HTTP", "HTTPS", "HTTP2"]},
                            "requestPath": {"type": "string"},
                            "port": {"type": "integer"},
                            "checkIntervalSec": {"type": "integer"},
                        },
                    },
                },
            },
        },
    },
    "ManagedCertificate": {
        **STRICT_OBJECT,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "networking.gke.io/v1"},
            "kind": {"const": "ManagedCertificate"},
            "metadata": METADATA,
            "spec": {
                **STRICT_OBJECT,
                "required": ["domains"],
                "properties": {
                    "domains": {"type": "array", "items": {"type": "string"}, "maxItems": 100}
                },
            },
        },
    },
}


def validate(manifest: dict[str, Any], version: str) -> None:
    if manifest["kind"] in CRD_SCHEMAS:
        jsonschema.validate(manifest, CRD_SCHEMAS[manifest["kind"]])
    else:
        kubernetes_validate.validate(manifest, version, strict=True)


def config(stack: str = "dev", **raw: str) -> StackConfig:
    return parse_stack_config({"project": "vc-test-project", "imageTag": "0123abcd", **raw}, stack)


def render(cfg: StackConfig) -> list[dict[str, Any]]:
    return km.render_all(cfg, INI_TEXT, SECRETS, ENDPOINTS)


def by_kind(manifests: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    return found


VARIANTS: list[tuple[str, dict[str, str]]] = [
    ("dev", {"clusterVersion": "1.29"}),
    ("staging", {"clusterVersion": "1.30.5-gke.1014001"}),
    ("prod", {"clusterVersion": "1.31", "ingressDomain": "media.example.com"}),
    ("prod", {"clusterVersion": "1.33", "gpuType": "nvidia-tesla-t4"}),
]


@pytest.mark.parametrize(("stack", "raw"), VARIANTS)
def test_every_manifest_is_valid_for_the_configured_cluster_version(
    stack: str, raw: dict[str, str]
) -> None:
    cfg = config(stack, **raw)
    manifests = render(cfg)
    for manifest in manifests:
        validate(manifest, cfg.kubernetes_minor)
    kinds = {m["kind"] for m in manifests}
    assert kinds >= {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}


def test_strict_validation_catches_a_misspelt_field() -> None:
    """The guard works: an unknown field (what a typo makes) is a validation error."""
    deployment = by_kind(render(config()), "Deployment", "media-node")
    deployment["spec"]["template"]["spec"]["hostNetwrok"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment, "1.30")


def test_program_declares_exactly_the_rendered_objects(stacks: Callable[..., Stack]) -> None:
    """What pulumi_kubernetes receives is what was validated above, nothing more."""
    stack = stacks("dev")
    declared = {
        (r.inputs["kind"], r.inputs["metadata"]["name"])
        for r in stack.resources
        if r.typ.startswith("kubernetes:") and not r.typ.startswith("pulumi:")
    }
    rendered = {(m["kind"], m["metadata"]["name"]) for m in render(config()) + pod_monitorings()}
    assert declared == rendered
    deployment = next(
        r for r in stack.resources if r.typ == "kubernetes:apps/v1:Deployment" and "media" in r.name
    )
    container = deployment.inputs["spec"]["template"]["spec"]["containers"][1]
    assert container["name"] == "connector" and container["workingDir"] == km.CONFIG_DIR


def test_media_node_pod_shape() -> None:
    cfg = config(drainGraceSeconds="420")
    pod = by_kind(render(cfg), "Deployment", "media-node")["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True
    assert pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert pod["terminationGracePeriodSeconds"] == 420
    (term,) = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"]["app.kubernetes.io/name"] == "media-node"
    assert [c["name"] for c in pod["containers"]] == ["opensips", "connector"]
    opensips, connector = pod["containers"]
    assert {(p["containerPort"], p["protocol"]) for p in opensips["ports"]} == {
        (5060, "UDP"),
        (5060, "TCP"),
    }
    assert connector["ports"] == [{"name": "http", "containerPort": 8080, "hostPort": 8080}]
    assert connector["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 8080}
    assert connector["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 8080}
    assert connector["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]
    assert "[m]edia_node" in opensips["lifecycle"]["preStop"]["exec"]["command"][-1]
    assert pod["tolerations"] == [
        {
            "key": "voice-connector/media",
            "operator": "Equal",
            "value": "true",
            "effect": "NoSchedule",
        }
    ]


def test_opensips_prestop_waits_for_the_connector_to_exit(tmp_path: Path) -> None:
    """Run the hook's shell loop for real, watching a stand-in process instead of media_node."""
    token = f"vc-prestop-{uuid.uuid4().hex[:8]}"
    script = km.OPENSIPS_PRESTOP.replace("[m]edia_node", f"[{token[0]}]{token[1:]}")
    script = script.replace(f"sleep {km.PRESTOP_SECONDS};", "")
    marker = tmp_path / "stand-in-exited"
    stand_in = subprocess.Popen(
        ["sh", "-c", f"sleep 1.5; touch {marker}", token]  # token lands in its cmdline
    )
    try:
        subprocess.run(["/bin/sh", "-c", script], check=True, timeout=30)
        assert marker.exists(), "the hook returned while the watched process was alive"
    finally:
        stand_in.wait(timeout=30)


def test_public_ip_reaches_both_containers_from_the_metadata_server() -> None:
    pod = by_kind(render(config()), "Deployment", "media-node")["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    script = init["command"][-1]
    assert "access-configs/0/external-ip" in script and "Metadata-Flavor" in script
    assert "VC_OPENSIPS_PUBLIC_IP={ip}" in script
    compile(script, "public-ip", "exec")  # the inline program is valid Python
    for container in pod["containers"]:
        assert container["command"][:2] == ["/bin/sh", "-c"]
        assert km.NODE_ENV_FILE in container["command"][2]
        assert {"name": "node-env", "mountPath": km.NODE_ENV_DIR} in container["volumeMounts"]


def test_media_node_env_points_at_cluster_services_and_secrets() -> None:
    cfg = config(rtpPortRange="40000-40999", drainGraceSeconds="300")
    env = by_kind(render(cfg), "Deployment", "media-node")["spec"]["template"]["spec"][
        "containers"
    ][1]["env"]
    values = {e["name"]: e.get("value") for e in env}
    assert values["VC_OPENSIPS_RTP_PORT_RANGE"] == "40000-40999"
    assert values["VC_STT_URL"] == "http://whisper.voice-connector.svc.cluster.local:9000"
    assert values["VC_LLM_URL"] == "http://ollama.voice-connector.svc.cluster.local:11434"
    assert values["VC_GENERAL_DRAIN_GRACE_SECONDS"] == "290"
    assert values["VC_GENERAL_WORKERS"] == "2"  # one worker process per requested core
    assert values["GOOGLE_CLOUD_PROJECT"] == cfg.project  # log lines get their trace field
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in env if "valueFrom" in e}
    assert refs == {
        "VC_TWILIO_AUTH_TOKEN": {"name": km.CONNECTOR_SECRET, "key": "twilio-auth-token"},
        "VC_TWILIO_ACCOUNT_SID": {"name": km.CONNECTOR_SECRET, "key": "twilio-account-sid"},
    }


def test_media_node_env_uses_only_variables_the_connector_accepts() -> None:
    """The node refuses unknown VC_* variables at start-up: keep infra and schema in step."""
    loader = pytest.importorskip("voice_connector_core.config.loader")
    known = {
        loader.env_name(section, key)
        for section, model in loader.SECTIONS.items()
        for key in model.model_fields
    }
    env = by_kind(render(config()), "Deployment", "media-node")["spec"]["template"]["spec"][
        "containers"
    ][1]["env"]
    names = {e["name"] for e in env if e["name"].startswith("VC_")} | {"VC_OPENSIPS_PUBLIC_IP"}
    assert names <= known, names - known


def test_config_map_is_the_ini_file_and_rolls_pods_when_it_changes() -> None:
    manifests = render(config())
    config_map = by_kind(manifests, "ConfigMap", "voice-connector-config")
    assert config_map["data"] == {"voice-connector.ini": INI_TEXT}
    parser = configparser.ConfigParser()
    parser.read_string(config_map["data"]["voice-connector.ini"])
    changed = km.media_node_deployment(config(), INI_TEXT + "\n[llm]\nmodel = other\n")
    original = by_kind(manifests, "Deployment", "media-node")
    annotation = "voice-connector/config-sha256"
    assert (
        changed["spec"]["template"]["metadata"]["annotations"][annotation]
        != original["spec"]["template"]["metadata"]["annotations"][annotation]
    )


def test_hpas_scale_only_on_metrics_every_cluster_serves() -> None:
    """No custom metric without an adapter: an HPA that cannot read one stops scaling down."""
    cfg = config(mediaNodeCount="2", mediaNodeMaxCount="8")
    hpa = by_kind(render(cfg), "HorizontalPodAutoscaler", "media-node")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "media-node",
    }
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 8)
    for stack in ("dev", "prod"):
        for manifest in render(config(stack)):
            if manifest["kind"] == "HorizontalPodAutoscaler":
                kinds = {m["type"] for m in manifest["spec"]["metrics"]}
                assert kinds == {"Resource"}, manifest["metadata"]["name"]
    assert hpa["behavior"]["scaleDown"]["policies"] == [
        {"type": "Pods", "value": 1, "periodSeconds": 300}
    ]


def test_pdb_allows_one_media_node_down() -> None:
    pdb = by_kind(render(config()), "PodDisruptionBudget", "media-node")
    assert pdb["spec"]["maxUnavailable"] == 1


@pytest.mark.parametrize("gpu", ["nvidia-l4", "nvidia-tesla-t4"])
def test_gpu_services_tolerate_the_gpu_taint_and_use_internal_lbs(gpu: str) -> None:
    manifests = render(config(gpuType=gpu))
    for name, port, ip in (("whisper", 9000, "10.10.0.21"), ("ollama", 11434, "10.10.0.22")):
        pod = by_kind(manifests, "Deployment", name)["spec"]["template"]["spec"]
        assert pod["tolerations"] == [
            {
                "key": "nvidia.com/gpu",
                "operator": "Equal",
                "value": "present",
                "effect": "NoSchedule",
            }
        ]
        assert pod["nodeSelector"]["cloud.google.com/gke-accelerator"] == gpu
        assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
        service = by_kind(manifests, "Service", name)
        assert service["metadata"]["annotations"] == {
            "networking.gke.io/load-balancer-type": "Internal"
        }
        assert service["spec"]["type"] == "LoadBalancer"
        assert service["spec"]["loadBalancerIP"] == ip
        assert service["spec"]["ports"][0]["port"] == port
    whisper = by_kind(manifests, "Deployment", "whisper")["spec"]["template"]["spec"]
    assert whisper["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/readyz"
    ollama = by_kind(manifests, "Deployment", "ollama")["spec"]["template"]["spec"]
    assert ollama["containers"][0]["livenessProbe"]["httpGet"]["path"] == "/api/tags"


def test_media_pods_are_not_evicted_by_the_cluster_autoscaler() -> None:
    pod = by_kind(render(config()), "Deployment", "media-node")["spec"]["template"]
    assert pod["metadata"]["annotations"]["cluster-autoscaler.kubernetes.io/safe-to-evict"] == (
        "false"
    )


@pytest.mark.parametrize("stack", ["dev", "staging"])
def test_single_gpu_deployments_recreate_instead_of_waiting_for_a_second_gpu(stack: str) -> None:
    manifests = render(config(stack))
    for name in ("whisper", "ollama"):
        spec = by_kind(manifests, "Deployment", name)["spec"]
        assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    assert not [m for m in manifests if m["kind"] == "HorizontalPodAutoscaler"
                and m["metadata"]["name"] in ("whisper", "ollama")]


def test_prod_gpu_services_have_two_replicas_an_autoscaler_and_no_surge() -> None:
    manifests = render(config("prod"))
    for name in ("whisper", "ollama"):
        spec = by_kind(manifests, "Deployment", name)["spec"]
        assert spec["replicas"] == 2
        assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
        hpa = by_kind(manifests, "HorizontalPodAutoscaler", name)["spec"]
        assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 3)
        assert by_kind(manifests, "PodDisruptionBudget", name)["spec"]["maxUnavailable"] == 1


def test_ingress_routes_only_the_public_paths() -> None:
    for cfg in (config(), config(ingressDomain="media.example.com")):
        spec = by_kind(render(cfg), "Ingress", "media-node")["spec"]
        assert "defaultBackend" not in spec  # unmatched paths: the load balancer's 404
        (rule,) = spec["rules"]
        paths = {(p["path"], p["pathType"]) for p in rule["http"]["paths"]}
        assert paths == {("/twilio/", "Prefix"), ("/healthz", "Exact")}


def test_ingress_keeps_websockets_open_for_an_hour() -> None:
    manifests = render(config())
    backend = by_kind(manifests, "BackendConfig", "media-node")["spec"]
    assert backend["timeoutSec"] == 3600
    assert backend["healthCheck"]["requestPath"] == "/readyz"
    service = by_kind(manifests, "Service", "media-node")
    assert service["metadata"]["annotations"]["cloud.google.com/backend-config"] == (
        '{"default": "media-node"}'
    )
    ingress = by_kind(manifests, "Ingress", "media-node")
    assert ingress["metadata"]["annotations"]["kubernetes.io/ingress.global-static-ip-name"] == (
        "vc-dev-ingress"
    )
    assert "ManagedCertificate" not in {m["kind"] for m in manifests}


def test_ingress_domain_adds_a_managed_certificate_and_https_only() -> None:
    manifests = render(config(ingressDomain="media.example.com"))
    certificate = by_kind(manifests, "ManagedCertificate", "media-node")
    assert certificate["spec"]["domains"] == ["media.example.com"]
    ingress = by_kind(manifests, "Ingress", "media-node")
    assert ingress["metadata"]["annotations"]["kubernetes.io/ingress.allow-http"] == "false"
    assert ingress["spec"]["rules"][0]["host"] == "media.example.com"


def test_media_node_env_names_its_public_url_and_the_scrapers_network() -> None:
    def env(cfg: StackConfig) -> dict[str, str]:
        pod = by_kind(render(cfg), "Deployment", "media-node")["spec"]["template"]["spec"]
        (connector,) = [c for c in pod["containers"] if c["name"] == "connector"]
        return {e["name"]: e.get("value", "") for e in connector["env"]}

    plain = env(config())
    assert "10.20.0.0/14" in plain["VC_GENERAL_PRIVATE_NETWORKS"]  # Managed Prometheus' pods
    assert "VC_GENERAL_PUBLIC_URL" not in plain  # no domain: Twilio does not stream to GKE
    with_domain = env(config(ingressDomain="media.example.com"))
    assert with_domain["VC_GENERAL_PUBLIC_URL"] == "https://media.example.com"
