"""One Twilio Media Streams call: Pipecat's FastAPI WebSocket transport + call control by REST.

Hang-up waits for the caller to have *heard* the last bot audio (a `mark` echo) before Pipecat's
serializer ends the call by REST (`Status=completed`); transfer redirects the live call with
`<Dial>` TwiML; a stream silent for `idle_timeout_seconds` ends the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from fastapi import WebSocket
from loguru import logger
from pipecat.frames.frames import EndFrame, OutputTransportMessageFrame
from pipecat.pipeline.task import PipelineTask
from pipecat.transports.websocket.fastapi import (
    FastAPIWebsocketParams,
    FastAPIWebsocketTransport,
)

from voice_connector.telemetry.call_record import CallRecord
from voice_connector.telemetry.outcome import CallOutcome
from voice_connector.transports.base import (
    CallControlNotSupported,
    CallInfo,
    CallTransport,
    TransportCapabilities,
)
from voice_connector.transports.twilio.marks import MarkLedger
from voice_connector.transports.twilio.pacing import LeadPacedTransport
from voice_connector.transports.twilio.serializer import TwilioStreamSerializer
from voice_connector_core.config.schema import TwilioSettings
from voice_connector_core.twilio.rest import rest_client
from voice_connector_core.twilio.twiml import dial_twiml

PLAYOUT_WAIT_SECONDS = 30.0
"""Longest wait for the final `mark` echo before hanging up anyway (a stuck peer)."""


class TwilioCallTransport(CallTransport):
    """A call whose media is a Twilio Media Stream already past its `start` message."""

    def __init__(
        self, info: CallInfo, websocket: WebSocket, stream_sid: str, settings: TwilioSettings
    ) -> None:
        super().__init__(info)
        self._settings = settings
        self.stream_sid = stream_sid
        self.marks = MarkLedger(stream_sid)
        self.serializer = TwilioStreamSerializer(
            stream_sid=stream_sid,
            call_sid=info.call_id,
            account_sid=settings.account_sid,
            auth_token=settings.auth_token.get_secret_value(),
            api_base_url=settings.api_base_url,
            marks=self.marks,
        )
        self._transport = LeadPacedTransport(
            websocket=websocket,
            params=FastAPIWebsocketParams(
                audio_in_enabled=True,
                audio_out_enabled=True,
                add_wav_header=False,
                serializer=self.serializer,
                session_timeout=None,
                # 20 ms media messages, as Twilio sends them: on barge-in at most 20 ms of
                # audio is in flight ahead of the `clear`.
                audio_out_10ms_chunks=2,
            ),
        )
        self._ending = False
        self._redirecting_to: str | None = None
        self._watchdog: asyncio.Task[None] | None = None

    @property
    def pipecat(self) -> FastAPIWebsocketTransport:
        return self._transport

    @property
    def capabilities(self) -> TransportCapabilities:
        """Marks always; transfer with REST credentials (it redirects the call by REST)."""
        return TransportCapabilities(playback_marks=True, transfer=self._can_redirect())

    def _can_redirect(self) -> bool:
        return bool(self._settings.account_sid and self._settings.auth_token.get_secret_value())

    def playback_mark(self, text: str) -> tuple[str, OutputTransportMessageFrame]:
        """A `mark` to send right behind `text`'s audio; Twilio echoes it once it was played."""
        name, message = self.marks.issue(text)
        return name, OutputTransportMessageFrame(message=message)

    def heard(self, mark: str) -> bool:
        return self.marks.heard(mark)

    def attach(self, task: PipelineTask, record: CallRecord) -> None:
        super().attach(task, record)

        @self._transport.event_handler("on_client_disconnected")
        async def _caller_gone(_transport: object, _websocket: object) -> None:
            if self._redirecting_to is not None:  # the redirect took the caller away
                self.end_with(CallOutcome.TRANSFERRED, self._redirecting_to)
            else:
                self.end_with(CallOutcome.CALLER_HANGUP)
            self.serializer.hang_up_on_end = False  # Twilio already ended the call
            await task.cancel()

        @task.event_handler("on_pipeline_finished")
        async def _finished(_task: object, _frame: object) -> None:
            if self._watchdog is not None:
                self._watchdog.cancel()

        self._watchdog = asyncio.get_running_loop().create_task(self._idle_watchdog())

    async def _idle_watchdog(self) -> None:
        """End the call when Twilio has sent nothing at all for `idle_timeout_seconds`."""
        idle = self._settings.idle_timeout_seconds
        while self.task is not None and not self.task.has_finished():
            silent_for = time.monotonic() - self.serializer.last_message_at
            if silent_for >= idle:
                logger.warning(f"call {self.info.call_id}: no message for {idle:g} s, ending")
                self.end_with(CallOutcome.IDLE_TIMEOUT, f"no message for {idle:g} s")
                await self.task.cancel()
                return
            await asyncio.sleep(idle - silent_for)

    async def hangup(self, reason: str = "normal") -> None:
        """End the call once the bot audio queued so far has been heard.

        A `mark` queued behind that audio comes back when Twilio has played it; then an EndFrame
        makes Pipecat's serializer update the call to `Status=completed` by REST (or, without REST
        credentials, just close the stream, which ends a `<Connect>` call).
        """
        if self._ending or self.task is None:
            return
        self._ending = True
        self.end_with(CallOutcome.BOT_HANGUP, reason)
        await self._wait_heard()
        await self.task.queue_frame(EndFrame())

    async def _wait_heard(self) -> None:
        """Until the caller has heard everything queued so far (bounded by a timeout)."""
        if self.task is None:
            return
        _name, frame = self.playback_mark("")
        frame.interruptible = False  # a barge-in must not lose the final mark
        await self.task.queue_frame(frame)
        if not await self.marks.wait_played(PLAYOUT_WAIT_SECONDS):
            logger.warning(f"call {self.info.call_id}: last audio not confirmed played")

    async def transfer(self, target: str) -> None:
        """Redirect the live call to `<Dial>target</Dial>` through the REST API and leave it."""
        if not self._can_redirect():
            raise CallControlNotSupported("transfer needs [twilio] account_sid and auth_token")
        if self._ending:
            return
        self._ending = True
        await self._wait_heard()
        client = rest_client(self._settings)
        call_sid = self.info.call_id
        twiml = dial_twiml(target)
        self._redirecting_to = target  # Twilio may close the stream before the request returns
        try:
            await asyncio.to_thread(lambda: client.calls(call_sid).update(twiml=twiml))
        except Exception:
            self._redirecting_to = None
            raise
        logger.info(f"call {call_sid}: transferred to {target}")
        self.end_with(CallOutcome.TRANSFERRED, target)
        self.serializer.hang_up_on_end = False  # the call goes on, without us
        if self.task is not None:
            with contextlib.suppress(Exception):
                await self.task.cancel()
