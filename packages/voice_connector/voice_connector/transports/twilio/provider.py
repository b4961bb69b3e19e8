"""Twilio provider: `POST /twilio/voice` (TwiML) and `WS /twilio/stream` (Media Streams).

The WebSocket handler reads Twilio's `connected` and `start` messages itself (they carry the call
SID, stream SID and `<Parameter>`s), picks the call's flavor, and only then builds the call's
transport and hands it to the media node. Junk before `start` is ignored with a warning; a stream
that never starts is closed after the idle timeout.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, Response, WebSocket, WebSocketDisconnect
from loguru import logger
from starlette.websockets import WebSocketState
from twilio.twiml.voice_response import Connect, VoiceResponse

from voice_connector.config import Settings
from voice_connector.config.flavors import select_flavor
from voice_connector.transports.base import CallHandler, CallInfo, TransportProvider
from voice_connector.transports.twilio.messages import WarnOnce, parse_message
from voice_connector.transports.twilio.transport import TwilioCallTransport

STREAM_PATH = "/twilio/stream"
VOICE_PATH = "/twilio/voice"
TWILIO_SAMPLE_RATE = 8000
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_POLICY_VIOLATION = 1008


class CallRefused(Exception):
    """Raised by a call handler that cannot take the call now (at capacity, draining)."""


def stream_url(settings: Settings, request: Request) -> str:
    """The `wss://` URL Twilio connects to: from `[general] public_url`, else the request host."""
    if settings.general.public_url:
        base = settings.general.public_url.rstrip("/")
        base = base.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        return base + STREAM_PATH
    proto = request.headers.get("x-forwarded-proto", request.url.scheme)
    host = request.headers.get("x-forwarded-host", request.headers.get("host", request.url.netloc))
    scheme = "wss" if proto in ("https", "wss") else "ws"
    return f"{scheme}://{host}{STREAM_PATH}"


def connect_twiml(url: str, parameters: dict[str, str]) -> str:
    """`<Response><Connect><Stream url=...><Parameter .../></Stream></Connect></Response>`."""
    response = VoiceResponse()
    connect = Connect()
    stream = connect.stream(url=url)
    for name, value in parameters.items():
        if value:
            stream.parameter(name=name, value=value)
    response.append(connect)
    return str(response)


def busy_twiml(text: str) -> str:
    """A polite refusal: say `text`, hang up."""
    response = VoiceResponse()
    response.say(text)
    response.hangup()
    return str(response)


class TwilioProvider(TransportProvider):
    """Accepts Twilio Media Streams calls on the media node's HTTP server."""

    name = "twilio"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._on_call: CallHandler | None = None
        self._accepting = False

    async def start(self, on_call: CallHandler) -> None:
        self._on_call = on_call
        self._accepting = True

    async def stop(self) -> None:
        self._accepting = False

    def routers(self) -> list[Any]:
        router = APIRouter()
        router.add_api_route(VOICE_PATH, self.voice_webhook, methods=["POST"])
        router.add_api_websocket_route(STREAM_PATH, self.stream)
        return [router]

    async def voice_webhook(self, request: Request) -> Response:
        """Twilio's voice webhook for setups without the Cloud Function: answer with TwiML."""
        form = await request.form()
        called = str(form.get("To", ""))
        flavor = await select_flavor(self.settings, called)
        if not self._accepting:
            xml = busy_twiml("Sorry, we cannot take your call right now. Please call again.")
        else:
            params = {"flavor": flavor, "caller": str(form.get("From", "")), "called": called}
            xml = connect_twiml(stream_url(self.settings, request), params)
        return Response(content=xml, media_type="application/xml")

    async def _read_start(self, websocket: WebSocket, warn: WarnOnce) -> dict[str, Any] | None:
        """Messages until `start`; None if the stream ends or idles out first."""
        idle = self.settings.twilio.idle_timeout_seconds
        while True:
            data = await asyncio.wait_for(websocket.receive_text(), timeout=idle)
            message = parse_message(data, warn)
            if message is None or message["event"] == "connected":
                continue
            if message["event"] == "start":
                return message
            if message["event"] == "stop":
                return None
            warn(f"{message['event']}-before-start", "stream has not started")

    async def stream(self, websocket: WebSocket) -> None:
        """One Twilio Media Stream, from `connected` to the end of the call."""
        await websocket.accept()
        warn = WarnOnce("pending")
        try:
            start = await self._read_start(websocket, warn)
        except (TimeoutError, WebSocketDisconnect):
            start = None
        if start is None:
            await _close(websocket, 1000)
            return
        info_msg = start.get("start") if isinstance(start.get("start"), dict) else {}
        call_sid = str(info_msg.get("callSid") or start.get("streamSid") or "unknown")
        stream_sid = str(info_msg.get("streamSid") or start.get("streamSid") or "")
        custom = info_msg.get("customParameters")
        custom = custom if isinstance(custom, dict) else {}
        if not stream_sid or self._on_call is None or not self._accepting:
            await _close(websocket, CLOSE_TRY_AGAIN_LATER)
            return
        called = str(custom.get("called", ""))
        flavor = await select_flavor(self.settings, called, custom)
        info = CallInfo(
            call_id=call_sid,
            transport=self.name,
            caller=str(custom.get("caller", "")),
            callee=called,
            flavor=flavor,
            codec="PCMU",
            edge_sample_rate=TWILIO_SAMPLE_RATE,
            extra={"stream_sid": stream_sid, "custom_parameters": custom},
        )
        call = TwilioCallTransport(info, websocket, stream_sid, self.settings.twilio)
        try:
            await self._on_call(call)
        except CallRefused as exc:
            logger.warning(f"call {call_sid}: refused ({exc})")
            await _close(websocket, CLOSE_TRY_AGAIN_LATER)
            return
        await _close(websocket, 1000)


async def _close(websocket: WebSocket, code: int) -> None:
    if websocket.application_state != WebSocketState.DISCONNECTED:
        try:
            await websocket.close(code=code)
        except (RuntimeError, WebSocketDisconnect):
            pass  # the peer is already gone
