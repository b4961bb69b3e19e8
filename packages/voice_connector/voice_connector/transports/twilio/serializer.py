"""Pipecat's `TwilioFrameSerializer`, made tolerant of bad input and aware of `mark`.

Pipecat's serializer crashes the receive loop on a non-object message or bad base64 and ignores
`mark`; this subclass validates first (see `messages`), drops caller audio sent faster than real
time beyond a small lead (`InboundBudget`), feeds `mark` echoes and `clear`s to the call's
`MarkLedger`, notes when the last message arrived (idle timeout), and leaves everything else
(μ-law conversion, `clear` on barge-in, REST hang-up on EndFrame) to Pipecat.
"""

from __future__ import annotations

import time

from pipecat.audio.utils import ulaw_to_pcm
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    InterruptionFrame,
)
from pipecat.serializers.twilio import TwilioFrameSerializer

from voice_connector.audio.resample import LowLatencyResampler
from voice_connector.transports.twilio.marks import MarkLedger
from voice_connector.transports.twilio.messages import (
    ULAW_BYTES_PER_SECOND,
    InboundBudget,
    WarnOnce,
    field,
    media_payload,
    parse_message,
)


class TwilioStreamSerializer(TwilioFrameSerializer):
    """Twilio Media Streams ↔ Pipecat frames for one call."""

    def __init__(
        self,
        *,
        stream_sid: str,
        call_sid: str,
        account_sid: str = "",
        auth_token: str = "",
        api_base_url: str = "",
        marks: MarkLedger | None = None,
    ) -> None:
        hang_up_by_rest = bool(account_sid and auth_token)
        super().__init__(
            stream_sid=stream_sid,
            call_sid=call_sid,
            account_sid=account_sid or None,
            auth_token=auth_token or None,
            base_url=api_base_url or None,
            params=TwilioFrameSerializer.InputParams(auto_hang_up=hang_up_by_rest),
        )
        # ~1 ms instead of soxr VHQ's ~50 ms per direction, and no bursts (audio/resample.py).
        self._input_resampler = LowLatencyResampler()
        self._output_resampler = LowLatencyResampler()
        self._warn = WarnOnce(call_sid)
        self._inbound = InboundBudget()
        self.marks = marks or MarkLedger(stream_sid)
        self.last_message_at = time.monotonic()
        self.hang_up_on_end = hang_up_by_rest
        """Cleared when the call is no longer ours to end (caller gone, transferred)."""

    async def serialize(self, frame: Frame) -> str | bytes | None:
        if isinstance(frame, (EndFrame, CancelFrame)) and not self.hang_up_on_end:
            return None
        if isinstance(frame, InterruptionFrame):
            self.marks.cleared()
        return await super().serialize(frame)

    async def deserialize(self, data: str | bytes) -> Frame | None:
        self.last_message_at = time.monotonic()
        message = parse_message(data, self._warn)
        if message is None:
            return None
        event = message["event"]
        if event == "media":
            payload = media_payload(message, self._warn)
            if payload is None:
                return None
            if not self._inbound.take(len(payload) / ULAW_BYTES_PER_SECOND):
                self._warn("media-flood", "caller audio faster than real time")
                return None
            return await self._audio_frame(payload)
        elif event == "dtmf":
            if field(message, "dtmf", "digit") is None:
                self._warn("dtmf-without-digit", "dtmf.digit missing")
                return None
        elif event == "mark":
            name = field(message, "mark", "name")
            if name:
                self.marks.echoed(name)
            return None
        else:
            return None
        return await super().deserialize(data if isinstance(data, str) else data.decode())

    async def _audio_frame(self, ulaw: bytes) -> InputAudioRawFrame | None:
        """Pipecat's media conversion, on the payload already parsed and checked above.

        Handing the message back to Pipecat would parse its JSON and base64 a second time, for
        every 20 ms of every call.
        """
        pcm = await ulaw_to_pcm(
            ulaw, self._twilio_sample_rate, self._sample_rate, self._input_resampler
        )
        if not pcm:
            return None
        return InputAudioRawFrame(audio=pcm, num_channels=1, sample_rate=self._sample_rate)
