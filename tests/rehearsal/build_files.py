"""What Cloud Build builds: each image's Dockerfile, target and context, read from cloudbuild.yaml,
and what a Docker build context holds once `.dockerignore` has filtered it."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from tests.containers.dockerfiles import instructions

ROOT = Path(__file__).resolve().parents[2]
BUILD_FILE = ROOT / "cloudbuild.yaml"
REGISTRY_PREFIX = "${_REGION}-docker.pkg.dev/${PROJECT_ID}/voice-connector/"


@dataclass(frozen=True)
class ImageBuild:
    step: str
    image: str
    tag: str
    dockerfile: Path
    target: str
    context: Path


def _flag(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


@cache
def build_config() -> dict[str, Any]:
    return yaml.safe_load(BUILD_FILE.read_text())


def image_builds() -> dict[str, ImageBuild]:
    """Image name → how Cloud Build builds it (`docker build` steps only)."""
    builds = {}
    for step in build_config()["steps"]:
        args = [str(a) for a in step.get("args", [])]
        if not args or args[0] != "build":
            continue
        reference = _flag(args, "-t") or ""
        image, _, tag = reference.removeprefix(REGISTRY_PREFIX).partition(":")
        context = ROOT / args[-1]
        dockerfile = _flag(args, "-f")
        builds[image] = ImageBuild(
            step=step["id"],
            image=image,
            tag=tag,
            dockerfile=(ROOT / dockerfile) if dockerfile else context / "Dockerfile",
            target=_flag(args, "--target") or "",
            context=context,
        )
    return builds


class DockerIgnore:
    """Docker's `.dockerignore` rules: the last matching pattern wins, `!` re-includes."""

    def __init__(self, context: Path) -> None:
        path = context / ".dockerignore"
        lines = path.read_text().splitlines() if path.exists() else []
        self.rules = [
            (line.startswith("!"), line.lstrip("!").strip().strip("/"))
            for line in (raw.strip() for raw in lines)
            if line and not line.startswith("#")
        ]

    @staticmethod
    def _matches(pattern: str, path: str) -> bool:
        """`pattern` matches `path` or a directory containing it (`**` spans directories)."""
        regex = fnmatch.translate(pattern).replace(".*", "[^/]*").replace("[^/]*[^/]*", ".*")
        regex = regex.replace("[^/]*/", "(?:.*/)?") if pattern.startswith("**/") else regex
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        return any(re.match(regex, prefix) for prefix in prefixes)

    def excluded(self, path: str) -> bool:
        verdict = False
        for include, pattern in self.rules:
            if self._matches(pattern, path):
                verdict = not include
        return verdict


def copy_sources(dockerfile: Path) -> list[tuple[str, str]]:
    """(stage, source) of every COPY/ADD that reads the build context (not `--from=`)."""
    found = []
    stage = ""
    for keyword, rest in instructions(dockerfile.read_text()):
        if keyword == "FROM":
            match = re.search(r"\s+AS\s+(\S+)", rest, re.IGNORECASE)
            stage = match[1] if match else ""
        elif keyword in ("COPY", "ADD") and "--from" not in rest:
            *sources, _dest = [p for p in rest.split() if not p.startswith("--")]
            found += [(stage, source) for source in sources]
    return found
