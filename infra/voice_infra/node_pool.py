"""One GKE node pool: autoscaled, surge-upgraded, with the taints and labels its workloads select.

Every pool of the cluster shares these settings; `NodePoolArgs` holds only what differs between
them, so a pool can be declared (and tested) without the rest of the cluster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import pulumi
import pulumi_gcp as gcp

GpuDriverArgs = gcp.container.NodePoolNodeConfigGuestAcceleratorGpuDriverInstallationConfigArgs
WorkloadMetadataArgs = gcp.container.NodePoolNodeConfigWorkloadMetadataConfigArgs
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]  # IAM roles do the limiting


def taint(spec: Mapping[str, str]) -> gcp.container.NodePoolNodeConfigTaintArgs:
    """k8s taint dict → GKE's spelling (`NoSchedule` → `NO_SCHEDULE`)."""
    effect = {"NoSchedule": "NO_SCHEDULE", "NoExecute": "NO_EXECUTE"}[spec["effect"]]
    return gcp.container.NodePoolNodeConfigTaintArgs(
        key=spec["key"], value=spec["value"], effect=effect
    )


@dataclass(frozen=True)
class GpuAccelerator:
    """The GPU each node of a pool carries; GKE installs the driver."""

    type: str
    """GCE accelerator type, e.g. `nvidia-l4`."""
    count: int = 1
    driver_version: str = "LATEST"


@dataclass
class NodePoolArgs:
    project: str
    location: str
    """The cluster's zone (GPUs are zonal)."""
    cluster: pulumi.Input[str]
    """The cluster's name; passing the cluster's output also orders the pool after it."""
    machine_type: str
    min_nodes: int
    """Also the pool's initial size; afterwards the autoscaler owns the count."""
    max_nodes: int
    service_account: pulumi.Input[str]
    """E-mail of the account the nodes (and hostNetwork pods) act as."""
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: Sequence[Mapping[str, str]] = ()
    """In Kubernetes' spelling, as the workloads' tolerations name them."""
    tags: Sequence[str] = ()
    """Network tags the firewall rules target."""
    private: bool = True
    """False gives every node an external IP (media nodes answer SIP and RTP on it)."""
    workload_metadata: Literal["GKE_METADATA", "GCE_METADATA"] = "GKE_METADATA"
    """GKE_METADATA: pods use Workload Identity; GCE_METADATA: the node's own account."""
    accelerator: GpuAccelerator | None = None


class NodePool(pulumi.ComponentResource):
    """A `gcp.container.NodePool` named `name`, with the settings every pool of ours shares."""

    def __init__(
        self, name: str, args: NodePoolArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("voice-connector:infra:NodePool", name, None, opts)
        parent = opts.parent if opts else None
        accelerators = None
        if args.accelerator:
            gpu = args.accelerator
            accelerators = [
                gcp.container.NodePoolNodeConfigGuestAcceleratorArgs(
                    type=gpu.type,
                    count=gpu.count,
                    gpu_driver_installation_config=GpuDriverArgs(
                        gpu_driver_version=gpu.driver_version
                    ),
                )
            ]
        self.pool = gcp.container.NodePool(
            name,
            project=args.project,
            location=args.location,
            cluster=args.cluster,
            initial_node_count=args.min_nodes,
            autoscaling=gcp.container.NodePoolAutoscalingArgs(
                min_node_count=args.min_nodes, max_node_count=args.max_nodes
            ),
            management=gcp.container.NodePoolManagementArgs(auto_repair=True, auto_upgrade=True),
            # Surge first: a media node is only removed once its replacement exists.
            upgrade_settings=gcp.container.NodePoolUpgradeSettingsArgs(
                max_surge=1, max_unavailable=0
            ),
            network_config=gcp.container.NodePoolNetworkConfigArgs(
                enable_private_nodes=args.private
            ),
            node_config=gcp.container.NodePoolNodeConfigArgs(
                machine_type=args.machine_type,
                service_account=args.service_account,
                oauth_scopes=SCOPES,
                labels=dict(args.labels),
                taints=[taint(t) for t in args.taints],
                tags=list(args.tags),
                guest_accelerators=accelerators,
                workload_metadata_config=WorkloadMetadataArgs(mode=args.workload_metadata),
            ),
            opts=pulumi.ResourceOptions(
                parent=self,
                # The autoscaler owns the node count once the pool exists: a changed initial
                # count (e.g. mediaNodeCount) must not replace the pool, which would end every
                # call on it.
                ignore_changes=["initialNodeCount"],
                # Pools were declared directly under this component's parent before it existed:
                # the alias keeps their URNs, so `pulumi up` does not replace live pools.
                aliases=[pulumi.Alias(parent=parent)] if parent else None,
            ),
        )
        self.register_outputs({"name": self.pool.name})
