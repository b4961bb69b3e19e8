"""One SIP call's signalling state machine, driven by E_UA_SESSION events in arrival order.

States: new → answering (200 being sent) → active → ended. Events of one session are handled one
at a time from a queue (the ACK may arrive before the MI reply to our 200 returns, so the session
is registered before answering and the ACK simply waits its turn). CANCEL is also noted the moment
it arrives, so a slow answer path does not send a 200 for a cancelled INVITE. Whatever way the call
ends, `_end_media` releases the RTP port exactly once, and the session reports how it ended: to the
call's transport once the pipeline has it, else to the node as an unanswered call.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from loguru import logger

from voice_connector.audio.g711 import G711Codec
from voice_connector.telemetry import metrics
from voice_connector.telemetry.outcome import CallOutcome, Ending
from voice_connector.transports.base import (
    Admission,
    CallHandler,
    CallInfo,
    CallRefused,
    Unanswered,
)
from voice_connector.transports.opensips.clock import PacingClock
from voice_connector.transports.opensips.events import UaSessionEvent, uri_user
from voice_connector.transports.opensips.latch import LatchPolicy
from voice_connector.transports.opensips.mi import MIClient, MIError
from voice_connector.transports.opensips.ports import PortPool
from voice_connector.transports.opensips.rtp import RtpStats, RtpStream
from voice_connector.transports.opensips.sdp import (
    Negotiated,
    SdpError,
    build_answer,
    negotiate,
    new_session_id,
    parse_offer,
)
from voice_connector.transports.opensips.transport import OpenSIPSCallTransport
from voice_connector_core.config.flavors import FlavorSelector
from voice_connector_core.config.schema import OpenSIPSSettings
from voice_connector_core.logs import call_context

NEW, ANSWERING, ACTIVE, ENDED = "new", "answering", "active", "ended"
REFER_REPLY_TIMEOUT = 5.0
_AUTO_OK = ("NOTIFY", "INFO", "OPTIONS")


class TransferFailed(RuntimeError):
    """OpenSIPS or the caller's phone refused the REFER; the call is still up."""


@dataclass
class SessionDeps:
    """What every session shares, owned by the provider."""

    settings: OpenSIPSSettings
    mi: MIClient
    ports: PortPool
    clock: PacingClock
    flavors: FlavorSelector
    on_call: CallHandler
    on_finished: Callable[[CallSession], None]
    admit: Admission | None = None
    unanswered: Unanswered | None = None


def offered(invite: UaSessionEvent) -> CallInfo:
    """What an INVITE tells of its call before any answer (flavor and codec not chosen yet)."""
    return CallInfo(
        call_id=invite.key,
        transport="opensips",
        caller=uri_user(invite.header("From")),
        callee=uri_user(invite.header("To")),
    )


class CallSession:
    """Signalling and media lifetime of one `ua_session` (key = call id)."""

    def __init__(self, first: UaSessionEvent, deps: SessionDeps) -> None:
        self.key = first.key
        self.state = NEW
        self.deps = deps
        self.call: OpenSIPSCallTransport | None = None
        self.rtp: RtpStream | None = None
        self.port: int | None = None
        self.confirmed = False  # ACK seen
        self.negotiated: Negotiated | None = None
        self._cancelled = False
        self._events: asyncio.Queue[UaSessionEvent] = asyncio.Queue()
        self._ended = asyncio.Event()
        self._sdp_id = new_session_id()
        self._sdp_version = 0
        self._to_uri = ""
        self._refer_reply: asyncio.Future[int] | None = None
        self._logged: set[str] = set()
        self.pipeline_task: asyncio.Task | None = None
        self.final_stats: RtpStats | None = None
        self._offer = offered(first)
        self._unanswered_end = Ending()
        self.feed(first)

    # -- CallControl ----------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        return self.state == ENDED

    async def wait_ended(self) -> None:
        await self._ended.wait()

    async def hangup(self, reason: str) -> None:
        """Our BYE: `ua_session_terminate` on an active call (idempotent)."""
        if self.state != ACTIVE:
            return
        self._set_ended()
        logger.info(f"[{self.key}] hanging up ({reason})")
        await self._mi_quiet(self.deps.mi.terminate(self.key), "terminate")
        self._end_media()

    async def transfer(self, target: str) -> None:
        """REFER the caller to `target`, then hang up (raises TransferFailed on refusal)."""
        if self.state != ACTIVE:
            raise TransferFailed("call is not active")
        refer_to = (
            target
            if target.split(":", 1)[0].lower() in ("sip", "sips", "tel")
            else (
                f"sip:{target}@{self._to_uri.split('@', 1)[-1]}"
                if "@" in self._to_uri
                else f"sip:{target}"
            )
        )
        self._refer_reply = asyncio.get_running_loop().create_future()
        try:
            await self.deps.mi.update(
                self.key, "REFER", extra_headers=f"Refer-To: <{refer_to}>\r\n"
            )
        except MIError as exc:
            raise TransferFailed(str(exc)) from exc
        logger.info(f"[{self.key}] REFER to {refer_to} sent")
        try:
            code = await asyncio.wait_for(self._refer_reply, REFER_REPLY_TIMEOUT)
        except TimeoutError:
            code = 0  # no reply event (not all setups report it): assume the phone took it
        if code >= 300:
            raise TransferFailed(f"REFER answered {code}")
        self._end_as(CallOutcome.TRANSFERRED, refer_to)
        await self.hangup(f"transferred to {refer_to}")

    # -- events ---------------------------------------------------------------------------

    def feed(self, event: UaSessionEvent) -> None:
        """Queue an event (sync, from the listener); CANCEL also takes effect at once."""
        if event.method == "CANCEL":
            self._cancelled = True
        self._events.put_nowait(event)

    async def run(self) -> None:
        """Handle events in order until the call has ended; every line logged names the call."""
        with call_context(self.key, "-", "opensips"):
            await self._run()

    async def _run(self) -> None:
        try:
            while self.state != ENDED:
                event = await self._events.get()
                try:
                    await self._handle(event)
                except Exception as exc:
                    logger.exception(f"[{self.key}] {event.method}/{event.event_type} failed")
                    if self.state in (NEW, ANSWERING):
                        error = type(exc).__name__
                        await self._reject(500, "Server Internal Error", CallOutcome.ERROR, error)
        finally:
            if self.pipeline_task is not None:
                await asyncio.gather(self.pipeline_task, return_exceptions=True)
            self._end_media()
            self._report_unanswered()
            self.deps.on_finished(self)

    def _end_as(self, outcome: CallOutcome, detail: str = "") -> None:
        """How the call ended: to its transport once the pipeline has the call, else kept for
        `_report_unanswered` (the first report wins either way)."""
        if self.pipeline_task is not None and self.call is not None:
            self.call.end_with(outcome, detail)
        else:
            self._unanswered_end.end_with(outcome, detail)

    def _report_unanswered(self) -> None:
        """A call that ended before the pipeline got it is the node's to count, not a pipeline's."""
        if self.pipeline_task is not None or self.deps.unanswered is None:
            return
        ending = self._unanswered_end
        if ending.outcome is CallOutcome.ACTIVE:  # every path above reports; this is a bug's
            ending.end_with(CallOutcome.ERROR, "ended before the answer, cause unknown")
        self.deps.unanswered(self._offer, ending.outcome, ending.outcome_detail)

    async def _handle(self, ev: UaSessionEvent) -> None:
        if ev.method == "CANCEL":
            await self._on_cancel()
        elif ev.event_type == "NEW" and ev.method == "INVITE":
            if self.state == NEW:
                await self._answer(ev)
        elif ev.method == "BYE" or ev.event_type in ("TERMINATED", "REJECTED"):
            await self._on_remote_end(ev)
        elif ev.method == "ACK":
            self.confirmed = True
        elif not ev.is_request:
            self._on_reply(ev)
        elif ev.method == "INVITE":
            await self._on_reinvite(ev)
        elif ev.method in _AUTO_OK:
            await self._mi_quiet(self.deps.mi.reply(self.key, 200, "OK", method=ev.method), "reply")
        else:
            self._log_once(f"unhandled {ev.method}/{ev.event_type}")
            await self._mi_quiet(
                self.deps.mi.reply(self.key, 501, "Not Implemented", method=ev.method), "reply"
            )

    async def _answer(self, ev: UaSessionEvent) -> None:
        settings = self.deps.settings
        try:
            neg = negotiate(parse_offer(ev.body), settings.codecs)
        except SdpError as exc:
            logger.warning(f"[{self.key}] rejecting INVITE with 488: {exc}")
            await self._reject(488, "Not Acceptable Here", detail=f"488 {exc}")
            return
        self.negotiated = neg
        if self.deps.admit is not None:
            try:
                self.deps.admit(self.key)
            except CallRefused as exc:  # full: 503 lets OpenSIPS try another node
                logger.warning(f"[{self.key}] refusing INVITE with 503: {exc}")
                await self._reject(503, "Service Unavailable", detail=f"503 {exc}")
                return
        if settings.send_ringing:
            await self._mi_quiet(self.deps.mi.reply(self.key, 180, "Ringing"), "180")
        self._to_uri = _uri(ev.header("To"))
        caller, callee = self._offer.caller, self._offer.callee
        flavor = await self.deps.flavors.select(self.key, callee, caller, ev.extra_params)
        if self._cancelled:
            return  # the queued CANCEL answers 487
        codec = G711Codec(neg.codec)
        try:
            _, rtp, port = await self.deps.ports.open(
                settings.rtp_ip, lambda sock: self._new_rtp(codec, neg, sock), self.key
            )
        except OSError:
            await self._reject(503, "Service Unavailable", detail="503 no free RTP port")
            return
        self.rtp, self.port = rtp, port
        info = CallInfo(
            call_id=self.key,
            transport="opensips",
            caller=caller,
            callee=callee,
            flavor=flavor,
            codec=neg.codec,
            edge_sample_rate=8000,
            extra={
                "sip_call_id": ev.header("Call-ID"),
                "extra_params": ev.extra_params,
                "headers": ev.headers,
            },
        )
        self.call = OpenSIPSCallTransport(info, self, rtp)
        answer = build_answer(neg, settings.advertised_ip, port, self._sdp_id, self._sdp_version)
        if self._cancelled:
            self._end_media()
            return
        self.state = ANSWERING
        try:
            await self.deps.mi.reply(self.key, 200, "OK", body=answer)
        except MIError as exc:
            logger.error(f"[{self.key}] 200 OK failed: {exc}")
            self._end_as(CallOutcome.ERROR, f"200 OK failed: {exc}")
            self._set_ended()
            await self._mi_quiet(self.deps.mi.terminate(self.key), "terminate")
            self._end_media()
            return
        if self.state != ANSWERING:  # a BYE/CANCEL was handled meanwhile
            return
        self.state = ACTIVE
        rtp.sending = neg.we_send
        rtp.start()
        logger.info(
            f"[{self.key}] answered {caller or '?'} → {callee or '?'}: {neg.codec}, RTP "
            f"{settings.advertised_ip}:{port} ↔ {neg.remote_ip}:{neg.remote_port}, flavor {flavor}"
        )
        self.pipeline_task = asyncio.get_running_loop().create_task(
            self._run_pipeline(), name=f"call-{self.key}"
        )

    def _new_rtp(self, codec: G711Codec, neg: Negotiated, sock: socket.socket) -> RtpStream:
        def on_audio(pcm: bytes) -> None:
            if self.call is not None:
                self.call.input_transport.feed_audio(pcm)

        def on_dtmf(digit: str) -> None:
            if self.call is not None:
                self.call.input_transport.feed_dtmf(digit)

        settings = self.deps.settings
        return RtpStream(
            self.key,
            codec,
            (neg.remote_ip, neg.remote_port),
            clock=self.deps.clock,
            on_audio=on_audio,
            on_dtmf=on_dtmf,
            telephone_event_pt=neg.telephone_event_pt,
            jitter_buffer_ms=settings.jitter_buffer_ms,
            sock=sock,
            latch=LatchPolicy(
                enabled=settings.rtp_latching,
                packets=settings.rtp_latch_packets,
                silence=settings.rtp_latch_silence_ms / 1000,
            ),
            flood_rate=settings.rtp_flood_pps,
        )

    async def _run_pipeline(self) -> None:
        assert self.call is not None
        try:
            await self.deps.on_call(self.call)
        except CallRefused as exc:  # lost a race for the last place: the node hangs up at once
            logger.warning(f"[{self.key}] call refused by the node: {exc}")
        except Exception:
            logger.exception(f"[{self.key}] call handler failed")
        finally:
            await self.hangup("call handler returned")
            self._wake()

    async def _on_cancel(self) -> None:
        if self.state in (NEW, ANSWERING):
            logger.info(f"[{self.key}] CANCEL before answer: 487")
            await self._reject(487, "Request Terminated", CallOutcome.CANCELLED)
        elif self.state == ACTIVE:
            logger.info(f"[{self.key}] CANCEL after 200 ignored (the caller will BYE)")

    async def _on_remote_end(self, ev: UaSessionEvent) -> None:
        if self.state == ENDED:
            return
        self._set_ended()
        self._end_as(CallOutcome.CALLER_HANGUP, f"{ev.method}/{ev.event_type}")
        logger.info(f"[{self.key}] caller ended the call ({ev.method}/{ev.event_type})")
        self._end_media()
        if self.call is not None:
            await self.call.input_transport.end_pipeline(graceful=False, reason="caller hangup")

    async def _on_reinvite(self, ev: UaSessionEvent) -> None:
        if self.state != ACTIVE or self.rtp is None or self.negotiated is None:
            return
        if ev.body.strip():
            try:
                offer = parse_offer(ev.body)
                try:  # keep the codec in use if it is still offered
                    neg = negotiate(offer, [self.negotiated.codec])
                except SdpError:
                    neg = negotiate(offer, self.deps.settings.codecs)
            except SdpError as exc:
                # 488 fails only this re-INVITE; the dialog stays up, so no terminate here
                logger.warning(f"[{self.key}] re-INVITE rejected with 488: {exc}")
                await self._mi_quiet(
                    self.deps.mi.reply(self.key, 488, "Not Acceptable Here"), "reply"
                )
                return
            self.negotiated = neg
            self.rtp.update_remote((neg.remote_ip, neg.remote_port), G711Codec(neg.codec))
        neg = self.negotiated
        held = not neg.we_send
        if held != (not self.rtp.sending):
            logger.info(f"[{self.key}] call {'held' if held else 'resumed'} ({neg.direction})")
        self.rtp.sending = not held
        if self.call is not None:
            self.call.input_transport.muted = held
        self._sdp_version += 1
        answer = build_answer(
            neg, self.deps.settings.advertised_ip, self.port or 0, self._sdp_id, self._sdp_version
        )
        await self._mi_quiet(self.deps.mi.reply(self.key, 200, "OK", body=answer), "reply")

    def _on_reply(self, ev: UaSessionEvent) -> None:
        if ev.method == "REFER" and self._refer_reply and not self._refer_reply.done():
            if ev.status >= 200:
                self._refer_reply.set_result(ev.status)

    # -- helpers --------------------------------------------------------------------------

    async def _reject(
        self,
        code: int,
        reason: str,
        outcome: CallOutcome = CallOutcome.REJECTED,
        detail: str = "",
    ) -> None:
        """Negative final reply, always followed by terminate (else OpenSIPS keeps the session)."""
        self._end_as(outcome, detail or f"{code} {reason}")
        self._set_ended()
        await self._mi_quiet(self.deps.mi.reply(self.key, code, reason), f"{code} reply")
        await self._mi_quiet(self.deps.mi.terminate(self.key), "terminate")
        self._end_media()

    async def shutdown(self, reason: str) -> None:
        """Provider stopping: BYE an active call, reject one still being set up."""
        if self.state == ACTIVE:
            self._end_as(CallOutcome.BOT_HANGUP, reason)
            await self.hangup(reason)
            if self.call is not None:
                await self.call.input_transport.end_pipeline(graceful=False, reason=reason)
        elif self.state in (NEW, ANSWERING):
            await self._reject(503, "Service Unavailable", detail=f"503 {reason}")
        self._wake()

    def _set_ended(self) -> None:
        self.state = ENDED
        self._ended.set()

    def _wake(self) -> None:
        """Let `run` notice ENDED even if no further event arrives."""
        self._events.put_nowait(_WAKE)

    def _end_media(self) -> None:
        if self.rtp is not None:
            rtp, self.rtp = self.rtp, None
            rtp.close()
            stats = dataclasses.asdict(rtp.stats)
            logger.info(f"[{self.key}] RTP stats {stats}")
            self.final_stats = rtp.stats
            metrics.record_rtp_stats(rtp.stats)
        if self.port is not None:
            self.deps.ports.release(self.port)
            self.port = None
        if self.state == ENDED:
            self._wake()

    async def _mi_quiet(self, call: Awaitable[object], what: str) -> bool:
        try:
            await call
            return True
        except MIError as exc:
            logger.warning(f"[{self.key}] MI {what} failed: {exc}")
            return False

    def _log_once(self, what: str) -> None:
        if what not in self._logged:
            self._logged.add(what)
            logger.warning(f"[{self.key}] {what}")


_WAKE = UaSessionEvent(key="", event_type="WAKE", method="WAKE", status=-1)


def _uri(value: str) -> str:
    """The bare URI of a From/To header value."""
    start, end = value.find("<"), value.find(">")
    if start != -1 and end > start:
        return value[start + 1 : end]
    return value.split(";", 1)[0].strip()
