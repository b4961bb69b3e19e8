"""The SIP edge's list of media nodes, kept equal to the media nodes that are ready right now.

The edge's `dispatcher` reads its set from a db_text table; this controller (a sidecar of the
edge, sharing its table directory and its loopback MI) rewrites that table whenever the set of
ready nodes changes and tells OpenSIPS to reload it (MI `dbt_reload`, then `ds_reload`). Ready
means the node's `/readyz` answers 200: a node that is still loading, has lost its OpenSIPS
subscription or is draining (SIGTERM) drops out, so new calls go elsewhere while its own calls
finish (in-dialog requests follow the record-route, not the dispatcher). Where the nodes are
comes from Kubernetes (the media pods, hostNetwork: the node's address) or, in tests, from a
fixed list: nobody keeps an IP list by hand.

Run: `python -m media_node.edge_membership --namespace voice-connector --selector
app.kubernetes.io/name=media-node --table-dir /var/lib/sip-edge/nodes`.
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from loguru import logger

SET_ID = 1
DISPATCHER_VERSION = 9  # the dispatcher table version OpenSIPS 3.6 expects
DISPATCHER_HEADER = (
    "id(int,auto) setid(int) destination(string) socket(string,null) state(int) "
    "probe_mode(int) weight(string) priority(int) attrs(string,null) description(string,null)"
)
VERSION_HEADER = "table_name(string) table_version(int)"


@dataclass(frozen=True, order=True)
class MediaNode:
    """A media node as the edge sees it: its OpenSIPS (SIP) and its connector (/readyz)."""

    name: str
    sip_uri: str
    readyz_url: str


class Discovery(Protocol):
    def nodes(self) -> list[MediaNode]: ...


class StaticDiscovery:
    """A fixed candidate list (tests, a fleet without Kubernetes); readiness still decides."""

    def __init__(self, nodes: Iterable[MediaNode]) -> None:
        self._nodes = list(nodes)

    def nodes(self) -> list[MediaNode]:
        return list(self._nodes)


class KubernetesDiscovery:
    """The media pods of a namespace by label, through the in-cluster API (pods: list).

    The pods run with hostNetwork, so a pod's hostIP is where its OpenSIPS and connector listen.
    """

    API = "https://kubernetes.default.svc"
    ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")

    def __init__(
        self, namespace: str, selector: str, sip_port: int = 5060, http_port: int = 8080
    ) -> None:
        self.namespace, self.selector = namespace, selector
        self.sip_port, self.http_port = sip_port, http_port

    def nodes(self) -> list[MediaNode]:
        token = (self.ACCOUNT / "token").read_text().strip()
        context = ssl.create_default_context(cafile=str(self.ACCOUNT / "ca.crt"))
        url = f"{self.API}/api/v1/namespaces/{self.namespace}/pods?labelSelector={self.selector}"
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=5, context=context) as response:
            pods = json.load(response)["items"]
        found = []
        for pod in pods:
            ip = pod.get("status", {}).get("hostIP")
            if ip and pod["status"].get("phase") == "Running":
                found.append(
                    MediaNode(
                        pod["metadata"]["name"],
                        f"sip:{ip}:{self.sip_port}",
                        f"http://{ip}:{self.http_port}/readyz",
                    )
                )
        return found


def is_ready(node: MediaNode, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(node.readyz_url, timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


EDGE_NODE_SOCKET = "udp:0.0.0.0:5070"
"""The edge's node-facing socket (sip-edge/opensips.cfg): calls and OPTIONS probes leave by it."""


def write_dispatcher_table(
    directory: Path, nodes: Iterable[MediaNode], socket_name: str = EDGE_NODE_SOCKET
) -> None:
    """The db_text `version` + `dispatcher` tables: set 1 = `nodes`, active, OPTIONS-probed,
    reached from the edge's node-facing socket.

    Written to a temporary file and renamed, so OpenSIPS never reads half a table."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = [DISPATCHER_HEADER]
    for index, node in enumerate(sorted(nodes), start=1):
        uri = node.sip_uri.replace(":", "\\:")
        sock = socket_name.replace(":", "\\:")
        rows.append(f"{index}:{SET_ID}:{uri}:{sock}:0:1:1:0::{node.name}")
    _replace(directory / "version", f"{VERSION_HEADER}\ndispatcher:{DISPATCHER_VERSION}\n")
    _replace(directory / "dispatcher", "\n".join(rows) + "\n")


def _replace(path: Path, text: str) -> None:
    if path.exists() and path.read_text() == text:
        return
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    temporary.replace(path)


def mi_command(port: int, method: str, ip: str = "127.0.0.1", timeout: float = 2.0) -> object:
    """One MI JSON-RPC command over OpenSIPS' mi_datagram; raises RuntimeError on an error."""
    request = json.dumps({"jsonrpc": "2.0", "method": method, "id": 1}).encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(request, (ip, port))
        reply = json.loads(sock.recv(65535))
    if "error" in reply:
        raise RuntimeError(f"{method}: {reply['error']}")
    return reply["result"]


class Membership:
    """One `sync()` per poll: ask every candidate's /readyz, publish the ready ones if changed."""

    def __init__(
        self,
        discovery: Discovery,
        table_dir: Path,
        mi_port: int = 8080,
        ready: Callable[[MediaNode], bool] = is_ready,
        socket_name: str = EDGE_NODE_SOCKET,
    ) -> None:
        self.discovery, self.table_dir, self.mi_port = discovery, table_dir, mi_port
        self.ready, self.socket_name = ready, socket_name
        self.published: frozenset[MediaNode] | None = None

    def sync(self) -> bool:
        """True when the set changed (and the edge reloaded it)."""
        try:
            candidates = self.discovery.nodes()
        except OSError as exc:  # keep the last known set rather than emptying the edge
            logger.warning(f"node discovery failed, keeping {self.published}: {exc}")
            return False
        ready = frozenset(node for node in candidates if self.ready(node))
        if ready == self.published:
            return False
        write_dispatcher_table(self.table_dir, ready, self.socket_name)
        try:
            mi_command(self.mi_port, "dbt_reload")  # db_text caches tables: re-read the files
            mi_command(self.mi_port, "ds_reload")
        except (OSError, RuntimeError) as exc:
            logger.warning(f"ds_reload failed (retrying next poll): {exc}")
            return False
        joined = sorted(n.name for n in ready - (self.published or frozenset()))
        left = sorted(n.name for n in (self.published or frozenset()) - ready)
        logger.info(f"media nodes: {len(ready)} ready; joined {joined}, left {left}")
        self.published = ready
        return True

    def run(self, interval: float, stop: Callable[[], bool] = lambda: False) -> None:
        while not stop():
            self.sync()
            time.sleep(interval)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--namespace", default="voice-connector")
    parser.add_argument("--selector", default="app.kubernetes.io/name=media-node")
    parser.add_argument("--table-dir", type=Path, default=Path("/var/lib/sip-edge/nodes"))
    parser.add_argument("--mi-port", type=int, default=8080)
    parser.add_argument("--sip-port", type=int, default=5060)
    parser.add_argument("--http-port", type=int, default=8080)
    parser.add_argument("--interval", type=float, default=2.0)
    args = parser.parse_args()
    discovery = KubernetesDiscovery(args.namespace, args.selector, args.sip_port, args.http_port)
    Membership(discovery, args.table_dir, args.mi_port).run(args.interval)


if __name__ == "__main__":
    main()
