"""Build and run the Pipecat pipeline of one call, whatever transport it came from.

    transport.input → VAD → STT → user context → LLM → TTS → transport.output → assistant context

The pipeline runs at 16 kHz inside; transports convert at the edge (G.711 8 kHz). Caller speech
detected by the VAD while the bot talks interrupts it (barge-in): queued bot audio is dropped,
the LLM generation is cancelled, and the transport tells the far end to flush (Twilio `clear`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from loguru import logger
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.frames.frames import TTSSpeakFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.runner import PipelineRunner
from pipecat.pipeline.task import PipelineParams, PipelineTask
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.turns.user_start import VADUserTurnStartStrategy
from pipecat.turns.user_stop import (
    BaseUserTurnStopStrategy,
    SpeechTimeoutUserTurnStopStrategy,
    TurnAnalyzerUserTurnStopStrategy,
)
from pipecat.turns.user_turn_strategies import UserTurnStrategies

from voice_connector.audio.rates import PIPELINE_SAMPLE_RATE
from voice_connector.audio.vad import BatchedSileroVADAnalyzer
from voice_connector.pipeline.call_control import CallController, prompt_settings
from voice_connector.pipeline.observers import CallPipelineTask
from voice_connector.services import factory
from voice_connector.telemetry.call_record import CallRecord, CallRecorder
from voice_connector.telemetry.outcome import CallOutcome
from voice_connector.transports.base import CallInfo, CallTransport
from voice_connector_core.config import Settings

USER_TURN_STOP_TIMEOUT_SECS = 15.0
"""Longest wait for a transcript after speech ends. Pipecat's 5 s default drops the caller's words
when the STT is slow (a busy CPU node): a late answer beats a lost one."""


@dataclass
class CallServices:
    """The three AI services of one call; tests and benchmarks may pass their own."""

    stt: FrameProcessor
    llm: FrameProcessor
    tts: FrameProcessor
    extra_processors: list[FrameProcessor] = field(default_factory=list)


ServicesFactory = Callable[[Settings, CallInfo], CallServices]
"""Builds one call's services from its (flavor-resolved) settings: how tests and benchmarks give
calls their own services instead of the configured ones."""


def create_services(settings: Settings, call_id: str) -> CallServices:
    """Services chosen by the (flavor-resolved) settings."""
    return CallServices(
        stt=factory.create_stt(settings, call_id),
        llm=factory.create_llm(settings, call_id),
        tts=factory.create_tts(settings, call_id),
    )


def stop_audio_at_stt(stt: FrameProcessor) -> None:
    """Caller audio has no use past the STT in timeout mode (smart-turn reads it in the user
    aggregator); Pipecat passes it on by default.

    Every 20 ms audio frame would otherwise cross the user aggregator, LLM, TTS, output and
    assistant aggregator too: half the per-call frame traffic for nothing.
    """
    if hasattr(stt, "_audio_passthrough"):
        stt._audio_passthrough = False


def turn_stop_strategy(settings: Settings) -> BaseUserTurnStopStrategy:
    """`[pipeline] turn_detection`: smart-turn judging each pause (`pipeline/smart_turn.py`), or
    a fixed silence.

    Smart-turn reads the caller's audio in the user aggregator, so that audio must pass the STT.
    """
    if settings.pipeline.turn_detection == "smart_turn":
        from voice_connector.pipeline.smart_turn import smart_turn_analyzer

        return TurnAnalyzerUserTurnStopStrategy(turn_analyzer=smart_turn_analyzer(settings))
    return SpeechTimeoutUserTurnStopStrategy(
        user_speech_timeout=settings.pipeline.user_speech_timeout_secs
    )


def build_task(
    call: CallTransport, settings: Settings, services: CallServices, record: CallRecord
) -> tuple[PipelineTask, LLMContext]:
    """The PipelineTask of one call, and the conversation context it accumulates."""
    transport = call.pipecat
    if settings.pipeline.turn_detection != "smart_turn":
        stop_audio_at_stt(services.stt)
    vad = BatchedSileroVADAnalyzer(
        params=VADParams(
            confidence=settings.pipeline.vad_confidence, stop_secs=settings.pipeline.vad_stop_secs
        )
    )
    context = LLMContext(messages=[])
    strategies = UserTurnStrategies(
        start=[
            VADUserTurnStartStrategy(enable_interruptions=settings.pipeline.allow_interruptions)
        ],
        stop=[turn_stop_strategy(settings)],
    )
    aggregators = LLMContextAggregatorPair(
        context,
        user_params=LLMUserAggregatorParams(
            user_turn_strategies=strategies,
            user_turn_stop_timeout=USER_TURN_STOP_TIMEOUT_SECS,
            # The VAD processor already ends a turn whose audio stops arriving (in timeout mode
            # caller audio stops at the STT, see `stop_audio_at_stt`).
            audio_idle_timeout=0,
        ),
    )
    control = CallController(call, settings, context)
    control.install_tools(services.llm)
    pipeline = Pipeline(
        [
            transport.input(),
            VADProcessor(vad_analyzer=vad),
            services.stt,
            aggregators.user(),
            control.keeper,
            services.llm,
            control.filter,
            *services.extra_processors,
            services.tts,
            control.playback,
            transport.output(),
            aggregators.assistant(),
        ]
    )
    task = CallPipelineTask(
        pipeline,
        params=PipelineParams(
            audio_in_sample_rate=PIPELINE_SAMPLE_RATE,
            audio_out_sample_rate=PIPELINE_SAMPLE_RATE,
            enable_metrics=True,
        ),
        observers=[CallRecorder(record)],
        idle_timeout_secs=None,
        enable_rtvi=False,
        enable_turn_tracking=False,  # `CallRecorder` keeps the turns; one observer per frame less
    )
    return task, context


async def run_call(
    call: CallTransport,
    settings: Settings,
    record: CallRecord,
    services: CallServices | None = None,
) -> CallRecord:
    """Run one call's pipeline to its end; returns the filled record."""
    info = call.info
    services = services or create_services(prompt_settings(settings), info.call_id)
    task, _context = build_task(call, settings, services, record)
    greeting = settings.llm.greeting.strip()

    call.attach(task, record)
    if greeting:
        await task.queue_frame(TTSSpeakFrame(greeting))
    logger.info(f"call {info.call_id}: pipeline starts (flavor {settings.flavor})")
    try:
        await run_to_end(task, record, CallOutcome.BOT_HANGUP)
    finally:
        logger.info(f"call {info.call_id}: ended ({record.outcome}, {len(record.turns)} turns)")
    return record


async def run_to_end(task: PipelineTask, record: CallRecord, outcome: CallOutcome) -> None:
    """Run one call's task until it ends; stamp the end and, if no side reported why it ended,
    `outcome` (a pipeline that ends by itself ends the call from our side: a bot hang-up). A
    failure is left to the caller to report."""
    runner = PipelineRunner(handle_sigint=False, handle_sigterm=False)
    try:
        await runner.add_workers(task)
        await runner.run()
    finally:
        record.ended_at = time.time()
    record.end_with(outcome, "pipeline ended")
