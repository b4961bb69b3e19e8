"""Cloud Functions 2nd gen for Twilio webhooks and outbound calls, deployed from GCS sources.

Each function gets the connector's own configuration (`VC_*`, which its config loader accepts)
plus the few function-only variables `functions/*/main.py` read (`OUTBOUND_*`,
`STATUS_CALLBACK_URL`); the archive is built by `functions/archive.py` and carries the stack's INI,
so per-number flavors are the same as on the media nodes.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
from pulumi_gcp import cloudfunctionsv2 as fn

from voice_infra import function_source
from voice_infra.config import StackConfig
from voice_infra.conventions import ACCOUNT_SID, AUTH_TOKEN, OUTBOUND_TOKEN, SECRET_ENV
from voice_infra.identity import ServiceAccounts
from voice_infra.secrets import Secrets

RUNTIME = "python311"
FROM_NUMBER_ENV = "OUTBOUND_FROM_NUMBER"
STATUS_CALLBACK_ENV = "STATUS_CALLBACK_URL"


@dataclass(frozen=True)
class FunctionSpec:
    """Entry point = directory name = Python function name; `public`: Twilio calls it."""

    name: str
    secrets: tuple[str, ...]
    public: bool


SPECS = (
    FunctionSpec("twilio_voice", (AUTH_TOKEN, ACCOUNT_SID), public=True),
    FunctionSpec("twilio_status", (AUTH_TOKEN, ACCOUNT_SID), public=True),
    # Starting calls costs money: only principals granted run.invoker (and holding the bearer
    # token) may call it.
    FunctionSpec("outbound_call", (AUTH_TOKEN, ACCOUNT_SID, OUTBOUND_TOKEN), public=False),
)


def media_url(host: str) -> str:
    """`[general] public_url` of the media node the functions hand calls to (TLS: Twilio's wss)."""
    return f"https://{host}"


@dataclass
class TwilioFunctionsArgs:
    """What the functions need from the rest of the stack."""

    media_host: pulumi.Input[str]
    """Host serving `wss://HOST/twilio/stream` (Cloud Run, or the GKE Ingress domain)."""
    ini_text: str
    """The connector INI shipped in every archive (the same text as the cluster's ConfigMap)."""
    accounts: ServiceAccounts
    secrets: Secrets


class TwilioFunctions(pulumi.ComponentResource):
    """`twilio_voice` answers with TwiML that streams to `media_host`; URLs in `urls`."""

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        args: TwilioFunctionsArgs,
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
        base_env: dict[str, pulumi.Input[str]] = {
            "GOOGLE_CLOUD_PROJECT": cfg.project,  # the trace field of log lines
            "VC_GENERAL_PUBLIC_URL": pulumi.Output.from_input(args.media_host).apply(media_url),
            "VC_TWILIO_VALIDATE_SIGNATURES": "true",
        }
        for spec in SPECS:
            env = dict(base_env)
            if spec.name == "outbound_call":
                env[STATUS_CALLBACK_ENV] = self.urls["twilio_status"]
                if cfg.twilio_phone_number:
                    env[FROM_NUMBER_ENV] = cfg.twilio_phone_number
            self.functions[spec.name] = self._function(cfg, spec, env, args, child)
            self.urls[spec.name] = self.functions[spec.name].url
        self.register_outputs(dict(self.urls))

    def _function(
        self,
        cfg: StackConfig,
        spec: FunctionSpec,
        env: dict[str, pulumi.Input[str]],
        args: TwilioFunctionsArgs,
        child: pulumi.ResourceOptions,
    ) -> fn.Function:
        slug = f"{cfg.prefix}-{spec.name.replace('_', '-')}"
        zip_path = function_source.archive(spec.name, args.ini_text)
        source = gcp.storage.BucketObject(
            f"{slug}-source",
            bucket=self.bucket.name,
            name=zip_path.name,  # content digest: a new object (and deploy) per change only
            source=pulumi.FileAsset(str(zip_path)),
            opts=child,
        )
        builder = args.accounts.accounts["function-builder"]
        function = fn.Function(
            slug,
            project=cfg.project,
            location=cfg.region,
            name=slug,
            build_config=fn.FunctionBuildConfigArgs(
                runtime=RUNTIME,
                entry_point=spec.name,
                # New projects no longer build with the default compute account: name one.
                service_account=builder.name,
                source=fn.FunctionBuildConfigSourceArgs(
                    storage_source=fn.FunctionBuildConfigSourceStorageSourceArgs(
                        bucket=self.bucket.name, object=source.name
                    )
                ),
            ),
            service_config=fn.FunctionServiceConfigArgs(
                service_account_email=args.accounts.email("functions"),
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
                        secret=args.secrets.secret_name(secret_id),
                        version="latest",
                    )
                    for secret_id in spec.secrets
                ],
            ),
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[*args.accounts.secret_bindings, *args.accounts.project_bindings],
            ),
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
