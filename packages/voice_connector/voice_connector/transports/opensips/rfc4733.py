"""RFC 4733 telephone-event payloads: decoding the caller's DTMF and encoding ours."""

from __future__ import annotations

import struct
from dataclasses import dataclass

EVENT_CODES = "0123456789*#ABCD"


@dataclass(frozen=True, slots=True)
class DtmfEvent:
    """One telephone-event payload."""

    digit: str
    end: bool
    volume: int
    duration: int


def parse_event(payload: bytes) -> DtmfEvent | None:
    """The event in a payload, or None if it is not a DTMF digit (e.g. flash, fax tones)."""
    if len(payload) < 4:
        return None
    event, flags, duration = struct.unpack_from("!BBH", payload)
    if event >= len(EVENT_CODES):
        return None
    return DtmfEvent(EVENT_CODES[event], bool(flags & 0x80), flags & 0x3F, duration)


def build_event(digit: str, duration: int, end: bool, volume: int = 10) -> bytes:
    """One telephone-event payload for `digit` with `duration` in timestamp units."""
    return struct.pack(
        "!BBH", EVENT_CODES.index(digit.upper()), (0x80 if end else 0) | volume, duration
    )


def digit_packets(
    digit: str, samples_per_packet: int = 160, tone_packets: int = 5, end_repeats: int = 3
) -> list[tuple[bytes, bool]]:
    """(payload, marker) for one digit: ~100 ms tone, the end packet sent three times (RFC 4733)."""
    packets = [
        (build_event(digit, samples_per_packet * (i + 1), end=False), i == 0)
        for i in range(tone_packets)
    ]
    final = build_event(digit, samples_per_packet * tone_packets, end=True)
    packets += [(final, False)] * end_repeats
    return packets
