"""The Pipecat side of one SIP call: input/output processors over an `RtpStream`.

Input pushes the caller's audio (16 kHz `InputAudioRawFrame`) and DTMF (`InputDTMFFrame`).
Output takes the bot's 16 kHz audio in 20 ms chunks and hands it to the RTP stream, whose short
queue back-pressures the pipeline to real time; an `InterruptionFrame` (barge-in) empties that
queue at once. The call ends the Pipecat way: a graceful `EndFrame` lets the queued audio play out
before OpenSIPS is told to send BYE; the caller's BYE cancels the pipeline.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from loguru import logger
from pipecat.audio.dtmf.types import KeypadEntry
from pipecat.frames.frames import (
    CancelFrame,
    CancelWorkerFrame,
    EndFrame,
    EndWorkerFrame,
    Frame,
    InputAudioRawFrame,
    InputDTMFFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
    OutputDTMFFrame,
    OutputDTMFUrgentFrame,
    StartFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import BaseTransport, TransportParams

from voice_connector.audio.rates import PIPELINE_SAMPLE_RATE
from voice_connector.telemetry.outcome import CallOutcome
from voice_connector.transports.base import (
    CallControlNotSupported,
    CallInfo,
    CallTransport,
    TransportCapabilities,
)
from voice_connector.transports.opensips.rtp import RtpStream

INPUT_QUEUE_MAX = 100  # 2 s of audio; beyond that the pipeline is stuck and old audio is useless


class CallControl(Protocol):
    """What the transport needs from the signalling session (implemented by `CallSession`)."""

    @property
    def ended(self) -> bool:
        """True once the call is over on the SIP side."""

    async def hangup(self, reason: str) -> None:
        """Ask OpenSIPS to send BYE now."""

    async def transfer(self, target: str) -> None:
        """Send REFER to `target` and leave the call."""

    async def wait_ended(self) -> None:
        """Return when the call is over."""


def default_params() -> TransportParams:
    """Pipecat transport params for a phone call (16 kHz inside, 20 ms chunks, no end silence)."""
    return TransportParams(
        audio_in_enabled=True,
        audio_in_sample_rate=PIPELINE_SAMPLE_RATE,
        audio_out_enabled=True,
        audio_out_sample_rate=PIPELINE_SAMPLE_RATE,
        audio_out_10ms_chunks=2,
        audio_out_end_silence_secs=0,
        # on hold the RTP queue stops draining and writes wait; that is not a dead peer
        audio_out_write_timeout_secs=7200.0,
    )


class OpenSIPSInputTransport(BaseInputTransport):
    """Caller → pipeline."""

    def __init__(self, call_id: str, params: TransportParams, **kwargs) -> None:
        super().__init__(params, **kwargs)
        self._call_id = call_id
        self._inbox: asyncio.Queue[Frame] = asyncio.Queue(maxsize=INPUT_QUEUE_MAX)
        self._reader: asyncio.Task | None = None
        self.started = False
        self.muted = False  # while the caller holds the call (their side plays hold music)
        self._ending = False
        self._pending_end: tuple[bool, str] | None = None

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)
        if self._reader is None:
            self._reader = self.create_task(self._read(), name=f"rtp-in-{self._call_id}")
        self.started = True
        if self._pending_end is not None:  # the call ended before the pipeline got going
            graceful, reason = self._pending_end
            await self.end_pipeline(graceful, reason)

    async def stop(self, frame: EndFrame) -> None:
        await self._stop_reader()
        await super().stop(frame)

    async def cancel(self, frame: CancelFrame) -> None:
        await self._stop_reader()
        await super().cancel(frame)

    async def _stop_reader(self) -> None:
        if self._reader is not None:
            await self.cancel_task(self._reader)
            self._reader = None

    def feed_audio(self, pcm16k: bytes) -> None:
        """From the RTP stream (sync); the oldest audio goes if the pipeline is stuck."""
        if self.muted:
            return
        frame = InputAudioRawFrame(audio=pcm16k, sample_rate=PIPELINE_SAMPLE_RATE, num_channels=1)
        self._put(frame)

    def feed_dtmf(self, digit: str) -> None:
        """From the RTP stream (sync)."""
        try:
            self._put(InputDTMFFrame(button=KeypadEntry(digit)))
        except ValueError:
            logger.debug(f"[{self._call_id}] DTMF {digit} has no Pipecat keypad entry")

    def _put(self, frame: Frame) -> None:
        if self._inbox.full():
            self._inbox.get_nowait()
        self._inbox.put_nowait(frame)

    async def _read(self) -> None:
        while True:
            frame = await self._inbox.get()
            if isinstance(frame, InputAudioRawFrame):
                await self.push_audio_frame(frame)
            else:
                await self.push_frame(frame)

    async def end_pipeline(self, graceful: bool, reason: str) -> None:
        """Ask the pipeline task to end: EndFrame (after queued audio) or CancelFrame (now)."""
        if not self.started:
            self._pending_end = self._pending_end or (graceful, reason)
            return
        if self._ending:
            return
        self._ending = True
        frame = EndWorkerFrame(reason=reason) if graceful else CancelWorkerFrame(reason=reason)
        await self.push_frame(frame, FrameDirection.UPSTREAM)


class OpenSIPSOutputTransport(BaseOutputTransport):
    """Pipeline → caller."""

    def __init__(
        self, call_id: str, rtp: RtpStream, control: CallControl, params: TransportParams, **kwargs
    ) -> None:
        super().__init__(params, **kwargs)
        self._call_id = call_id
        self._rtp = rtp
        self._control = control

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, InterruptionFrame):
            self._rtp.clear()  # before the base class drains its own queue
        await super().process_frame(frame, direction)

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        if self._control.ended:
            return False
        await self._rtp.write(frame.audio)
        return True

    async def stop(self, frame: EndFrame) -> None:
        """Graceful end (the bot hung up): play what is queued, then BYE."""
        await super().stop(frame)
        if not self._control.ended:
            await self._rtp.drain()
            await self._control.hangup("bot hangup")

    async def cancel(self, frame: CancelFrame) -> None:
        """Pipeline cancelled: BYE right away if the caller is still there."""
        await super().cancel(frame)
        if not self._control.ended:
            await self._control.hangup("pipeline cancelled")

    def _supports_native_dtmf(self) -> bool:
        return self._rtp.telephone_event_pt is not None

    async def _write_dtmf_native(self, frame: OutputDTMFFrame | OutputDTMFUrgentFrame) -> None:
        buttons = frame.buttons or ([frame.button] if frame.button else [])
        self._rtp.send_dtmf("".join(b.value for b in buttons))


class OpenSIPSPipecatTransport(BaseTransport):
    """Pairs the input and output processors of one call."""

    def __init__(
        self, input_transport: OpenSIPSInputTransport, output_transport: OpenSIPSOutputTransport
    ) -> None:
        super().__init__()
        self._input = input_transport
        self._output = output_transport

    def input(self) -> OpenSIPSInputTransport:
        return self._input

    def output(self) -> OpenSIPSOutputTransport:
        return self._output


class OpenSIPSCallTransport(CallTransport):
    """One SIP call as the media node sees it."""

    def __init__(
        self,
        info: CallInfo,
        control: CallControl,
        rtp: RtpStream,
        params: TransportParams | None = None,
    ) -> None:
        super().__init__(info)
        params = params or default_params()
        self._control = control
        self.rtp = rtp
        self._input = OpenSIPSInputTransport(info.call_id, params, name=f"SIPInput#{info.call_id}")
        self._output = OpenSIPSOutputTransport(
            info.call_id, rtp, control, params, name=f"SIPOutput#{info.call_id}"
        )
        self._pipecat = OpenSIPSPipecatTransport(self._input, self._output)

    @property
    def pipecat(self) -> OpenSIPSPipecatTransport:
        return self._pipecat

    @property
    def input_transport(self) -> OpenSIPSInputTransport:
        """The input processor (the session feeds it audio and DTMF)."""
        return self._input

    @property
    def capabilities(self) -> TransportCapabilities:
        """REFER transfer always; DTMF out when the caller offered telephone-event; no marks."""
        return TransportCapabilities(
            transfer=True, dtmf_out=self.rtp.telephone_event_pt is not None
        )

    async def hangup(self, reason: str = "normal") -> None:
        """End the call once queued bot audio has played.

        With a running pipeline this asks for a graceful end and returns at once (the BYE goes out
        when the EndFrame reaches the output, after the audio); it must not wait here, as it may
        be called from inside the pipeline. Use `wait_ended()` to wait.
        """
        if self._control.ended:
            return
        self.end_with(CallOutcome.BOT_HANGUP, reason)
        if self._input.started:
            await self._input.end_pipeline(graceful=True, reason=reason)
        else:
            await self.rtp.drain()
            await self._control.hangup(reason)
            await self._input.end_pipeline(graceful=False, reason=reason)

    async def transfer(self, target: str) -> None:
        """REFER the caller to `target`, then leave the call (raises if the REFER fails)."""
        await self._control.transfer(target)
        await self._input.end_pipeline(graceful=False, reason="transferred")

    async def send_dtmf(self, digits: str) -> None:
        """RFC 4733 DTMF to the caller, if the call negotiated telephone-event."""
        if self.rtp.telephone_event_pt is None:
            raise CallControlNotSupported("the caller did not offer telephone-event")
        self.rtp.send_dtmf(digits)

    async def wait_ended(self) -> None:
        """Return when the call is over on the SIP side."""
        await self._control.wait_ended()
