"""Run the whole Pulumi program under `pulumi.runtime.set_mocks` and record every resource."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import rpc
from pulumi.runtime import settings as runtime_settings

from voice_infra.config import NAMESPACE, SECRET_KEYS, load_config, load_secrets
from voice_infra.program import Deployment, deploy

BASE_CONFIG = {"project": "vc-test-project", "imageTag": "0123abcd"}
SECRET_VALUES = {
    "twilioAuthToken": "tw-auth-token-123",
    "twilioAccountSid": "AC0123456789",
    "outboundCallToken": "outbound-token-xyz",
}
PROJECT_NUMBER = "123456789012"
LOOP = asyncio.new_event_loop()
INI_TEXT = "[general]\nmax_calls = 40\n\n[transport]\nproviders = opensips, twilio\n"


@dataclass
class Recorded:
    typ: str
    name: str
    inputs: dict[str, Any]


@dataclass
class RecordingMocks(pulumi.runtime.Mocks):
    """Echo inputs as state, invent the outputs the program reads (uri, address, endpoint)."""

    resources: list[Recorded] = field(default_factory=list)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        self.resources.append(Recorded(args.typ, args.name, dict(args.inputs)))
        state = dict(args.inputs)
        if args.typ == "gcp:cloudrunv2/service:Service":
            state["uri"] = f"https://{args.name}-abc123-uc.a.run.app"
        elif args.typ == "gcp:cloudfunctionsv2/function:Function":
            state["url"] = f"https://{args.name}-abc123-uc.a.run.app"
        elif args.typ in ("gcp:compute/address:Address", "gcp:compute/globalAddress:GlobalAddress"):
            state.setdefault("address", f"10.10.0.{len(self.resources) % 250}")
        elif args.typ == "gcp:container/cluster:Cluster":
            state["endpoint"] = "203.0.113.10"
            state["masterAuth"] = {"clusterCaCertificate": "Q0E="}
        elif args.typ == "gcp:serviceaccount/account:Account":
            state["email"] = f"{args.inputs['accountId']}@vc-test-project.iam.gserviceaccount.com"
            state["name"] = f"projects/vc-test-project/serviceAccounts/{state['email']}"
        elif args.typ == "gcp:secretmanager/secret:Secret":
            state["name"] = f"projects/vc-test-project/secrets/{args.inputs['secretId']}"
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list | None]:
        if args.token == "gcp:organizations/getProject:getProject":
            return {"number": PROJECT_NUMBER, "projectId": args.args.get("projectId")}, []
        return {}, []


@dataclass
class Stack:
    """Result of one mocked `pulumi up`: the components and every registered resource."""

    deployment: Deployment
    resources: list[Recorded]

    def of_type(self, typ: str) -> list[Recorded]:
        return [r for r in self.resources if r.typ == typ]

    def one(self, typ: str, name_contains: str = "") -> Recorded:
        found = [r for r in self.of_type(typ) if name_contains in r.name]
        assert len(found) == 1, f"{typ} *{name_contains}*: {[r.name for r in found]}"
        return found[0]


def set_stack_config(values: dict[str, str]) -> None:
    pulumi.runtime.set_all_config(
        {f"{NAMESPACE}:{key}": value for key, value in values.items()},
        [f"{NAMESPACE}:{key}" for key in SECRET_KEYS],
    )


def run_stack(
    stack: str, config: dict[str, str] | None = None, ini_text: str = INI_TEXT
) -> Stack:
    """Validate config and declare the stack exactly as `__main__` does, under mocks."""
    set_stack_config({**BASE_CONFIG, **SECRET_VALUES, **(config or {})})
    holder: dict[str, Deployment] = {}

    def program() -> None:
        cfg = load_config()
        holder["deployment"] = deploy(cfg, load_secrets(), ini_text)

    resources = run_program(program, stack)
    return Stack(holder["deployment"], resources)


def run_program(program: Callable[[], object], stack: str = "dev") -> list[Recorded]:
    """Run `program` (any Pulumi declarations) under mocks; every resource it registered."""
    mocks = RecordingMocks()
    asyncio.set_event_loop(LOOP)  # Outputs of every run live on this one loop
    runtime_settings.ROOT.set(None)  # a fresh root Stack resource per run
    pulumi.runtime.set_mocks(mocks, project="voice-connector", stack=stack, preview=False)
    pulumi.runtime.test(program)()
    return mocks.resources


def is_secret_input(value: Any) -> bool:
    """Mocks see secret inputs as `{sig: <secret sig>, value: ...}` wrappers."""
    return isinstance(value, dict) and value.get(rpc._special_sig_key) == rpc._special_secret_sig


def unwrap(value: Any) -> Any:
    return value["value"] if is_secret_input(value) else value


def resolve(output: pulumi.Output[Any]) -> tuple[Any, bool]:
    """(value, is_secret) of an Output from a finished mocked run."""

    async def both() -> tuple[Any, bool]:
        return await output.future(), await output.is_secret()

    return LOOP.run_until_complete(both())
