"""The SIP edge component under Pulumi mocks: present only with trunks configured, a static
external IP behind a load balancer that only the trunks may reach, media nodes' SIP open only
to the edge pods, and an allow-list table the real OpenSIPS edge accepts."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from tests.infra.harness import Stack

Stacks = Callable[..., Stack]
TRUNKS = ["198.51.100.0/24", "203.0.113.7"]


def edge_stack(stacks: Stacks) -> Stack:
    return stacks("dev", sipEdgeTrunks=json.dumps(TRUNKS))


def test_no_trunks_no_edge(stacks: Stacks) -> None:
    assert not [r for r in stacks("dev").resources if "sip-edge" in r.name]


def test_static_ip_and_a_load_balancer_only_trunks_reach(stacks: Stacks) -> None:
    stack = edge_stack(stacks)
    ip = stack.one("gcp:compute/address:Address", "sip-edge").inputs
    assert ip["addressType"] == "EXTERNAL"
    service = stack.one("kubernetes:core/v1:Service", "sip-edge").inputs["spec"]
    assert service["type"] == "LoadBalancer"
    assert service["loadBalancerSourceRanges"] == TRUNKS
    assert service["externalTrafficPolicy"] == "Local"  # the edge sees the trunk's address
    assert {(p["port"], p["protocol"]) for p in service["ports"]} == {
        (5060, "UDP"),
        (5060, "TCP"),
        (5061, "TCP"),
    }
    assert re.fullmatch(r"10\.10\.0\.\d+", service["loadBalancerIP"])  # the reserved one (mocked)


def test_media_nodes_take_sip_only_from_the_edge_pods(stacks: Stacks) -> None:
    stack = edge_stack(stacks)
    rule = stack.one("gcp:compute/firewall:Firewall", "allow-sip").inputs
    assert rule["sourceRanges"] == ["10.20.0.0/14"]  # the pods' range: the edge's addresses
    assert rule["targetTags"] == ["vc-dev-media"]
    media = stack.one("kubernetes:apps/v1:Deployment", "media-node").inputs["spec"]
    (opensips,) = [c for c in media["template"]["spec"]["containers"] if c["name"] == "opensips"]
    assert opensips["env"] == [{"name": "SIP_TRUSTED_SOURCES", "value": "10.20.0.0/14"}]
    # without an edge, trunks call the nodes directly
    open_rule = stacks("dev").one("gcp:compute/firewall:Firewall", "allow-sip").inputs
    assert open_rule["sourceRanges"] == ["0.0.0.0/0"]


def test_edge_pod_runs_the_edge_and_the_membership_controller(stacks: Stacks) -> None:
    spec = edge_stack(stacks).one("kubernetes:apps/v1:Deployment", "sip-edge").inputs["spec"]
    pod = spec["template"]["spec"]
    edge, controller = pod["containers"]
    assert edge["image"].endswith("/voice-connector/sip-edge:0123abcd")
    assert [e["name"] for e in edge["env"]] == ["VC_OPENSIPS_PUBLIC_IP"]
    assert edge["livenessProbe"] == {"tcpSocket": {"port": 5060}, "periodSeconds": 10}
    assert controller["command"][:3] == ["python", "-m", "media_node.edge_membership"]
    assert pod["serviceAccountName"] == "sip-edge"
    mounts = {m["mountPath"] for c in pod["containers"] for m in c["volumeMounts"]}
    assert mounts == {"/etc/sip-edge/trunks", "/var/lib/sip-edge/nodes"}


def test_the_trunk_table_is_what_the_edge_admits(stacks: Stacks, tmp_path) -> None:
    """The rendered ConfigMap, loaded by the real edge OpenSIPS: listed source in, other out."""
    import pytest

    from tests.support.real_opensips import bundle_dir
    from tests.support.sip_cluster import edge_opensips
    from tests.support.sip_probe import final_reply, status

    if bundle_dir() is None:
        pytest.skip("no OpenSIPS bundle")
    data = edge_stack(stacks).one("kubernetes:core/v1:ConfigMap", "sip-edge-trunks").inputs
    table = data["data"]["address"].replace("203.0.113.7", "127.0.0.2")
    edge = edge_opensips(tmp_path, trusted=[])
    (tmp_path / "trunks" / "address").write_text(table)
    (tmp_path / "trunks" / "version").write_text(data["data"]["version"])
    edge.start()
    try:
        target = (edge.sip_ip, edge.sip_port)
        assert status(final_reply("OPTIONS", target, "127.0.0.2")) == 200
        assert status(final_reply("OPTIONS", target, "127.0.0.3")) == 403
    finally:
        edge.stop()
