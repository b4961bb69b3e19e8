"""Start one rendered container as a local process, the way its platform would start it.

The command is Kubernetes' / Cloud Run's: `command` replaces the image's ENTRYPOINT (and CMD),
`args` replaces CMD, else the image's own. The env is the image's ENV overlaid with the rendered
env and the secrets' values. Files the image COPYs and volumes the platform mounts appear under a
per-process root directory, and container paths in argv and env point there.

What differs from the cloud, all stated in `Launch.substitutions` (and printed on failure):
- addresses: the reserved IPs / DNS names / hosts of other workloads → their local stand-ins;
- the listening address: 127.0.0.1 and a free port instead of 0.0.0.0 and the fixed port;
- the interpreter: this venv's, limited to the image's distributions (image_contents);
- the model cache: this machine's (the image bakes the same registry-package models).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.containers.dockerfiles import Stage, parse, with_port
from tests.containers.procs import Process
from tests.rehearsal.build_files import ImageBuild, image_builds
from tests.rehearsal.image_contents import blocker_env
from tests.rehearsal.rendered import Container, Rendered
from voice_connector_core.models import cache_dir

VENV_BIN = Path(sys.executable).parent
MODEL_CACHE_ENV = "VOICE_CONNECTOR_MODEL_CACHE"


@dataclass
class Launch:
    """Everything needed to start the process, and what was changed from the cloud's values."""

    workload: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    port: int
    substitutions: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        changed = "\n".join(f"  {k}: {v}" for k, v in self.substitutions.items())
        return f"{self.workload}: {self.argv}\n cwd {self.cwd}\n substituted:\n{changed}"


def image_stage(image: str) -> tuple[ImageBuild, Stage]:
    build = image_builds()[image]
    return build, parse(build.dockerfile)[build.target]


def _argv(container: Container, stage: Stage) -> list[str]:
    if container.command:
        return list(container.command) + list(container.args or [])
    if container.args:
        return list(stage.entrypoint) + list(container.args)
    return list(stage.argv)


class RootFs:
    """Container paths (COPYed files, mounts, the working directory) under a local directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.prefixes: set[str] = set()

    def host(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def add_file(self, path: str, content: str | None = None, source: Path | None = None) -> None:
        target = self.host(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink():
            target.unlink()  # a mount hides the image's file (never write through the link)
        if source is not None:
            if not target.exists():
                target.symlink_to(source)
        else:
            target.write_text(content or "")
        self.prefixes.add(path)

    def add_dir(self, path: str) -> Path:
        self.host(path).mkdir(parents=True, exist_ok=True)
        if path != "/":
            self.prefixes.add(path.rstrip("/"))
        return self.host(path)

    def rewrite(self, value: str) -> str:
        for prefix in sorted(self.prefixes, key=len, reverse=True):
            value = re.sub(
                rf"(?<![\w/.]){re.escape(prefix)}(?=/|\b|$)", str(self.host(prefix)), value
            )
        return value


def _listen(argv: list[str], env: dict[str, str], port: int) -> dict[str, str]:
    """Bind loopback on `port`; returns what was changed."""
    changed: dict[str, str] = {}
    if "--port" in argv or "--host" in argv:
        argv[:] = with_port(argv, "127.0.0.1", port)
        changed["--host/--port"] = f"127.0.0.1 {port}"
    for key, value in (
        ("PORT", str(port)),
        ("VC_GENERAL_HTTP_PORT", str(port)),
        ("VC_GENERAL_HTTP_HOST", "127.0.0.1"),
        ("OLLAMA_HOST", f"127.0.0.1:{port}"),
    ):
        if key in env:
            changed[key] = f"{env[key]} -> {value}"
            env[key] = value
    return changed


def _addresses(value: str, addresses: dict[str, str]) -> str:
    for cloud, local in sorted(addresses.items(), key=lambda kv: len(kv[0]), reverse=True):
        value = value.replace(cloud, local)
    return value


def plan(
    container: Container,
    rendered: Rendered | None,
    root: Path,
    port: int,
    addresses: dict[str, str] | None = None,
    path_first: list[Path] | None = None,
) -> Launch:
    """How to start `container` here (`rendered` None: an image no workload overrides)."""
    build, stage = image_stage(container.image)
    fs = RootFs(root / "rootfs")
    for dest, source in stage.copies.items():
        if dest.startswith("/"):
            fs.add_file(dest, source=(build.context / source).resolve())
    for path, content in container.files.items():
        fs.add_file(path, content)
    for path in container.empty_dirs:
        fs.add_dir(path)
    cwd = fs.add_dir(container.working_dir or stage.workdir)
    secrets = rendered.env_of(container) if rendered else dict(container.env)
    env = {**stage.env, **secrets}
    argv = _argv(container, stage)
    subs = _listen(argv, env, port)
    addresses = addresses or {}
    argv = [fs.rewrite(_addresses(a, addresses)) for a in argv]
    env = {k: fs.rewrite(_addresses(v, addresses)) for k, v in env.items()}
    subs |= {cloud: local for cloud, local in addresses.items()}
    if MODEL_CACHE_ENV in env:
        subs[MODEL_CACHE_ENV] = f"{env[MODEL_CACHE_ENV]} -> {cache_dir()}"
        env[MODEL_CACHE_ENV] = str(cache_dir())
    home = root / "home"
    home.mkdir(parents=True, exist_ok=True)
    search = [*(path_first or []), VENV_BIN, Path("/usr/bin"), Path("/bin")]
    env |= {"PATH": ":".join(str(p) for p in search), "HOME": str(home), "LANG": "C.UTF-8"}
    subs["PATH"] = "image venv -> this venv (" + str(VENV_BIN) + ")"
    limited = blocker_env(build)
    if limited:
        env |= limited
        subs["python packages"] = f"only the image's ({len(limited)} env vars set)"
    return Launch(container.workload, argv, env, cwd, port, subs)


class Running(Process):
    """A launched workload: its log, readiness helpers and teardown (tests.containers.procs)."""

    def __init__(self, launch: Launch, log: Path) -> None:
        self.argv = launch.argv
        self.log = log
        self.launch = launch
        self._log_file = log.open("wb")
        self.popen = subprocess.Popen(
            launch.argv,
            cwd=launch.cwd,
            env=launch.env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return f"{self.launch.describe()}\n--- output ---\n{super().output()}"

    def close(self) -> None:
        """Stop the whole process group (an entrypoint script's children too)."""
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, 15)
                self.popen.wait(timeout=15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(self.popen.pid, 9)
                self.popen.wait(timeout=10)
        self._log_file.close()
