"""The GKE media pod as deployed: its init container, OpenSIPS and the connector, each with the
command, args, env and volumes the program renders, sharing the pod's files; it must be ready.

Substituted beyond launch.py's list: the metadata server (the init container reaches a local one
through `http_proxy`), the `opensips` binary (the real OpenSIPS 3.6 bundle in ../shared/opensips,
through its run-opensips wrapper) and the pod's fixed ports (5060, MI 8080, events 50060; the
node's host network here is shared with other tests): a preprocessor step after the image's own
`opensips-env` moves them to free ports, and the connector gets the same ports by env.
"""

from __future__ import annotations

import socket
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.rehearsal.launch import Launch, Running, plan
from tests.rehearsal.rendered import ROOT, Rendered
from tests.support.servers import free_port

BUNDLE = ROOT.parent / "shared" / "opensips" / "run-opensips"
PUBLIC_IP = "203.0.113.7"

pytestmark = pytest.mark.skipif(
    not BUNDLE.exists(), reason=f"no real OpenSIPS here ({BUNDLE} is absent)"
)


class Metadata(BaseHTTPRequestHandler):
    """GCE's metadata server as the init container asks it (through a proxy URL)."""

    def do_GET(self) -> None:
        ok = self.headers.get("Metadata-Flavor") == "Google" and self.path.endswith("external-ip")
        body = PUBLIC_IP.encode() if ok else b"not found"
        self.send_response(200 if ok else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


SHIM = """#!/bin/sh
# `opensips -F -f CFG ARGS...` -> the bundled OpenSIPS, ports moved after the image's -p step.
cfg=""; pre=""; rest=""
while [ $# -gt 0 ]; do
  case "$1" in
    -F) ;;
    -f) cfg="$2"; shift ;;
    -p) pre="$2"; shift ;;
    *) rest="$rest $1" ;;
  esac
  shift
done
cat > "{dir}/ports-pp" <<EOF
#!/bin/sh
"$pre" | sed -e 's/0\\.0\\.0\\.0:5060/127.0.0.1:{sip}/' \\
  -e 's/udp:127\\.0\\.0\\.1:8080/udp:127.0.0.1:{mi}/'
EOF
chmod +x "{dir}/ports-pp"
exec {bundle} "$cfg" -p "{dir}/ports-pp" -w "{dir}" $rest
"""


@pytest.fixture(scope="module")
def metadata_proxy() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Metadata)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def pod_plans(
    stack: Rendered, root: Path, addresses: dict[str, str], proxy: str
) -> tuple[Launch, Launch, Launch, int]:
    """(init, opensips, connector) launches sharing one root (the pod's volumes), + SIP port."""
    init = stack.init_containers["gke/media-node/public-ip"]
    opensips = stack.containers["gke/media-node/opensips"]
    connector = stack.containers["gke/media-node/connector"]
    sip, mi, events = free_port(), free_port(), free_port()
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    shim = bin_dir / "opensips"
    shim.write_text(SHIM.format(dir=root, sip=sip, mi=mi, bundle=BUNDLE))
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    init_launch = plan(init, stack, root, 0)
    init_launch.env |= {"http_proxy": proxy}
    init_launch.substitutions["metadata server"] = f"{proxy} (http_proxy)"
    sip_launch = plan(opensips, stack, root, 0, path_first=[bin_dir])
    sip_launch.substitutions["opensips"] = f"{BUNDLE}; SIP {sip}, MI {mi}"
    node = plan(connector, stack, root, free_port(), addresses)
    node.env |= {"VC_OPENSIPS_MI_PORT": str(mi), "VC_OPENSIPS_EVENT_PORT": str(events)}
    node.substitutions["ports"] = f"MI {mi}, events {events}.."
    return init_launch, sip_launch, node, sip


def test_gke_media_pod_as_deployed_is_ready(
    stack: Rendered, workdir: Path, addresses: dict[str, str], metadata_proxy: str
) -> None:
    root = workdir / "gke-media-pod"
    init, sip, node, sip_port = pod_plans(stack, root, addresses, metadata_proxy)
    first = Running(init, root / "init.log")
    try:
        assert first.wait_exit(60) == 0, first.output()
    finally:
        first.close()
    env_file = next(root.rglob("node.env"))
    assert env_file.read_text().strip() == f"VC_OPENSIPS_PUBLIC_IP={PUBLIC_IP}"
    opensips = Running(sip, root / "opensips.log")
    connector = Running(node, root / "connector.log")
    try:
        connector.wait_status(f"http://127.0.0.1:{node.port}/readyz", 200, 180)
        # the liveness probe: a TCP connection to SIP
        with socket.create_connection(("127.0.0.1", sip_port), timeout=5):
            pass
        assert opensips.popen.poll() is None, opensips.output()
    finally:
        connector.close()
        opensips.close()
