"""Which device each model runs on: `auto` takes the GPU when the installed engine can use one.

One answer for the node, the model servers and the benchmarks, so a results file can say where
its models really ran. Each engine sees a GPU its own way: CTranslate2 (faster-whisper) counts
CUDA devices, llama.cpp must be a GPU build to offload layers, onnxruntime (Piper) must have
its CUDA execution provider. `cuda` on an engine without one is a configuration error, said at
start-up rather than found as a slow call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

Device = Literal["auto", "cpu", "cuda"]
DEVICES: tuple[Device, ...] = ("auto", "cpu", "cuda")


def whisper_sees_cuda() -> bool:
    """CTranslate2 (faster-whisper's engine) sees at least one CUDA device."""
    try:
        import ctranslate2
    except ImportError:
        return False
    return ctranslate2.get_cuda_device_count() > 0


def llama_offloads() -> bool:
    """The installed llama.cpp is a GPU build (it can offload layers)."""
    try:
        import llama_cpp
    except ImportError:
        return False
    return bool(llama_cpp.llama_supports_gpu_offload())


def onnx_has_cuda() -> bool:
    """onnxruntime (Piper's engine) has its CUDA execution provider."""
    try:
        import onnxruntime
    except ImportError:
        return False
    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


ENGINES: dict[str, Callable[[], bool]] = {
    "whisper": whisper_sees_cuda,
    "llama.cpp": llama_offloads,
    "piper": onnx_has_cuda,
}
"""Engine name → whether it can run on the GPU here."""


def resolve(device: Device, engine: str) -> Literal["cpu", "cuda"]:
    """The device `engine` runs on for a configured `device`; `cuda` it cannot use raises."""
    if device == "cpu":
        return "cpu"
    has_gpu = ENGINES[engine]()
    if device == "cuda" and not has_gpu:
        raise ValueError(f"device = cuda, but {engine} here has no CUDA support")
    return "cuda" if has_gpu else "cpu"


def llama_gpu_layers(device: Device) -> int:
    """llama.cpp's `n_gpu_layers`: every layer (-1) on the GPU, none (0) on the CPU."""
    return -1 if resolve(device, "llama.cpp") == "cuda" else 0
