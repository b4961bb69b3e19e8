"""The SIP edge: the one static address carriers send SIP to, in front of every media node.

An OpenSIPS (`sip-edge/opensips.cfg`, image `sip-edge`) behind a passthrough load balancer on a
reserved external IP; only the trunk CIDRs may reach it (`loadBalancerSourceRanges`: GKE turns
them into the firewall rule). It dispatches calls to the media nodes' OpenSIPS; a membership
controller sidecar (`python -m media_node.edge_membership`, media-node image) keeps that list
equal to the media pods that are ready. With trunks configured, media nodes accept SIP only from
the pods' range, where the edge's addresses are (the network's `allow-sip` rule and
`SIP_TRUSTED_SOURCES` in their OpenSIPS, see `config.sip_edge_trunks`). RTP stays direct.

Enabled by the stack config `sipEdgeTrunks` (a JSON list of CIDRs); absent, no edge is deployed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from voice_infra.config import StackConfig, sip_edge_trunks
from voice_infra.conventions import HTTP_PORT, SIP_PORT
from voice_infra.k8s_manifests import NAMESPACE, labels, metadata
from voice_infra.network import Network

TLS_PORT = 5061
APP = "sip-edge"
TRUNKS_DIR = "/etc/sip-edge/trunks"
NODES_DIR = "/var/lib/sip-edge/nodes"
TRUNK_GROUP = 1  # `address` group the edge admits by address alone (group 2: digest as well)
ADDRESS_HEADER = (
    "id(int,auto) grp(int) ip(string) mask(int) port(int) proto(string) pattern(string,null) "
    "context_info(string,null)"
)
SUBSCRIBER_HEADER = (
    "id(int,auto) username(string) domain(string) password(string) ha1(string) "
    "ha1_sha256(string) ha1_sha512t256(string)"
)
VERSIONS = "table_name(string) table_version(int)\naddress:5\nsubscriber:8\n"


trunks_from_config = sip_edge_trunks


def address_table(trunks: Sequence[str], group: int = TRUNK_GROUP) -> str:
    """The db_text `address` table (OpenSIPS 3.6 permissions) admitting `trunks`."""
    rows = [ADDRESS_HEADER]
    for index, cidr in enumerate(trunks, start=1):
        ip, _, mask = cidr.partition("/")
        rows.append(f"{index}:{group}:{ip}:{mask or 32}:0:any:::")
    return "\n".join(rows) + "\n"


@dataclass
class SipEdgeArgs:
    cfg: StackConfig
    network: Network
    k8s_provider: pulumi.ProviderResource
    trunks: Sequence[str]
    """CIDRs of the carriers' SIP signalling addresses."""
    credentials: pulumi.Input[str] = field(default=SUBSCRIBER_HEADER + "\n")
    """The db_text `subscriber` table for digest trunks (group 2), header line included."""
    replicas: int = 2


class SipEdge(pulumi.ComponentResource):
    """Static IP, trunk-only load balancer, edge Deployment with its membership controller."""

    def __init__(
        self, name: str, args: SipEdgeArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("voice-connector:infra:SipEdge", name, None, opts)
        cfg, p = args.cfg, args.cfg.prefix
        child = pulumi.ResourceOptions(parent=self)
        in_cluster = pulumi.ResourceOptions(parent=self, provider=args.k8s_provider)

        self.address = gcp.compute.Address(
            f"{p}-sip-edge",
            project=cfg.project,
            region=cfg.region,
            address_type="EXTERNAL",
            network_tier="PREMIUM",
            opts=child,
        )
        k8s.core.v1.ConfigMap(
            "configmap-sip-edge-trunks",
            metadata=metadata("sip-edge-trunks", APP),
            data={"version": VERSIONS, "address": address_table(args.trunks)},
            opts=in_cluster,
        )
        k8s.core.v1.Secret(
            "secret-sip-edge-credentials",
            metadata=metadata("sip-edge-credentials", APP),
            string_data={"subscriber": args.credentials},
            opts=in_cluster,
        )
        k8s.core.v1.ServiceAccount(
            "serviceaccount-sip-edge", metadata=metadata(APP, APP), opts=in_cluster
        )
        k8s.rbac.v1.Role(
            "role-sip-edge",
            metadata=metadata(APP, APP),
            rules=[{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
            opts=in_cluster,
        )
        k8s.rbac.v1.RoleBinding(
            "rolebinding-sip-edge",
            metadata=metadata(APP, APP),
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": APP},
            subjects=[{"kind": "ServiceAccount", "name": APP, "namespace": NAMESPACE}],
            opts=in_cluster,
        )
        self.deployment = k8s.apps.v1.Deployment(
            "deployment-sip-edge",
            metadata=metadata(APP, APP),
            spec=edge_deployment_spec(cfg, self.address.address, args.replicas),
            opts=in_cluster,
        )
        self.service = k8s.core.v1.Service(
            "service-sip-edge",
            metadata=metadata(APP, APP),
            spec={
                "type": "LoadBalancer",
                "loadBalancerIP": self.address.address,
                "loadBalancerSourceRanges": list(args.trunks),
                # the edge must see the trunk's own address (allow-list, pike, rate limits)
                "externalTrafficPolicy": "Local",
                "selector": labels(APP),
                "ports": [
                    {"name": "sip-udp", "port": SIP_PORT, "protocol": "UDP"},
                    {"name": "sip-tcp", "port": SIP_PORT, "protocol": "TCP"},
                    {"name": "sip-tls", "port": TLS_PORT, "protocol": "TCP"},
                ],
            },
            opts=in_cluster,
        )
        self.register_outputs({"sipEdgeIp": self.address.address})


def edge_deployment_spec(cfg: StackConfig, public_ip: pulumi.Input[str], replicas: int) -> Any:
    """Edge OpenSIPS + membership controller sharing the node table (an emptyDir)."""
    nodes = {"name": "nodes", "mountPath": NODES_DIR}
    edge = {
        "name": "opensips",
        "image": cfg.image("sip-edge"),
        "env": [{"name": "VC_OPENSIPS_PUBLIC_IP", "value": public_ip}],
        "ports": [
            {"name": "sip-udp", "containerPort": SIP_PORT, "protocol": "UDP"},
            {"name": "sip-tcp", "containerPort": SIP_PORT, "protocol": "TCP"},
            {"name": "sip-tls", "containerPort": TLS_PORT, "protocol": "TCP"},
        ],
        "livenessProbe": {"tcpSocket": {"port": SIP_PORT}, "periodSeconds": 10},
        "readinessProbe": {"tcpSocket": {"port": SIP_PORT}, "periodSeconds": 5},
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}},
        "volumeMounts": [{"name": "trunks", "mountPath": TRUNKS_DIR, "readOnly": True}, nodes],
    }
    controller = {
        "name": "membership",
        "image": cfg.image("media-node"),
        "command": [
            "python",
            "-m",
            "media_node.edge_membership",
            "--namespace",
            NAMESPACE,
            "--selector",
            "app.kubernetes.io/name=media-node",
            "--table-dir",
            NODES_DIR,
            "--http-port",
            str(HTTP_PORT),
        ],
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}},
        "volumeMounts": [nodes],
    }
    return {
        "replicas": replicas,
        "selector": {"matchLabels": labels(APP)},
        "template": {
            "metadata": {"labels": labels(APP)},
            "spec": {
                "serviceAccountName": APP,
                "containers": [edge, controller],
                "volumes": [
                    {
                        "name": "trunks",
                        "projected": {
                            "sources": [
                                {"configMap": {"name": "sip-edge-trunks"}},
                                {"secret": {"name": "sip-edge-credentials"}},
                            ]
                        },
                    },
                    {"name": "nodes", "emptyDir": {}},
                ],
            },
        },
    }
