"""What a project must have before the `full` phase: checked up front, not found half-way.

New projects get `GPUS_ALL_REGIONS = 0`: the GPU node pools would be created and then never get
a node, and every call would wait for STT/LLM. The quotas are read with `gcloud` (the operator's
own credentials) and compared with what the stack asks for.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from voice_infra.config import StackConfig
from voice_infra.k8s_manifests import gpu_scale, gpu_services

GPU_QUOTA = {"nvidia-l4": "NVIDIA_L4_GPUS", "nvidia-tesla-t4": "NVIDIA_T4_GPUS"}
PROJECT_GPU_QUOTA = "GPUS_ALL_REGIONS"
Fetch = Callable[[Sequence[str]], Any]


def gpus_needed(cfg: StackConfig) -> int:
    """One GPU per replica, at the GPU services' most replicas (the pools' maximum nodes)."""
    return len(gpu_services()) * gpu_scale(cfg)[1]


def _limits(quotas: Sequence[Mapping[str, Any]]) -> dict[str, tuple[float, float]]:
    return {q["metric"]: (float(q.get("limit", 0)), float(q.get("usage", 0))) for q in quotas}


def quota_problems(
    cfg: StackConfig,
    project_quotas: Sequence[Mapping[str, Any]],
    region_quotas: Sequence[Mapping[str, Any]],
) -> list[str]:
    """Every GPU quota too small for the stack, naming the quota and how to raise it."""
    needed = gpus_needed(cfg)
    wanted = [
        (PROJECT_GPU_QUOTA, _limits(project_quotas), "global"),
        (GPU_QUOTA[cfg.gpu_type], _limits(region_quotas), cfg.region),
    ]
    problems = []
    for metric, limits, where in wanted:
        limit, usage = limits.get(metric, (0.0, 0.0))
        if limit - usage < needed:
            problems.append(
                f"quota {metric} ({where}): {limit:g} with {usage:g} in use, the stack needs "
                f"{needed} ({cfg.gpu_type}); request more under IAM & Admin > Quotas "
                f"(approval can take a day)"
            )
    return problems


def gcloud_json(args: Sequence[str]) -> Any:
    result = subprocess.run(
        ["gcloud", *args, "--format=json"], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout)


def check(cfg: StackConfig, fetch: Fetch = gcloud_json) -> list[str]:
    """Problems that would stop the `full` phase in this project, [] when none."""
    project = fetch(["compute", "project-info", "describe", f"--project={cfg.project}"])
    region = fetch(["compute", "regions", "describe", cfg.region, f"--project={cfg.project}"])
    return quota_problems(cfg, project.get("quotas", []), region.get("quotas", []))
