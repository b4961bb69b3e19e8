"""What happened in one call: the transcript of both sides and per-turn stage timings.

A Pipecat observer watches frames cross the pipeline (without sitting in it) and stamps, per turn:
end of caller speech (VAD stop), transcript ready, LLM first token, TTS first audio, first bot
audio written to the transport. The record feeds `/calls/{id}` and the benchmarks; each stage is
also exported to Prometheus (`telemetry.metrics`) the moment it is stamped, so a long call shows
in the latency histograms while it runs, and this is the one place that interprets frames.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    ErrorFrame,
    InputDTMFFrame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    OutputAudioRawFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSTextFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.observers.base_observer import FramePushed
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.llm_service import LLMService
from pipecat.services.stt_service import STTService
from pipecat.services.tts_service import TTSService
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_output import BaseOutputTransport

from voice_connector.pipeline.observers import SelectiveObserver
from voice_connector.telemetry import metrics
from voice_connector.telemetry.outcome import Ending

SERVICE_KINDS: tuple[tuple[type, str], ...] = (
    (STTService, "stt"),
    (LLMService, "llm"),
    (TTSService, "tts"),
    (BaseInputTransport, "transport"),
    (BaseOutputTransport, "transport"),
)


@dataclass
class Turn:
    """One caller utterance and the bot's answer; times are `time.monotonic()` seconds."""

    user_text: str = ""
    dtmf: str = ""
    """Keys the caller pressed in this turn (a keypad turn has no transcript or stage times)."""
    bot_text: str = ""
    speech_started: float | None = None
    speech_stopped: float | None = None
    turn_end_at: float | None = None
    """The turn strategy ended the caller's turn (Pipecat's `UserStoppedSpeakingFrame`)."""
    transcript_at: float | None = None
    llm_first_token_at: float | None = None
    first_clause_at: float | None = None
    """The first text chunk of the answer went to synthesis (the TTS's `TTSStartedFrame`)."""
    tts_first_audio_at: float | None = None
    bot_audio_at: float | None = None
    interrupted: bool = False

    def stages_ms(self) -> dict[str, float | None]:
        """Latency of each stage, in milliseconds (None where a stage did not happen)."""

        def delta(start: float | None, end: float | None) -> float | None:
            return None if start is None or end is None else round((end - start) * 1000, 1)

        return {
            "stt_ms": delta(self.speech_stopped, self.transcript_at),
            "llm_ttft_ms": delta(self.transcript_at, self.llm_first_token_at),
            "tts_first_audio_ms": delta(self.llm_first_token_at, self.tts_first_audio_at),
            "voice_to_voice_ms": delta(self.speech_stopped, self.bot_audio_at),
        }


@dataclass(kw_only=True)
class CallRecord(Ending):
    """The record of one call, kept by the media node for `/calls/{id}`; its outcome is set
    through `end_with` (the transport's, see `transports.base.CallTransport.end_with`)."""

    call_id: str
    transport: str
    flavor: str
    caller: str = ""
    callee: str = ""
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    greeting: str = ""
    turns: list[Turn] = field(default_factory=list)
    barge_ins: int = 0
    dtmf: str = ""
    providers: dict[str, str] = field(default_factory=dict)
    """Configured provider per service kind ("stt" → "faster_whisper"): metric labels."""
    errors: int = 0

    def current(self) -> Turn:
        if not self.turns:
            self.turns.append(Turn())
        return self.turns[-1]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["turns"] = [{**asdict(t), **t.stages_ms()} for t in self.turns]
        return data


class CallRecorder(SelectiveObserver):
    """Fills a `CallRecord` from the frames pushed in one call's pipeline."""

    observed_frames = (
        UserStartedSpeakingFrame,
        VADUserStoppedSpeakingFrame,
        UserStoppedSpeakingFrame,
        TranscriptionFrame,
        LLMTextFrame,
        TTSTextFrame,
        OutputAudioRawFrame,  # TTSAudioRawFrame is one
        TTSStartedFrame,
        BotStartedSpeakingFrame,
        BotStoppedSpeakingFrame,
        LLMFullResponseStartFrame,
        LLMFullResponseEndFrame,
        InterruptionFrame,
        ErrorFrame,
        InputDTMFFrame,
    )
    observes_processing = False

    def __init__(self, record: CallRecord) -> None:
        super().__init__()
        self.record = record
        self._bot_speaking = False
        self._generating = False  # an LLM answer is streaming (between sentences: not speaking)

    async def on_push_frame(self, data: FramePushed) -> None:
        frame = data.frame
        now = time.monotonic()
        record = self.record
        if isinstance(frame, UserStartedSpeakingFrame) and data.first_push:
            # A caller turn (Pipecat's turn strategies) may hold several VAD segments: a pause
            # shorter than the turn timeout continues the same turn.
            turn = record.current()
            if turn.transcript_at is not None or turn.dtmf:  # the previous turn is complete
                turn = Turn()
                record.turns.append(turn)
            turn.speech_started = turn.speech_started or now
        elif isinstance(frame, VADUserStoppedSpeakingFrame) and data.first_push:
            record.current().speech_stopped = now  # the last segment's end counts
        elif isinstance(frame, UserStoppedSpeakingFrame) and data.first_push:
            record.current().turn_end_at = now
        elif isinstance(frame, TTSStartedFrame) and data.first_push:
            turn = record.current()
            if turn.llm_first_token_at is not None and turn.first_clause_at is None:
                turn.first_clause_at = now
        elif isinstance(frame, TranscriptionFrame) and data.direction == FrameDirection.DOWNSTREAM:
            turn = record.current()
            turn.user_text = f"{turn.user_text} {frame.text}".strip()
            if turn.transcript_at is None and not turn.dtmf:  # (a key press counted it)
                metrics.turn_started(record)
            turn.transcript_at = now  # the last segment's transcript counts
        elif isinstance(frame, LLMTextFrame) and data.direction == FrameDirection.DOWNSTREAM:
            turn = record.current()
            if turn.transcript_at is not None and turn.llm_first_token_at is None:
                turn.llm_first_token_at = now
                self._export(turn, "stt_ms")  # the turn's speech is over by its first answer
                self._export(turn, "llm_ttft_ms")
        elif isinstance(frame, TTSTextFrame) and isinstance(data.destination, BaseOutputTransport):
            self._append_bot_text(frame.text)
        elif isinstance(frame, OutputAudioRawFrame) and isinstance(
            data.source, BaseOutputTransport
        ):  # written to the caller (the output transport's chunks keep the TTS frame class)
            turn = record.current()
            if turn.transcript_at is not None and turn.bot_audio_at is None:
                turn.bot_audio_at = now
                self._export(turn, "voice_to_voice_ms")
        elif isinstance(frame, TTSAudioRawFrame):
            turn = record.current()
            if turn.llm_first_token_at is not None and turn.tts_first_audio_at is None:
                turn.tts_first_audio_at = now
                self._export(turn, "tts_first_audio_ms")
        elif isinstance(frame, BotStartedSpeakingFrame):
            self._bot_speaking = True
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._bot_speaking = False
        elif isinstance(frame, LLMFullResponseStartFrame):
            self._generating = True
        elif isinstance(frame, LLMFullResponseEndFrame):
            self._generating = False
        elif isinstance(frame, InterruptionFrame) and isinstance(
            data.destination, BaseOutputTransport
        ):
            if self._bot_speaking or self._generating:
                self._generating = False
                turns = record.turns
                (turns[-2] if len(turns) > 1 else turns[-1]).interrupted = True
                record.barge_ins += 1
                metrics.record_barge_in(record)
        elif isinstance(frame, InputDTMFFrame) and data.first_push:
            self._key_pressed(str(frame.button.value))
        elif isinstance(frame, ErrorFrame) and data.first_push:
            record.errors += 1
            kind = service_kind(frame.processor)
            provider = record.transport if kind == "transport" else record.providers.get(kind)
            metrics.record_provider_error(kind, provider or metrics.OTHER)

    def _export(self, turn: Turn, stage: str) -> None:
        metrics.observe_stage(self.record, stage, turn.stages_ms()[stage])

    def _key_pressed(self, digit: str) -> None:
        """A DTMF key: the call's digits, and a caller turn (keys until the bot answers)."""
        record = self.record
        record.dtmf += digit
        turn = record.current()
        if turn.transcript_at is not None or (turn.dtmf and turn.bot_text):
            turn = Turn()
            record.turns.append(turn)
        if not turn.dtmf and turn.transcript_at is None:
            metrics.turn_started(record)
        turn.dtmf += digit

    def _append_bot_text(self, text: str) -> None:
        turn = self.record.current()
        if turn.transcript_at is None and not turn.dtmf and not self.record.turns[:-1]:
            self.record.greeting = f"{self.record.greeting} {text}".strip()
        else:
            turn.bot_text = f"{turn.bot_text} {text}".strip()


def service_kind(processor: object) -> str:
    """stt, llm, tts or transport by the processor's Pipecat base class; "other" otherwise."""
    for base, kind in SERVICE_KINDS:
        if isinstance(processor, base):
            return kind
    return metrics.OTHER
