"""Wires the components of one stack together; `__main__` calls `deploy` after validation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi

from voice_infra.alerts import Alerts
from voice_infra.apis import ProjectApis
from voice_infra.cloudbuild import BuildTriggers
from voice_infra.cloudrun import TwilioCloudRun
from voice_infra.config import SecretValues, StackConfig, check_deployable
from voice_infra.functions import TwilioFunctions, TwilioFunctionsArgs
from voice_infra.gke import GkeCluster
from voice_infra.identity import ServiceAccounts
from voice_infra.k8s_workloads import ClusterWorkloads
from voice_infra.monitoring import Monitoring, MonitoringSettings
from voice_infra.network import Network
from voice_infra.registry import ArtifactRegistry
from voice_infra.secrets import Secrets
from voice_infra.sip_edge import SipEdge, SipEdgeArgs, trunks_from_config

INFRA_DIR = Path(__file__).resolve().parent.parent


@dataclass
class Deployment:
    """Every component of the stack, for tests and stack outputs (workloads: `full` phase only)."""

    apis: ProjectApis
    registry: ArtifactRegistry
    secrets: Secrets
    accounts: ServiceAccounts
    triggers: BuildTriggers
    network: Network | None = None
    gke: GkeCluster | None = None
    workloads: ClusterWorkloads | None = None
    cloud_run: TwilioCloudRun | None = None
    functions: TwilioFunctions | None = None
    alerts: Alerts | None = None
    monitoring: Monitoring | None = None


def deploy(
    cfg: StackConfig,
    secret_values: SecretValues,
    ini_text: str,
    monitoring_settings: MonitoringSettings | None = None,
) -> Deployment:
    """Declare the stack. Everything waits for the project APIs.

    Phase `bootstrap` stops after what the image build needs (APIs, registry, accounts, secrets,
    triggers): on a new project the images do not exist yet, and every workload names one.
    """
    check_deployable(cfg)
    apis = ProjectApis("apis", cfg)
    after_apis = pulumi.ResourceOptions(depends_on=apis.services)
    registry = ArtifactRegistry("registry", cfg, opts=after_apis)
    secrets = Secrets("secrets", cfg, secret_values, ini_text, opts=after_apis)
    accounts = ServiceAccounts("accounts", cfg, registry, secrets, opts=after_apis)
    triggers = BuildTriggers("triggers", cfg, accounts, opts=after_apis)
    pulumi.export("imageRepository", registry.url)
    pulumi.export("phase", cfg.phase)
    found = Deployment(apis, registry, secrets, accounts, triggers)
    if cfg.bootstrap:
        return found
    _workloads(cfg, ini_text, monitoring_settings, found, after_apis)
    return found


def _workloads(
    cfg: StackConfig,
    ini_text: str,
    monitoring_settings: MonitoringSettings | None,
    found: Deployment,
    after_apis: pulumi.ResourceOptions,
) -> None:
    """The `full` phase: network, cluster, workloads, Cloud Run, functions, monitoring."""
    accounts, secrets = found.accounts, found.secrets
    network = Network("network", cfg, opts=after_apis)
    gke = GkeCluster("gke", cfg, network, accounts, opts=after_apis)
    workloads = ClusterWorkloads("workloads", cfg, ini_text, network, secrets, gke.provider)
    cloud_run = TwilioCloudRun("cloud-run", cfg, network, accounts, secrets, opts=after_apis)
    media_host: pulumi.Input[str] = (
        cfg.ingress_domain if cfg.stream_target == "gke" and cfg.ingress_domain else cloud_run.host
    )
    functions = TwilioFunctions(
        "functions",
        cfg,
        TwilioFunctionsArgs(media_host, ini_text, accounts, secrets),
        opts=after_apis,
    )
    alerts = Alerts("alerts", cfg, opts=after_apis) if cfg.notification_email else None
    monitoring = Monitoring(
        "monitoring",
        cfg,
        monitoring_settings,
        k8s_provider=gke.provider,
        notification_channels=[alerts.channel.id] if alerts else None,
        opts=after_apis,
    )
    found.network, found.gke, found.workloads = network, gke, workloads
    trunks = trunks_from_config()
    if trunks:  # SIP carriers reach the media nodes through the edge
        edge = SipEdge("sip-edge", SipEdgeArgs(cfg, network, gke.provider, trunks), after_apis)
        pulumi.export("sipEdgeIp", edge.address.address)
    found.cloud_run, found.functions, found.alerts, found.monitoring = (
        cloud_run,
        functions,
        alerts,
        monitoring,
    )

    pulumi.export("imageTag", cfg.image_tag)
    pulumi.export("cloudRunUrl", cloud_run.url)
    pulumi.export("mediaHost", media_host)
    pulumi.export("ingressIp", network.ingress_address.address)
    pulumi.export("twilioVoiceWebhook", functions.urls["twilio_voice"])
    pulumi.export("twilioStatusWebhook", functions.urls["twilio_status"])
    pulumi.export("outboundCallUrl", functions.urls["outbound_call"])
    pulumi.export("cluster", gke.cluster.name)
    pulumi.export("kubeconfig", gke.kubeconfig)
