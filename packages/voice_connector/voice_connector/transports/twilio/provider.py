"""Twilio provider: `POST /twilio/voice` (TwiML) and `WS /twilio/stream` (Media Streams).

The WebSocket handler authenticates the stream before anything else runs. With `[twilio]
validate_signatures` (on whenever an auth token is set) a wrong `X-Twilio-Signature` on the upgrade
is refused at the handshake (HTTP 403), and after `start` the call token from the `<Parameter>`s
must be present, valid, unexpired and unused: the upgrade signature alone signs only the stream
URL, the same for every call, so one captured upgrade would open any number of calls. The voice
webhook answers each CallSid (and each Twilio idempotency token) once: an exact replay of a signed
webhook would otherwise mint a fresh call token every time.

Until `start`, a stream is unauthenticated and held to little: `start_timeout_seconds` in all
(other messages do not extend it), `MAX_PRE_START_MESSAGES` messages, and
`max_pending_per_source` such streams per client address. Junk is dropped and counted (see
`messages`); peer-chosen values reach the log only clipped.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response, WebSocket, WebSocketDisconnect
from loguru import logger
from starlette.websockets import WebSocketState

from voice_connector.telemetry.metrics import record_dropped_input
from voice_connector.telemetry.outcome import CallOutcome
from voice_connector.transports.base import (
    Admission,
    CallHandler,
    CallInfo,
    CallRefused,
    TransportProvider,
    Unanswered,
)
from voice_connector.transports.twilio.messages import WarnOnce, parse_message
from voice_connector.transports.twilio.transport import TwilioCallTransport
from voice_connector_core.config import Settings
from voice_connector_core.logs import clip
from voice_connector_core.netaccess import Networks, client_address
from voice_connector_core.twilio import webhook
from voice_connector_core.twilio.security import (
    SIGNATURE_HEADER,
    TOKEN_PARAMETER,
    CallTokens,
    ReplayGuard,
    public_url,
    valid_signature,
)
from voice_connector_core.twilio.twiml import STREAM_PATH, busy_twiml, stream_url_from_base
from voice_connector_core.workers import WorkerShard

VOICE_PATH = "/twilio/voice"
TWILIO_SAMPLE_RATE = 8000
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_POLICY_VIOLATION = 1008
MAX_PRE_START_MESSAGES = 4
"""Messages a stream may send before `start` (Twilio sends one: `connected`)."""
WEBHOOK_MEMORY_SECONDS = 6 * 3600.0
"""How long an answered CallSid / idempotency token is remembered (longer than any call)."""
IDEMPOTENCY_HEADER = "I-Twilio-Idempotency-Token"
REFUSAL_LOG_SECONDS = 60.0
"""Refusals of one kind are logged at most this often (each is counted in metrics)."""
_SID = re.compile(r"[A-Za-z0-9_.-]{1,64}")

__all__ = ["STREAM_PATH", "VOICE_PATH", "TwilioProvider", "stream_url"]


def stream_url(settings: Settings, request: Request | WebSocket, trusted: bool = False) -> str:
    """The `wss://` stream URL as Twilio sees it: from `[general] public_url`, else the request
    (with its `X-Forwarded-*` headers only when `trusted`: it came through our proxy)."""
    if settings.general.public_url:
        return stream_url_from_base(settings.general.public_url)
    return public_url(
        scheme=request.url.scheme,
        host=request.url.netloc,
        path=STREAM_PATH,
        headers=request.headers,
        websocket=True,
        trust_forwarded=trusted,
    )


class PendingStreams:
    """Streams per client address that are connected but not started (not authenticated)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.counts: dict[str, int] = {}

    def claim(self, source: str) -> bool:
        """Count one more stream from `source`; False (nothing counted) when it has its limit."""
        count = self.counts.get(source, 0)
        if count >= self.limit:
            return False
        self.counts[source] = count + 1
        return True

    def release(self, source: str) -> None:
        count = self.counts.get(source, 0) - 1
        if count > 0:
            self.counts[source] = count
        else:
            self.counts.pop(source, None)


class TwilioProvider(TransportProvider):
    """Accepts Twilio Media Streams calls on the media node's HTTP server."""

    name = "twilio"

    def __init__(
        self,
        settings: Settings,
        *,
        shard: WorkerShard | None = None,
        shared_dir: Path | None = None,
    ) -> None:
        """Spent call tokens live in `shared_dir`, so each token opens one stream per node."""
        super().__init__(settings, shard=shard, shared_dir=shared_dir)
        self._on_call: CallHandler | None = None
        self._admit: Admission | None = None
        self._unanswered: Unanswered | None = None
        self._accepting = False
        auth_token = settings.twilio.auth_token.get_secret_value()
        self._tokens = CallTokens(auth_token) if auth_token else None
        self._replays = ReplayGuard(directory=shared_dir / "spent-tokens" if shared_dir else None)
        self._proxies = Networks(settings.general.trusted_proxies)
        self._pending = PendingStreams(settings.twilio.max_pending_per_source)
        self._refusals = WarnOnce(
            "-", surface="twilio_auth", what="refused", every_seconds=REFUSAL_LOG_SECONDS
        )
        self._prestart = WarnOnce("pending", every_seconds=REFUSAL_LOG_SECONDS)
        """Junk before `start` is not a call yet: logged node-wide, per kind, once a minute."""

    async def start(
        self,
        on_call: CallHandler,
        admit: Admission | None = None,
        unanswered: Unanswered | None = None,
    ) -> None:
        self._on_call = on_call
        self._admit = admit
        self._unanswered = unanswered
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

    def _trusted(self, connection: Request | WebSocket) -> bool:
        """Whether the connection comes from one of our proxies (its X-Forwarded-* count)."""
        peer = connection.client
        return peer is not None and peer.host in self._proxies

    def _webhook_url(self, request: Request) -> str:
        """The URL Twilio signed: `[general] public_url` + path when set, else the request's."""
        base = self.settings.general.public_url
        if base:
            query = f"?{request.url.query}" if request.url.query else ""
            return f"{base.rstrip('/')}{request.url.path}{query}"
        return public_url(
            scheme=request.url.scheme,
            host=request.url.netloc,
            path=request.url.path,
            query=request.url.query,
            headers=request.headers,
            trust_forwarded=self._trusted(request),
        )

    def _first_delivery(self, form: dict[str, str], headers: Any) -> bool:
        """False when this CallSid (or idempotency token) was answered before: a replay.

        Remembered in the node's shared directory, so a replay to another worker is caught too.
        """
        expires = time.time() + WEBHOOK_MEMORY_SECONDS
        keys = [f"webhook-call:{form.get('CallSid', '')}"]
        idempotency = headers.get(IDEMPOTENCY_HEADER)
        if idempotency:
            keys.append(f"webhook-idempotency:{idempotency[:128]}")
        fresh = [self._replays.use(key, expires) for key in keys]
        return all(fresh)

    async def voice_webhook(self, request: Request) -> Response:
        """Twilio's voice webhook for setups without the Cloud Function: answer with TwiML."""
        form = {key: str(value) for key, value in (await request.form()).items()}
        rejection = webhook.check_request(
            self.settings,
            self._webhook_url(request),
            form,
            request.headers.get(SIGNATURE_HEADER),
            webhook.VOICE_FIELDS,
        )
        if rejection is not None:
            self._refusals("webhook-refused", f"voice webhook refused: {rejection.reason}")
            return Response(rejection.reason, status_code=rejection.status)
        if self.settings.twilio.validate_signatures and not self._first_delivery(
            form, request.headers
        ):
            self._refusals("webhook-replay", "voice webhook refused: replay of an answered call")
            return Response("webhook replay", status_code=409)
        if self._admits(form.get("CallSid", "")):
            url = stream_url(self.settings, request, self._trusted(request))
            xml = await webhook.answer(self.settings, form, url)
        else:
            xml = busy_twiml()
        return Response(content=xml, media_type="application/xml")

    def _admits(self, call_sid: str) -> bool:
        """Whether a new call gets a stream (else busy TwiML): accepting, and the node has room."""
        try:
            if not self._accepting:
                raise CallRefused("draining")
            if self._admit is not None:
                self._admit(call_sid)
        except CallRefused as exc:
            logger.warning(f"voice webhook: call {clip(call_sid)} answered busy: {exc}")
            self._rejected(CallInfo(call_id=clip(call_sid), transport=self.name), str(exc))
            return False
        return True

    def _rejected(self, info: CallInfo, why: str) -> None:
        if self._unanswered is not None:
            self._unanswered(info, CallOutcome.REJECTED, why)

    def _upgrade_signature(self, websocket: WebSocket) -> bool | None:
        """None without `X-Twilio-Signature`; else whether it signs this stream's URL."""
        signature = websocket.headers.get(SIGNATURE_HEADER)
        if signature is None:
            return None
        token = self.settings.twilio.auth_token.get_secret_value()
        url = stream_url(self.settings, websocket, self._trusted(websocket))
        return valid_signature(token, url, {}, signature)

    def _authenticate(self, call_sid: str, custom: dict[str, Any]) -> str | None:
        """None when the started stream may become a call, else why it may not.

        The single-use call token is required: the upgrade signature is the same for every
        stream, so on its own it would let a captured upgrade open unlimited calls.
        """
        token = custom.get(TOKEN_PARAMETER)
        if not isinstance(token, str) or not token:
            return "no call token"
        if self._tokens is None:
            return "call token not verifiable"
        params = {key: str(value) for key, value in custom.items()}
        check = self._tokens.check(token, call_sid, params)
        if not check.ok:
            return check.reason
        if not self._replays.use(check.nonce, check.expires):
            return "call token already used (replay)"
        return None

    async def _read_start(self, websocket: WebSocket, warn: WarnOnce) -> dict[str, Any] | None:
        """Messages until `start`; None if the stream ends, dawdles or chatters first.

        One deadline for all of it (`start_timeout_seconds`): messages do not extend it, so a
        slow client cannot hold the connection by trickling junk.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.twilio.start_timeout_seconds
        for _ in range(MAX_PRE_START_MESSAGES + 1):
            try:
                received = await asyncio.wait_for(websocket.receive(), deadline - loop.time())
            except TimeoutError:
                warn("start-timeout", "no start in time")
                return None
            if received["type"] == "websocket.disconnect":
                return None
            data = received.get("text")
            message = parse_message(data if data is not None else received.get("bytes", b""), warn)
            if message is None or message["event"] == "connected":
                continue
            if message["event"] == "start":
                return message
            if message["event"] == "stop":
                return None
            warn(f"{message['event']}-before-start", "stream has not started")
        warn("too-many-before-start", f"more than {MAX_PRE_START_MESSAGES} messages")
        return None

    async def _open(self, websocket: WebSocket) -> dict[str, Any] | None:
        """Handshake and `start` of one stream; None once it has been closed or refused."""
        if self.settings.twilio.validate_signatures and self._upgrade_signature(websocket) is False:
            self._refusals("bad-signature", f"stream refused: invalid {SIGNATURE_HEADER}")
            await websocket.close(code=CLOSE_POLICY_VIOLATION)  # before accept: HTTP 403
            return None
        await websocket.accept()
        try:
            start = await self._read_start(websocket, self._prestart)
        except (WebSocketDisconnect, RuntimeError):
            start = None
        if start is None:
            await _close(websocket, CLOSE_POLICY_VIOLATION)
        return start

    async def stream(self, websocket: WebSocket) -> None:
        """One Twilio Media Stream, from `connected` to the end of the call."""
        peer = websocket.client.host if websocket.client else None
        source = client_address(peer, websocket.headers, self._proxies)
        if not self._pending.claim(source):
            self._refusals("too-many-pending", f"stream from {clip(source)} refused: too many")
            await websocket.close(code=CLOSE_POLICY_VIOLATION)  # before accept: HTTP 403
            return
        try:
            start = await self._open(websocket)
        finally:
            self._pending.release(source)
        if start is not None:
            await self._serve(websocket, start)

    async def _serve(self, websocket: WebSocket, start: dict[str, Any]) -> None:
        """Authenticate the started stream, then run it as a call."""
        info_msg = start.get("start") if isinstance(start.get("start"), dict) else {}
        call_sid = str(info_msg.get("callSid") or start.get("streamSid") or "unknown")
        stream_sid = str(info_msg.get("streamSid") or start.get("streamSid") or "")
        custom = info_msg.get("customParameters")
        custom = custom if isinstance(custom, dict) else {}
        if not _SID.fullmatch(call_sid) or not _SID.fullmatch(stream_sid or "-"):
            self._refusals("bad-sid", f"stream refused: malformed callSid {clip(call_sid)}")
            await _close(websocket, CLOSE_POLICY_VIOLATION)
            return
        if self.settings.twilio.validate_signatures:
            problem = self._authenticate(call_sid, custom)
            if problem is not None:
                record_dropped_input("twilio_auth", "stream-refused")
                logger.warning(f"call {call_sid}: stream refused: {problem}")
                await _close(websocket, CLOSE_POLICY_VIOLATION)
                return
        custom = {k: v for k, v in custom.items() if k != TOKEN_PARAMETER}
        if not stream_sid or self._on_call is None or not self._accepting:
            if stream_sid and self._on_call is not None:  # a call the node no longer takes
                self._rejected(CallInfo(call_id=call_sid, transport=self.name), "draining")
            await _close(websocket, CLOSE_TRY_AGAIN_LATER)
            return
        called, caller = str(custom.get("called", "")), str(custom.get("caller", ""))
        flavor = await self.flavors.select(call_sid, called, caller, custom)
        info = CallInfo(
            call_id=call_sid,
            transport=self.name,
            caller=caller,
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
