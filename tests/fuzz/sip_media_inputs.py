"""Seeded generators of hostile RTP datagrams and SDP offers, for the SIP/RTP fuzz tests.

Each generator mixes the classes of input seen in attacks and broken peers: random bytes, valid
packets/offers with one field pushed out of range, truncations, size extremes. A seed reproduces a
run exactly (`VC_FUZZ_SEED`); the count comes from `fuzz_count` (short in CI, ≥ 10,000 in the
long run). Every fuzz test of the suite takes its count and seed from here
(`python -m tests.fuzz --long --seed N` sets both).
"""

from __future__ import annotations

import os
import random
import struct

from voice_connector.caller.opensips_double import recorded

LONG_RUN = 10_000


def fuzz_long() -> bool:
    """The long run (one command: `VC_FUZZ_LONG=1 pytest tests/fuzz`)."""
    return os.environ.get("VC_FUZZ_LONG", "") not in ("", "0", "false")


def fuzz_count(ci: int) -> int:
    """Inputs per surface: `ci` on every run, at least 10,000 in the long run."""
    return max(LONG_RUN, ci) if fuzz_long() else ci


def fuzz_rng(surface: str) -> tuple[random.Random, int]:
    """A seeded generator per surface; the seed is printed by the tests on failure."""
    seed = int(os.environ.get("VC_FUZZ_SEED", "20261201"))
    return random.Random(f"{surface}:{seed}"), seed


# -- RTP ------------------------------------------------------------------------------------

_PTS = (0, 8, 13, 101, 96, 127, 18, 9)


def rtp_datagram(rng: random.Random, ssrc: int = 0x1234ABCD) -> bytes:
    """One datagram: random bytes, or an RTP packet with random header bits, sizes and payload."""
    kind = rng.random()
    if kind < 0.15:
        return rng.randbytes(rng.choice((0, 1, 2, 11, 12, 13, rng.randrange(1500))))
    b0 = rng.choice((0x80, 0x80, 0x80, rng.randrange(256)))  # mostly version 2, random P/X/CC
    b1 = (rng.random() < 0.1) << 7 | rng.choice(_PTS)
    seq, ts = rng.randrange(1 << 16), rng.randrange(1 << 32)
    ssrc = ssrc if rng.random() < 0.8 else rng.getrandbits(32)
    header = struct.pack("!BBHII", b0, b1, seq, ts, ssrc)
    header += rng.randbytes(4 * (b0 & 0x0F))  # CSRCs (the truncations below cut some off)
    if b0 & 0x10:
        header += struct.pack("!HH", 0xBEDE, rng.choice((0, 1, 0xFFFF, rng.randrange(64))))
    if b1 & 0x7F == 101:
        payload = rng.randbytes(rng.choice((0, 3, 4, 8)))
    else:
        payload = rng.randbytes(rng.choice((0, 1, 80, 160, 240, 1200, 1201, rng.randrange(1400))))
    if b0 & 0x20:
        payload += bytes([rng.randrange(256)])  # padding count, maybe longer than the packet
    data = header + payload
    if kind > 0.9:
        data = data[: rng.randrange(len(data) + 1)]  # truncated anywhere
    return data


# -- SDP ------------------------------------------------------------------------------------

_TOKENS = (
    "",
    "0",
    "-1",
    "65535",
    "65536",
    "99999",
    "999999999999999999999",
    "0.0.0.0",
    "999.1.1.1",
    "::1",
    "255.255.255.255",
    "224.0.0.1",
    "host.example",
    "IP6",
    "IP4",
    "RTP/AVP",
    "PCMU/8000",
    "telephone-event/8000",
    "ü",
    "\x00",
    " ",
    "=",
    "A" * 300,
)


def sdp_offer(rng: random.Random) -> str:
    """The recorded SIPp offer with lines dropped, duplicated, reordered or fields replaced."""
    lines = recorded("INVITE-NEW")["body"].split("\r\n")
    kind = rng.random()
    if kind < 0.05:
        return rng.randbytes(rng.randrange(2000)).decode("latin-1")
    if kind < 0.08:
        return "\r\n".join(lines) + "a=x:" + "B" * rng.choice((8000, 9000, 10000)) + "\r\n"
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(lines))
        action = rng.random()
        if action < 0.2:
            del lines[i]
        elif action < 0.35:
            lines.insert(rng.randrange(len(lines) + 1), lines[i])
        elif action < 0.45:
            lines.insert(rng.randrange(len(lines) + 1), lines.pop(i))
        else:
            fields = lines[i].split(" ")
            j = rng.randrange(len(fields))
            prefix = fields[j][:2] if j == 0 and "=" in fields[j][:2] else ""
            fields[j] = prefix + rng.choice(_TOKENS)
            lines[i] = " ".join(fields)
    return "\r\n".join(lines) if rng.random() < 0.7 else "\n".join(lines)
