"""The SIP edge with real processes on loopback: the edge OpenSIPS (`sip-edge/opensips.cfg` as
shipped, only listeners, MI and data directories moved) in front of two media nodes, each a
connector process with its own real OpenSIPS that trusts only the edge. SIPp places the calls
with real RTP speech; the membership controller publishes the ready nodes to the edge.

The cluster is started once for the module (each node takes ~8 s); a test that stops or drains
a node leaves it to `cluster.ensure_up()` in the next one to bring it back.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import socket
import ssl
import time
from pathlib import Path

import pytest

from tests.containers.ollama_stub import OllamaStub
from tests.integration.opensips.media import speech_wav
from tests.support.real_opensips import ENV_PREPROCESSOR, free_port, requires_opensips, run_check
from tests.support.sip_cluster import (
    EDGE_CFG,
    NodeProcess,
    edge_opensips,
    membership,
    subscriber_row,
)
from tests.support.sip_probe import final_reply, header, request, status
from tests.support.sipp import SIPP_SKIP, run_sipp, scenario, write_speech_pcap
from voice_connector.caller.opensips_double import offer_sdp

pytestmark = [
    requires_opensips,
    pytest.mark.skipif(SIPP_SKIP is not None, reason=SIPP_SKIP or ""),
    pytest.mark.slow,
]

TRUNK = "127.0.0.2"  # on the allow-list
STRANGER = "127.0.0.3"  # not on it
FLOODER = "127.0.0.4"  # on the allow-list, then floods
AUTH_TRUNK = "127.0.0.6"  # listed as "address + digest"
AUTH_USER, AUTH_PASSWORD = "carrier", "s3cret"
RTP_RECEIVED = 'voice_connector_rtp_packets_total{direction="received"}'


class Cluster:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.stub = OllamaStub(free_port()).start()
        self.edge = edge_opensips(workdir / "edge", [TRUNK, FLOODER], [AUTH_TRUNK])
        subscriber = workdir / "edge" / "trunks" / "subscriber"
        subscriber.write_text(
            subscriber.read_text() + subscriber_row(1, AUTH_USER, AUTH_TRUNK, AUTH_PASSWORD) + "\n"
        )
        self.nodes = [NodeProcess(i, workdir / f"node-{i}", self.stub.url) for i in (1, 2)]
        self.membership = membership(self.edge, self.nodes)
        self.speech = write_speech_pcap(
            workdir / "speech.pcap",
            speech_wav(workdir / "speech.wav", "Hello, I am calling about my order."),
        )

    @property
    def target(self) -> tuple[str, int]:
        return (self.edge.sip_ip, self.edge.sip_port)

    def ensure_up(self) -> None:
        """Both nodes running and published (a previous test may have stopped or drained one)."""
        for node in self.nodes:
            if node.connector is None or node.connector.poll() is not None:
                node.stop()
                node.start()
        self.membership.sync()
        assert len(self.membership.published or ()) == 2

    def started(self) -> list[int]:
        return [node.started() for node in self.nodes]

    async def calls(self, count: int, source: str = TRUNK, hold_ms: int = 1000, **kw):
        workdir = self.workdir / "sipp"
        workdir.mkdir(exist_ok=True)
        return await run_sipp(
            scenario("call", workdir, audio=self.speech, hold_ms=hold_ms),
            self.target,
            workdir,
            source_ip=source,
            calls=count,
            **kw,
        )

    def close(self) -> None:
        for node in self.nodes:
            node.stop()
        self.edge.stop()
        self.stub.shutdown()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = Cluster(tmp_path_factory.mktemp("sip-cluster"))
    cluster.edge.start()
    for node in cluster.nodes:
        node.start()
    cluster.membership.sync()
    yield cluster
    cluster.close()


def test_edge_cfg_passes_opensips_check_as_shipped_and_as_started():
    run_check(EDGE_CFG)
    env = {"VC_OPENSIPS_PUBLIC_IP": "203.0.113.20"}
    run_check(EDGE_CFG, env, "-p", str(ENV_PREPROCESSOR))


async def test_calls_spread_over_both_nodes(cluster):
    cluster.ensure_up()
    before = cluster.started()
    received = [n.metric(RTP_RECEIVED) for n in cluster.nodes]
    run = await cluster.calls(6, rate=3)
    assert run.ok and run.successful == 6, run.stderr
    spread = [after - b for after, b in zip(cluster.started(), before, strict=True)]
    assert spread == [3, 3], spread  # round robin
    # the speech went straight from SIPp to each node (the edge has no media path)
    gained = [n.metric(RTP_RECEIVED) - r for n, r in zip(cluster.nodes, received, strict=True)]
    assert min(gained) > 3 * 25, gained  # > 0.5 s of 20 ms packets per call


async def test_a_source_not_on_the_allow_list_gets_403_and_no_pipeline(cluster):
    cluster.ensure_up()
    before = cluster.started()
    workdir = cluster.workdir / "sipp"
    workdir.mkdir(exist_ok=True)
    run = await run_sipp(
        scenario("refused", workdir, codecs="0 101", code=403),
        cluster.target,
        workdir,
        source_ip=STRANGER,
    )
    assert run.ok, run.stderr
    assert cluster.started() == before
    assert f"SIP from {STRANGER}" in cluster.edge.log()


async def test_nodes_accept_sip_only_from_the_edge(cluster):
    cluster.ensure_up()
    node = cluster.nodes[0].opensips
    reply = final_reply("INVITE", (node.sip_ip, node.sip_port), TRUNK, offer_sdp(40000))
    assert status(reply) == 403


async def test_a_flood_is_blocked_while_a_listed_trunk_still_connects(cluster):
    cluster.ensure_up()
    workdir = cluster.workdir / "flood"
    workdir.mkdir(exist_ok=True)
    flood = asyncio.create_task(
        run_sipp(
            scenario("options", workdir), cluster.target, workdir,
            source_ip=FLOODER, calls=1200, rate=400, call_timeout=20,
        )
    )  # fmt: skip
    await asyncio.sleep(1.0)  # the flood is on
    run = await cluster.calls(4, rate=2)
    flooded = await flood
    assert run.ok and run.successful == 4, run.stderr
    answered = flooded.successful / (flooded.successful + flooded.failed)
    assert answered < 0.3, (flooded.successful, flooded.failed)  # pike dropped the rest


async def test_tcp_and_tls_listeners_answer_a_listed_trunk(cluster):
    message, sock = request("OPTIONS", cluster.target, TRUNK)
    sock.close()
    with socket.create_connection(cluster.target, timeout=3, source_address=(TRUNK, 0)) as tcp:
        tcp.sendall(message.replace("SIP/2.0/UDP", "SIP/2.0/TCP").encode())
        assert status(tcp.recv(65535).decode()) == 200
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    tls_target = (cluster.edge.sip_ip, cluster.edge.tls_port)
    with socket.create_connection(tls_target, timeout=3, source_address=(TRUNK, 0)) as raw:
        with context.wrap_socket(raw) as tls:
            tls.sendall(message.replace("SIP/2.0/UDP", "SIP/2.0/TLS").encode())
            assert status(tls.recv(65535).decode()) == 200


def test_a_digest_trunk_is_challenged_and_admitted_with_its_credentials(cluster):
    challenge = final_reply("OPTIONS", cluster.target, AUTH_TRUNK)
    assert status(challenge) == 407
    fields = dict(re.findall(r'(\w+)="([^"]*)"', header(challenge, "Proxy-Authenticate")))
    message, sock = request("OPTIONS", cluster.target, AUTH_TRUNK)
    uri = message.split(" ", 2)[1]
    ha1 = hashlib.md5(f"{AUTH_USER}:{fields['realm']}:{AUTH_PASSWORD}".encode()).hexdigest()
    ha2 = hashlib.md5(f"OPTIONS:{uri}".encode()).hexdigest()
    digest = hashlib.md5(f"{ha1}:{fields['nonce']}:{ha2}".encode()).hexdigest()
    authorization = (
        f'Proxy-Authorization: Digest username="{AUTH_USER}", realm="{fields["realm"]}", '
        f'nonce="{fields["nonce"]}", uri="{uri}", response="{digest}", algorithm=MD5'
    )
    message = message.replace("Max-Forwards: 70", f"Max-Forwards: 70\r\n{authorization}")
    with sock:
        sock.settimeout(3)
        sock.sendto(message.encode(), cluster.target)
        assert status(sock.recv(65535).decode()) == 200


async def test_a_stopped_node_gets_no_new_calls(cluster):
    cluster.ensure_up()
    before = cluster.nodes[0].started()
    cluster.nodes[1].stop()  # connector and its OpenSIPS gone, still in the edge's set
    run = await cluster.calls(4, rate=2)
    assert run.ok and run.successful == 4, run.stderr  # the first waited 2 s, then failed over
    assert cluster.nodes[0].started() - before == 4
    cluster.membership.sync()
    assert [n.name for n in cluster.membership.published] == ["node-1"]


async def test_draining_node_finishes_its_calls_and_new_calls_go_to_the_other(cluster):
    cluster.ensure_up()
    long_calls = asyncio.create_task(cluster.calls(2, rate=10, hold_ms=6000))
    deadline = time.monotonic() + 10
    while sum(n.metric("voice_connector_active_calls") for n in cluster.nodes) < 2:
        assert time.monotonic() < deadline, "the long calls never started"
        await asyncio.sleep(0.1)
    assert [n.metric("voice_connector_active_calls") for n in cluster.nodes] == [1, 1]
    draining = cluster.nodes[0]
    draining.drain()  # SIGTERM: /readyz 503, new INVITEs 503, active call goes on
    await asyncio.sleep(0.5)
    before = cluster.started()
    run = await cluster.calls(3, rate=3)  # node-1 still in the set: its 503 fails over
    assert run.ok and run.successful == 3, run.stderr
    assert cluster.nodes[1].started() - before[1] == 3
    cluster.membership.sync()  # and the controller takes it out of the set
    assert [n.name for n in cluster.membership.published] == ["node-2"]
    finished = await long_calls
    assert finished.ok and finished.successful == 2, finished.stderr  # nothing lost
    assert draining.connector.wait(30) == 0, draining.log()


async def test_a_node_hanging_up_reaches_the_caller_through_the_edge(cluster):
    """The node's own in-dialog request (its BYE when its drain grace runs out) follows the
    record-route back through the edge to the trunk."""
    cluster.ensure_up()
    node = cluster.nodes[0]
    node.stop()
    node.env["VC_GENERAL_DRAIN_GRACE_SECONDS"] = "1"
    node.start()
    membership(cluster.edge, [node]).sync()  # this call must land on it
    workdir = cluster.workdir / "sipp"
    call = asyncio.create_task(
        run_sipp(
            scenario("hangup", workdir, audio=cluster.speech),
            cluster.target,
            workdir,
            source_ip=TRUNK,
            call_timeout=20,
        )
    )
    deadline = time.monotonic() + 10
    while node.metric("voice_connector_active_calls") < 1:
        assert time.monotonic() < deadline, "the call never started"
        await asyncio.sleep(0.1)
    node.drain()  # grace 1 s, then the node ends the call itself: BYE
    run = await call
    assert run.ok and run.successful == 1, run.stderr
    assert node.connector.wait(30) == 0, node.log()
