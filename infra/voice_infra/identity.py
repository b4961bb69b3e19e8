"""Service accounts with least privilege, one per workload, and the bindings that scope them.

Secret access is granted per secret (never project-wide) and image pulls per repository.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from voice_infra.config import StackConfig
from voice_infra.conventions import ACCOUNT_SID, AUTH_TOKEN, CONNECTOR_CONFIG, OUTBOUND_TOKEN
from voice_infra.registry import ArtifactRegistry
from voice_infra.secrets import Secrets

NODE_ROLES = (
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/stackdriver.resourceMetadata.writer",
)
# `pulumi up` from Cloud Build manages every resource of the stack: it needs admin roles on them.
DEPLOYER_ROLES = (
    "roles/artifactregistry.writer",
    "roles/cloudbuild.builds.editor",
    "roles/cloudfunctions.admin",
    "roles/compute.networkAdmin",
    "roles/compute.securityAdmin",
    "roles/container.admin",
    "roles/iam.serviceAccountAdmin",
    "roles/iam.serviceAccountUser",
    "roles/logging.logWriter",
    "roles/monitoring.editor",
    "roles/resourcemanager.projectIamAdmin",
    "roles/run.admin",
    "roles/secretmanager.admin",
    "roles/serviceusage.serviceUsageAdmin",
    "roles/storage.admin",
)
FUNCTION_BUILD_ROLES = (
    "roles/artifactregistry.writer",  # the function's image (gcf-artifacts)
    "roles/logging.logWriter",  # build logs
    "roles/storage.objectAdmin",  # reads the source, writes build caches (as Google documents)
)
PULUMI_PASSPHRASE_SECRET = "pulumi-config-passphrase"  # created once by hand (docs)


@dataclass(frozen=True)
class Workload:
    """Who a service account is for: project roles, secrets it reads, whether it pulls images."""

    account_id: str
    display_name: str
    project_roles: tuple[str, ...]
    secrets: tuple[str, ...] = ()
    pulls_images: bool = False


def workloads(cfg: StackConfig) -> dict[str, Workload]:
    p = cfg.prefix
    return {
        # GKE media pool nodes and the Cloud Run slim node: same job, same rights.
        "media": Workload(
            f"{p}-media",
            "voice connector media node",
            NODE_ROLES,
            (AUTH_TOKEN, ACCOUNT_SID, CONNECTOR_CONFIG),
            True,
        ),
        "gpu": Workload(f"{p}-gpu", "voice connector GPU nodes", NODE_ROLES, (), True),
        "functions": Workload(
            f"{p}-functions",
            "voice connector Twilio functions",
            ("roles/logging.logWriter",),
            (AUTH_TOKEN, ACCOUNT_SID, OUTBOUND_TOKEN),
        ),
        # Builds the functions' containers from their uploaded sources (new projects' default
        # build account lacks these rights since 2024): reads the source, writes image and logs.
        "function-builder": Workload(
            f"{p}-fn-build", "voice connector function builds", FUNCTION_BUILD_ROLES
        ),
        "cloudbuild": Workload(f"{p}-cloudbuild", "voice connector deployer", DEPLOYER_ROLES),
    }


class ServiceAccounts(pulumi.ComponentResource):
    """`accounts[key]` for key in media, gpu, functions, function-builder, cloudbuild."""

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        registry: ArtifactRegistry,
        secrets: Secrets,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("voice-connector:infra:ServiceAccounts", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.accounts: dict[str, gcp.serviceaccount.Account] = {}
        self.secret_bindings: list[gcp.secretmanager.SecretIamMember] = []
        self.project_bindings: list[gcp.projects.IAMMember] = []
        for key, workload in workloads(cfg).items():
            account = gcp.serviceaccount.Account(
                workload.account_id,
                project=cfg.project,
                account_id=workload.account_id,
                display_name=workload.display_name,
                opts=child,
            )
            self.accounts[key] = account
            member = account.email.apply(lambda email: f"serviceAccount:{email}")
            for role in workload.project_roles:
                self.project_bindings.append(
                    gcp.projects.IAMMember(
                        f"{workload.account_id}-{role.split('/')[1]}",
                        project=cfg.project,
                        role=role,
                        member=member,
                        opts=child,
                    )
                )
            for secret_id in workload.secrets:
                self.secret_bindings.append(
                    gcp.secretmanager.SecretIamMember(
                        f"{workload.account_id}-reads-{secret_id}",
                        project=cfg.project,
                        secret_id=secrets.secrets[secret_id].secret_id,
                        role="roles/secretmanager.secretAccessor",
                        member=member,
                        opts=child,
                    )
                )
            if workload.pulls_images:
                gcp.artifactregistry.RepositoryIamMember(
                    f"{workload.account_id}-pulls",
                    project=cfg.project,
                    location=cfg.region,
                    repository=registry.repository.name,
                    role="roles/artifactregistry.reader",
                    member=member,
                    opts=child,
                )
        deployer = self.member("cloudbuild")
        self.secret_bindings.append(
            gcp.secretmanager.SecretIamMember(
                f"{cfg.prefix}-cloudbuild-reads-passphrase",
                project=cfg.project,
                secret_id=PULUMI_PASSPHRASE_SECRET,
                role="roles/secretmanager.secretAccessor",
                member=deployer,
                opts=child,
            )
        )
        self.register_outputs({key: a.email for key, a in self.accounts.items()})

    def email(self, key: str) -> pulumi.Output[str]:
        return self.accounts[key].email

    def member(self, key: str) -> pulumi.Output[str]:
        return self.accounts[key].email.apply(lambda email: f"serviceAccount:{email}")
