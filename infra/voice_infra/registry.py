"""Artifact Registry: the one Docker repository all images are pushed to."""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from voice_infra.config import StackConfig

REPOSITORY_ID = "voice-connector"
IMAGES = (
    "media-node",
    "whisper-service",
    "whisper-service-gpu",
    "ollama",
    "opensips",
    "sip-edge",
    "vosk-server",
    "llama-ws-server",
    "piper-ws-server",
)
"""Every image cloudbuild.yaml builds and pushes (a test holds the two lists equal)."""


class ArtifactRegistry(pulumi.ComponentResource):
    """`REGION-docker.pkg.dev/PROJECT/voice-connector/<image>`; untagged layers are cleaned up."""

    def __init__(
        self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("voice-connector:infra:ArtifactRegistry", name, None, opts)
        self.repository = gcp.artifactregistry.Repository(
            f"{cfg.prefix}-images",
            project=cfg.project,
            location=cfg.region,
            repository_id=REPOSITORY_ID,
            format="DOCKER",
            description="AI voice connector images",
            cleanup_policies=[
                gcp.artifactregistry.RepositoryCleanupPolicyArgs(
                    id="delete-untagged",
                    action="DELETE",
                    condition=gcp.artifactregistry.RepositoryCleanupPolicyConditionArgs(
                        tag_state="UNTAGGED", older_than="1209600s"
                    ),
                )
            ],
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.url = f"{cfg.region}-docker.pkg.dev/{cfg.project}/{REPOSITORY_ID}"
        self.register_outputs({"url": self.url})
