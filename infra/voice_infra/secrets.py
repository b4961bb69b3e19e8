"""Secret Manager: the source of truth for Twilio credentials and the outbound-call token.

Values come from the stack's encrypted config (`pulumi config set --secret`) and are written as
secret versions; every consumer (Cloud Run, functions, the GKE k8s Secret) reads them from here.
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from voice_infra.config import SecretValues, StackConfig
from voice_infra.conventions import ACCOUNT_SID, AUTH_TOKEN, CONNECTOR_CONFIG, OUTBOUND_TOKEN


class Secrets(pulumi.ComponentResource):
    """One Secret Manager secret + current version per value; `data` keeps them secret Outputs."""

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        values: SecretValues,
        config_text: str = "",
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("voice-connector:infra:Secrets", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        by_id = {
            AUTH_TOKEN: values.twilio_auth_token,
            ACCOUNT_SID: values.twilio_account_sid,
            OUTBOUND_TOKEN: values.outbound_call_token,
            # Not secret, but Secret Manager is what Cloud Run mounts as a file.
            CONNECTOR_CONFIG: pulumi.Output.from_input(config_text),
        }
        self.secrets: dict[str, gcp.secretmanager.Secret] = {}
        self.versions: dict[str, gcp.secretmanager.SecretVersion] = {}
        for secret_id, value in by_id.items():
            secret = gcp.secretmanager.Secret(
                f"{cfg.prefix}-{secret_id}",
                project=cfg.project,
                secret_id=f"{cfg.prefix}-{secret_id}",
                replication=gcp.secretmanager.SecretReplicationArgs(
                    auto=gcp.secretmanager.SecretReplicationAutoArgs()
                ),
                labels={"app": "voice-connector", "stack": cfg.stack},
                opts=child,
            )
            self.secrets[secret_id] = secret
            self.versions[secret_id] = gcp.secretmanager.SecretVersion(
                f"{cfg.prefix}-{secret_id}-v",
                secret=secret.id,
                secret_data=pulumi.Output.secret(value),
                opts=child,
            )
        self.register_outputs({key: s.secret_id for key, s in self.secrets.items()})

    def data(self, secret_id: str) -> pulumi.Output[str]:
        """The stored value, as Secret Manager returns it, still marked secret."""
        return pulumi.Output.secret(self.versions[secret_id].secret_data)

    def secret_name(self, secret_id: str) -> pulumi.Output[str]:
        """Short secret id (what Cloud Run / Cloud Functions secret references take)."""
        return self.secrets[secret_id].secret_id
