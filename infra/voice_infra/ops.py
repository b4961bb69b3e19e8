"""Ops CLI: submit a Cloud Build of cloudbuild.yaml, list and roll back Cloud Run revisions.

    python -m voice_infra.ops --stack dev build submit [--revision SHA]
    python -m voice_infra.ops --stack prod run revisions
    python -m voice_infra.ops --stack prod run rollback vc-prod-media-node-twilio-00042-abc
    python -m voice_infra.ops --stack dev preflight      # GPU quotas, before the full phase

Project and region come from `infra/Pulumi.<stack>.yaml`, so no Pulumi CLI is needed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml
from google.cloud import run_v2
from google.cloud.devtools import cloudbuild_v1

from voice_infra import preflight
from voice_infra.cloudbuild import state_bucket
from voice_infra.cloudrun import service_name
from voice_infra.config import NAMESPACE, StackConfig, parse_stack_config

INFRA_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = INFRA_DIR.parent
BUILD_FILE = REPO_ROOT / "cloudbuild.yaml"


@dataclass
class Clients:
    """Google API clients, created lazily so `--help` and tests need no credentials."""

    build: Callable[[], cloudbuild_v1.CloudBuildClient] = cloudbuild_v1.CloudBuildClient
    services: Callable[[], run_v2.ServicesClient] = run_v2.ServicesClient
    revisions: Callable[[], run_v2.RevisionsClient] = run_v2.RevisionsClient


def stack_config(stack: str, infra_dir: Path = INFRA_DIR) -> StackConfig:
    """The stack's validated settings, read from its Pulumi.<stack>.yaml (secrets not needed)."""
    path = infra_dir / f"Pulumi.{stack}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    prefix = f"{NAMESPACE}:"
    raw = {
        key[len(prefix) :]: str(value)
        for key, value in (data.get("config") or {}).items()
        if key.startswith(prefix) and not isinstance(value, dict)  # skip `secure:` values
    }
    return parse_stack_config(raw, stack)


def build_from_file(path: Path) -> cloudbuild_v1.Build:
    """cloudbuild.yaml is the JSON form of the Build message: parse it as such."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    return cloudbuild_v1.Build.from_json(json.dumps(document))


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=REPO_ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()


def submit_request(
    cfg: StackConfig, build: cloudbuild_v1.Build, git_url: str, revision: str
) -> cloudbuild_v1.CreateBuildRequest:
    """The build of `revision` (fetched by Cloud Build from `git_url`) for `cfg.stack`."""
    build.source = cloudbuild_v1.Source(
        git_source=cloudbuild_v1.GitSource(url=git_url, revision=revision)
    )
    build.substitutions.update(
        {
            "_STACK": cfg.stack,
            "_REGION": cfg.region,
            "_PULUMI_BACKEND_URL": state_bucket(cfg),
            "_IMAGE_TAG": revision[:12],
        }
    )
    build.service_account = (
        f"projects/{cfg.project}/serviceAccounts/"
        f"{cfg.prefix}-cloudbuild@{cfg.project}.iam.gserviceaccount.com"
    )
    return cloudbuild_v1.CreateBuildRequest(project_id=cfg.project, build=build)


def service_path(cfg: StackConfig) -> str:
    return run_v2.ServicesClient.service_path(cfg.project, cfg.region, service_name(cfg))


def rollback_service(service: run_v2.Service, revision: str) -> run_v2.UpdateServiceRequest:
    """All traffic to one revision; the rest of the service is sent back unchanged."""
    short = revision.rsplit("/", 1)[-1]
    service.traffic = [
        run_v2.TrafficTarget(
            type_=run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION,
            revision=short,
            percent=100,
        )
    ]
    return run_v2.UpdateServiceRequest(service=service)


def cmd_build_submit(args: argparse.Namespace, clients: Clients, out: TextIO) -> int:
    cfg = stack_config(args.stack)
    revision = args.revision or git("rev-parse", "HEAD")
    git_url = args.git_url or git("remote", "get-url", "origin")
    request = submit_request(cfg, build_from_file(Path(args.build_file)), git_url, revision)
    operation = clients.build().create_build(request=request)
    metadata: Any = operation.metadata
    build_id = metadata.build.id if metadata is not None else "?"
    print(f"submitted build {build_id} of {revision[:12]} for stack {cfg.stack}", file=out)
    if args.wait:
        result = operation.result()
        print(f"build {result.id}: {result.status.name}", file=out)
        return 0 if result.status == cloudbuild_v1.Build.Status.SUCCESS else 1
    return 0


def cmd_run_revisions(args: argparse.Namespace, clients: Clients, out: TextIO) -> int:
    cfg = stack_config(args.stack)
    parent = service_path(cfg)
    service = clients.services().get_service(request=run_v2.GetServiceRequest(name=parent))
    percent = {status.revision: status.percent for status in service.traffic_statuses}
    revisions = clients.revisions().list_revisions(
        request=run_v2.ListRevisionsRequest(parent=parent)
    )
    print(f"{'REVISION':<48} {'TRAFFIC':>7}  CREATED", file=out)
    for revision in revisions:
        short = revision.name.rsplit("/", 1)[-1]
        created = revision.create_time.isoformat() if revision.create_time else "-"
        print(f"{short:<48} {percent.get(short, 0):>6}%  {created}", file=out)
    return 0


def cmd_run_rollback(args: argparse.Namespace, clients: Clients, out: TextIO) -> int:
    cfg = stack_config(args.stack)
    services = clients.services()
    service = services.get_service(request=run_v2.GetServiceRequest(name=service_path(cfg)))
    operation = services.update_service(request=rollback_service(service, args.revision))
    updated = operation.result()
    print(
        f"{service_name(cfg)}: 100% → {args.revision} (generation {updated.generation})", file=out
    )
    return 0


def cmd_preflight(args: argparse.Namespace, clients: Clients, out: TextIO) -> int:
    """Exit 1 with one line per quota too small for the stack (gcloud must be logged in)."""
    cfg = stack_config(args.stack)
    problems = preflight.check(cfg)
    for problem in problems:
        print(problem, file=out)
    if not problems:
        print(f"{cfg.project}: quotas allow {preflight.gpus_needed(cfg)} {cfg.gpu_type}", file=out)
    return 1 if problems else 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="voice_infra.ops", description=__doc__.split("\n")[0])
    top.add_argument("--stack", default="dev", help="Pulumi stack (reads Pulumi.<stack>.yaml)")
    groups = top.add_subparsers(dest="group", required=True)

    build = groups.add_parser("build", help="Cloud Build").add_subparsers(
        dest="action", required=True
    )
    submit = build.add_parser("submit", help="build, test and deploy a git revision")
    submit.add_argument("--revision", help="git commit (default: HEAD)")
    submit.add_argument("--git-url", help="repository URL Cloud Build clones (default: origin)")
    submit.add_argument("--build-file", default=str(BUILD_FILE))
    submit.add_argument("--wait", action="store_true", help="wait for the build's result")
    submit.set_defaults(handler=cmd_build_submit)

    run = groups.add_parser("run", help="Cloud Run (Twilio media node)").add_subparsers(
        dest="action", required=True
    )
    run.add_parser("revisions", help="list revisions and their traffic").set_defaults(
        handler=cmd_run_revisions
    )
    rollback = run.add_parser("rollback", help="send 100%% of traffic to REVISION")
    rollback.add_argument("revision")
    rollback.set_defaults(handler=cmd_run_rollback)
    groups.add_parser("preflight", help="check GPU quotas for the stack").set_defaults(
        handler=cmd_preflight
    )
    return top


def main(
    argv: Sequence[str] | None = None, clients: Clients | None = None, out: TextIO = sys.stdout
) -> int:
    args = parser().parse_args(argv)
    return int(args.handler(args, clients or Clients(), out))


if __name__ == "__main__":
    raise SystemExit(main())
