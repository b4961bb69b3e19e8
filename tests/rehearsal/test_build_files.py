"""Every image Cloud Build builds can be built from this checkout: its Dockerfile, target and
context exist, every COPY/ADD source is inside the context and survives `.dockerignore`, and
every tag names one commit (never a moving tag such as `latest`)."""

from __future__ import annotations

import re

import pytest

from tests.containers.dockerfiles import parse
from tests.rehearsal.build_files import (
    ROOT,
    DockerIgnore,
    ImageBuild,
    build_config,
    copy_sources,
    image_builds,
)
from tests.rehearsal.rendered import render_stack, rendered
from voice_infra.registry import IMAGES

BUILDS = image_builds()


def test_cloud_build_builds_exactly_the_registry_images() -> None:
    assert sorted(BUILDS) == sorted(IMAGES)


def test_every_image_a_workload_runs_is_built() -> None:
    """Pulumi names images (every optional component on); Cloud Build must produce each."""
    stack = render_stack("dev", sipEdgeTrunks='["198.51.100.0/24"]').stack
    inputs = repr([r.inputs for r in stack.resources])
    references = re.findall(r"docker\.pkg\.dev/[^/]+/voice-connector/([a-z0-9-]+):", inputs)
    used = set(references) | {c.image for c in rendered().containers.values()}
    assert "sip-edge" in used and "media-node" in used
    assert used <= set(BUILDS), used - set(BUILDS)


@pytest.mark.parametrize("build", BUILDS.values(), ids=lambda b: b.image)
def test_dockerfile_target_and_context_exist(build: ImageBuild) -> None:
    assert build.context.is_dir(), build.context
    assert build.dockerfile.is_file(), f"{build.step}: {build.dockerfile} does not exist"
    stages = parse(build.dockerfile)
    assert build.target in stages, f"{build.step}: no stage {build.target!r} in {build.dockerfile}"


@pytest.mark.parametrize("build", BUILDS.values(), ids=lambda b: b.image)
def test_every_copy_source_is_in_the_context(build: ImageBuild) -> None:
    ignore = DockerIgnore(build.context)
    for stage, source in copy_sources(build.dockerfile):
        path = (build.context / source).resolve()
        where = f"{build.dockerfile.relative_to(ROOT)} stage {stage or '-'}: COPY {source}"
        assert path.is_relative_to(build.context.resolve()), f"{where}: outside the context"
        assert path.exists(), f"{where}: missing in context {build.context.relative_to(ROOT)}"
        relative = path.relative_to(build.context.resolve()).as_posix()
        assert not ignore.excluded(relative), f"{where}: excluded by .dockerignore"


def test_dockerignore_rules_behave_like_docker() -> None:
    """The checker itself: the allow-list style of this repository's `.dockerignore`."""
    ignore = DockerIgnore(ROOT)
    assert not ignore.excluded("media-node/opensips/opensips.cfg")
    assert not ignore.excluded("cfg/voice-connector.ini")
    assert ignore.excluded("cfg/legacy-example.ini")
    assert ignore.excluded("tests/conftest.py")
    assert ignore.excluded("packages/voice_connector/voice_connector/__pycache__/x.pyc")


MOVING = re.compile(r":(latest|stable|main|master|dev)$")


def test_tags_are_immutable() -> None:
    config = build_config()
    assert config["substitutions"]["_IMAGE_TAG"] == "${SHORT_SHA}"
    for build in BUILDS.values():
        assert build.tag == "${_IMAGE_TAG}", build
    for name, value in config["substitutions"].items():
        assert not MOVING.search(str(value)), f"{name}: {value}"
    for step in config["steps"]:
        assert not MOVING.search(step["name"]), step["id"]
    for dockerfile in {b.dockerfile for b in BUILDS.values()}:
        for stage in parse(dockerfile).values():
            base = stage.base
            if "$" in base or base in parse(dockerfile):
                continue  # an ARG default (checked below) or an earlier stage
            assert ":" in base and not MOVING.search(base), f"{dockerfile}: FROM {base}"
        for stage in parse(dockerfile).values():
            for arg, value in stage.args.items():
                if arg.endswith("_IMAGE") or arg.endswith("_VERSION"):
                    assert value and not MOVING.search(value), f"{dockerfile}: ARG {arg}={value}"


def test_stack_files_pin_no_image_tag() -> None:
    """The deployed tag is the commit Cloud Build pushed, passed at deploy time."""
    for stack in ("dev", "staging", "prod"):
        text = (ROOT / "infra" / f"Pulumi.{stack}.yaml").read_text()
        assert "voice-connector:imageTag:" not in text, stack


def test_workloads_run_the_tag_the_deploy_names() -> None:
    refs = [
        c["image"]
        for m in rendered().stack.deployment.workloads.manifests  # type: ignore[union-attr]
        if m["kind"] == "Deployment"
        for c in m["spec"]["template"]["spec"]["containers"]
    ]
    assert refs and all(ref.endswith(":0123abcd") for ref in refs), refs
