"""A call whose flavor's services are down: the spoken apology, then hang up.

Why: readiness covers the default flavor only, so one retired or failing flavor does not take the
node out; its callers hear the same apology as when a service fails mid-call
(`services/outage.py`), in the default flavor's voice (which readiness keeps up), instead of
silence or a refusal.
"""

from __future__ import annotations

from loguru import logger
from pipecat.frames.frames import EndFrame, TTSSpeakFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.task import PipelineParams, PipelineTask

from voice_connector.pipeline.builder import run_to_end
from voice_connector.services import factory
from voice_connector.services.outage import APOLOGY
from voice_connector.telemetry.call_record import CallRecord
from voice_connector.telemetry.outcome import CallOutcome
from voice_connector.transports.base import CallTransport
from voice_connector_core.config import Settings


async def apologize(call: CallTransport, settings: Settings, record: CallRecord) -> CallRecord:
    """Speak `APOLOGY` with `settings`' TTS and end the call after it was played."""
    transport = call.pipecat
    tts = factory.create_tts(settings, call.info.call_id)
    task = PipelineTask(
        Pipeline([transport.input(), tts, transport.output()]),
        params=PipelineParams(audio_in_sample_rate=16000, audio_out_sample_rate=16000),
        idle_timeout_secs=None,
        enable_rtvi=False,
        enable_turn_tracking=False,
    )
    call.attach(task, record)
    record.greeting = APOLOGY
    await task.queue_frames([TTSSpeakFrame(APOLOGY), EndFrame()])
    try:
        await run_to_end(task, record, CallOutcome.FLAVOR_UNAVAILABLE)
    finally:
        logger.info(f"call {call.info.call_id}: apology played, call ended ({record.outcome})")
    return record
