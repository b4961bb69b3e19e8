"""GKE Standard cluster: a system pool, the public media pool and one GPU pool per AI service."""

from __future__ import annotations

import json

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from voice_infra.config import StackConfig
from voice_infra.identity import ServiceAccounts
from voice_infra.k8s_manifests import (
    GPU_TAINT,
    MEDIA_TAINT,
    POOL_LABEL,
    gpu_scale,
    gpu_services,
)
from voice_infra.network import Network

HpaAddonArgs = gcp.container.ClusterAddonsConfigHorizontalPodAutoscalingArgs
GpuDriverArgs = gcp.container.NodePoolNodeConfigGuestAcceleratorGpuDriverInstallationConfigArgs
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]  # IAM roles do the limiting


def taint(spec: dict[str, str]) -> gcp.container.NodePoolNodeConfigTaintArgs:
    """k8s taint dict → GKE's spelling (`NoSchedule` → `NO_SCHEDULE`)."""
    effect = {"NoSchedule": "NO_SCHEDULE", "NoExecute": "NO_EXECUTE"}[spec["effect"]]
    return gcp.container.NodePoolNodeConfigTaintArgs(
        key=spec["key"], value=spec["value"], effect=effect
    )


def kubeconfig(name: str, endpoint: str, ca_cert: str) -> str:
    """Kubeconfig that authenticates like `gcloud` does (gke-gcloud-auth-plugin)."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": name,
                    "cluster": {
                        "server": f"https://{endpoint}",
                        "certificate-authority-data": ca_cert,
                    },
                }
            ],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            "current-context": name,
            "users": [
                {
                    "name": name,
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": "gke-gcloud-auth-plugin",
                            "provideClusterInfo": True,
                            "installHint": "gcloud components install gke-gcloud-auth-plugin",
                        }
                    },
                }
            ],
        }
    )


class GkeCluster(pulumi.ComponentResource):
    """Zonal cluster (GPUs are zonal; a regional cluster would triple every GPU pool)."""

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        network: Network,
        accounts: ServiceAccounts,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("voice-connector:infra:GkeCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        p = cfg.prefix
        self.cluster = gcp.container.Cluster(
            f"{p}-gke",
            project=cfg.project,
            location=cfg.zone,
            min_master_version=cfg.cluster_version,
            release_channel=gcp.container.ClusterReleaseChannelArgs(channel="REGULAR"),
            network=network.vpc.id,
            subnetwork=network.gke_subnet.id,
            networking_mode="VPC_NATIVE",
            ip_allocation_policy=gcp.container.ClusterIpAllocationPolicyArgs(
                cluster_secondary_range_name="pods", services_secondary_range_name="services"
            ),
            remove_default_node_pool=True,
            initial_node_count=1,
            workload_identity_config=gcp.container.ClusterWorkloadIdentityConfigArgs(
                workload_pool=f"{cfg.project}.svc.id.goog"
            ),
            addons_config=gcp.container.ClusterAddonsConfigArgs(
                http_load_balancing=gcp.container.ClusterAddonsConfigHttpLoadBalancingArgs(
                    disabled=False
                ),
                horizontal_pod_autoscaling=HpaAddonArgs(disabled=False),
            ),
            monitoring_config=gcp.container.ClusterMonitoringConfigArgs(
                enable_components=["SYSTEM_COMPONENTS"],
                managed_prometheus=gcp.container.ClusterMonitoringConfigManagedPrometheusArgs(
                    enabled=True
                ),
            ),
            deletion_protection=cfg.is_prod,
            opts=child,
        )
        # The autoscaler owns the node count once the pool exists: a changed initial count
        # (e.g. mediaNodeCount) must not replace the pool, which would end every call on it.
        pool = pulumi.ResourceOptions(
            parent=self, depends_on=[self.cluster], ignore_changes=["initialNodeCount"]
        )

        def node_pool(
            suffix: str,
            *,
            machine_type: str,
            min_nodes: int,
            max_nodes: int,
            account: str,
            labels: dict[str, str],
            taints: list[dict[str, str]],
            tags: list[str],
            private: bool,
            **node_config: object,
        ) -> gcp.container.NodePool:
            return gcp.container.NodePool(
                f"{p}-{suffix}",
                project=cfg.project,
                location=cfg.zone,
                cluster=self.cluster.name,
                initial_node_count=min_nodes,
                autoscaling=gcp.container.NodePoolAutoscalingArgs(
                    min_node_count=min_nodes, max_node_count=max_nodes
                ),
                management=gcp.container.NodePoolManagementArgs(
                    auto_repair=True, auto_upgrade=True
                ),
                # Surge first: a media node is only removed once its replacement exists.
                upgrade_settings=gcp.container.NodePoolUpgradeSettingsArgs(
                    max_surge=1, max_unavailable=0
                ),
                network_config=gcp.container.NodePoolNetworkConfigArgs(
                    enable_private_nodes=private
                ),
                node_config=gcp.container.NodePoolNodeConfigArgs(
                    machine_type=machine_type,
                    service_account=accounts.email(account),
                    oauth_scopes=SCOPES,
                    labels=labels,
                    taints=[taint(t) for t in taints],
                    tags=tags,
                    **node_config,
                ),
                opts=pool,
            )

        self.system_pool = node_pool(
            "system",
            machine_type="e2-standard-4",
            min_nodes=1,
            max_nodes=3,
            account="gpu",
            labels={POOL_LABEL: "system"},
            taints=[],
            tags=[],
            private=True,
            workload_metadata_config=gcp.container.NodePoolNodeConfigWorkloadMetadataConfigArgs(
                mode="GKE_METADATA"
            ),
        )
        # hostNetwork pods cannot use Workload Identity: they act as the node's own (media) SA,
        # and read the node's external IP from the GCE metadata server.
        self.media_pool = node_pool(
            "media",
            machine_type=cfg.media_machine_type,
            min_nodes=cfg.media_node_count,
            # One node more than the HPA's maximum: a rollout's surge pod (maxSurge 1, one media
            # pod per node) always has a node to go to, also at full scale.
            max_nodes=cfg.media_node_max_count + 1,
            account="media",
            labels={POOL_LABEL: "media"},
            taints=[MEDIA_TAINT],
            tags=[network.media_tag],
            private=False,
            workload_metadata_config=gcp.container.NodePoolNodeConfigWorkloadMetadataConfigArgs(
                mode="GCE_METADATA"
            ),
        )
        self.gpu_pools = {
            service.name: node_pool(
                f"{service.name}-gpu",
                machine_type=cfg.gpu_machine_type,
                min_nodes=gpu_scale(cfg)[0],
                max_nodes=gpu_scale(cfg)[1],
                account="gpu",
                labels={POOL_LABEL: service.name},
                taints=[GPU_TAINT],
                tags=[network.gpu_tag],
                private=True,
                guest_accelerators=[
                    gcp.container.NodePoolNodeConfigGuestAcceleratorArgs(
                        type=cfg.gpu_type,
                        count=1,
                        gpu_driver_installation_config=GpuDriverArgs(gpu_driver_version="LATEST"),
                    )
                ],
                workload_metadata_config=gcp.container.NodePoolNodeConfigWorkloadMetadataConfigArgs(
                    mode="GKE_METADATA"
                ),
            )
            for service in gpu_services()
        }
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(
                self.cluster.name,
                self.cluster.endpoint,
                self.cluster.master_auth.cluster_ca_certificate,
            ).apply(lambda args: kubeconfig(*args))
        )
        self.provider = k8s.Provider(
            f"{p}-k8s",
            kubeconfig=self.kubeconfig,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[self.system_pool, self.media_pool, *self.gpu_pools.values()],
            ),
        )
        self.register_outputs({"cluster": self.cluster.name, "endpoint": self.cluster.endpoint})
