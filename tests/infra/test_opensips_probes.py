"""The OpenSIPS container's probes and ports match what the shipped cfg listens on.

Read from the cfg's `socket=` lines (whatever they become), so a probe on a protocol or port
OpenSIPS does not open (a restart loop on GKE) fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.infra.harness import run_stack

CFG = Path(__file__).resolve().parents[2] / "media-node" / "opensips" / "opensips.cfg"
SOCKET = re.compile(r"^\s*socket\s*=\s*(udp|tcp|tls|ws|wss):([^:\s]+):(\d+)", re.MULTILINE)


def listeners(text: str) -> set[tuple[str, int]]:
    """(protocol, port) of every `socket=` line; OpenSIPS listens on these and nothing else."""
    return {(proto.upper(), int(port)) for proto, _, port in SOCKET.findall(text)}


def opensips_container() -> dict:
    manifests = run_stack("dev").deployment.workloads.manifests  # type: ignore[union-attr]
    (deployment,) = [
        m for m in manifests if m["kind"] == "Deployment" and m["metadata"]["name"] == "media-node"
    ]
    (container,) = [
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "opensips"
    ]
    return container


def test_listeners_are_parsed_from_the_cfg() -> None:
    assert listeners("socket = udp:0.0.0.0:5060\n# socket = tcp:0.0.0.0:5061\n") == {
        ("UDP", 5060)
    }
    assert listeners(CFG.read_text()), "the shipped cfg has no socket= line"


def test_probes_open_what_opensips_listens_on() -> None:
    container = opensips_container()
    listening = listeners(CFG.read_text())
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = container.get(key)
        if probe is None:
            continue
        assert "tcpSocket" in probe or "exec" in probe, f"{key}: {probe}"
        if "tcpSocket" in probe:
            port = int(probe["tcpSocket"]["port"])
            assert ("TCP", port) in listening, f"{key} opens tcp:{port}; cfg listens on {listening}"


def test_published_ports_are_ports_opensips_listens_on() -> None:
    listening = listeners(CFG.read_text())
    for port in opensips_container()["ports"]:
        assert (port.get("protocol", "TCP"), port["containerPort"]) in listening, port
