"""`OpenSIPSProvider`: SIP calls through OpenSIPS' b2b `ua_session`, media by our RTP engine.

It owns the process-wide pieces (event socket, MI client, subscription watchdog, RTP port pool,
pacing clock) and one `CallSession` per OpenSIPS session key. It never assumes it is the only
provider: it only binds its own sockets and ports, and hands calls to the shared `CallHandler`.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from loguru import logger

from voice_connector.telemetry.outcome import CallOutcome
from voice_connector.transports.base import (
    Admission,
    CallHandler,
    TransportProvider,
    Unanswered,
)
from voice_connector.transports.opensips.clock import PacingClock
from voice_connector.transports.opensips.events import (
    EventListener,
    SubscriptionWatchdog,
    UaSessionEvent,
)
from voice_connector.transports.opensips.mi import MIClient, MIError
from voice_connector.transports.opensips.ports import PortPool
from voice_connector.transports.opensips.session import CallSession, SessionDeps, offered
from voice_connector_core.config import Settings
from voice_connector_core.workers import WorkerShard

_KEY = re.compile(r"^B2B\.\d+\.\d+\.\d+\.\d+$")
_ENDED_MEMORY = 2048
GIL_SWITCH_INTERVAL = 0.0001
"""The RTP clock thread re-takes the GIL after every `sendto`; at the default 5 ms (or even 1 ms)
a busy event loop holds it that long each time, and 50 streams' packets spread over a whole tick
(p99 send jitter 16 ms at 50 calls with 1 ms; 0.6-5 ms with 0.1 ms)."""

MAX_LOGGED_KINDS = 64
"""Distinct unexpected method/event pairs warned about once each; a peer inventing names
gets no more (the set and the log stay bounded)."""


class OpenSIPSProvider(TransportProvider):
    """Accepts SIP calls from one OpenSIPS instance."""

    name = "opensips"

    def __init__(
        self,
        settings: Settings,
        *,
        shard: WorkerShard | None = None,
        shared_dir: Path | None = None,
    ) -> None:
        """Reads `[opensips]`; `shard`: this worker's share of the sessions (by key)."""
        super().__init__(settings, shard=shard, shared_dir=shared_dir)
        self.opensips = settings.opensips
        self.ports = PortPool(*self.opensips.ports)
        self.clock = PacingClock()
        self.sessions: dict[str, CallSession] = {}
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._tasks: set[asyncio.Task] = set()
        self._listener = EventListener(self._on_event)
        self._mi: MIClient | None = None
        self._watchdog: SubscriptionWatchdog | None = None
        self._on_call: CallHandler | None = None
        self._admit: Admission | None = None
        self._unanswered: Unanswered | None = None
        self._accepting = False
        self._unknown_logged: set[str] = set()

    # -- TransportProvider ----------------------------------------------------------------

    async def start(
        self,
        on_call: CallHandler,
        admit: Admission | None = None,
        unanswered: Unanswered | None = None,
    ) -> None:
        """Bind the event socket, subscribe (and keep subscribed), sweep leaked sessions."""
        self._on_call = on_call
        self._admit = admit
        self._unanswered = unanswered
        if sys.getswitchinterval() > GIL_SWITCH_INTERVAL:
            # the RTP clock thread must get the GIL promptly to keep 20 ms pacing (default 5 ms)
            sys.setswitchinterval(GIL_SWITCH_INTERVAL)
        self._mi = MIClient(self.opensips)
        await self._listener.open(self.opensips.event_ip, self.opensips.event_port)
        self._accepting = True
        self._watchdog = SubscriptionWatchdog(self._mi, self.opensips)
        self._watchdog.start()
        self._spawn(self.sweep(), "opensips-sweep")
        logger.info(
            f"OpenSIPS provider: events on {self.opensips.event_socket}, MI "
            f"{self.opensips.mi_ip}:{self.opensips.mi_port}, RTP {self.opensips.rtp_port_range}"
        )

    async def stop(self) -> None:
        """Refuse new calls, end active ones, release sockets and ports."""
        self._accepting = False
        if self._watchdog:
            await self._watchdog.stop()
        await asyncio.gather(
            *(s.shutdown("connector stopping") for s in list(self.sessions.values())),
            return_exceptions=True,
        )
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            _, late = await asyncio.wait(pending, timeout=5.0)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        self._listener.close()
        await self.clock.close()
        if self._mi:
            self._mi.close()

    def readiness(self) -> tuple[bool, str]:
        """Ready only while subscribed to E_UA_SESSION and accepting calls."""
        if not self._accepting:
            return False, "opensips: not accepting calls"
        if self._watchdog is None or not self._watchdog.subscribed:
            why = self._watchdog.why if self._watchdog else "not started"
            return False, f"opensips: {why}"
        return True, "ok"

    def refuse_new_calls(self) -> None:
        """Draining: new INVITEs get 503 (+ terminate); active calls go on."""
        self._accepting = False

    @property
    def mi(self) -> MIClient:
        """The MI client (after start)."""
        assert self._mi is not None, "provider not started"
        return self._mi

    # -- events ---------------------------------------------------------------------------

    def _on_event(self, event: UaSessionEvent) -> None:
        session = self.sessions.get(event.key)
        if session is not None:
            session.feed(event)
            return
        if event.key in self._ended:
            logger.debug(f"[{event.key}] {event.method}/{event.event_type} after the call ended")
            return
        if not self.shard.owns(event.key):
            return  # another worker of this node answers it
        if event.event_type != "NEW" or event.method != "INVITE":
            what = f"{event.method}/{event.event_type}"
            if what not in self._unknown_logged and len(self._unknown_logged) < MAX_LOGGED_KINDS:
                self._unknown_logged.add(what)
                logger.warning(f"[{event.key}] {what} for an unknown session ignored")
            return
        if not self._accepting or self._on_call is None:
            logger.info(f"[{event.key}] INVITE while not accepting calls: 503")
            self._spawn(self._refuse(event.key), f"refuse-{event.key}")
            if self._unanswered is not None:
                self._unanswered(offered(event), CallOutcome.REJECTED, "503 not accepting calls")
            return
        session = CallSession(event, self._deps())
        self.sessions[event.key] = session
        self._spawn(session.run(), f"session-{event.key}")

    def _deps(self) -> SessionDeps:
        assert self._on_call is not None and self._mi is not None
        return SessionDeps(
            settings=self.opensips,
            mi=self._mi,
            ports=self.ports,
            clock=self.clock,
            flavors=self.flavors,
            on_call=self._on_call,
            on_finished=self._finished,
            admit=self._admit,
            unanswered=self._unanswered,
        )

    def _finished(self, session: CallSession) -> None:
        if self.sessions.get(session.key) is session:
            del self.sessions[session.key]
        self._ended[session.key] = None
        while len(self._ended) > _ENDED_MEMORY:
            self._ended.popitem(last=False)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _refuse(self, key: str, code: int = 503, reason: str = "Service Unavailable") -> None:
        for command in (self.mi.reply(key, code, reason), self.mi.terminate(key)):
            try:
                await command
            except MIError as exc:
                logger.debug(f"[{key}] refusing: {exc}")
        self._ended[key] = None

    async def sweep(self) -> list[str]:
        """Clean sessions OpenSIPS holds that we do not know (left from before a restart).

        An INVITE nobody answered leaks forever in OpenSIPS and cannot be terminated directly,
        so each unknown key gets a 480 first, then terminate (which BYEs confirmed ones).
        """
        try:
            listing = await self.mi.execute("b2be_list")
        except MIError as exc:
            logger.warning(f"b2be_list sweep skipped: {exc}")
            return []
        stale = [
            k for k in sorted(set(_keys(listing))) if k not in self.sessions and self.shard.owns(k)
        ]
        for key in stale:
            logger.warning(f"[{key}] unknown OpenSIPS session at start-up: 480 + terminate")
            await self._refuse(key, 480, "Temporarily Unavailable")
        return stale


def _keys(value: Any) -> Iterable[str]:
    """Every b2b entity key in a `b2be_list` reply, whatever its exact nesting."""
    if isinstance(value, str):
        if _KEY.match(value):
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from _keys(item)
