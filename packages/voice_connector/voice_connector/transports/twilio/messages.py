"""Parse Twilio Media Streams messages defensively.

A malformed message (binary, not JSON, nested too deep, not an object, an `event` that is not one
of Twilio's names, bad base64, an oversized payload) is dropped: counted in
`voice_connector_input_dropped{surface="twilio"}` and logged once per kind per call. It never ends
the call or touches another call. Size and nesting are bounded before the JSON parser runs.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable
from typing import Any

from loguru import logger

from voice_connector.telemetry.metrics import record_dropped_input
from voice_connector_core import untrusted_json
from voice_connector_core.logs import clip

KNOWN_EVENTS = {"connected", "start", "media", "dtmf", "mark", "stop"}
MAX_MESSAGE_BYTES = 65536
"""Largest message parsed (uvicorn's ws_max_size refuses larger frames before they get here)."""
MAX_MEDIA_PAYLOAD_BYTES = 1600
"""Twilio sends 20 ms (160 bytes) per message; 200 ms in one message is not Twilio."""
ULAW_BYTES_PER_SECOND = 8000
INBOUND_AUDIO_LEAD_SECONDS = 2.0
"""Caller audio a stream may send ahead of the real-time clock before the excess is dropped."""


class WarnOnce:
    """Counts every dropped message and logs each kind of problem once per call.

    `every_seconds` (for node-wide refusals): log a kind again, with the count since, at most
    that often instead of only once.
    """

    def __init__(
        self,
        call_id: str,
        surface: str = "twilio",
        what: str = "ignored Twilio message",
        every_seconds: float | None = None,
    ) -> None:
        self.call_id = clip(call_id)
        self.surface = surface
        self.what = what
        self.every = every_seconds
        self.seen: dict[str, int] = {}
        self._logged_at: dict[str, tuple[float, int]] = {}

    def __call__(self, kind: str, detail: str) -> None:
        """`kind` comes from code (a metric label); `detail` may quote the peer (clipped)."""
        count = self.seen.get(kind, 0) + 1
        self.seen[kind] = count
        record_dropped_input(self.surface, kind)
        now = time.monotonic()
        last = self._logged_at.get(kind)
        if last is not None and (self.every is None or now - last[0] < self.every):
            return
        since = f" ({count - last[1]} since the last report)" if last else ""
        self._logged_at[kind] = (now, count)
        logger.warning(f"call {self.call_id}: {self.what} ({kind}): {clip(detail)}{since}")


def parse_message(data: str | bytes, warn: WarnOnce) -> dict[str, Any] | None:
    """The message as a dict with a known `event`, or None (after a warning)."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            warn("binary", f"binary frame of {len(data)} bytes")  # Twilio sends text frames
            return None
    try:
        message = untrusted_json.loads(data, MAX_MESSAGE_BYTES)
    except untrusted_json.BadJSON as exc:
        warn(exc.reason, data[:60])
        return None
    if not isinstance(message, dict):
        warn("not-object", data[:60])
        return None
    event = message.get("event")
    if not isinstance(event, str) or event not in KNOWN_EVENTS:
        warn("unknown-event", repr(event)[:40])
        return None
    return message


class InboundBudget:
    """Bounds the caller audio a stream can queue: real time plus a small lead.

    Twilio streams audio in real time. A peer that sends faster (1,500 messages of 16 kB in a
    burst grew the node by ~100 MB that never came back) would pile up decoded audio ahead of
    the VAD and STT; beyond `lead_seconds` ahead of the clock the excess is dropped instead.
    """

    def __init__(
        self,
        lead_seconds: float = INBOUND_AUDIO_LEAD_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lead = lead_seconds
        self._clock = clock
        self._available = lead_seconds
        self._updated = clock()

    def take(self, seconds: float) -> bool:
        """True if `seconds` of audio fit the budget now (and spends them), else False."""
        now = self._clock()
        self._available = min(self._lead, self._available + (now - self._updated))
        self._updated = now
        if seconds > self._available:
            return False
        self._available -= seconds
        return True


def media_payload(message: dict[str, Any], warn: WarnOnce) -> bytes | None:
    """The μ-law bytes of a `media` message, or None if missing or invalid."""
    media = message.get("media")
    payload = media.get("payload") if isinstance(media, dict) else None
    if not isinstance(payload, str) or not payload:
        warn("media-without-payload", "media.payload missing")
        return None
    if len(payload) > MAX_MEDIA_PAYLOAD_BYTES * 4 // 3 + 4:
        warn("media-too-large", f"{len(payload)} base64 characters")
        return None
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        warn("bad-base64", payload[:20])
        return None


def field(message: dict[str, Any], section: str, key: str) -> str | None:
    """message[section][key] as a string, tolerating missing or wrongly typed parts."""
    part = message.get(section)
    value = part.get(key) if isinstance(part, dict) else None
    return value if isinstance(value, str) else None
