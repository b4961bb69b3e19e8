"""A SIP cluster of real processes on loopback: the edge OpenSIPS (`sip-edge/opensips.cfg`) in
front of media nodes, each a connector process (instant STT/LLM/TTS, real VAD, pipeline and RTP)
with its own real OpenSIPS running the shipped node cfg, which trusts only the edge.

Addresses: the edge on 127.0.0.1, node N's OpenSIPS and RTP on 127.0.1.N, trunks and strangers
on other 127.0.0.x addresses (loopback answers the whole 127/8).
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from media_node.edge_membership import (
    EDGE_NODE_SOCKET,
    MediaNode,
    Membership,
    StaticDiscovery,
    write_dispatcher_table,
)
from tests.support.real_opensips import REPO, RealOpenSIPS, bundle_dir, free_port, node_opensips

EDGE_CFG = REPO / "sip-edge" / "opensips.cfg"
EDGE_IP = "127.0.0.1"


def write_trunks(directory: Path, trusted: list[str], authenticated: list[str] = ()) -> None:
    """db_text `address` (group 1: by address; group 2: address + digest) + `subscriber`."""
    templates = bundle_dir() / "dbtext-templates"  # type: ignore[operator]
    directory.mkdir(parents=True, exist_ok=True)
    versions = (templates / "version").read_text().splitlines()
    wanted = [versions[0]] + [v for v in versions if v.split(":")[0] in ("address", "subscriber")]
    (directory / "version").write_text("\n".join(wanted) + "\n")
    rows = [(templates / "address").read_text().splitlines()[0]]
    for group, cidrs in ((1, trusted), (2, authenticated)):
        for cidr in cidrs:
            ip, _, mask = cidr.partition("/")
            rows.append(f"{len(rows)}:{group}:{ip}:{mask or 32}:0:any:::")
    (directory / "address").write_text("\n".join(rows) + "\n")
    (directory / "subscriber").write_text((templates / "subscriber").read_text())


def subscriber_row(index: int, user: str, realm: str, password: str) -> str:
    """A db_text `subscriber` row: digest credentials of a trunk (every HA1 column filled)."""
    secret = f"{user}:{realm}:{password}".encode()
    hashes = [hashlib.new(name, secret).hexdigest() for name in ("md5", "sha256", "sha512_256")]
    return ":".join([str(index), user, realm, password, *hashes])


def self_signed(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=sip-edge.test", "-keyout", str(directory / "tls.key"),
         "-out", str(directory / "tls.crt")],
        check=True, capture_output=True,
    )  # fmt: skip


def edge_opensips(workdir: Path, trusted: list[str], authenticated: list[str] = ()) -> RealOpenSIPS:
    """The edge cfg as shipped, with its listeners, MI and data directories moved to `workdir`."""
    sip, tls, inner, mi = free_port(EDGE_IP), free_port(EDGE_IP), free_port(EDGE_IP), free_port()
    write_trunks(workdir / "trunks", trusted, list(authenticated))
    write_dispatcher_table(workdir / "nodes", [])
    self_signed(workdir / "tls")
    instance = RealOpenSIPS(
        EDGE_CFG,
        workdir,
        {
            "udp:0.0.0.0:5060": f"udp:{EDGE_IP}:{sip}",
            "tcp:0.0.0.0:5060": f"tcp:{EDGE_IP}:{sip}",
            "tls:0.0.0.0:5061": f"tls:{EDGE_IP}:{tls}",
            EDGE_NODE_SOCKET: f"udp:{EDGE_IP}:{inner}",
            "udp:127.0.0.1:8080": f"udp:127.0.0.1:{mi}",
            "/etc/sip-edge/trunks": str(workdir / "trunks"),
            "/var/lib/sip-edge/nodes": str(workdir / "nodes"),
            "/run/sip-edge/tls": str(workdir / "tls"),
        },
        mi,
        env_preprocessor=True,  # as the image runs it (nothing to rewrite on loopback listeners)
    )
    instance.sip_ip, instance.sip_port = EDGE_IP, sip
    instance.tls_port = tls  # type: ignore[attr-defined]
    instance.node_socket = f"udp:{EDGE_IP}:{inner}"  # type: ignore[attr-defined]
    return instance


class NodeProcess:
    """One media node: its OpenSIPS (trusting only the edge) and its connector process."""

    def __init__(self, index: int, workdir: Path, services_url: str, max_calls: int = 20) -> None:
        """`services_url`: an Ollama stand-in (tests.containers.ollama_stub) that also answers
        for the remote STT/TTS: the calls' own services are instant fakes, but readiness still
        asks every configured dependency, as on a real node."""
        self.index = index
        self.ip = f"127.0.1.{index}"
        self.workdir = workdir
        self.opensips = node_opensips(
            workdir / "opensips", self.ip, env={"SIP_TRUSTED_SOURCES": f"{EDGE_IP}/32"}
        )
        self.http_port = free_port()
        rtp_low = 30000 + index * 200
        self.env = {
            "PYTHONPATH": str(REPO),
            "VC_TRANSPORT_PROVIDERS": "opensips",
            "VC_GENERAL_MAX_CALLS": str(max_calls),
            "VC_GENERAL_DRAIN_GRACE_SECONDS": "30",
            "VC_OPENSIPS_MI_PORT": str(self.opensips.mi_port),
            "VC_OPENSIPS_EVENT_PORT": str(free_port()),
            "VC_OPENSIPS_RTP_IP": self.ip,
            "VC_OPENSIPS_PUBLIC_IP": self.ip,
            "VC_OPENSIPS_RTP_PORT_RANGE": f"{rtp_low}-{rtp_low + 99}",
            "VC_OPENSIPS_RESUBSCRIBE_INTERVAL": "0.5",
            "VC_LLM_URL": services_url,
            "VC_STT_MODE": "remote",
            "VC_STT_URL": services_url,
            "VC_TTS_MODE": "remote",
            "VC_TTS_URL": services_url.replace("http", "ws"),
            "VC_GENERAL_LOG_LEVEL": "INFO",
        }
        self.connector: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return f"node-{self.index}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def member(self) -> MediaNode:
        """How the edge's membership controller sees this node."""
        return MediaNode(
            self.name, f"sip:{self.ip}:{self.opensips.sip_port}", f"{self.http}/readyz"
        )

    def start(self, timeout: float = 90.0) -> NodeProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.opensips.start()
        with (self.workdir / "connector.log").open("ab") as log:  # the child keeps its own fd
            self.connector = subprocess.Popen(
                [sys.executable, "-m", "tests.support.instant_node", "--port", str(self.http_port)],
                cwd=REPO,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.connector.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not ready:\n{self.log()}")
            time.sleep(0.2)
        return self

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.http}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def metric(self, name: str) -> float:
        """The sum of a Prometheus counter/gauge over its labels, from the node's /metrics."""
        text = httpx.get(f"{self.http}/metrics", timeout=2).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name) and (line[len(name)] in "{ ")
        )

    def started(self) -> int:
        return int(self.metric("voice_connector_calls_started_total"))

    def drain(self) -> None:
        """SIGTERM to the connector: what Kubernetes does before it removes a pod."""
        assert self.connector is not None
        self.connector.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        if self.connector is not None and self.connector.poll() is None:
            self.connector.kill()
            self.connector.wait(10)
        self.opensips.stop()

    def log(self) -> str:
        path = self.workdir / "connector.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def membership(edge: RealOpenSIPS, nodes: list[NodeProcess]) -> Membership:
    """The membership controller over these nodes, writing the edge's table."""
    return Membership(
        StaticDiscovery(n.member for n in nodes),
        edge.workdir / "nodes",
        edge.mi_port,
        socket_name=edge.node_socket,  # type: ignore[attr-defined]
    )
