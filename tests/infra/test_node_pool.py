"""`NodePool` on its own and as the cluster's pools: what each pool asks GKE for."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulumi
import pytest

from tests.infra.harness import Recorded, Stack, run_program, run_stack
from voice_infra.k8s_manifests import GPU_TAINT
from voice_infra.node_pool import GpuAccelerator, NodePool, NodePoolArgs, taint

Stacks = Callable[..., Stack]
POOL = "gcp:container/nodePool:NodePool"
SA = "nodes@vc-test-project.iam.gserviceaccount.com"


def declare_alone(name: str, args: NodePoolArgs) -> list[Recorded]:
    def program() -> None:
        NodePool(name, args)

    return run_program(program)


def pool_args(**overrides: Any) -> NodePoolArgs:
    base: dict[str, Any] = dict(
        project="vc-test-project",
        location="us-central1-a",
        cluster="vc-test-gke",
        machine_type="n1-standard-8",
        min_nodes=1,
        max_nodes=4,
        service_account=SA,
    )
    return NodePoolArgs(**{**base, **overrides})


def test_a_node_pool_is_declared_from_its_args_alone() -> None:
    resources = declare_alone(
        "vc-test-asr-gpu",
        pool_args(
            labels={"voice-connector/pool": "asr"},
            taints=[GPU_TAINT],
            tags=["vc-test-gpu"],
            accelerator=GpuAccelerator("nvidia-tesla-t4"),
        ),
    )
    assert [(r.typ, r.name) for r in resources] == [
        ("voice-connector:infra:NodePool", "vc-test-asr-gpu"),
        (POOL, "vc-test-asr-gpu"),
    ]
    pool = resources[1].inputs
    assert pool["project"] == "vc-test-project" and pool["location"] == "us-central1-a"
    assert pool["cluster"] == "vc-test-gke"
    assert pool["initialNodeCount"] == 1
    assert pool["autoscaling"] == {"minNodeCount": 1, "maxNodeCount": 4}
    assert pool["management"] == {"autoRepair": True, "autoUpgrade": True}
    assert pool["upgradeSettings"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert pool["networkConfig"] == {"enablePrivateNodes": True}
    node = pool["nodeConfig"]
    assert node["machineType"] == "n1-standard-8"
    assert node["serviceAccount"] == SA
    assert node["oauthScopes"] == ["https://www.googleapis.com/auth/cloud-platform"]
    assert node["labels"] == {"voice-connector/pool": "asr"}
    assert node["taints"] == [
        {"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}
    ]
    assert node["tags"] == ["vc-test-gpu"]
    assert node["guestAccelerators"] == [
        {
            "type": "nvidia-tesla-t4",
            "count": 1,
            "gpuDriverInstallationConfig": {"gpuDriverVersion": "LATEST"},
        }
    ]
    assert node["workloadMetadataConfig"] == {"mode": "GKE_METADATA"}


def test_a_pool_without_an_accelerator_asks_for_no_gpu() -> None:
    (_, pool) = declare_alone("vc-test-plain", pool_args())
    node = pool.inputs["nodeConfig"]
    assert "guestAccelerators" not in node
    assert node["taints"] == [] and node["tags"] == [] and node["labels"] == {}


def test_a_public_pool_on_the_nodes_own_identity() -> None:
    (_, pool) = declare_alone(
        "vc-test-public", pool_args(private=False, workload_metadata="GCE_METADATA")
    )
    assert pool.inputs["networkConfig"] == {"enablePrivateNodes": False}
    assert pool.inputs["nodeConfig"]["workloadMetadataConfig"] == {"mode": "GCE_METADATA"}


@pytest.mark.parametrize(
    ("effect", "gke_effect"), [("NoSchedule", "NO_SCHEDULE"), ("NoExecute", "NO_EXECUTE")]
)
def test_taints_are_spelled_as_gke_spells_them(effect: str, gke_effect: str) -> None:
    spelled = taint({"key": "k", "value": "v", "effect": effect})
    assert (spelled.key, spelled.value, spelled.effect) == ("k", "v", gke_effect)


# --- the cluster's pools -----------------------------------------------------------------------


def test_the_cluster_declares_four_pools_each_its_own_component(stacks: Stacks) -> None:
    stack = stacks("dev")
    names = ["vc-dev-system", "vc-dev-media", "vc-dev-whisper-gpu", "vc-dev-ollama-gpu"]
    assert sorted(r.name for r in stack.of_type(POOL)) == sorted(names)
    components = stack.of_type("voice-connector:infra:NodePool")
    assert sorted(r.name for r in components) == sorted(names)
    gke = stack.deployment.gke
    assert gke is not None
    assert list(gke.pools) == ["system", "media", "whisper-gpu", "ollama-gpu"]
    assert gke.system_pool is gke.pools["system"] and gke.media_pool is gke.pools["media"]
    assert set(gke.gpu_pools) == {"whisper", "ollama"}


def test_system_pool_is_small_private_and_untainted(stacks: Stacks) -> None:
    pool = stacks("dev").one(POOL, "vc-dev-system").inputs
    assert pool["autoscaling"] == {"minNodeCount": 1, "maxNodeCount": 3}
    assert pool["networkConfig"] == {"enablePrivateNodes": True}
    node = pool["nodeConfig"]
    assert node["machineType"] == "e2-standard-4"
    assert node["taints"] == [] and "guestAccelerators" not in node
    assert node["labels"] == {"voice-connector/pool": "system"}
    assert node["serviceAccount"] == "vc-dev-gpu@vc-test-project.iam.gserviceaccount.com"
    assert node["workloadMetadataConfig"] == {"mode": "GKE_METADATA"}


@pytest.mark.parametrize(("stack", "scale"), [("dev", (1, 1)), ("prod", (2, 3))])
def test_gpu_pools_scale_with_the_stack(stacks: Stacks, stack: str, scale: tuple[int, int]) -> None:
    for service in ("whisper", "ollama"):
        pool = stacks(stack).one(POOL, f"{service}-gpu").inputs
        assert (pool["initialNodeCount"], pool["autoscaling"]["maxNodeCount"]) == scale
        assert pool["networkConfig"] == {"enablePrivateNodes": True}
        assert pool["nodeConfig"]["labels"] == {"voice-connector/pool": service}
        assert pool["nodeConfig"]["tags"] == [f"vc-{stack}-gpu"]
        assert pool["nodeConfig"]["workloadMetadataConfig"] == {"mode": "GKE_METADATA"}


def test_pools_keep_the_urns_they_had_directly_under_the_cluster(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each pool's alias names the cluster component as its former parent: `pulumi up` on a
    stack declared before `NodePool` existed moves the pools, it does not replace them."""
    import pulumi_gcp as gcp

    aliases: dict[str, list[pulumi.Alias]] = {}
    real_pool = gcp.container.NodePool

    def pool(name: str, *args: object, opts: pulumi.ResourceOptions, **kwargs: object) -> object:
        aliases[name] = list(opts.aliases or [])
        return real_pool(name, *args, opts=opts, **kwargs)

    monkeypatch.setattr(gcp.container, "NodePool", pool)
    gke = run_stack("dev").deployment.gke
    assert len(aliases) == 4
    for name, found in aliases.items():
        (alias,) = found
        assert alias.parent is gke, name
        # name, type, stack and project unchanged (`...`: the resource's own): only the parent
        assert {alias.name, alias.type_, alias.stack, alias.project} == {...}, name


def test_a_pool_declared_alone_has_no_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    import pulumi_gcp as gcp

    seen: list[object] = []
    real_pool = gcp.container.NodePool

    def pool(name: str, *args: object, opts: pulumi.ResourceOptions, **kwargs: object) -> object:
        seen.append(opts.aliases)
        return real_pool(name, *args, opts=opts, **kwargs)

    monkeypatch.setattr(gcp.container, "NodePool", pool)
    declare_alone("vc-test-plain", pool_args())
    assert seen == [None]
