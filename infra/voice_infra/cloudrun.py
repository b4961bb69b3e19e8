"""Cloud Run v2: the Twilio-only media node (no SIP, no RTP); STT and LLM on the GPU pools.

It runs the `media-node` image, as GKE does: speech synthesis (Piper) stays in-process, since no
Piper service is deployed; the `media-node-slim` image has no Piper and could never be ready.
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp
from pulumi_gcp import cloudrunv2 as run

from voice_infra.config import StackConfig
from voice_infra.conventions import (
    CONNECTOR_CONFIG,
    CONNECTOR_SECRET_ENV,
    HTTP_PORT,
    MAX_STREAM_SECONDS,
    NODE_WORKDIR,
    OLLAMA_PORT,
    WHISPER_PORT,
    connector_env,
)
from voice_infra.identity import ServiceAccounts
from voice_infra.network import Network
from voice_infra.secrets import Secrets

SERVICE_NAME = "media-node-twilio"
CONFIG_FILE = "voice-connector.ini"
REQUEST_TIMEOUT = f"{MAX_STREAM_SECONDS}s"  # Cloud Run's maximum: a stream ends with its request


def service_name(cfg: StackConfig) -> str:
    return f"{cfg.prefix}-{SERVICE_NAME}"


def probe(path: str, *, period: int, failures: int) -> run.ServiceTemplateContainerStartupProbeArgs:
    return run.ServiceTemplateContainerStartupProbeArgs(
        http_get=run.ServiceTemplateContainerStartupProbeHttpGetArgs(path=path, port=HTTP_PORT),
        period_seconds=period,
        failure_threshold=failures,
        timeout_seconds=3,
    )


GMP_SIDECAR_IMAGE = (
    "us-docker.pkg.dev/cloud-ops-agents-artifacts/cloud-run-gmp-sidecar/cloud-run-gmp-sidecar:1.2.0"
)
"""Google's Managed Prometheus collector for Cloud Run; it scrapes :8080/metrics by default."""


CLOUD_RUN_IMAGE = "media-node"
"""Has Piper for `VC_TTS_MODE=local` (see `connector_env`); the deploy rehearsal runs it so."""
CLOUD_RUN_CPUS = 2
"""vCPUs of a Cloud Run media node instance; it runs one worker process per vCPU."""


def deterministic_host(cfg: StackConfig, project_number: str) -> str:
    """`SERVICE-PROJECT_NUMBER.REGION.run.app`: known before the service exists, so the node can
    be told the URL Twilio signs (TLS ends in Google's front end; the container sees http)."""
    return f"{service_name(cfg)}-{project_number}.{cfg.region}.run.app"


class TwilioCloudRun(pulumi.ComponentResource):
    """WebSocket-friendly settings: 3600 s timeout, session affinity, CPU always allocated.

    STT and LLM go over Direct VPC egress to the GPU pools' internal load balancers.
    """

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        network: Network,
        accounts: ServiceAccounts,
        secrets: Secrets,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("voice-connector:infra:TwilioCloudRun", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        urls = pulumi.Output.all(network.whisper_ip.address, network.ollama_ip.address).apply(
            lambda ips: connector_env(
                "twilio",
                stt_url=f"http://{ips[0]}:{WHISPER_PORT}",
                llm_url=f"http://{ips[1]}:{OLLAMA_PORT}",
                project=cfg.project,
            )
        )
        plain = {
            key: urls.apply(lambda env, key=key: env[key]) for key in connector_env("", "", "", "")
        }
        plain["VC_GENERAL_WORKERS"] = str(CLOUD_RUN_CPUS)  # one node process per vCPU
        number = gcp.organizations.get_project_output(project_id=cfg.project).number
        self.host = number.apply(lambda n: deterministic_host(cfg, str(n)))
        # Streams' signatures are checked against this URL: the functions hand out the same host.
        plain["VC_GENERAL_PUBLIC_URL"] = self.host.apply(lambda host: f"https://{host}")
        env = [run.ServiceTemplateContainerEnvArgs(name=k, value=v) for k, v in plain.items()]
        env += [
            run.ServiceTemplateContainerEnvArgs(
                name=var,
                value_source=run.ServiceTemplateContainerEnvValueSourceArgs(
                    secret_key_ref=run.ServiceTemplateContainerEnvValueSourceSecretKeyRefArgs(
                        secret=secrets.secret_name(secret_id), version="latest"
                    )
                ),
            )
            for var, secret_id in CONNECTOR_SECRET_ENV.items()
        ]
        self.service = run.Service(
            service_name(cfg),
            project=cfg.project,
            location=cfg.region,
            name=service_name(cfg),
            ingress="INGRESS_TRAFFIC_ALL",
            deletion_protection=cfg.is_prod,
            template=run.ServiceTemplateArgs(
                service_account=accounts.email("media"),
                timeout=REQUEST_TIMEOUT,
                session_affinity=True,
                max_instance_request_concurrency=cfg.cloud_run_max_concurrency,
                execution_environment="EXECUTION_ENVIRONMENT_GEN2",
                scaling=run.ServiceTemplateScalingArgs(
                    min_instance_count=cfg.cloud_run_min_instances,
                    max_instance_count=max(10, cfg.cloud_run_min_instances * 4),
                ),
                vpc_access=run.ServiceTemplateVpcAccessArgs(
                    egress="PRIVATE_RANGES_ONLY",
                    network_interfaces=[
                        run.ServiceTemplateVpcAccessNetworkInterfaceArgs(
                            network=network.vpc.id, subnetwork=network.serverless_subnet.id
                        )
                    ],
                ),
                # The stack's INI, as on GKE (ConfigMap) and in the functions (archive): the
                # same flavors everywhere, not the copy baked into the image.
                volumes=[
                    run.ServiceTemplateVolumeArgs(
                        name="config",
                        secret=run.ServiceTemplateVolumeSecretArgs(
                            secret=secrets.secret_name(CONNECTOR_CONFIG),
                            items=[
                                run.ServiceTemplateVolumeSecretItemArgs(
                                    version="latest", path=CONFIG_FILE
                                )
                            ],
                        ),
                    )
                ],
                containers=[
                    run.ServiceTemplateContainerArgs(
                        name="media-node",
                        image=cfg.image(CLOUD_RUN_IMAGE),
                        ports=run.ServiceTemplateContainerPortsArgs(container_port=HTTP_PORT),
                        envs=env,
                        volume_mounts=[
                            run.ServiceTemplateContainerVolumeMountArgs(
                                name="config", mount_path=f"{NODE_WORKDIR}/cfg"
                            )
                        ],
                        resources=run.ServiceTemplateContainerResourcesArgs(
                            cpu_idle=False,  # audio is paced between requests' bytes
                            startup_cpu_boost=True,
                            limits={"cpu": str(CLOUD_RUN_CPUS), "memory": "2Gi"},
                        ),
                        startup_probe=probe("/readyz", period=5, failures=24),
                        liveness_probe=run.ServiceTemplateContainerLivenessProbeArgs(
                            http_get=run.ServiceTemplateContainerLivenessProbeHttpGetArgs(
                                path="/healthz", port=HTTP_PORT
                            ),
                            period_seconds=15,
                            failure_threshold=3,
                            timeout_seconds=3,
                        ),
                    ),
                    # Managed Service for Prometheus sidecar: scrapes the node's /metrics (same
                    # names and queries as on GKE; see docs/operations.md).
                    run.ServiceTemplateContainerArgs(
                        name="collector",
                        image=GMP_SIDECAR_IMAGE,
                        depends_ons=["media-node"],
                        resources=run.ServiceTemplateContainerResourcesArgs(
                            limits={"cpu": "1", "memory": "512Mi"}
                        ),
                    ),
                ],
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=accounts.secret_bindings),
        )
        # Twilio cannot send Google credentials; the node checks X-Twilio-Signature instead.
        gcp.cloudrunv2.ServiceIamMember(
            f"{service_name(cfg)}-public",
            project=cfg.project,
            location=cfg.region,
            name=self.service.name,
            role="roles/run.invoker",
            member="allUsers",
            opts=child,
        )
        self.url = self.host.apply(lambda host: f"https://{host}")
        self.register_outputs({"url": self.url, "name": self.service.name})
