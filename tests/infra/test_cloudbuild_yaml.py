"""cloudbuild.yaml: test first, build and push every image, then `pulumi up` the stack."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.cloud.devtools import cloudbuild_v1

from voice_infra.cloudbuild import EVENTS
from voice_infra.registry import IMAGES

BUILD_FILE = Path(__file__).resolve().parents[2] / "cloudbuild.yaml"
REPO = "${_REGION}-docker.pkg.dev/${PROJECT_ID}/voice-connector"


@pytest.fixture(scope="module")
def build() -> dict[str, Any]:
    return yaml.safe_load(BUILD_FILE.read_text())


def steps(build: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["id"]: step for step in build["steps"]}


def test_is_a_valid_build_message(build: dict[str, Any]) -> None:
    """Cloud Build reads the file as the JSON form of `Build`: unknown fields would fail."""
    message = cloudbuild_v1.Build.from_json(json.dumps(build))
    assert len(message.steps) == len(build["steps"])
    assert message.options.dynamic_substitutions is True


def test_tests_run_first_and_gate_every_image(build: dict[str, Any]) -> None:
    by_id = steps(build)
    assert build["steps"][0]["id"] == "test"
    assert "make test" in " ".join(by_id["test"]["args"])
    for image in IMAGES:
        step = by_id[f"build-{image}"]
        assert step["waitFor"] == ["test"]
        assert f"{REPO}/{image}:${{_IMAGE_TAG}}" in step["args"]


def test_every_image_is_pushed_before_deploy_and_listed(build: dict[str, Any]) -> None:
    by_id = steps(build)
    assert set(by_id["push"]["waitFor"]) == {f"build-{image}" for image in IMAGES}
    push_script = by_id["push"]["args"][-1]
    pushed = re.search(r"for image in ([^;]+);", push_script)
    assert pushed is not None and sorted(pushed.group(1).split()) == sorted(IMAGES)
    assert sorted(build["images"]) == sorted(f"{REPO}/{image}:${{_IMAGE_TAG}}" for image in IMAGES)


def test_deploy_runs_pulumi_up_for_the_stack(build: dict[str, Any]) -> None:
    deploy = steps(build)["deploy"]
    assert deploy["waitFor"] == ["push"]
    assert deploy["name"] == "${_DEPLOY_IMAGE}"
    image = build["substitutions"]["_DEPLOY_IMAGE"]
    assert image.startswith("gcr.io/google.com/cloudsdktool/google-cloud-cli:")
    assert image.rsplit(":", 1)[1][0].isdigit(), "pin a gcloud version"
    script = deploy["args"][-1]
    # The Kubernetes provider's kubeconfig execs the plugin: the step installs and runs it first.
    assert "google-cloud-cli-gke-gcloud-auth-plugin" in script
    assert script.index("gke-gcloud-auth-plugin --version") < script.index("pulumi up")
    assert 'pulumi up --stack "${_STACK}" --yes' in script
    assert "voice-connector:imageTag=${_IMAGE_TAG}" in script
    assert "voice-connector:phase=full" in script  # the images exist now: deploy everything
    assert deploy["secretEnv"] == ["PULUMI_CONFIG_PASSPHRASE"]
    (secret,) = build["availableSecrets"]["secretManager"]
    assert secret["env"] == "PULUMI_CONFIG_PASSPHRASE"


def test_substitutions_cover_what_triggers_and_steps_use(build: dict[str, Any]) -> None:
    declared = set(build["substitutions"])
    assert {"_STACK", "_REGION", "_IMAGE_TAG", "_PULUMI_BACKEND_URL"} <= declared
    used = set(re.findall(r"\$\{(_[A-Z_]+)\}", BUILD_FILE.read_text()))
    assert used <= declared, used - declared
    assert build["substitutions"]["_STACK"] in EVENTS
