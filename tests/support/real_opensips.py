"""A real OpenSIPS 3.6 process for tests: the bundle in `<repo>/../shared/opensips` (or the
directory named by `VC_OPENSIPS_BUNDLE`), started with one of our cfgs on free loopback ports.

The cfg file is never copied or edited: OpenSIPS' `-p` preprocessor runs a per-instance sed
script of exact string substitutions (listen address/port, MI port, db dir...) chained after the
bundle's own `mpath` rewrite. Each substitution must match the cfg, or the start fails loudly: a
cfg edit that a test relies on cannot silently stop being tested. Optionally the shipped
environment preprocessor (`media-node/opensips/opensips-env`) runs after it, exactly as the image
runs it. Each instance gets its own `-w` directory and is stopped by its PID.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
BUNDLE_ENV = "VC_OPENSIPS_BUNDLE"
NODE_CFG = REPO / "media-node" / "opensips" / "opensips.cfg"
ENV_PREPROCESSOR = REPO / "media-node" / "opensips" / "opensips-env"


def bundle_dir() -> Path | None:
    """The OpenSIPS bundle (with its `run-opensips`), or None where there is none."""
    configured = os.environ.get(BUNDLE_ENV)
    candidate = Path(configured) if configured else REPO.parent / "shared" / "opensips"
    return candidate if (candidate / "run-opensips").is_file() else None


SKIP_REASON = (
    f"no OpenSIPS bundle: set {BUNDLE_ENV} or put it at {REPO.parent / 'shared' / 'opensips'}"
    " (CI has it; see docs/opensips.md)"
)
requires_opensips = pytest.mark.skipif(bundle_dir() is None, reason=SKIP_REASON)


def free_port(ip: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on `ip` right now (SIP listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((ip, 0))
            port = udp.getsockname()[1]
            with socket.socket() as tcp:
                try:
                    tcp.bind((ip, port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port")


def run_check(cfg: Path, env: Mapping[str, str] | None = None, *extra: str) -> None:
    """`run-opensips --check cfg` (opensips -C: parse, load modules); raises with its output."""
    bundle = bundle_dir()
    assert bundle is not None, SKIP_REASON
    result = subprocess.run(
        [str(bundle / "run-opensips"), "--check", str(cfg), *extra],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def mi_call(
    port: int, method: str, params: Any = None, timeout: float = 2.0, ip: str = "127.0.0.1"
):
    """One MI JSON-RPC command over mi_datagram; returns the whole reply object."""
    request = {"jsonrpc": "2.0", "method": method, "id": 1}
    if params is not None:
        request["params"] = params
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(json.dumps(request).encode(), (ip, port))
        return json.loads(sock.recv(65535))


class RealOpenSIPS:
    """One OpenSIPS process: `start()`, `stop()`, `restart()`, `mi(...)`, `log()`."""

    def __init__(
        self,
        cfg: Path,
        workdir: Path,
        substitutions: Mapping[str, str],
        mi_port: int,
        *,
        env: Mapping[str, str] | None = None,
        env_preprocessor: bool = False,
    ) -> None:
        self.cfg = cfg
        self.workdir = workdir
        self.substitutions = dict(substitutions)
        self.mi_port = mi_port
        self.env = dict(env or {})
        self.env_preprocessor = env_preprocessor
        self.process: subprocess.Popen[bytes] | None = None
        self.sip_ip = "127.0.0.1"
        self.sip_port = 0
        self._log = workdir / "opensips.log"

    def _preprocessor(self) -> str:
        text = self.cfg.read_text()
        missing = [old for old in self.substitutions if old not in text]
        if missing:
            raise AssertionError(f"{self.cfg.name} no longer contains {missing}")
        script = self.workdir / "subst.sed"
        script.write_text(
            "".join(
                f"s|{_sed_pattern(old)}|{_sed_replacement(new)}|g\n"
                for old, new in self.substitutions.items()
            )
        )
        command = f"sed -f {script}"
        if self.env_preprocessor:
            command += f" | {ENV_PREPROCESSOR}"
        wrapper = self.workdir / "preprocess.sh"
        wrapper.write_text(f"#!/bin/sh\n{command}\n")
        wrapper.chmod(0o755)
        return str(wrapper)

    def command(self, check: bool = False) -> list[str]:
        bundle = bundle_dir()
        assert bundle is not None, SKIP_REASON
        mode = ["--check"] if check else []
        return [
            str(bundle / "run-opensips"),
            *mode,
            str(self.cfg),
            "-p",
            self._preprocessor(),
            "-w",
            str(self.workdir),
        ]

    def check(self) -> None:
        """opensips -C on the cfg as this instance would run it."""
        result = subprocess.run(
            self.command(check=True),
            capture_output=True,
            text=True,
            env={**os.environ, **self.env},
            timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr

    def start(self, timeout: float = 15.0) -> RealOpenSIPS:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self._log.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                cwd=self.workdir,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"OpenSIPS exited {self.process.returncode}:\n{self.log()}")
            try:
                self.mi("version", timeout=0.3)
                return self
            except (OSError, ValueError):
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"OpenSIPS MI never answered:\n{self.log()}") from None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to our PID (OpenSIPS' main process ends its children), SIGKILL if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)  # its own session: only its children
            self.process.wait(5)

    def restart(self) -> None:
        self.stop()
        self.start()

    def mi(self, method: str, params: Any = None, timeout: float = 2.0) -> Any:
        """An MI command; returns `result`, raises RuntimeError on an MI error."""
        reply = mi_call(self.mi_port, method, params, timeout)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def log(self) -> str:
        return self._log.read_text(errors="replace") if self._log.exists() else ""


def _sed_pattern(text: str) -> str:
    """A literal as a sed basic regex inside `s|…|`."""
    for char in "\\|.[]*^$":
        text = text.replace(char, "\\" + char)
    return text


def _sed_replacement(text: str) -> str:
    """A literal as a sed replacement inside `s|…|`."""
    for char in "\\|&":
        text = text.replace(char, "\\" + char)
    return text


def node_opensips(
    workdir: Path,
    ip: str = "127.0.0.1",
    *,
    env: Mapping[str, str] | None = None,
    listen_ip: str | None = None,
) -> RealOpenSIPS:
    """The media node's shipped cfg, listening on `ip` (SIP udp+tcp) with MI on a free port."""
    sip_port, mi_port = free_port(ip), free_port()
    listen = listen_ip or ip
    instance = RealOpenSIPS(
        NODE_CFG,
        workdir,
        {
            "udp:0.0.0.0:5060": f"udp:{listen}:{sip_port}",
            "tcp:0.0.0.0:5060": f"tcp:{listen}:{sip_port}",
            "udp:127.0.0.1:8080": f"udp:127.0.0.1:{mi_port}",
        },
        mi_port,
        env=env,
        env_preprocessor=True,
    )
    instance.sip_ip, instance.sip_port = ip, sip_port
    return instance
