"""`[pipeline] turn_detection` picks how a caller's turn ends: smart-turn by default, its wait for
speech that sounds unfinished bounded by timeout mode's, on one ONNX session per process."""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import soxr
from pipecat.audio.turn.base_turn_analyzer import EndOfTurnState
from pipecat.clocks.system_clock import SystemClock
from pipecat.frames.frames import (
    InputAudioRawFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.metrics.metrics import TurnMetricsData
from pipecat.processors.frame_processor import FrameProcessorSetup
from pipecat.turns.user_stop import (
    SpeechTimeoutUserTurnStopStrategy,
    TurnAnalyzerUserTurnStopStrategy,
)
from pipecat.utils.asyncio.task_manager import TaskManager

from tests.unit.config.ini_files import write
from voice_connector.pipeline.builder import turn_stop_strategy
from voice_connector.pipeline.smart_turn import SharedSmartTurnAnalyzer
from voice_connector.services import shared_models
from voice_connector_core.config import Settings, load_settings

CONFIG = (
    "[transport]\nproviders = twilio\n"
    "[pipeline]\nvad_stop_secs = 0.2\nuser_speech_timeout_secs = 0.7\n"
    "[flavor:patient]\nmatch = ^\\+1555\n"
    "pipeline.vad_stop_secs = 0.4\npipeline.user_speech_timeout_secs = 1.5\n"
)
RATE = 16000
CHUNK = 320  # 20 ms, as the transports deliver it
COMPLETE = "What is the capital of France?"
UNFINISHED = "So I was thinking that"
"""Judged unfinished whatever Piper's random variation (p 0.01-0.03 at the VAD's stop); so are
some finished questions ("Can you recommend a good book?", p 0.01-0.2), less steadily."""


def settings(tmp_path: Path, **env: str) -> Settings:
    return load_settings(write(tmp_path, CONFIG), env=env)


def analyzer_of(settings: Settings) -> SharedSmartTurnAnalyzer:
    strategy = turn_stop_strategy(settings)
    assert isinstance(strategy, TurnAnalyzerUserTurnStopStrategy)
    assert isinstance(strategy._turn_analyzer, SharedSmartTurnAnalyzer)
    return strategy._turn_analyzer


@asynccontextmanager
async def judging(settings: Settings) -> AsyncIterator[SharedSmartTurnAnalyzer]:
    """One call's analyzer, its inference thread cleaned up after."""
    analyzer = analyzer_of(settings)
    try:
        yield analyzer
    finally:
        await analyzer.cleanup()


def test_smart_turn_by_default_waiting_for_unfinished_speech_as_timeout_mode(
    tmp_path: Path,
) -> None:
    """The analyzer counts silence from the VAD's stop (see the timing test below), so its
    `stop_secs` is the further wait timeout mode has after that stop, not Pipecat's 3 s."""
    default = settings(tmp_path)
    assert default.pipeline.turn_detection == "smart_turn"
    assert analyzer_of(default).params.stop_secs == 0.7
    assert analyzer_of(default.for_flavor("patient")).params.stop_secs == 1.5


def test_timeout_mode_stays_available(tmp_path: Path) -> None:
    strategy = turn_stop_strategy(settings(tmp_path, VC_PIPELINE_TURN_DETECTION="timeout"))
    assert isinstance(strategy, SpeechTimeoutUserTurnStopStrategy)
    assert strategy._user_speech_timeout == 0.7


def test_every_call_s_analyzer_runs_one_session_built_as_pipecat_builds_its_own(
    tmp_path: Path,
) -> None:
    config = settings(tmp_path)
    first, second = analyzer_of(config), analyzer_of(config.for_flavor("patient"))
    assert first is not second, "each call keeps its own buffer and silence count"
    assert first._session is second._session is shared_models.smart_turn_session()
    assert first._log_data is False
    options = first._session.get_session_options()
    assert (options.inter_op_num_threads, options.intra_op_num_threads) == (1, 1)
    assert str(options.execution_mode).endswith("ORT_SEQUENTIAL")
    assert str(options.graph_optimization_level).endswith("ORT_ENABLE_ALL")


def utterance(speech: Callable[[str], Path], text: str) -> list[bytes]:
    """Piper speaking `text` (22.05 kHz), as the pipeline's 16 kHz 20 ms chunks, silence cut."""
    with wave.open(str(speech(text)), "rb") as wav:
        rate = wav.getframerate()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    pcm = soxr.resample(samples, rate, RATE).astype(np.int16)
    voiced = np.flatnonzero(np.abs(pcm) > 300)
    pcm = pcm[voiced[0] : voiced[-1] + 1]
    pcm = np.pad(pcm, (0, -len(pcm) % CHUNK))
    return [pcm[i : i + CHUNK].tobytes() for i in range(0, len(pcm), CHUNK)]


SILENCE = bytes(2 * CHUNK)


async def first_verdict(
    analyzer: SharedSmartTurnAnalyzer, chunks: list[bytes], vad_stop_secs: float = 0.2
) -> tuple[EndOfTurnState, float]:
    """What the analyzer says at the VAD's stop, and its probability of a complete turn: the
    stop strategy calls the caller "speaking" up to then, through the `vad_stop_secs` of silence
    that make the VAD stop."""
    analyzer.set_sample_rate(RATE)
    for chunk in chunks + [SILENCE] * round(vad_stop_secs / 0.02):
        assert analyzer.append_audio(chunk, is_speech=True) == EndOfTurnState.INCOMPLETE
    state, metrics = await analyzer.analyze_end_of_turn()
    assert isinstance(metrics, TurnMetricsData)
    return state, metrics.probability


async def test_finished_speech_ends_the_turn_at_the_vad_stop(
    tmp_path: Path, speech: Callable[[str], Path]
) -> None:
    async with judging(settings(tmp_path)) as analyzer:
        state, _ = await first_verdict(analyzer, utterance(speech, COMPLETE))
        assert state == EndOfTurnState.COMPLETE


async def test_speech_judged_unfinished_ends_after_stop_secs_of_silence_not_3_s(
    tmp_path: Path, speech: Callable[[str], Path]
) -> None:
    async with judging(settings(tmp_path)) as analyzer:
        state, _ = await first_verdict(analyzer, utterance(speech, UNFINISHED))
        assert state == EndOfTurnState.INCOMPLETE
        states = [analyzer.append_audio(SILENCE, is_speech=False) for _ in range(50)]
        silence_ms = 20 * (states.index(EndOfTurnState.COMPLETE) + 1)
        assert silence_ms == 700, "ends once the silence reaches stop_secs, not before or after"


async def test_calls_judging_at_once_on_the_shared_session_get_their_own_verdicts(
    tmp_path: Path, speech: Callable[[str], Path]
) -> None:
    """Each analyzer runs the model on its own thread; onnxruntime's `run` is thread-safe."""
    config = settings(tmp_path)
    clips = [utterance(speech, COMPLETE), utterance(speech, UNFINISHED)] * 3

    async def verdict(clip: list[bytes]) -> tuple[EndOfTurnState, float]:
        async with judging(config) as analyzer:
            return await first_verdict(analyzer, clip)

    alone = [await verdict(clip) for clip in clips]
    assert await asyncio.gather(*(verdict(clip) for clip in clips)) == alone


async def turn_end_after_last_speech(
    config: Settings, chunks: list[bytes], text: str
) -> float | None:
    """Seconds of silence after `chunks` when the call's stop strategy ends the turn: the VAD
    stops `vad_stop_secs` into the silence and the transcript is there at once."""
    strategy = turn_stop_strategy(config)
    await strategy.setup(
        FrameProcessorSetup(clock=SystemClock(), task_manager=TaskManager(), pipeline_worker=None)
    )
    ended: list[float] = []
    silence = [0.0]

    @strategy.event_handler("on_user_turn_stopped")
    async def _stopped(_strategy, _params) -> None:  # type: ignore[no-untyped-def]
        ended.append(silence[0])

    vad_stop_chunks = round(config.pipeline.vad_stop_secs / 0.02)
    try:
        await strategy.handle_user_turn_started()
        await strategy.process_frame(VADUserStartedSpeakingFrame(start_secs=0.2))
        for chunk in chunks:
            await strategy.process_frame(InputAudioRawFrame(chunk, RATE, 1))
        for n in range(1, 200):
            silence[0] = round(n * 0.02, 2)
            await strategy.process_frame(InputAudioRawFrame(SILENCE, RATE, 1))
            if n == vad_stop_chunks:
                await strategy.process_frame(
                    VADUserStoppedSpeakingFrame(stop_secs=config.pipeline.vad_stop_secs)
                )
                transcript = TranscriptionFrame(text, "caller", "")
                transcript.finalized = True
                await strategy.process_frame(transcript)
            if ended:
                return ended[0]
        return None
    finally:
        await strategy.cleanup()


async def test_no_turn_ends_later_than_in_timeout_mode(
    tmp_path: Path, speech: Callable[[str], Path]
) -> None:
    """Timeout mode ends every turn `vad_stop_secs + user_speech_timeout_secs` after the last
    speech (its timer starts at the VAD's stop); smart-turn ends a finished one at the VAD's
    stop and one it judges unfinished at that same moment, not 3 s later."""
    config = settings(tmp_path)
    finished = await turn_end_after_last_speech(config, utterance(speech, COMPLETE), COMPLETE)
    unfinished = await turn_end_after_last_speech(config, utterance(speech, UNFINISHED), UNFINISHED)
    assert (finished, unfinished) == (0.2, 0.9)  # vad_stop_secs; + user_speech_timeout_secs
