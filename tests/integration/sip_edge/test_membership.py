"""The membership controller against the real edge OpenSIPS: the dispatcher set follows which
nodes are ready, a failed discovery keeps the last set, an unchanged set reloads nothing."""

from __future__ import annotations

import pytest

from media_node.edge_membership import MediaNode, Membership
from tests.support.real_opensips import requires_opensips
from tests.support.sip_cluster import edge_opensips

pytestmark = requires_opensips

A = MediaNode("node-a", "sip:127.0.1.1:5060", "http://127.0.1.1:8080/readyz")
B = MediaNode("node-b", "sip:127.0.1.2:5060", "http://127.0.1.2:8080/readyz")


class Discovery:
    def __init__(self) -> None:
        self.found = [A, B]
        self.broken = False

    def nodes(self) -> list[MediaNode]:
        if self.broken:
            raise OSError("API unreachable")
        return list(self.found)


@pytest.fixture
def edge(tmp_path):
    instance = edge_opensips(tmp_path, trusted=["127.0.0.2"])
    yield instance.start()
    instance.stop()


def destinations(edge) -> list[str]:
    sets = edge.mi("ds_list")["PARTITIONS"][0].get("SETS", [])
    return sorted(d["URI"] for s in sets for d in s["Destinations"])


def test_the_set_follows_readiness_and_discovery(edge):
    ready = {"node-a", "node-b"}
    discovery = Discovery()
    membership = Membership(
        discovery,
        edge.workdir / "nodes",
        edge.mi_port,
        lambda n: n.name in ready,
        socket_name=edge.node_socket,
    )

    assert membership.sync()
    assert destinations(edge) == [A.sip_uri, B.sip_uri]
    assert not membership.sync()  # nothing changed: no reload

    ready.discard("node-a")  # draining or not loaded yet
    assert membership.sync()
    assert destinations(edge) == [B.sip_uri]

    discovery.broken = True  # the API is down: keep routing to what was known
    assert not membership.sync()
    assert destinations(edge) == [B.sip_uri]

    discovery.broken = False
    discovery.found = [A]  # B's pod is gone (scale-in); A is ready again
    ready.add("node-a")
    assert membership.sync()
    assert destinations(edge) == [A.sip_uri]
