"""GKE Standard cluster: a system pool, the public media pool and one GPU pool per AI service."""

from __future__ import annotations

import json
from functools import partial

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
from voice_infra.node_pool import GpuAccelerator, NodePool, NodePoolArgs

HpaAddonArgs = gcp.container.ClusterAddonsConfigHorizontalPodAutoscalingArgs


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


def cluster(
    name: str, cfg: StackConfig, network: Network, opts: pulumi.ResourceOptions
) -> gcp.container.Cluster:
    """The cluster alone: its default pool goes, the pools are `NodePool`s of their own."""
    return gcp.container.Cluster(
        name,
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
        opts=opts,
    )


def pool_args(
    cfg: StackConfig, network: Network, accounts: ServiceAccounts, cluster_name: pulumi.Input[str]
) -> dict[str, NodePoolArgs]:
    """Each pool's args by name suffix: system, media, then `<service>-gpu` per GPU service."""
    pool = partial(NodePoolArgs, project=cfg.project, location=cfg.zone, cluster=cluster_name)
    gpu_min, gpu_max = gpu_scale(cfg)
    return {
        "system": pool(
            machine_type="e2-standard-4",
            min_nodes=1,
            max_nodes=3,
            service_account=accounts.email("gpu"),
            labels={POOL_LABEL: "system"},
        ),
        # hostNetwork pods cannot use Workload Identity: they act as the node's own (media) SA,
        # and read the node's external IP from the GCE metadata server.
        "media": pool(
            machine_type=cfg.media_machine_type,
            min_nodes=cfg.media_node_count,
            # One node more than the HPA's maximum: a rollout's surge pod (maxSurge 1, one media
            # pod per node) always has a node to go to, also at full scale.
            max_nodes=cfg.media_node_max_count + 1,
            service_account=accounts.email("media"),
            labels={POOL_LABEL: "media"},
            taints=[MEDIA_TAINT],
            tags=[network.media_tag],
            private=False,
            workload_metadata="GCE_METADATA",
        ),
        **{
            f"{service.name}-gpu": pool(
                machine_type=cfg.gpu_machine_type,
                min_nodes=gpu_min,
                max_nodes=gpu_max,
                service_account=accounts.email("gpu"),
                labels={POOL_LABEL: service.name},
                taints=[GPU_TAINT],
                tags=[network.gpu_tag],
                accelerator=GpuAccelerator(cfg.gpu_type),
            )
            for service in gpu_services()
        },
    }


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
        self.cluster = cluster(f"{p}-gke", cfg, network, child)
        self.pools = {
            suffix: NodePool(f"{p}-{suffix}", args, child)
            for suffix, args in pool_args(cfg, network, accounts, self.cluster.name).items()
        }
        self.system_pool, self.media_pool = self.pools["system"], self.pools["media"]
        self.gpu_pools = {s.name: self.pools[f"{s.name}-gpu"] for s in gpu_services()}
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
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(self.pools.values())),
        )
        self.register_outputs({"cluster": self.cluster.name, "endpoint": self.cluster.endpoint})
