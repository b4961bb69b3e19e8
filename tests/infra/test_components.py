"""Each ComponentResource under Pulumi mocks: the resources it declares and their settings."""

from __future__ import annotations

from collections.abc import Callable

import pulumi
import pytest

from tests.infra.harness import INI_TEXT, SECRET_VALUES, Stack, is_secret_input, resolve, unwrap

Stacks = Callable[..., Stack]


def test_components_are_parents_of_their_resources(stacks: Stacks) -> None:
    component_types = {r.typ for r in stacks("dev").resources if r.typ.startswith("voice-")}
    assert component_types == {
        f"voice-connector:infra:{name}"
        for name in (
            "ProjectApis",
            "ArtifactRegistry",
            "Secrets",
            "ServiceAccounts",
            "Network",
            "GkeCluster",
            "NodePool",
            "ClusterWorkloads",
            "TwilioCloudRun",
            "TwilioFunctions",
            "BuildTriggers",
            "Monitoring",
        )
    }


# --- network -----------------------------------------------------------------------------------


def test_sip_and_rtp_are_open_only_to_the_media_pool(stacks: Stacks) -> None:
    stack = stacks("dev", rtpPortRange="40000-40999")
    sip = stack.one("gcp:compute/firewall:Firewall", "allow-sip").inputs
    assert {(a["protocol"], tuple(a["ports"])) for a in sip["allows"]} == {
        ("udp", ("5060",)),
        ("tcp", ("5060",)),
    }
    assert sip["targetTags"] == ["vc-dev-media"]
    rtp = stack.one("gcp:compute/firewall:Firewall", "allow-rtp").inputs
    assert rtp["allows"] == [{"protocol": "udp", "ports": ["40000-40999"]}]
    assert rtp["targetTags"] == ["vc-dev-media"]
    ai = stack.one("gcp:compute/firewall:Firewall", "ai-internal").inputs
    assert ai["targetTags"] == ["vc-dev-gpu"] and "0.0.0.0/0" not in ai["sourceRanges"]
    media_pool = stack.one("gcp:container/nodePool:NodePool", "vc-dev-media").inputs
    assert media_pool["nodeConfig"]["tags"] == ["vc-dev-media"]


def test_nat_and_ingress_use_static_addresses(stacks: Stacks) -> None:
    stack = stacks("dev")
    nat = stack.one("gcp:compute/routerNat:RouterNat").inputs
    assert nat["natIpAllocateOption"] == "MANUAL_ONLY" and len(nat["natIps"]) == 1
    assert stack.one("gcp:compute/globalAddress:GlobalAddress").inputs["name"] == "vc-dev-ingress"
    internal = [
        r
        for r in stack.of_type("gcp:compute/address:Address")
        if r.inputs.get("addressType") == "INTERNAL"
    ]
    assert sorted(r.name for r in internal) == ["vc-dev-ollama-ilb", "vc-dev-whisper-ilb"]


# --- GKE ---------------------------------------------------------------------------------------


def test_cluster_version_and_identity(stacks: Stacks) -> None:
    cluster = stacks("dev").one("gcp:container/cluster:Cluster").inputs
    assert cluster["minMasterVersion"] == "1.30"
    assert cluster["workloadIdentityConfig"] == {"workloadPool": "vc-test-project.svc.id.goog"}
    assert cluster["removeDefaultNodePool"] is True
    assert cluster["deletionProtection"] is False
    assert stacks("prod").one("gcp:container/cluster:Cluster").inputs["deletionProtection"] is True


@pytest.mark.parametrize(
    ("stack", "gpu", "machine"),
    [("dev", "nvidia-tesla-t4", "n1-standard-8"), ("prod", "nvidia-l4", "g2-standard-8")],
)
def test_gpu_pools_follow_the_stack_gpu_type(
    stacks: Stacks, stack: str, gpu: str, machine: str
) -> None:
    result = stacks(stack, gpuType=gpu)
    for pool_name in ("whisper-gpu", "ollama-gpu"):
        node = result.one("gcp:container/nodePool:NodePool", pool_name).inputs["nodeConfig"]
        (accelerator,) = node["guestAccelerators"]
        assert accelerator["type"] == gpu and accelerator["count"] == 1
        assert accelerator["gpuDriverInstallationConfig"] == {"gpuDriverVersion": "LATEST"}
        assert node["machineType"] == machine
        assert node["taints"] == [
            {"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}
        ]


def test_media_pool_is_public_tainted_and_autoscaled(stacks: Stacks) -> None:
    pool = (
        stacks("dev", mediaNodeCount="2", mediaNodeMaxCount="6")
        .one("gcp:container/nodePool:NodePool", "vc-dev-media")
        .inputs
    )
    # one node above the HPA's maximum: a rollout's surge pod has somewhere to go
    assert pool["autoscaling"] == {"minNodeCount": 2, "maxNodeCount": 7}
    assert pool["networkConfig"] == {"enablePrivateNodes": False}
    assert pool["upgradeSettings"] == {"maxSurge": 1, "maxUnavailable": 0}
    node = pool["nodeConfig"]
    assert node["taints"] == [
        {"key": "voice-connector/media", "value": "true", "effect": "NO_SCHEDULE"}
    ]
    assert node["serviceAccount"] == "vc-dev-media@vc-test-project.iam.gserviceaccount.com"
    assert node["workloadMetadataConfig"] == {"mode": "GCE_METADATA"}


# --- secrets -----------------------------------------------------------------------------------


def test_secret_values_stay_secret_everywhere(stacks: Stacks) -> None:
    stack = stacks("dev")
    versions = stack.of_type("gcp:secretmanager/secretVersion:SecretVersion")
    assert len(versions) == 4  # the three secrets, and the connector INI Cloud Run mounts
    for version in versions:
        assert is_secret_input(version.inputs["secretData"]), version.name
    assert {unwrap(v.inputs["secretData"]) for v in versions} == {*SECRET_VALUES.values(), INI_TEXT}
    k8s_secret = stack.one("kubernetes:core/v1:Secret").inputs
    assert is_secret_input(k8s_secret["stringData"])
    assert unwrap(k8s_secret["stringData"]) == {
        "twilio-auth-token": SECRET_VALUES["twilioAuthToken"],
        "twilio-account-sid": SECRET_VALUES["twilioAccountSid"],
    }
    deployment = stack.deployment
    value, secret = resolve(deployment.secrets.data("twilio-auth-token"))
    assert (value, secret) == (SECRET_VALUES["twilioAuthToken"], True)
    assert resolve(deployment.gke.kubeconfig)[1] is True


def test_secret_manager_secrets_are_per_stack(stacks: Stacks) -> None:
    ids = {
        r.inputs["secretId"] for r in stacks("staging").of_type("gcp:secretmanager/secret:Secret")
    }
    assert ids == {
        "vc-staging-twilio-auth-token",
        "vc-staging-twilio-account-sid",
        "vc-staging-outbound-call-token",
        "vc-staging-connector-config",
    }


# --- IAM ---------------------------------------------------------------------------------------


def members(stack: Stack, typ: str, account: str) -> list[dict]:
    member = f"serviceAccount:{account}@vc-test-project.iam.gserviceaccount.com"
    return [r.inputs for r in stack.of_type(typ) if r.inputs.get("member") == member]


def test_media_node_account_has_least_privilege(stacks: Stacks) -> None:
    stack = stacks("dev")
    secret_reads = members(
        stack, "gcp:secretmanager/secretIamMember:SecretIamMember", "vc-dev-media"
    )
    assert {(b["secretId"], b["role"]) for b in secret_reads} == {
        ("vc-dev-twilio-auth-token", "roles/secretmanager.secretAccessor"),
        ("vc-dev-twilio-account-sid", "roles/secretmanager.secretAccessor"),
        ("vc-dev-connector-config", "roles/secretmanager.secretAccessor"),
    }
    roles = {b["role"] for b in members(stack, "gcp:projects/iAMMember:IAMMember", "vc-dev-media")}
    assert roles == {
        "roles/logging.logWriter",
        "roles/monitoring.metricWriter",
        "roles/stackdriver.resourceMetadata.writer",
    }
    (pull,) = members(
        stack, "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember", "vc-dev-media"
    )
    assert pull["role"] == "roles/artifactregistry.reader"


def test_functions_account_reads_its_secrets_only(stacks: Stacks) -> None:
    stack = stacks("dev")
    reads = members(stack, "gcp:secretmanager/secretIamMember:SecretIamMember", "vc-dev-functions")
    assert {b["secretId"] for b in reads} == {
        "vc-dev-twilio-auth-token",
        "vc-dev-twilio-account-sid",
        "vc-dev-outbound-call-token",
    }
    roles = {
        b["role"] for b in members(stack, "gcp:projects/iAMMember:IAMMember", "vc-dev-functions")
    }
    assert roles == {"roles/logging.logWriter"}
    assert not members(
        stack, "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember", "vc-dev-functions"
    )


def test_no_account_gets_a_primitive_role(stacks: Stacks) -> None:
    roles = {r.inputs["role"] for r in stacks("dev").of_type("gcp:projects/iAMMember:IAMMember")}
    assert not roles & {"roles/owner", "roles/editor"}


# --- Cloud Run ---------------------------------------------------------------------------------


def run_template(stack: Stack) -> dict:
    return stack.one("gcp:cloudrunv2/service:Service").inputs["template"]


def test_cloud_run_is_websocket_ready(stacks: Stacks) -> None:
    template = run_template(stacks("dev", cloudRunMaxConcurrency="15"))
    assert template["timeout"] == "3600s"
    assert template["sessionAffinity"] is True
    assert template["maxInstanceRequestConcurrency"] == 15
    container, collector = template["containers"]
    assert container["name"] == "media-node"
    assert container["resources"]["cpuIdle"] is False
    assert container["ports"] == {"containerPort": 8080}
    # The image with Piper: the rendered env asks for in-process TTS (the rehearsal runs it).
    assert container["image"].split("/voice-connector/")[1].split(":")[0] == "media-node"
    assert container["startupProbe"]["httpGet"] == {"path": "/readyz", "port": 8080}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 8080}
    assert template["serviceAccount"] == "vc-dev-media@vc-test-project.iam.gserviceaccount.com"
    # Metrics on Cloud Run: the Managed Prometheus sidecar starts after the node.
    assert "cloud-run-gmp-sidecar" in collector["image"]
    # the stack's INI, mounted where the image's WORKDIR-relative config path points
    (volume,) = template["volumes"]
    assert volume["secret"] == {
        "secret": "vc-dev-connector-config",
        "items": [{"version": "latest", "path": "voice-connector.ini"}],
    }
    assert container["volumeMounts"] == [{"name": volume["name"], "mountPath": "/app/cfg"}]
    assert collector["dependsOns"] == ["media-node"]


def test_cloud_run_reaches_gpu_services_through_direct_vpc(stacks: Stacks) -> None:
    stack = stacks("dev")
    vpc = run_template(stack)["vpcAccess"]
    assert vpc["egress"] == "PRIVATE_RANGES_ONLY"
    assert vpc["networkInterfaces"] == [
        {"network": "vc-dev-vpc-id", "subnetwork": "vc-dev-serverless-id"}
    ]
    env = {e["name"]: e for e in run_template(stack)["containers"][0]["envs"]}
    whisper_ip = stack.one("gcp:compute/address:Address", "whisper-ilb")
    assert env["VC_TRANSPORT_PROVIDERS"]["value"] == "twilio"
    assert env["VC_GENERAL_WORKERS"]["value"] == "2"  # one node process per vCPU
    assert env["GOOGLE_CLOUD_PROJECT"]["value"]
    assert env["VC_STT_URL"]["value"].endswith(":9000")
    assert env["VC_LLM_URL"]["value"].endswith(":11434")
    assert env["VC_GENERAL_PUBLIC_URL"]["value"] == (
        "https://vc-dev-media-node-twilio-123456789012.us-central1.run.app"
    )
    assert whisper_ip.inputs["addressType"] == "INTERNAL"
    assert env["VC_TWILIO_AUTH_TOKEN"]["valueSource"] == {
        "secretKeyRef": {"secret": "vc-dev-twilio-auth-token", "version": "latest"}
    }
    assert "value" not in env["VC_TWILIO_AUTH_TOKEN"]


@pytest.mark.parametrize(("stack", "minimum"), [("dev", 0), ("staging", 0), ("prod", 1)])
def test_min_instances_per_stack(stacks: Stacks, stack: str, minimum: int) -> None:
    assert run_template(stacks(stack))["scaling"]["minInstanceCount"] == minimum


def test_cloud_run_min_instances_from_config(stacks: Stacks) -> None:
    assert run_template(stacks("prod", cloudRunMinInstances="3"))["scaling"] == {
        "minInstanceCount": 3,
        "maxInstanceCount": 12,
    }


def test_cloud_run_is_publicly_invocable(stacks: Stacks) -> None:
    (binding,) = [
        r.inputs
        for r in stacks("dev").of_type("gcp:cloudrunv2/serviceIamMember:ServiceIamMember")
        if r.name == "vc-dev-media-node-twilio-public"
    ]
    assert (binding["role"], binding["member"]) == ("roles/run.invoker", "allUsers")


# --- Cloud Functions ---------------------------------------------------------------------------


def test_functions_are_python311_from_gcs_sources(stacks: Stacks) -> None:
    stack = stacks("dev")
    functions = {r.name: r.inputs for r in stack.of_type("gcp:cloudfunctionsv2/function:Function")}
    assert set(functions) == {"vc-dev-twilio-voice", "vc-dev-twilio-status", "vc-dev-outbound-call"}
    objects = {r.inputs["name"] for r in stack.of_type("gcp:storage/bucketObject:BucketObject")}
    for name, entry_point in (
        ("vc-dev-twilio-voice", "twilio_voice"),
        ("vc-dev-twilio-status", "twilio_status"),
        ("vc-dev-outbound-call", "outbound_call"),
    ):
        build = functions[name]["buildConfig"]
        assert (build["runtime"], build["entryPoint"]) == ("python311", entry_point)
        source = build["source"]["storageSource"]
        assert source["bucket"] == "vc-test-project-vc-dev-function-sources"
        assert source["object"] in objects and source["object"].startswith(entry_point)
        builder = "/vc-dev-fn-build@vc-test-project.iam.gserviceaccount.com"
        assert build["serviceAccount"].endswith(builder)
        service = functions[name]["serviceConfig"]
        # Cloud Run's deterministic URL, the one the node is told it is reached at
        assert service["environmentVariables"]["VC_GENERAL_PUBLIC_URL"] == (
            "https://vc-dev-media-node-twilio-123456789012.us-central1.run.app"
        )
        assert service["environmentVariables"]["VC_TWILIO_VALIDATE_SIGNATURES"] == "true"
        secret_env = {s["key"]: s["secret"] for s in service["secretEnvironmentVariables"]}
        assert secret_env["VC_TWILIO_AUTH_TOKEN"] == "vc-dev-twilio-auth-token"
        assert service["serviceAccountEmail"].startswith("vc-dev-functions@")


def test_only_twilio_webhooks_are_public(stacks: Stacks) -> None:
    public = {
        r.name
        for r in stacks("dev").of_type("gcp:cloudrunv2/serviceIamMember:ServiceIamMember")
        if r.inputs["member"] == "allUsers"
    }
    assert public == {
        "vc-dev-media-node-twilio-public",
        "vc-dev-twilio-voice-public",
        "vc-dev-twilio-status-public",
    }


def test_stream_target_gke_points_functions_at_the_ingress(stacks: Stacks) -> None:
    stack = stacks("prod", streamTarget="gke", ingressDomain="media.example.com")
    voice = stack.one("gcp:cloudfunctionsv2/function:Function", "twilio-voice").inputs
    assert voice["serviceConfig"]["environmentVariables"]["VC_GENERAL_PUBLIC_URL"] == (
        "https://media.example.com"
    )
    assert stack.one("kubernetes:networking.gke.io/v1:ManagedCertificate").inputs["spec"] == {
        "domains": ["media.example.com"]
    }


# --- Artifact Registry, Cloud Build, alerts ------------------------------------------------------


def test_registry_is_the_docker_repo_images_are_named_after(stacks: Stacks) -> None:
    repo = stacks("dev").one("gcp:artifactregistry/repository:Repository").inputs
    assert (repo["repositoryId"], repo["format"], repo["location"]) == (
        "voice-connector",
        "DOCKER",
        "us-central1",
    )


def test_no_trigger_without_a_github_owner(stacks: Stacks) -> None:
    assert stacks("dev").of_type("gcp:cloudbuild/trigger:Trigger") == []


@pytest.mark.parametrize(
    ("stack", "push"),
    [
        ("dev", {"branch": "^main$"}),
        ("staging", {"branch": "^release/.+$"}),
        ("prod", {"tag": r"^v\d+\.\d+\.\d+$"}),
    ],
)
def test_trigger_per_environment(stacks: Stacks, stack: str, push: dict[str, str]) -> None:
    trigger = stacks(stack, githubOwner="example-org").one("gcp:cloudbuild/trigger:Trigger").inputs
    assert trigger["github"] == {"owner": "example-org", "name": "voice-connector", "push": push}
    assert trigger["filename"] == "cloudbuild.yaml"
    assert trigger["substitutions"]["_STACK"] == stack
    assert trigger["serviceAccount"] == f"vc-{stack}-cloudbuild-id"


def test_alerts_notify_only_with_a_notification_email(stacks: Stacks) -> None:
    quiet = stacks("dev")
    assert quiet.of_type("gcp:monitoring/notificationChannel:NotificationChannel") == []
    assert all(
        not r.inputs.get("notificationChannels")
        for r in quiet.of_type("gcp:monitoring/alertPolicy:AlertPolicy")
    )
    stack = stacks("dev", notificationEmail="ops@example.com")
    channel = stack.one("gcp:monitoring/notificationChannel:NotificationChannel").inputs
    assert channel["labels"] == {"email_address": "ops@example.com"}
    policy = stack.one("gcp:monitoring/alertPolicy:AlertPolicy", "run-5xx").inputs
    assert (
        'service_name = "vc-dev-media-node-twilio"'
        in (policy["conditions"][0]["conditionThreshold"]["filter"])
    )
    # The dashboard's alert policies share the one e-mail channel.
    policies = stack.of_type("gcp:monitoring/alertPolicy:AlertPolicy")
    assert len(policies) > 1 and all(p.inputs.get("notificationChannels") for p in policies)


# --- first `pulumi up` on an empty project -------------------------------------------------------


def test_bootstrap_phase_declares_what_the_image_build_needs_and_no_workload(
    stacks: Stacks,
) -> None:
    stack = stacks("dev", phase="bootstrap", imageTag="")
    types = {r.typ for r in stack.resources}
    assert "gcp:artifactregistry/repository:Repository" in types
    assert "gcp:serviceaccount/account:Account" in types
    assert "gcp:secretmanager/secret:Secret" in types
    for workload in (
        "gcp:container/cluster:Cluster",
        "gcp:cloudrunv2/service:Service",
        "gcp:cloudfunctionsv2/function:Function",
        "gcp:compute/network:Network",
    ):
        assert workload not in types, workload
    assert not [t for t in types if t.startswith("kubernetes:")]


def test_apis_include_what_iam_bindings_and_sources_use(stacks: Stacks) -> None:
    enabled = {r.inputs["service"] for r in stacks("dev").of_type("gcp:projects/service:Service")}
    assert {"cloudresourcemanager.googleapis.com", "artifactregistry.googleapis.com"} <= enabled
    assert "storage.googleapis.com" in enabled


# --- what other controllers own ---------------------------------------------------------------


def test_node_counts_and_hpa_replicas_are_left_to_their_autoscalers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A changed `mediaNodeCount` must update the pool in place, never replace it (a replaced
    pool ends every call on it); replica counts an HPA owns are not reset by `pulumi up`."""
    import pulumi_gcp as gcp

    from tests.infra.harness import run_stack
    from voice_infra import k8s_workloads

    pools: dict[str, list[str]] = {}
    real_pool = gcp.container.NodePool

    def pool(name: str, *args: object, opts: pulumi.ResourceOptions, **kwargs: object) -> object:
        pools[name] = list(opts.ignore_changes or [])
        return real_pool(name, *args, opts=opts, **kwargs)

    monkeypatch.setattr(gcp.container, "NodePool", pool)
    stack = run_stack("prod")
    assert pools and all("initialNodeCount" in ignored for ignored in pools.values()), pools
    manifests = stack.deployment.workloads.manifests  # type: ignore[union-attr]
    ignored = k8s_workloads.ignored_fields(manifests)
    assert set(ignored) == {
        ("Deployment", "media-node"),
        ("Deployment", "whisper"),
        ("Deployment", "ollama"),
    }
