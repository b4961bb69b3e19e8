"""Ops CLI against real Google client objects whose RPC methods are replaced by recorders."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import run_v2
from google.cloud.devtools import cloudbuild_v1
from google.protobuf import timestamp_pb2

from voice_infra import ops

SERVICE = "projects/voice-connector-prod/locations/us-central1/services/vc-prod-media-node-twilio"


def client(cls: type) -> Any:
    return cls(credentials=AnonymousCredentials())


def run_cli(argv: list[str], clients: ops.Clients) -> tuple[int, str]:
    out = io.StringIO()
    return ops.main(argv, clients, out), out.getvalue()


def test_build_submit_sends_cloudbuild_yaml_for_the_stack() -> None:
    build_client = client(cloudbuild_v1.CloudBuildClient)
    operation = mock.Mock(
        metadata=cloudbuild_v1.BuildOperationMetadata(build=cloudbuild_v1.Build(id="b-42"))
    )
    with mock.patch.object(build_client, "create_build", return_value=operation) as create:
        code, out = run_cli(
            [
                "--stack",
                "staging",
                "build",
                "submit",
                "--revision",
                "0123456789abcdef0123",
                "--git-url",
                "https://github.com/example-org/voice-connector.git",
            ],
            ops.Clients(build=lambda: build_client),
        )
    assert code == 0 and "submitted build b-42 of 0123456789ab for stack staging" in out
    expected = ops.build_from_file(ops.BUILD_FILE)
    expected.source = cloudbuild_v1.Source(
        git_source=cloudbuild_v1.GitSource(
            url="https://github.com/example-org/voice-connector.git",
            revision="0123456789abcdef0123",
        )
    )
    expected.substitutions.update(
        {
            "_STACK": "staging",
            "_REGION": "us-central1",
            "_PULUMI_BACKEND_URL": "gs://voice-connector-staging-pulumi-state",
            "_IMAGE_TAG": "0123456789ab",
        }
    )
    expected.service_account = (
        "projects/voice-connector-staging/serviceAccounts/"
        "vc-staging-cloudbuild@voice-connector-staging.iam.gserviceaccount.com"
    )
    create.assert_called_once_with(
        request=cloudbuild_v1.CreateBuildRequest(
            project_id="voice-connector-staging", build=expected
        )
    )
    sent = create.call_args.kwargs["request"].build
    assert [step.id for step in sent.steps][:1] == ["test"]
    assert sent.steps[-1].id == "deploy"


def test_build_submit_wait_reports_failure() -> None:
    build_client = client(cloudbuild_v1.CloudBuildClient)
    failed = cloudbuild_v1.Build(id="b-7", status=cloudbuild_v1.Build.Status.FAILURE)
    operation = mock.Mock(metadata=None)
    operation.result.return_value = failed
    with mock.patch.object(build_client, "create_build", return_value=operation):
        code, out = run_cli(
            ["build", "submit", "--revision", "abc", "--git-url", "https://x/y.git", "--wait"],
            ops.Clients(build=lambda: build_client),
        )
    assert code == 1 and "build b-7: FAILURE" in out


def stamp(seconds: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds)


def test_run_revisions_lists_revisions_with_traffic() -> None:
    services = client(run_v2.ServicesClient)
    revisions = client(run_v2.RevisionsClient)
    service = run_v2.Service(
        name=SERVICE,
        traffic_statuses=[
            run_v2.TrafficTargetStatus(revision="vc-prod-media-node-twilio-00002-b", percent=100)
        ],
    )
    listed = [
        run_v2.Revision(
            name=f"{SERVICE}/revisions/vc-prod-media-node-twilio-00002-b",
            create_time=stamp(1_700_000_100),
        ),
        run_v2.Revision(
            name=f"{SERVICE}/revisions/vc-prod-media-node-twilio-00001-a",
            create_time=stamp(1_700_000_000),
        ),
    ]
    with (
        mock.patch.object(services, "get_service", return_value=service) as get,
        mock.patch.object(revisions, "list_revisions", return_value=iter(listed)) as list_,
    ):
        code, out = run_cli(
            ["--stack", "prod", "run", "revisions"],
            ops.Clients(services=lambda: services, revisions=lambda: revisions),
        )
    assert code == 0
    get.assert_called_once_with(request=run_v2.GetServiceRequest(name=SERVICE))
    list_.assert_called_once_with(request=run_v2.ListRevisionsRequest(parent=SERVICE))
    lines = out.splitlines()
    assert lines[1].split()[:2] == ["vc-prod-media-node-twilio-00002-b", "100%"]
    assert lines[2].split()[:2] == ["vc-prod-media-node-twilio-00001-a", "0%"]
    assert datetime.fromtimestamp(1_700_000_100, UTC).isoformat()[:19] in lines[1]


def test_run_rollback_sends_all_traffic_to_the_revision() -> None:
    services = client(run_v2.ServicesClient)
    current = run_v2.Service(
        name=SERVICE,
        template=run_v2.RevisionTemplate(timeout={"seconds": 3600}),
        traffic=[
            run_v2.TrafficTarget(
                type_=run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST,
                percent=100,
            )
        ],
    )
    operation = mock.Mock()
    operation.result.return_value = run_v2.Service(name=SERVICE, generation=9)
    with (
        mock.patch.object(services, "get_service", return_value=run_v2.Service(current)),
        mock.patch.object(services, "update_service", return_value=operation) as update,
    ):
        code, out = run_cli(
            ["--stack", "prod", "run", "rollback", "vc-prod-media-node-twilio-00001-a"],
            ops.Clients(services=lambda: services),
        )
    assert code == 0 and "generation 9" in out
    expected = run_v2.Service(current)
    expected.traffic = [
        run_v2.TrafficTarget(
            type_=run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION,
            revision="vc-prod-media-node-twilio-00001-a",
            percent=100,
        )
    ]
    update.assert_called_once_with(request=run_v2.UpdateServiceRequest(service=expected))
    assert update.call_args.kwargs["request"].service.template.timeout.seconds == 3600


def test_rollback_accepts_a_full_revision_name() -> None:
    request = ops.rollback_service(run_v2.Service(name=SERVICE), f"{SERVICE}/revisions/rev-1")
    assert [t.revision for t in request.service.traffic] == ["rev-1"]


def test_stack_config_ignores_secure_values(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.dev.yaml").write_text(
        "config:\n"
        "  voice-connector:project: my-voice-project\n"
        "  voice-connector:twilioAuthToken:\n"
        "    secure: AAABAExampleCipherText\n"
    )
    assert ops.stack_config("dev", tmp_path).project == "my-voice-project"


def test_module_entry_point_prints_help() -> None:
    with pytest.raises(SystemExit) as done:
        ops.main(["--help"])
    assert done.value.code == 0


# --- preflight ---------------------------------------------------------------------------------


def test_preflight_names_the_gpu_quotas_a_new_project_lacks() -> None:
    from voice_infra import preflight
    from voice_infra.config import parse_stack_config

    cfg = parse_stack_config({"project": "my-voice-project", "gpuType": "nvidia-l4"}, "prod")
    fresh = {
        ("compute", "project-info"): {"quotas": [{"metric": "GPUS_ALL_REGIONS", "limit": 0.0}]},
        ("compute", "regions"): {"quotas": [{"metric": "NVIDIA_L4_GPUS", "limit": 8, "usage": 4}]},
    }
    problems = preflight.check(cfg, lambda args: fresh[tuple(args[:2])])
    assert preflight.gpus_needed(cfg) == 6  # Whisper and Ollama, 3 replicas at most each
    assert [p.split(" (")[0] for p in problems] == [
        "quota GPUS_ALL_REGIONS",
        "quota NVIDIA_L4_GPUS",
    ]
    granted = {
        ("compute", "project-info"): {"quotas": [{"metric": "GPUS_ALL_REGIONS", "limit": 8}]},
        ("compute", "regions"): {"quotas": [{"metric": "NVIDIA_L4_GPUS", "limit": 8}]},
    }
    assert preflight.check(cfg, lambda args: granted[tuple(args[:2])]) == []
