"""faster-whisper takes the GPU where there is one: the service (GPU pool) and the connector's
in-process STT both ask CTranslate2 for `auto` (CUDA when it sees a device, else the CPU)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import faster_whisper
import pytest

from tests.rehearsal.launch import image_stage


class Recorder:
    calls: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, path: str, **kwargs: Any) -> None:
        Recorder.calls.append(kwargs)


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    Recorder.calls = []
    monkeypatch.setattr(faster_whisper, "WhisperModel", Recorder)
    return Recorder.calls


def test_whisper_service_asks_for_auto_device(recorded: list[dict[str, Any]]) -> None:
    from ai_services.common import ServiceMetrics
    from ai_services.whisper_service import Settings, WhisperService

    WhisperService(Settings(model_path=Path("/m")), ServiceMetrics("whisper-test"))._load()
    assert recorded[-1]["device"] == "auto"


def test_in_process_stt_asks_for_auto_device(recorded: list[dict[str, Any]]) -> None:
    from voice_connector.services import shared_models

    shared_models.whisper_model(Path("/rehearsal/whisper-auto"), "int8")
    assert recorded[-1]["device"] == "auto"


def test_the_gpu_pool_runs_the_cuda_image_with_auto_device() -> None:
    from tests.rehearsal.rendered import rendered

    container = rendered().containers["gke/whisper/whisper"]
    _, stage = image_stage(container.image)
    argv = (container.command or stage.entrypoint) + (container.args or stage.cmd)
    assert argv[argv.index("--device") + 1] == "auto"
    assert "nvidia/cublas" in stage.env["LD_LIBRARY_PATH"]
