"""Each model runs where its `device` says: `auto` takes the GPU only when the engine can."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from benchmarks import devices as bench_devices
from voice_connector_core import devices
from voice_connector_core.config import ConfigError, load_settings


def engines(monkeypatch: pytest.MonkeyPatch, **gpu: bool) -> None:
    """Pretend each named engine can (True) or cannot (False) use a GPU here."""
    for name, has in gpu.items():
        monkeypatch.setitem(devices.ENGINES, name.replace("_", "."), lambda has=has: has)


def test_auto_follows_what_the_engine_can_do(monkeypatch: pytest.MonkeyPatch) -> None:
    engines(monkeypatch, whisper=True, piper=False)
    assert devices.resolve("auto", "whisper") == "cuda"
    assert devices.resolve("auto", "piper") == "cpu"


def test_cpu_never_asks_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    def probe() -> bool:
        raise AssertionError("probed")

    monkeypatch.setitem(devices.ENGINES, "whisper", probe)
    assert devices.resolve("cpu", "whisper") == "cpu"


def test_cuda_without_a_gpu_engine_says_which(monkeypatch: pytest.MonkeyPatch) -> None:
    engines(monkeypatch, llama_cpp=False)
    with pytest.raises(ValueError, match=r"llama\.cpp"):
        devices.resolve("cuda", "llama.cpp")


@pytest.mark.parametrize(("gpu_build", "device", "layers"), [
    (True, "auto", -1), (False, "auto", 0), (True, "cpu", 0), (True, "cuda", -1),
])  # fmt: skip
def test_llama_offloads_every_layer_or_none(
    monkeypatch: pytest.MonkeyPatch, gpu_build: bool, device: devices.Device, layers: int
) -> None:
    engines(monkeypatch, llama_cpp=gpu_build)
    assert devices.llama_gpu_layers(device) == layers


def test_piper_voice_asks_onnxruntime_for_cuda_only_when_it_has_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import piper

    from voice_connector.services import shared_models

    loads: list[dict[str, Any]] = []
    monkeypatch.setattr(piper.PiperVoice, "load", staticmethod(lambda *a, **k: loads.append(k)))
    monkeypatch.setattr(shared_models, "_models", {})
    engines(monkeypatch, piper=True)
    shared_models.piper_voice(Path("/v/gpu.onnx"), Path("/v/gpu.onnx.json"), "auto")
    shared_models.piper_voice(Path("/v/cpu.onnx"), Path("/v/cpu.onnx.json"), "cpu")
    assert [load["use_cuda"] for load in loads] == [True, False]


def test_local_whisper_stt_takes_the_configured_device(monkeypatch: pytest.MonkeyPatch) -> None:
    import faster_whisper

    from voice_connector.services import shared_models
    from voice_connector.services.stt.faster_whisper import FasterWhisperSTTService

    asked: list[str] = []

    def model(path: str, **kwargs: Any) -> object:
        asked.append(kwargs["device"])
        return object()

    monkeypatch.setattr(faster_whisper, "WhisperModel", model)
    monkeypatch.setattr(shared_models, "_models", {})
    for device in ("cuda", "auto"):
        FasterWhisperSTTService(model_path=Path(f"/w/{device}"), device=device)._load()
    assert asked == ["cuda", "auto"]


def test_device_is_a_typed_setting_of_each_model_section() -> None:
    settings = load_settings(None, env={"VC_LLM_DEVICE": "cpu"})
    devices_set = (settings.stt.device, settings.llm.device, settings.tts.device)
    assert devices_set == ("auto", "cpu", "auto")
    with pytest.raises(ConfigError, match="device"):
        load_settings(None, env={"VC_TTS_DEVICE": "gpu"})


def test_benchmarks_name_where_each_model_ran(monkeypatch: pytest.MonkeyPatch) -> None:
    engines(monkeypatch, whisper=True, llama_cpp=False, piper=False)
    assert bench_devices.describe("auto", ("whisper", "llama.cpp")) == (
        "device auto → whisper cuda, llama.cpp cpu"
    )
    assert bench_devices.node_env("cpu")["VC_STT_DEVICE"] == "cpu"


def test_the_bundled_llm_server_is_started_on_the_configured_device() -> None:
    from tests.conftest import node_settings
    from voice_connector.services.llm import local_server

    default = local_server.server_command(node_settings())
    assert default[default.index("--device") + 1] == "auto"
    command = local_server.server_command(node_settings(VC_LLM_DEVICE="cpu"))
    assert command[command.index("--device") + 1] == "cpu"


def test_llama_engine_offloads_every_layer_on_a_gpu_build(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import llama_cpp

    from ai_services.llm_engine import LlamaEngine
    from ai_services.metrics import ServiceMetrics

    class Llama:
        metadata: ClassVar[dict[str, str]] = {}

        def __init__(self, **kwargs: Any) -> None:
            asked.append(kwargs["n_gpu_layers"])

    asked: list[int] = []
    monkeypatch.setattr(llama_cpp, "Llama", Llama)
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    metrics = ServiceMetrics("llama-device-test")
    engines(monkeypatch, llama_cpp=True)
    for device in ("auto", "cpu"):
        LlamaEngine(gguf, metrics, device=device)._load()
    assert asked == [-1, 0]


def test_piper_server_loads_its_voice_on_the_device_it_was_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import piper

    from ai_services.piper_ws_server import Settings, build_app, main

    loads: list[dict[str, Any]] = []
    monkeypatch.setattr(piper.PiperVoice, "load", staticmethod(lambda *a, **k: loads.append(k)))
    engines(monkeypatch, piper=True)
    for device in ("auto", "cpu"):
        settings = Settings(Path("/v/x.onnx"), Path("/v/x.onnx.json"), device=device)
        build_app(settings).state.model._loader()
    assert [load["use_cuda"] for load in loads] == [True, False]
    monkeypatch.setattr("ai_services.piper_ws_server.serve", lambda app, args: loads.append(args))
    main(["--device", "cpu"])
    assert loads[-1].device == "cpu"
