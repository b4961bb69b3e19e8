"""Project APIs every other component needs; enabling them first avoids first-run races."""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from voice_infra.config import StackConfig

SERVICES = (
    "artifactregistry.googleapis.com",
    "cloudresourcemanager.googleapis.com",  # project IAM bindings read and set the project policy
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "compute.googleapis.com",
    "container.googleapis.com",
    "iam.googleapis.com",
    "monitoring.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
)


class ProjectApis(pulumi.ComponentResource):
    """Enabled services; kept enabled on destroy (other workloads may share the project)."""

    def __init__(
        self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("voice-connector:infra:ProjectApis", name, None, opts)
        self.services = [
            gcp.projects.Service(
                f"{cfg.prefix}-api-{service.split('.')[0]}",
                project=cfg.project,
                service=service,
                disable_on_destroy=False,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for service in SERVICES
        ]
        self.register_outputs({})
