"""Applies the dicts of `k8s_manifests` to the cluster through pulumi_kubernetes."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import pulumi
import pulumi_kubernetes as k8s

from voice_infra.config import StackConfig
from voice_infra.conventions import CONNECTOR_SECRET_ENV
from voice_infra.k8s_manifests import Endpoints, Manifest, render_all
from voice_infra.network import Network
from voice_infra.secrets import Secrets

TYPED: dict[tuple[str, str], Callable[..., pulumi.CustomResource]] = {
    ("v1", "Namespace"): k8s.core.v1.Namespace,
    ("v1", "ConfigMap"): k8s.core.v1.ConfigMap,
    ("v1", "Secret"): k8s.core.v1.Secret,
    ("v1", "Service"): k8s.core.v1.Service,
    ("apps/v1", "Deployment"): k8s.apps.v1.Deployment,
    ("policy/v1", "PodDisruptionBudget"): k8s.policy.v1.PodDisruptionBudget,
    ("autoscaling/v2", "HorizontalPodAutoscaler"): k8s.autoscaling.v2.HorizontalPodAutoscaler,
    ("networking.k8s.io/v1", "Ingress"): k8s.networking.v1.Ingress,
}
def ignored_fields(manifests: Sequence[Manifest]) -> dict[tuple[str, str], list[str]]:
    """Fields another controller owns: an HPA sets its Deployment's replica count."""
    return {
        ("Deployment", m["spec"]["scaleTargetRef"]["name"]): ["spec.replicas"]
        for m in manifests
        if m["kind"] == "HorizontalPodAutoscaler"
    }


def snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def resource_name(manifest: Manifest) -> str:
    return f"{manifest['kind'].lower()}-{manifest['metadata']['name']}"


def declare(
    manifest: Manifest, opts: pulumi.ResourceOptions, ignored: list[str] | None = None
) -> pulumi.CustomResource:
    """One manifest → one typed resource (CustomResource for GKE CRDs such as BackendConfig).

    Top-level keys become snake_case arguments; nested dicts stay camelCase, as the Kubernetes
    provider expects (the same thing `pulumi_kubernetes.yaml.ConfigGroup` does).
    """
    api_version, kind = manifest["apiVersion"], manifest["kind"]
    body = {snake(k): v for k, v in manifest.items() if k not in ("apiVersion", "kind")}
    if ignored:
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(ignore_changes=ignored))
    typed = TYPED.get((api_version, kind))
    if typed is not None:
        return typed(resource_name(manifest), opts=opts, **body)
    return k8s.apiextensions.CustomResource(
        resource_name(manifest), api_version=api_version, kind=kind, opts=opts, **body
    )


class ClusterWorkloads(pulumi.ComponentResource):
    """Media node, GPU services, Ingress, config and secrets inside the cluster."""

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        ini_text: str,
        network: Network,
        secrets: Secrets,
        provider: k8s.Provider,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("voice-connector:infra:ClusterWorkloads", name, None, opts)
        endpoints = Endpoints(
            whisper_ip=network.whisper_ip.address,
            ollama_ip=network.ollama_ip.address,
            ingress_address_name=f"{cfg.prefix}-ingress",
        )
        # Synced from Secret Manager: rotation = new version via `pulumi up`, then a rollout.
        secret_data = {key: secrets.data(key) for key in CONNECTOR_SECRET_ENV.values()}
        manifests = render_all(cfg, ini_text, secret_data, endpoints)
        opts_base = pulumi.ResourceOptions(parent=self, provider=provider)
        first, rest = manifests[0], manifests[1:]
        namespace = declare(first, opts_base)
        after_ns = pulumi.ResourceOptions.merge(
            opts_base, pulumi.ResourceOptions(depends_on=[namespace, network.ingress_address])
        )
        self.resources: dict[str, pulumi.CustomResource] = {resource_name(first): namespace}
        ignored = ignored_fields(manifests)
        self.resources |= {
            resource_name(m): declare(m, after_ns, ignored.get((m["kind"], m["metadata"]["name"])))
            for m in rest
        }
        self.manifests: Sequence[Manifest] = manifests
        self.register_outputs({"objects": sorted(self.resources)})
