"""One Twilio Media Streams call: Pipecat's FastAPI WebSocket transport + call control by REST."""

from __future__ import annotations

import asyncio

from fastapi import WebSocket
from loguru import logger
from pipecat.frames.frames import EndFrame
from pipecat.pipeline.task import PipelineTask
from pipecat.transports.websocket.fastapi import (
    FastAPIWebsocketParams,
    FastAPIWebsocketTransport,
)
from twilio.rest import Client
from twilio.twiml.voice_response import VoiceResponse

from voice_connector.config.schema import TwilioSettings
from voice_connector.telemetry.call_record import CallRecord
from voice_connector.transports.base import CallControlNotSupported, CallInfo, CallTransport
from voice_connector.transports.twilio.serializer import TwilioStreamSerializer


def rest_client(settings: TwilioSettings) -> Client:
    """The Twilio REST client; `api_base_url` points it at a local double in tests."""
    client = Client(settings.account_sid, settings.auth_token.get_secret_value())
    if settings.api_base_url:
        client.api.base_url = settings.api_base_url.rstrip("/")
    return client


class TwilioCallTransport(CallTransport):
    """A call whose media is a Twilio Media Stream already past its `start` message."""

    def __init__(
        self, info: CallInfo, websocket: WebSocket, stream_sid: str, settings: TwilioSettings
    ) -> None:
        super().__init__(info)
        self._settings = settings
        self.stream_sid = stream_sid
        self.serializer = TwilioStreamSerializer(
            stream_sid=stream_sid,
            call_sid=info.call_id,
            account_sid=settings.account_sid,
            auth_token=settings.auth_token.get_secret_value(),
            api_base_url=settings.api_base_url,
        )
        self._transport = FastAPIWebsocketTransport(
            websocket=websocket,
            params=FastAPIWebsocketParams(
                audio_in_enabled=True,
                audio_out_enabled=True,
                add_wav_header=False,
                serializer=self.serializer,
                session_timeout=None,
            ),
        )

    @property
    def pipecat(self) -> FastAPIWebsocketTransport:
        return self._transport

    def attach(self, task: PipelineTask, record: CallRecord) -> None:
        super().attach(task, record)

        @self._transport.event_handler("on_client_disconnected")
        async def _caller_gone(_transport: object, _websocket: object) -> None:
            if record.outcome == "active":
                record.outcome = "caller_hangup"
            await task.cancel()

    async def hangup(self, reason: str = "normal") -> None:
        """End after queued bot audio: EndFrame flows behind it; the serializer ends the call."""
        if self.record is not None and self.record.outcome == "active":
            self.record.outcome = f"bot_hangup:{reason}"
        if self.task is not None:
            await self.task.queue_frame(EndFrame())

    async def transfer(self, target: str) -> None:
        """Redirect the live call to `<Dial>target</Dial>` through the REST API."""
        if not (self._settings.account_sid and self._settings.auth_token.get_secret_value()):
            raise CallControlNotSupported("transfer needs [twilio] account_sid and auth_token")
        twiml = VoiceResponse()
        twiml.dial(target)
        client = rest_client(self._settings)
        call_sid = self.info.call_id
        await asyncio.to_thread(lambda: client.calls(call_sid).update(twiml=str(twiml)))
        logger.info(f"call {call_sid}: transferred to {target}")
        if self.record is not None:
            self.record.outcome = "transferred"
        if self.task is not None:
            await self.task.cancel()
