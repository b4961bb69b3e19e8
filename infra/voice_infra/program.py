"""Wires the components of one stack together; `__main__` calls `deploy` after validation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi

from voice_infra.alerts import Alerts
from voice_infra.apis import ProjectApis
from voice_infra.cloudbuild import BuildTriggers
from voice_infra.cloudrun import TwilioCloudRun
from voice_infra.config import SecretValues, StackConfig
from voice_infra.functions import TwilioFunctions, TwilioFunctionsArgs
from voice_infra.gke import GkeCluster
from voice_infra.identity import ServiceAccounts
from voice_infra.k8s_workloads import ClusterWorkloads
from voice_infra.monitoring import Monitoring, MonitoringSettings
from voice_infra.network import Network
from voice_infra.registry import ArtifactRegistry
from voice_infra.secrets import Secrets

INFRA_DIR = Path(__file__).resolve().parent.parent


@dataclass
class Deployment:
    """Every component of the stack, for tests and stack outputs."""

    apis: ProjectApis
    registry: ArtifactRegistry
    secrets: Secrets
    accounts: ServiceAccounts
    network: Network
    gke: GkeCluster
    workloads: ClusterWorkloads
    cloud_run: TwilioCloudRun
    functions: TwilioFunctions
    triggers: BuildTriggers
    alerts: Alerts | None
    monitoring: Monitoring


def deploy(
    cfg: StackConfig,
    secret_values: SecretValues,
    ini_text: str,
    monitoring_settings: MonitoringSettings | None = None,
) -> Deployment:
    """Declare the whole stack. Everything waits for the project APIs."""
    apis = ProjectApis("apis", cfg)
    after_apis = pulumi.ResourceOptions(depends_on=apis.services)
    registry = ArtifactRegistry("registry", cfg, opts=after_apis)
    secrets = Secrets("secrets", cfg, secret_values, opts=after_apis)
    accounts = ServiceAccounts("accounts", cfg, registry, secrets, opts=after_apis)
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
    triggers = BuildTriggers("triggers", cfg, accounts, opts=after_apis)
    alerts = Alerts("alerts", cfg, opts=after_apis) if cfg.notification_email else None
    monitoring = Monitoring(
        "monitoring",
        cfg,
        monitoring_settings,
        k8s_provider=gke.provider,
        notification_channels=[alerts.channel.id] if alerts else None,
        opts=after_apis,
    )

    pulumi.export("cloudRunUrl", cloud_run.url)
    pulumi.export("mediaHost", media_host)
    pulumi.export("ingressIp", network.ingress_address.address)
    pulumi.export("twilioVoiceWebhook", functions.urls["twilio_voice"])
    pulumi.export("twilioStatusWebhook", functions.urls["twilio_status"])
    pulumi.export("outboundCallUrl", functions.urls["outbound_call"])
    pulumi.export("cluster", gke.cluster.name)
    pulumi.export("imageRepository", registry.url)
    pulumi.export("kubeconfig", gke.kubeconfig)
    return Deployment(
        apis,
        registry,
        secrets,
        accounts,
        network,
        gke,
        workloads,
        cloud_run,
        functions,
        triggers,
        alerts,
        monitoring,
    )
