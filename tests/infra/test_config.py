"""Stack config validation: bad values fail with the key's name, before any resource exists."""

from __future__ import annotations

import runpy
from pathlib import Path

import pulumi
import pytest
from pulumi.runtime import settings as runtime_settings

from tests.infra.harness import LOOP, RecordingMocks, set_stack_config
from voice_infra.config import (
    ConfigError,
    StackConfig,
    check_deployable,
    parse_rtp_range,
    parse_stack_config,
)

INFRA_DIR = Path(__file__).resolve().parents[2] / "infra"
BASE = {"project": "my-voice-project", "imageTag": "3f9c2ab"}


def problems(raw: dict[str, str], stack: str = "dev") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(raw, stack)
    return caught.value.problems


def test_defaults_fill_everything_but_the_project_and_image_tag() -> None:
    cfg = parse_stack_config({"project": "my-voice-project", "imageTag": "3f9c2ab"}, "dev")
    assert cfg.region == "us-central1" and cfg.zone == "us-central1-a"
    assert cfg.gpu_type == "nvidia-l4" and cfg.gpu_machine_type == "g2-standard-8"
    assert cfg.rtp_port_range == (35000, 35999)
    assert cfg.cloud_run_min_instances == 0
    assert cfg.image("media-node") == (
        "us-central1-docker.pkg.dev/my-voice-project/voice-connector/media-node:3f9c2ab"
    )


def test_missing_project_names_the_key() -> None:
    assert problems({}) == ["voice-connector:project: required (the GCP project id to deploy into)"]


def test_unknown_gpu_type_lists_the_choices() -> None:
    (problem,) = problems({"project": "my-voice-project", "gpuType": "nvidia-a100"})
    assert problem.startswith("voice-connector:gpuType: unknown GPU type 'nvidia-a100'")
    assert "nvidia-l4" in problem and "nvidia-tesla-t4" in problem


def test_t4_selects_an_n1_machine() -> None:
    cfg = parse_stack_config({**BASE, "gpuType": "nvidia-tesla-t4"}, "dev")
    assert cfg.gpu_machine_type == "n1-standard-8"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("35000", "is not LOW-HIGH"),
        ("35999-35000", "1024 <= LOW <= HIGH <= 65535"),
        ("100-2000", "1024 <= LOW <= HIGH <= 65535"),
        ("5000-6000", "overlaps 5060 (SIP (OpenSIPS))"),
        ("8000-8100", "overlaps 8080"),
        ("50000-51000", "overlaps 50060"),
        ("31000-33000", "NodePort range 30000-32767"),
    ],
)
def test_bad_rtp_range_is_refused_with_the_reason(value: str, reason: str) -> None:
    (problem,) = problems({"project": "my-voice-project", "rtpPortRange": value})
    assert problem.startswith("voice-connector:rtpPortRange:")
    assert reason in problem


def test_rtp_range_parses() -> None:
    assert parse_rtp_range(" 40000-40999 ") == (40000, 40999)


def test_prod_needs_a_warm_cloud_run_instance() -> None:
    (problem,) = problems({"project": "my-voice-project", "cloudRunMinInstances": "0"}, "prod")
    assert problem.startswith("voice-connector:cloudRunMinInstances: must be >= 1")
    assert parse_stack_config(BASE, "prod").cloud_run_min_instances == 1


def test_every_problem_is_reported_at_once() -> None:
    found = problems(
        {
            "gpuType": "h100",
            "rtpPortRange": "x",
            "mediaNodeCount": "zero",
            "clusterVersion": "latest",
            "colour": "blue",
            "streamTarget": "gke",
        }
    )
    keys = [p.split(":")[1] for p in found]
    assert keys == [
        "colour",
        "project",
        "gpuType",
        "rtpPortRange",
        "mediaNodeCount",
        "clusterVersion",
        "streamTarget",
    ]


def test_optional_values_are_checked_when_given() -> None:
    found = problems(
        {
            "project": "my-voice-project",
            "twilioPhoneNumber": "555-1234",
            "notificationEmail": "ops",
            "zone": "europe-west4-a",
        }
    )
    assert [p.split(":")[1] for p in found] == ["zone", "twilioPhoneNumber", "notificationEmail"]


def test_cluster_version_minor_is_what_validators_use() -> None:
    cfg = parse_stack_config(
        {"project": "my-voice-project", "clusterVersion": "1.31.2-gke.1200000"}, "dev"
    )
    assert cfg.kubernetes_minor == "1.31"


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_committed_stack_files_are_valid(stack: str) -> None:
    from voice_infra.ops import stack_config

    cfg = stack_config(stack, INFRA_DIR)
    assert isinstance(cfg, StackConfig) and cfg.stack == stack


def test_main_fails_before_declaring_any_resource() -> None:
    """`infra/__main__.py` under mocks with a bad gpuType: error naming it, zero resources."""
    mocks = RecordingMocks()
    set_stack_config({"project": "vc-test-project", "gpuType": "nvidia-v100"})
    runtime_settings.ROOT.set(None)
    pulumi.runtime.set_mocks(mocks, project="voice-connector", stack="dev", preview=False)
    assert LOOP is not None
    with pytest.raises(ConfigError, match="voice-connector:gpuType: unknown GPU type"):
        runpy.run_path(str(INFRA_DIR / "__main__.py"), run_name="__main__")
    assert mocks.resources == []


def test_missing_secrets_name_the_config_keys() -> None:
    set_stack_config({"project": "vc-test-project"})
    from voice_infra.config import load_secrets

    with pytest.raises(ConfigError) as caught:
        load_secrets()
    assert [p.split(":")[1] for p in caught.value.problems] == [
        "twilioAuthToken",
        "twilioAccountSid",
        "outboundCallToken",
    ]


def test_missing_ini_file_names_the_config_key(tmp_path: Path) -> None:
    cfg = parse_stack_config({**BASE, "configFile": "nope.ini"}, "dev")
    with pytest.raises(ConfigError, match=r"configFile: .*nope\.ini does not exist"):
        cfg.read_config_file(tmp_path)
    (tmp_path / "nope.ini").write_text("[general]\n")
    assert cfg.read_config_file(tmp_path) == "[general]\n"


@pytest.mark.parametrize("tag", ["latest", "stable", "main"])
def test_moving_image_tags_are_refused(tag: str) -> None:
    (problem,) = problems({**BASE, "imageTag": tag})
    assert problem.startswith(f"voice-connector:imageTag: '{tag}' is a moving tag")


def test_full_phase_needs_the_pushed_image_tag() -> None:
    cfg = parse_stack_config({"project": "my-voice-project"}, "dev")
    with pytest.raises(ConfigError) as caught:
        check_deployable(cfg)
    (problem,) = caught.value.problems
    assert "pulumi stack output imageTag" in problem and "phase=bootstrap" in problem
    bootstrap = parse_stack_config({"project": "my-voice-project", "phase": "bootstrap"}, "dev")
    check_deployable(bootstrap)  # no image is named before the first build


def test_bootstrap_is_refused_once_the_stack_has_images() -> None:
    """A bootstrap run on a deployed stack would plan to delete every workload."""
    (problem,) = problems({**BASE, "phase": "bootstrap"})
    assert problem.startswith("voice-connector:phase: 'bootstrap' with an imageTag")
