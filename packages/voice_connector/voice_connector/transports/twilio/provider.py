"""Twilio provider: `POST /twilio/voice` (TwiML) and `WS /twilio/stream` (Media Streams).

The WebSocket handler authenticates the stream before anything else runs: with `[twilio]
validate_signatures = true` a wrong `X-Twilio-Signature` on the upgrade is refused at the handshake
(HTTP 403), and after `start` the call token from the `<Parameter>`s must be valid, unexpired and
unused (or, without a token, the upgrade signature must have been valid). Only then is the call's
transport built and handed to the media node. Junk before `start` is ignored with a warning; a
stream that never starts is closed after the idle timeout.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response, WebSocket, WebSocketDisconnect
from loguru import logger
from starlette.websockets import WebSocketState

from voice_connector.config import Settings
from voice_connector.config.flavors import select_flavor
from voice_connector.transports.base import (
    Admission,
    CallHandler,
    CallInfo,
    CallRefused,
    TransportProvider,
)
from voice_connector.transports.twilio import webhook
from voice_connector.transports.twilio.messages import WarnOnce, parse_message
from voice_connector.transports.twilio.security import (
    SIGNATURE_HEADER,
    TOKEN_PARAMETER,
    CallTokens,
    ReplayGuard,
    public_url,
    valid_signature,
)
from voice_connector.transports.twilio.transport import TwilioCallTransport
from voice_connector.transports.twilio.twiml import STREAM_PATH, busy_twiml, stream_url_from_base

VOICE_PATH = "/twilio/voice"
TWILIO_SAMPLE_RATE = 8000
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_POLICY_VIOLATION = 1008

__all__ = ["STREAM_PATH", "VOICE_PATH", "TwilioProvider", "stream_url"]


def stream_url(settings: Settings, request: Request | WebSocket) -> str:
    """The `wss://` stream URL as Twilio sees it: from `[general] public_url`, else the request."""
    if settings.general.public_url:
        return stream_url_from_base(settings.general.public_url)
    return public_url(
        scheme=request.url.scheme,
        host=request.url.netloc,
        path=STREAM_PATH,
        headers=request.headers,
        websocket=True,
    )


class TwilioProvider(TransportProvider):
    """Accepts Twilio Media Streams calls on the media node's HTTP server."""

    name = "twilio"

    def __init__(self, settings: Settings, spent_tokens_dir: Path | None = None) -> None:
        """`spent_tokens_dir`: shared by a node's workers, so each token opens one stream."""
        self.settings = settings
        self._on_call: CallHandler | None = None
        self._admit: Admission | None = None
        self._accepting = False
        auth_token = settings.twilio.auth_token.get_secret_value()
        self._tokens = CallTokens(auth_token) if auth_token else None
        self._replays = ReplayGuard(directory=spent_tokens_dir)

    async def start(self, on_call: CallHandler, admit: Admission | None = None) -> None:
        self._on_call = on_call
        self._admit = admit
        self._accepting = True

    async def stop(self) -> None:
        self._accepting = False

    def refuse_new_calls(self) -> None:
        """Draining: the webhook answers "busy" TwiML and new streams close with 1013."""
        self._accepting = False

    def routers(self) -> list[Any]:
        router = APIRouter()
        router.add_api_route(VOICE_PATH, self.voice_webhook, methods=["POST"])
        router.add_api_websocket_route(STREAM_PATH, self.stream)
        return [router]

    async def voice_webhook(self, request: Request) -> Response:
        """Twilio's voice webhook for setups without the Cloud Function: answer with TwiML."""
        form = {key: str(value) for key, value in (await request.form()).items()}
        url = public_url(
            scheme=request.url.scheme,
            host=request.url.netloc,
            path=request.url.path,
            query=request.url.query,
            headers=request.headers,
        )
        rejection = webhook.check_request(
            self.settings, url, form, request.headers.get(SIGNATURE_HEADER), webhook.VOICE_FIELDS
        )
        if rejection is not None:
            logger.warning(f"voice webhook refused: {rejection.reason}")
            return Response(rejection.reason, status_code=rejection.status)
        if self._admits(form.get("CallSid", "")):
            xml = await webhook.answer(self.settings, form, stream_url(self.settings, request))
        else:
            xml = busy_twiml()
        return Response(content=xml, media_type="application/xml")

    def _admits(self, call_sid: str) -> bool:
        """Whether a new call gets a stream (else busy TwiML): accepting, and the node has room."""
        if not self._accepting:
            return False
        if self._admit is not None:
            try:
                self._admit(call_sid)
            except CallRefused as exc:
                logger.warning(f"voice webhook: call {call_sid} answered busy: {exc}")
                return False
        return True

    def _upgrade_signature(self, websocket: WebSocket) -> bool | None:
        """None without `X-Twilio-Signature`; else whether it signs this stream's URL."""
        signature = websocket.headers.get(SIGNATURE_HEADER)
        if signature is None:
            return None
        token = self.settings.twilio.auth_token.get_secret_value()
        return valid_signature(token, stream_url(self.settings, websocket), {}, signature)

    def _authenticate(
        self, call_sid: str, custom: dict[str, Any], upgrade_signed: bool | None
    ) -> str | None:
        """None when the started stream may become a call, else why it may not."""
        token = custom.get(TOKEN_PARAMETER)
        if token is None:
            return None if upgrade_signed else "unsigned stream (no call token)"
        if self._tokens is None or not isinstance(token, str):
            return "call token not verifiable"
        params = {key: str(value) for key, value in custom.items()}
        check = self._tokens.check(token, call_sid, params)
        if not check.ok:
            return check.reason
        if not self._replays.use(check.nonce, check.expires):
            return "call token already used (replay)"
        return None

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
        validating = self.settings.twilio.validate_signatures
        upgrade_signed = self._upgrade_signature(websocket) if validating else None
        if upgrade_signed is False:
            logger.warning(f"stream refused at the handshake: invalid {SIGNATURE_HEADER}")
            await websocket.close(code=CLOSE_POLICY_VIOLATION)  # before accept: HTTP 403
            return
        await websocket.accept()
        warn = WarnOnce("pending")
        try:
            start = await self._read_start(websocket, warn)
        except (TimeoutError, WebSocketDisconnect, RuntimeError):
            start = None
        if start is None:
            await _close(websocket, 1000)
            return
        info_msg = start.get("start") if isinstance(start.get("start"), dict) else {}
        call_sid = str(info_msg.get("callSid") or start.get("streamSid") or "unknown")
        stream_sid = str(info_msg.get("streamSid") or start.get("streamSid") or "")
        custom = info_msg.get("customParameters")
        custom = custom if isinstance(custom, dict) else {}
        if validating:
            problem = self._authenticate(call_sid, custom, upgrade_signed)
            if problem is not None:
                logger.warning(f"call {call_sid}: stream refused: {problem}")
                await _close(websocket, CLOSE_POLICY_VIOLATION)
                return
        custom = {k: v for k, v in custom.items() if k != TOKEN_PARAMETER}
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
