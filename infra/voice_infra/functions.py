"""Cloud Functions 2nd gen for Twilio webhooks and outbound calls, deployed from GCS sources."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_gcp as gcp
from pulumi_gcp import cloudfunctionsv2 as fn

from voice_infra.config import StackConfig
from voice_infra.conventions import ACCOUNT_SID, AUTH_TOKEN, SECRET_ENV, SIGNING_KEY
from voice_infra.identity import ServiceAccounts
from voice_infra.secrets import Secrets

FUNCTIONS_DIR = Path(__file__).resolve().parents[2] / "functions"
RUNTIME = "python311"


@dataclass(frozen=True)
class FunctionSpec:
    """Entry point = directory name = Python function name; `public`: Twilio calls it."""

    name: str
    secrets: tuple[str, ...]
    public: bool


SPECS = (
    FunctionSpec("twilio_voice", (AUTH_TOKEN, SIGNING_KEY), public=True),
    FunctionSpec("twilio_status", (AUTH_TOKEN,), public=True),
    # Starting calls costs money: only principals granted run.invoker may call it.
    FunctionSpec("outbound_call", (AUTH_TOKEN, ACCOUNT_SID, SIGNING_KEY), public=False),
)


def source_digest(directory: Path) -> str:
    """Content hash of a function's sources: a new object name (and deploy) per change only."""
    digest = hashlib.sha256()
    if directory.is_dir():
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            if "__pycache__" in path.parts:
                continue
            digest.update(path.relative_to(directory).as_posix().encode())
            digest.update(path.read_bytes())
    else:
        pulumi.log.warn(f"function sources missing: {directory}")
    return digest.hexdigest()[:16]


class TwilioFunctions(pulumi.ComponentResource):
    """`twilio_voice` answers with TwiML that streams to `media_host`; URLs in `urls`."""

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        media_host: pulumi.Input[str],
        accounts: ServiceAccounts,
        secrets: Secrets,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("voice-connector:infra:TwilioFunctions", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        p = cfg.prefix
        self.bucket = gcp.storage.Bucket(
            f"{p}-function-sources",
            project=cfg.project,
            name=f"{cfg.project}-{p}-function-sources",
            location=cfg.region,
            uniform_bucket_level_access=True,
            force_destroy=not cfg.is_prod,
            lifecycle_rules=[
                gcp.storage.BucketLifecycleRuleArgs(
                    action=gcp.storage.BucketLifecycleRuleActionArgs(type="Delete"),
                    condition=gcp.storage.BucketLifecycleRuleConditionArgs(age=30),
                )
            ],
            opts=child,
        )
        self.functions: dict[str, fn.Function] = {}
        self.urls: dict[str, pulumi.Output[str]] = {}
        for spec in SPECS:
            env: dict[str, pulumi.Input[str]] = {"VC_MEDIA_HOST": media_host}
            if cfg.twilio_phone_number:
                env["VC_TWILIO_FROM_NUMBER"] = cfg.twilio_phone_number
            if spec.name == "outbound_call":
                env["VC_VOICE_URL"] = self.urls["twilio_voice"]
                env["VC_STATUS_URL"] = self.urls["twilio_status"]
            self.functions[spec.name] = self._function(cfg, spec, env, accounts, secrets, child)
            self.urls[spec.name] = self.functions[spec.name].url
        self.register_outputs(dict(self.urls))

    def _function(
        self,
        cfg: StackConfig,
        spec: FunctionSpec,
        env: dict[str, pulumi.Input[str]],
        accounts: ServiceAccounts,
        secrets: Secrets,
        child: pulumi.ResourceOptions,
    ) -> fn.Function:
        directory = FUNCTIONS_DIR / spec.name
        slug = f"{cfg.prefix}-{spec.name.replace('_', '-')}"
        source = gcp.storage.BucketObject(
            f"{slug}-source",
            bucket=self.bucket.name,
            name=f"{spec.name}-{source_digest(directory)}.zip",
            source=pulumi.FileArchive(str(directory)),
            opts=child,
        )
        function = fn.Function(
            slug,
            project=cfg.project,
            location=cfg.region,
            name=slug,
            build_config=fn.FunctionBuildConfigArgs(
                runtime=RUNTIME,
                entry_point=spec.name,
                source=fn.FunctionBuildConfigSourceArgs(
                    storage_source=fn.FunctionBuildConfigSourceStorageSourceArgs(
                        bucket=self.bucket.name, object=source.name
                    )
                ),
            ),
            service_config=fn.FunctionServiceConfigArgs(
                service_account_email=accounts.email("functions"),
                available_memory="256M",
                timeout_seconds=30,
                min_instance_count=1 if cfg.is_prod and spec.public else 0,
                max_instance_count=20,
                ingress_settings="ALLOW_ALL",
                environment_variables=env,
                secret_environment_variables=[
                    fn.FunctionServiceConfigSecretEnvironmentVariableArgs(
                        key=SECRET_ENV[secret_id],
                        project_id=cfg.project,
                        secret=secrets.secret_name(secret_id),
                        version="latest",
                    )
                    for secret_id in spec.secrets
                ],
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=accounts.secret_bindings),
        )
        if spec.public:
            # 2nd gen functions are Cloud Run services: invocation rights live there.
            gcp.cloudrunv2.ServiceIamMember(
                f"{slug}-public",
                project=cfg.project,
                location=cfg.region,
                name=function.name,
                role="roles/run.invoker",
                member="allUsers",
                opts=child,
            )
        return function
