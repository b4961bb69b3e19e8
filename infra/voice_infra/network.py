"""VPC, subnets, Cloud NAT, firewall and reserved addresses."""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from voice_infra.config import StackConfig, sip_edge_trunks
from voice_infra.conventions import HTTP_PORT, OLLAMA_PORT, SIP_PORT, WHISPER_PORT

# Google front ends and health checkers (external HTTP(S) LB and NEG health checks).
GOOGLE_LB_RANGES = ["130.211.0.0/22", "35.191.0.0/16"]
GKE_NODES_CIDR = "10.10.0.0/20"
PODS_CIDR = "10.20.0.0/14"
SERVICES_CIDR = "10.24.0.0/20"
SERVERLESS_CIDR = "10.30.0.0/24"  # Cloud Run Direct VPC egress: two addresses per instance


class Network(pulumi.ComponentResource):
    """Only the media pool is reachable from the internet, and only on SIP and RTP.

    Media nodes keep ephemeral public IPs (read from the metadata server for SDP); GPU nodes
    are private and leave through Cloud NAT on a static address (stable for allow-lists).
    """

    media_tag: str
    gpu_tag: str

    def __init__(
        self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("voice-connector:infra:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        p = cfg.prefix
        self.media_tag = f"{p}-media"
        self.gpu_tag = f"{p}-gpu"

        self.vpc = gcp.compute.Network(
            f"{p}-vpc",
            project=cfg.project,
            auto_create_subnetworks=False,
            routing_mode="REGIONAL",
            opts=child,
        )
        self.gke_subnet = gcp.compute.Subnetwork(
            f"{p}-gke",
            project=cfg.project,
            region=cfg.region,
            network=self.vpc.id,
            ip_cidr_range=GKE_NODES_CIDR,
            private_ip_google_access=True,
            secondary_ip_ranges=[
                gcp.compute.SubnetworkSecondaryIpRangeArgs(
                    range_name="pods", ip_cidr_range=PODS_CIDR
                ),
                gcp.compute.SubnetworkSecondaryIpRangeArgs(
                    range_name="services", ip_cidr_range=SERVICES_CIDR
                ),
            ],
            opts=child,
        )
        self.serverless_subnet = gcp.compute.Subnetwork(
            f"{p}-serverless",
            project=cfg.project,
            region=cfg.region,
            network=self.vpc.id,
            ip_cidr_range=SERVERLESS_CIDR,
            private_ip_google_access=True,
            opts=child,
        )

        self.nat_ip = gcp.compute.Address(
            f"{p}-nat-ip", project=cfg.project, region=cfg.region, opts=child
        )
        router = gcp.compute.Router(
            f"{p}-router", project=cfg.project, region=cfg.region, network=self.vpc.id, opts=child
        )
        gcp.compute.RouterNat(
            f"{p}-nat",
            project=cfg.project,
            region=cfg.region,
            router=router.name,
            nat_ip_allocate_option="MANUAL_ONLY",
            nat_ips=[self.nat_ip.self_link],
            source_subnetwork_ip_ranges_to_nat="ALL_SUBNETWORKS_ALL_IP_RANGES",
            log_config=gcp.compute.RouterNatLogConfigArgs(enable=True, filter="ERRORS_ONLY"),
            opts=child,
        )

        def firewall(
            suffix: str, protocols: dict[str, list[str]], sources: list[str], tag: str
        ) -> gcp.compute.Firewall:
            return gcp.compute.Firewall(
                f"{p}-allow-{suffix}",
                project=cfg.project,
                network=self.vpc.id,
                direction="INGRESS",
                allows=[
                    gcp.compute.FirewallAllowArgs(protocol=proto, ports=ports)
                    for proto, ports in protocols.items()
                ],
                source_ranges=sources,
                target_tags=[tag],
                opts=child,
            )

        sip = str(SIP_PORT)
        sip_sources = [PODS_CIDR] if sip_edge_trunks() else ["0.0.0.0/0"]
        self.firewalls = {
            # behind the SIP edge (voice_infra.sip_edge) only its pods may send SIP to a node
            "sip": firewall("sip", {"udp": [sip], "tcp": [sip]}, sip_sources, self.media_tag),
            "rtp": firewall("rtp", {"udp": [cfg.rtp_range_text]}, ["0.0.0.0/0"], self.media_tag),
            "lb-health": firewall(
                "lb-health", {"tcp": [str(HTTP_PORT)]}, GOOGLE_LB_RANGES, self.media_tag
            ),
            "ai-internal": firewall(
                "ai-internal",
                {"tcp": [str(WHISPER_PORT), str(OLLAMA_PORT)]},
                [GKE_NODES_CIDR, PODS_CIDR, SERVERLESS_CIDR],
                self.gpu_tag,
            ),
        }

        def internal_ip(service: str) -> gcp.compute.Address:
            return gcp.compute.Address(
                f"{p}-{service}-ilb",
                project=cfg.project,
                region=cfg.region,
                address_type="INTERNAL",
                subnetwork=self.gke_subnet.id,
                opts=child,
            )

        self.whisper_ip = internal_ip("whisper")
        self.ollama_ip = internal_ip("ollama")
        self.ingress_address = gcp.compute.GlobalAddress(
            f"{p}-ingress", project=cfg.project, name=f"{p}-ingress", opts=child
        )
        self.register_outputs(
            {
                "network": self.vpc.id,
                "ingressIp": self.ingress_address.address,
                "natIp": self.nat_ip.address,
                "whisperIp": self.whisper_ip.address,
                "ollamaIp": self.ollama_ip.address,
            }
        )
