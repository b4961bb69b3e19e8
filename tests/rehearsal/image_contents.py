"""Which Python distributions an image's venv holds, read from its Dockerfile's own pip commands.

The rehearsal cannot build images (no registry access for base images), so it runs each image's
command in the project venv, which holds every package of every image. To run it with what the
image has and no more, the distributions the image never installs are made unimportable in the
process (`blocker/sitecustomize.py`). The list comes from the same source the build uses: the
stage's `pip install` / `pip uninstall` lines, the pyprojects and extras they name, the requirement
files they read, and the dependency metadata of what is installed here.
"""

from __future__ import annotations

import importlib.metadata as metadata
import re
import shlex
import tomllib
from functools import cache
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.containers.dockerfiles import parse
from tests.rehearsal.build_files import ROOT, ImageBuild

BLOCKER_DIR = Path(__file__).resolve().parent / "blocker"
BLOCKED_ENV = "REHEARSAL_IMAGE_BLOCKED"
BUILT_WHEELS = {"$wheel": "llama-cpp-python"}
"""Arguments naming a wheel built in the stage (scripts/llama-wheel.sh) → its distribution."""


def _venv_stage(build: ImageBuild) -> str | None:
    """The build stage whose /opt/venv the target copies (None: the image has no venv)."""
    text = build.dockerfile.read_text()
    stages = parse(build.dockerfile)
    name = build.target
    while name in stages:
        section = re.search(
            rf"FROM\s+\S+\s+AS\s+{re.escape(name)}\s*\n(.*?)(?=\nFROM\s|\Z)", text, re.S | re.I
        )
        body = section[1] if section else ""
        found = re.search(r"COPY\s+--from=(\S+)\s+/opt/venv\s", body)
        if found:
            return found[1]
        name = stages[name].base
    return None


def _project(path: str) -> tuple[str, list[str], list[str]]:
    """(name, dependencies, extras) of a local project argument such as `./pkg[extra]`."""
    match = re.match(r"^(.*?)(?:\[(.*)\])?$", path.strip("\"'"))
    assert match is not None
    directory, extras = ROOT / match[1], [e for e in (match[2] or "").split(",") if e]
    project = tomllib.loads((directory / "pyproject.toml").read_text())["project"]
    deps = list(project.get("dependencies", []))
    for extra in extras:
        deps += project.get("optional-dependencies", {})[extra]
    return project["name"], deps, extras


def _pip_commands(run: str, args: dict[str, str]) -> list[list[str]]:
    """Each `&&`-separated command of a RUN line, ARG values substituted, as argv."""
    for name, value in args.items():
        run = run.replace(f'"${name}"', value).replace(f"${name}", value)
    return [shlex.split(part.strip(), posix=True) for part in run.split("&&")]


def requirements(build: ImageBuild) -> tuple[set[str], set[str], set[str]]:
    """(requirements the stage installs, those installed `--no-deps`, names uninstalled)."""
    stage_name = _venv_stage(build)
    if stage_name is None:
        return set(), set(), set()
    stage = parse(build.dockerfile)[stage_name]
    wanted: set[str] = set()
    alone: set[str] = set()
    removed: set[str] = set()
    for run in stage.runs:
        for argv in _pip_commands(run, stage.args):
            if argv[:2] == ["pip", "install"]:
                no_deps = "--no-deps" in argv
                items = [a for a in argv[2:] if a != "--no-deps"]
                for index, item in enumerate(items):
                    if item == "-r":
                        target = items[index + 1]
                        wanted.update(_requirement_file(stage, target))
                    elif index and items[index - 1] == "-r":
                        continue
                    elif item in BUILT_WHEELS:
                        wanted.add(BUILT_WHEELS[item])
                    elif item.startswith(".") or item.startswith('"./'):
                        name, deps, _ = _project(item)
                        wanted.add(name)
                        if no_deps:
                            alone.add(canonicalize_name(name))
                        else:
                            wanted.update(deps)
                    elif not item.startswith("-"):
                        wanted.add(item)
            elif argv[:3] == ["pip", "uninstall", "-y"]:
                removed.update(canonicalize_name(n) for n in argv[3:])
    return wanted, alone, removed


def _requirement_file(stage: object, path: str) -> list[str]:
    """A requirements file COPYed into the image, read from its source in the repository."""
    copies: dict[str, str] = getattr(stage, "copies", {})
    source = copies.get(path)
    assert source is not None, f"pip -r {path}: not a COPYed file"
    lines = (ROOT / source).read_text().splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


def _closure(requirements: set[str], alone: set[str]) -> set[str]:
    """Every distribution installing `requirements` pulls in (markers evaluated for here);
    `alone` were installed without their dependencies."""
    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    base_env = default_environment()
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            seen.add(name)  # in the image, not here: nothing of it can be imported here anyway
            continue
        seen.add(name)
        if name in alone:
            continue
        extras = set(requirement.extras) | {""}
        for text in dist.requires or []:
            child = Requirement(text)
            if child.marker is not None and not any(
                child.marker.evaluate({**base_env, "extra": extra}) for extra in extras
            ):
                continue
            todo.append(child)
    return seen


@cache
def installed(build: ImageBuild) -> frozenset[str]:
    """Normalized names of the distributions in the image's venv."""
    wanted, alone, removed = requirements(build)
    return frozenset(_closure(wanted, alone) - removed)


@cache
def blocked_modules(build: ImageBuild) -> tuple[str, ...]:
    """Top-level modules importable here that the image does not have."""
    have = installed(build)
    if not have:
        return ()
    owners = metadata.packages_distributions()
    blocked = {
        module
        for module, dists in owners.items()
        if not module.startswith("_") and not {canonicalize_name(d) for d in dists} & have
    }
    return tuple(sorted(blocked))


def blocker_env(build: ImageBuild) -> dict[str, str]:
    """Env that makes a Python process here see only the image's distributions."""
    modules = blocked_modules(build)
    if not modules:
        return {}
    return {"PYTHONPATH": str(BLOCKER_DIR), BLOCKED_ENV: ",".join(modules)}
