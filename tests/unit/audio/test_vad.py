"""The batched Silero VAD decides what Pipecat's per-call Silero VAD decides, for many calls at
once, on one ONNX session and one thread."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest
from pipecat.audio.vad.silero import SileroOnnxModel, SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams, VADState

from tests.unit.audio.test_loudness import librivox_speech
from voice_connector.audio import vad
from voice_connector.audio.vad import (
    BatchedSileroVADAnalyzer,
    SileroBatchEngine,
    SileroStream,
    silero_engine,
)

FRAME = 320  # 20 ms at 16 kHz, as the transports deliver it
PARAMS = VADParams(confidence=0.7, stop_secs=0.2)


def call_audio(offset: int) -> np.ndarray:
    """Silence, real speech, silence: one caller turn (offset varies the callers)."""
    speech = librivox_speech()[offset : offset + 16000 * 2]
    silence = np.zeros(16000, dtype=np.int16)
    return np.concatenate((silence, speech, silence))


async def states(analyzer, audio: np.ndarray) -> list[VADState]:  # type: ignore[no-untyped-def]
    analyzer.set_sample_rate(16000)
    return [
        await analyzer.analyze_audio(audio[i : i + FRAME].tobytes())
        for i in range(0, len(audio) - FRAME + 1, FRAME)
    ]


def transitions(sequence: list[VADState]) -> list[tuple[int, VADState]]:
    return [(i, s) for i, s in enumerate(sequence) if i == 0 or s != sequence[i - 1]]


async def test_batched_scores_equal_single_model_scores() -> None:
    """Silero's batch axis keeps each stream's recurrent state apart: exact same confidences."""
    engine = SileroBatchEngine(16000)
    audio = [call_audio(o).astype(np.float32) / 32768.0 for o in (0, 8000, 20000)]
    singles = [SileroOnnxModel(str(_model_path()), force_onnx_cpu=True) for _ in audio]
    streams = [SileroStream(16000) for _ in audio]
    for w in range(0, 40):
        windows = [a[w * 512 : (w + 1) * 512] for a in audio]
        batched = await asyncio.gather(
            *(engine.score(s, [x]) for s, x in zip(streams, windows, strict=True))
        )
        alone = [float(m(x, 16000)[0][0]) for m, x in zip(singles, windows, strict=True)]
        assert [b[0] for b in batched] == pytest.approx(alone, abs=1e-5)
    assert engine.batches < 40 * len(audio)  # windows of different calls did share batches
    engine.close()


def _model_path():  # type: ignore[no-untyped-def]
    from importlib import resources

    return resources.files("pipecat.audio.vad.data").joinpath("silero_vad.onnx")


async def test_decides_speech_where_pipecats_silero_vad_does() -> None:
    audio = call_audio(0)
    ours = await states(BatchedSileroVADAnalyzer(params=PARAMS), audio)
    theirs = await states(SileroVADAnalyzer(params=PARAMS), audio)
    assert VADState.SPEAKING in ours and ours[-1] == VADState.QUIET
    ours_t, theirs_t = transitions(ours), transitions(theirs)
    assert [s for _, s in ours_t] == [s for _, s in theirs_t]
    for (i, _), (j, _) in zip(ours_t, theirs_t, strict=True):
        assert abs(i - j) <= 2  # same decision within 40 ms (loudness reads ≤3 LU apart)


async def test_many_concurrent_calls_keep_their_own_state() -> None:
    """Twenty calls at once, speech at different times: each call's decisions are its own."""
    offsets = [i * 4000 for i in range(20)]
    quiet_lead = [np.zeros(FRAME * 5 * i, dtype=np.int16) for i in range(20)]
    audios = [
        np.concatenate((lead, call_audio(o))) for lead, o in zip(quiet_lead, offsets, strict=True)
    ]
    together = await asyncio.gather(
        *(states(BatchedSileroVADAnalyzer(params=PARAMS), a) for a in audios)
    )
    for audio, sequence in zip(audios[:3], together[:3], strict=True):
        alone = await states(BatchedSileroVADAnalyzer(params=PARAMS), audio)
        assert sequence == alone


async def test_a_failing_model_reads_as_silence_and_the_call_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = silero_engine(16000)

    def broken(*args: object) -> None:
        raise RuntimeError("onnx exploded")

    monkeypatch.setattr(engine, "_infer", broken)
    sequence = await states(BatchedSileroVADAnalyzer(params=PARAMS), call_audio(0)[:16000])
    assert set(sequence) == {VADState.QUIET}
    monkeypatch.undo()
    after = await states(BatchedSileroVADAnalyzer(params=PARAMS), call_audio(0))
    assert VADState.SPEAKING in after  # the engine thread survived


async def test_a_call_that_ends_mid_score_is_skipped() -> None:
    engine = silero_engine(16000)
    stream = SileroStream(16000)
    window = np.zeros(512, dtype=np.float32)
    errors: list[dict] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: errors.append(context))
    pending = asyncio.ensure_future(engine.score(stream, [window]))
    await asyncio.sleep(0)
    pending.cancel()
    after = await asyncio.wait_for(engine.score(SileroStream(16000), [window]), 10)
    assert after == [pytest.approx(0.0, abs=0.2)]
    assert errors == []  # no result was set on the cancelled future


def test_one_engine_and_one_thread_per_process() -> None:
    assert silero_engine(16000) is silero_engine(16000)
    engines = [t for t in threading.enumerate() if t.name == "silero-vad-16000"]
    assert len(engines) == 1
    with pytest.raises(ValueError, match="8000 or 16000"):
        SileroBatchEngine(44100)
    assert vad.GATHER_SECS < 0.01
