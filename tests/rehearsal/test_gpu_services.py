"""faster-whisper takes the GPU where there is one: the service (GPU pool) and the connector's
in-process STT both ask CTranslate2 for `auto` (CUDA when it sees a device, else the CPU)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import faster_whisper
import pytest

from tests.rehearsal.launch import Running, image_stage


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
    from ai_services.metrics import ServiceMetrics
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


async def test_a_dead_whisper_endpoint_fails_over_to_the_next(whisper: Running) -> None:
    """Two endpoints, the first unreachable: the utterance is transcribed by the second, no
    apology, no error (the deployed GPU service as the live one)."""
    from pipecat.audio.vad.silero import SileroVADAnalyzer
    from pipecat.audio.vad.vad_analyzer import VADParams
    from pipecat.frames.frames import TranscriptionFrame, TTSSpeakFrame
    from pipecat.processors.audio.vad_processor import VADProcessor

    from tests.integration.providers.harness import Harness, piper_speech, utterance, wer
    from voice_connector.services.stt.whisper_remote import RemoteWhisperSTTService
    from voice_connector.services.ws_client import Backoff

    text = "Please check the status of my order."
    live = f"http://127.0.0.1:{whisper.launch.port}"
    stt = RemoteWhisperSTTService(
        url=f"http://127.0.0.1:9,{live}", backoff=Backoff(attempts=2, first_delay=0.05)
    )
    vad = VADProcessor(vad_analyzer=SileroVADAnalyzer(params=VADParams(stop_secs=0.5)))
    async with Harness(vad, stt) as h:
        await h.push_audio(utterance(piper_speech(text)))
        frame = await h.wait_for(lambda f: isinstance(f, TranscriptionFrame) and f.finalized)
    assert wer(text, frame.text) <= 0.2, frame.text
    assert not h.of(TTSSpeakFrame) and not h.errors


async def test_readiness_holds_while_any_listed_endpoint_answers(whisper: Running) -> None:
    from media_node.health import probe_service

    live = f"http://127.0.0.1:{whisper.launch.port}"
    assert (await probe_service(f"http://127.0.0.1:9,{live}"))[0] is True
    ok, why = await probe_service("http://127.0.0.1:9,http://127.0.0.1:7")
    assert not ok and "127.0.0.1:9" in why and "127.0.0.1:7" in why
