"""Read what a Dockerfile target would run, and run the same command here, outside Docker.

There is no Docker engine on CI, so an image's entry point is checked by running its command
with this venv: `python`/console scripts map to the venv, files the Dockerfile COPYs map back to
their source in the repository, and ports are swapped for free ones.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent

DOCKERFILES = [
    ROOT / "media-node" / "Dockerfile",
    ROOT / "packages" / "ai_services" / "Dockerfile",
    ROOT / "docker" / "ollama" / "Dockerfile",
    ROOT / "media-node" / "opensips" / "Dockerfile",
]


@dataclass
class Stage:
    """One build stage, with what it inherits from an earlier stage of the same file."""

    name: str
    base: str
    env: dict[str, str] = field(default_factory=dict)
    cmd: list[str] = field(default_factory=list)
    entrypoint: list[str] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)
    copies: dict[str, str] = field(default_factory=dict)
    """Destination path in the image -> source path in the build context (files only)."""
    user: str = ""
    workdir: str = "/"
    runs: list[str] = field(default_factory=list)
    """RUN commands of this stage and the stages it builds on (shell form, joined lines)."""
    args: dict[str, str] = field(default_factory=dict)
    """ARG defaults declared in this stage (or inherited)."""

    @property
    def argv(self) -> list[str]:
        return self.entrypoint + self.cmd


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        result.append((keyword.upper(), args.strip()))
    return result


def _exec_form(args: str) -> list[str]:
    return json.loads(args) if args.startswith("[") else ["/bin/sh", "-c", args]


def _env(args: str) -> dict[str, str]:
    if "=" not in args.split(" ")[0]:
        key, _, value = args.partition(" ")
        return {key: value.strip()}
    return dict(item.split("=", 1) for item in shlex.split(args))


def parse(path: Path) -> dict[str, Stage]:
    """Stages by name (the last, unnamed stage is also under "")."""
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for keyword, args in instructions(path.read_text()):
        if keyword == "FROM":
            match = re.match(r"(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", args, re.IGNORECASE)
            assert match, args
            base, name = match[1], (match[2] or "")
            parent = stages.get(base)
            current = Stage(name=name, base=base)
            if parent is not None:
                current.env = dict(parent.env)
                current.cmd, current.entrypoint = list(parent.cmd), list(parent.entrypoint)
                current.healthcheck = list(parent.healthcheck)
                current.copies = dict(parent.copies)
                current.user = parent.user
                current.workdir = parent.workdir
                current.runs = list(parent.runs)
                current.args = dict(parent.args)
            stages[name] = current
        elif current is None:
            continue
        elif keyword == "ENV":
            current.env.update(_env(args))
        elif keyword == "CMD":
            current.cmd = _exec_form(args)
        elif keyword == "ENTRYPOINT":
            current.entrypoint = _exec_form(args)
        elif keyword == "USER":
            current.user = args
        elif keyword == "WORKDIR":
            current.workdir = args if args.startswith("/") else f"{current.workdir}/{args}"
        elif keyword == "RUN":
            current.runs.append(args)
        elif keyword == "ARG":
            name, _, value = args.partition("=")
            current.args[name] = value
        elif keyword == "HEALTHCHECK":
            check = args.split("CMD", 1)[-1].strip()
            current.healthcheck = [] if args == "NONE" else _exec_form(check)
        elif keyword == "COPY" and "--from" not in args:
            parts = [p for p in args.split() if not p.startswith("--")]
            *sources, dest = parts
            if len(sources) == 1 and not dest.endswith("/"):
                current.copies[dest] = sources[0]
                if not dest.startswith("/"):
                    current.copies[f"{current.workdir.rstrip('/')}/{dest}"] = sources[0]
    return stages


def local_argv(stage: Stage, argv: list[str]) -> list[str]:
    """The stage's command as it runs here: venv executables, COPYed files from the repo."""
    result = []
    for index, arg in enumerate(argv):
        if arg in stage.copies:
            result.append(str(ROOT / stage.copies[arg]))
        elif index == 0 and arg in ("python", "python3"):
            result.append(sys.executable)
        elif index == 0 and (VENV_BIN / arg).exists():
            result.append(str(VENV_BIN / arg))
        else:
            result.append(arg)
    return result


def with_port(argv: list[str], host: str, port: int) -> list[str]:
    """Replace the values of `--host` and `--port` (servers bind 0.0.0.0 in images)."""
    result = list(argv)
    for flag, value in (("--host", host), ("--port", str(port))):
        if flag in result:
            result[result.index(flag) + 1] = value
    return result
