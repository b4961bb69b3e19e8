"""E_UA_SESSION notifications in, and the subscription that makes OpenSIPS send them.

Listening is our own asyncio datagram endpoint rather than the `opensips` package's listener:
that one feeds every datagram into one shared JSON buffer, so a single garbage datagram can
corrupt the parsing of the next events. Here each datagram is parsed alone and anything odd is
dropped with one log line. The subscription itself goes through the package
(`OpenSIPSEventHandler`), driven by a watchdog because OpenSIPS keeps subscriptions in memory only:
after an OpenSIPS restart they are gone, and the package would not notice for an hour.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loguru import logger
from opensips.event import OpenSIPSEventHandler

from voice_connector.telemetry.metrics import record_dropped_input
from voice_connector.transports.opensips.mi import MIClient, MIError
from voice_connector_core import untrusted_json
from voice_connector_core.config.schema import OpenSIPSSettings
from voice_connector_core.logs import clip

EVENT_NAME = "E_UA_SESSION"
EVENT_RCVBUF = 4 << 20  # capped by net.core.rmem_max; see docs/opensips.md
MAX_EVENT_BYTES = 65535
"""A UDP datagram's limit; an INVITE with its SDP is ~1.5 kB."""
MAX_KEY_CHARS = 256
_TOKEN = re.compile(r"[A-Za-z_]{1,32}")
"""SIP method names and event types: short words (a peer's long junk never reaches a log)."""


class EventError(ValueError):
    """A datagram that is not a usable E_UA_SESSION notification."""


@dataclass(frozen=True)
class UaSessionEvent:
    """One E_UA_SESSION notification (fields as recorded from OpenSIPS 3.6)."""

    key: str
    event_type: str  # NEW, EARLY, ANSWERED, REJECTED, UPDATED, TERMINATED
    method: str
    status: int = 0  # 0 for requests, the code for replies
    reason: str | None = None
    body: str = ""
    headers: str = ""
    extra_params: str | None = None

    @property
    def is_request(self) -> bool:
        """Requests carry status 0; replies to our requests carry their code."""
        return self.status == 0

    def header(self, name: str) -> str:
        """First value of a header (case-insensitive; compact forms not needed from OpenSIPS)."""
        return header_value(self.headers, name)


def parse_event(data: bytes) -> UaSessionEvent:
    """Decode one datagram; raises EventError with a short reason."""
    try:
        message = untrusted_json.loads(data, MAX_EVENT_BYTES)
    except untrusted_json.BadJSON as exc:  # too large, too deep, 1e999, not UTF-8, not JSON
        plain = exc.reason in ("not-json", "not-utf8")
        raise EventError("not JSON" if plain else f"not JSON ({exc.reason})") from exc
    if not isinstance(message, dict) or message.get("method") != EVENT_NAME:
        raise EventError(f"not an {EVENT_NAME} notification")
    params = message.get("params")
    if not isinstance(params, dict):
        raise EventError("no params")
    key, event_type, method = params.get("key"), params.get("event_type"), params.get("method")
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_CHARS:
        raise EventError("missing key")
    if not isinstance(event_type, str) or not isinstance(method, str):
        raise EventError("missing event_type/method")
    if not (_TOKEN.fullmatch(event_type) and _TOKEN.fullmatch(method)):
        raise EventError("bad event_type/method")
    status = params.get("status") or 0
    extra = params.get("extra_params")
    return UaSessionEvent(
        key=key,
        event_type=event_type.upper(),
        method=method.upper(),
        status=status if isinstance(status, int) else _int(status),
        reason=params.get("reason") if isinstance(params.get("reason"), str) else None,
        body=params.get("body") if isinstance(params.get("body"), str) else "",
        headers=params.get("headers") if isinstance(params.get("headers"), str) else "",
        extra_params=extra if isinstance(extra, str) else (json.dumps(extra) if extra else None),
    )


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):  # junk, a huge digit string, infinity
        return 0


def header_value(headers: str, name: str) -> str:
    """First value of header `name` in a CRLF header block."""
    prefix = name.lower() + ":"
    for line in headers.splitlines():
        if line.lower().startswith(prefix):
            return line[len(prefix) :].strip()
    return ""


_URI_USER = re.compile(r"<?\s*(?:sips?|tel):(?:([^@;>]+)@)?([^;>]*)", re.IGNORECASE)


def uri_user(value: str) -> str:
    """The user part of the URI in a From/To header value (`sip:ai@host` → `ai`)."""
    match = _URI_USER.search(value)
    if not match:
        return ""
    return match.group(1) or (
        match.group(2) if value.lower().lstrip("<").startswith("tel:") else ""
    )


class EventListener(asyncio.DatagramProtocol):
    """Receives notifications on our event socket and hands valid ones to `on_event`."""

    def __init__(self, on_event: Callable[[UaSessionEvent], None]) -> None:
        self._on_event = on_event
        self._transport: asyncio.DatagramTransport | None = None
        self.rejected: dict[str, int] = {}

    async def open(self, ip: str, port: int) -> None:
        """Bind the socket OpenSIPS sends to, with a large receive buffer.

        Events are one datagram each and nothing retransmits them: with the default buffer a
        burst of ~100 INVITEs (about 1.5 kB each) overflowed it and calls were lost.
        """
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, EVENT_RCVBUF)
            sock.bind((ip, port))
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(lambda: self, sock=sock)

    def close(self) -> None:
        """Stop listening."""
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            event = parse_event(data)
        except EventError as exc:
            reason = str(exc)
            self.rejected[reason] = self.rejected.get(reason, 0) + 1
            record_dropped_input("opensips_event", reason)
            if self.rejected[reason] == 1:  # once per kind: garbage must not flood the log
                logger.warning(f"OpenSIPS event from {addr} dropped: {reason} ({clip(data)})")
            return
        try:
            self._on_event(event)
        except Exception:
            logger.exception(f"[{event.key}] handling {event.method}/{event.event_type} failed")


def subscribers(result: Any) -> list[dict[str, Any]]:
    """The subscriber entries of a `subscribers_list` reply, whatever nesting it comes in."""
    found: list[dict[str, Any]] = []
    if isinstance(result, dict):
        if "socket" in result:
            found.append(result)
        for value in result.values():
            found.extend(subscribers(value))
    elif isinstance(result, list):
        for item in result:
            found.extend(subscribers(item))
    return found


class SubscriptionWatchdog:
    """Keeps our E_UA_SESSION subscription alive; `subscribed` feeds readiness."""

    def __init__(self, mi: MIClient, settings: OpenSIPSSettings) -> None:
        self._mi = mi
        self._settings = settings
        self._handler = OpenSIPSEventHandler(
            mi.mi, "datagram", ip=settings.event_ip, port=settings.event_port
        )
        self.subscribed = False
        self.why = "not subscribed yet"
        self.resubscriptions = 0
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """Check now, then every `resubscribe_interval`."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="opensips-watchdog")

    async def stop(self, unsubscribe: bool = True) -> None:
        """Stop watching and (best effort) remove the subscription."""
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if unsubscribe and self.subscribed:
            try:
                await self._mi.execute(
                    "event_subscribe", [EVENT_NAME, self._settings.event_socket, 0]
                )
            except MIError as exc:
                logger.debug(f"unsubscribe failed: {exc}")
        self.subscribed = False
        self.why = "stopped"

    async def _run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self._settings.resubscribe_interval)

    async def check(self) -> bool:
        """One round: is our socket listed with enough ttl left? If not, subscribe."""
        ours = self._settings.event_socket
        try:
            listed = subscribers(await self._mi.execute("subscribers_list", {"event": EVENT_NAME}))
        except MIError as exc:
            self._lost(f"OpenSIPS MI unreachable: {exc}")
            return False
        margin = 3 * self._settings.resubscribe_interval
        if any(s.get("socket") == ours and _int(s.get("ttl", 0)) > margin for s in listed):
            self.subscribed, self.why = True, "ok"
            return True
        try:
            await self._mi.run_blocking(
                self._handler.__mi_subscribe__,
                EVENT_NAME,
                ours,
                self._settings.subscription_expire,
            )
        except Exception as exc:  # OpenSIPSMIException / OpenSIPSEventException
            self._lost(f"subscribe failed: {exc}")
            return False
        if self.resubscriptions or not self.subscribed:
            logger.info(f"subscribed to {EVENT_NAME} as {ours}")
        self.resubscriptions += 1
        self.subscribed, self.why = True, "ok"
        return True

    def _lost(self, why: str) -> None:
        if self.subscribed or self.why != why:
            logger.warning(f"{EVENT_NAME} subscription not live: {why}")
        self.subscribed, self.why = False, why
