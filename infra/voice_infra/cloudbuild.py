"""Cloud Build triggers: each stack deploys itself from its own git event."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from voice_infra.config import StackConfig
from voice_infra.identity import ServiceAccounts

BUILD_FILE = "cloudbuild.yaml"


@dataclass(frozen=True)
class GitEvent:
    """What starts a stack's deployment: a push to a branch, or a tag (regexes, RE2)."""

    branch: str | None = None
    tag: str | None = None


EVENTS = {
    "dev": GitEvent(branch="^main$"),
    "staging": GitEvent(branch="^release/.+$"),
    "prod": GitEvent(tag=r"^v\d+\.\d+\.\d+$"),
}


def state_bucket(cfg: StackConfig) -> str:
    """Pulumi state backend the build logs in to (created once by hand, see docs)."""
    return f"gs://{cfg.project}-pulumi-state"


class BuildTriggers(pulumi.ComponentResource):
    """Test, build, push and `pulumi up` on the stack's event, as the deployer service account."""

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        accounts: ServiceAccounts,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("voice-connector:infra:BuildTriggers", name, None, opts)
        self.trigger: gcp.cloudbuild.Trigger | None = None
        event = EVENTS.get(cfg.stack)
        if event is None or cfg.github_owner is None:
            pulumi.log.warn(
                f"no Cloud Build trigger for stack '{cfg.stack}': set voice-connector:githubOwner "
                f"and use one of the stacks {', '.join(EVENTS)}"
            )
            self.register_outputs({})
            return
        self.trigger = gcp.cloudbuild.Trigger(
            f"{cfg.prefix}-deploy",
            project=cfg.project,
            location="global",
            name=f"{cfg.prefix}-deploy",
            description=f"test, build and deploy the voice connector to stack {cfg.stack}",
            filename=BUILD_FILE,
            github=gcp.cloudbuild.TriggerGithubArgs(
                owner=cfg.github_owner,
                name=cfg.github_repo,
                push=gcp.cloudbuild.TriggerGithubPushArgs(branch=event.branch, tag=event.tag),
            ),
            substitutions={
                "_STACK": cfg.stack,
                "_REGION": cfg.region,
                "_PULUMI_BACKEND_URL": state_bucket(cfg),
            },
            service_account=accounts.accounts["cloudbuild"].id,
            include_build_logs="INCLUDE_BUILD_LOGS_WITH_STATUS",
            opts=pulumi.ResourceOptions(parent=self, depends_on=accounts.project_bindings),
        )
        self.register_outputs({"trigger": self.trigger.trigger_id})
