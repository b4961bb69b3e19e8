"""Parse Twilio Media Streams messages defensively.

A malformed message (not JSON, not an object, unknown event, bad base64, oversized payload) is
dropped with one warning per kind per call: it never ends the call or touches another call.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from loguru import logger

KNOWN_EVENTS = {"connected", "start", "media", "dtmf", "mark", "stop"}
MAX_MEDIA_PAYLOAD_BYTES = 16000
"""Twilio sends 20 ms (160 bytes) per message; anything near 2 s of audio is not Twilio."""


class WarnOnce:
    """Logs each kind of problem once per call, so a flood cannot flood the log."""

    def __init__(self, call_id: str) -> None:
        self.call_id = call_id
        self.seen: dict[str, int] = {}

    def __call__(self, kind: str, detail: str) -> None:
        count = self.seen.get(kind, 0)
        self.seen[kind] = count + 1
        if count == 0:
            logger.warning(f"call {self.call_id}: ignored Twilio message ({kind}): {detail}")


def parse_message(data: str | bytes, warn: WarnOnce) -> dict[str, Any] | None:
    """The message as a dict with a known `event`, or None (after a warning)."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            warn("binary", "binary frame")
            return None
    try:
        message = json.loads(data)
    except json.JSONDecodeError:
        warn("not-json", data[:60])
        return None
    if not isinstance(message, dict):
        warn("not-object", data[:60])
        return None
    event = message.get("event")
    if event not in KNOWN_EVENTS:
        warn("unknown-event", str(event)[:40])
        return None
    return message


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
