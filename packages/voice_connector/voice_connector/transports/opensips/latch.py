"""Which source address a call's inbound RTP is taken from (symmetric RTP latching).

A caller behind NAT sends its media from another address than its SDP announced, so the stream
must be able to follow the packets; but a port that follows the first packet from anyone can be
taken over by whoever sprays it first (they get the bot's audio, the caller is not heard). The
rule, applied only to packets that already passed the RTP checks and carry the negotiated codec
or telephone-event payload type:

- the address the SDP announced is taken at its first valid packet;
- any other address (NAT) needs `packets` consecutive valid packets of one SSRC (sequence numbers
  advancing), and the current source must have been silent for `silence` seconds (before the
  first latch: nothing valid from the SDP address since the stream opened);
- the SDP address takes the stream back after `packets` consecutive packets, silence or not;
- with latching off (`enabled=False`) only the SDP address is ever accepted.

Every decision is O(1) per packet; the RTP stream calls `offer` only for packets that do not come
from the current source.
"""

from __future__ import annotations

from dataclasses import dataclass

from voice_connector.audio.jitter_buffer import seq_delta

Address = tuple[str, int]
_MAX_STEP = 3  # sequence advance still counted as "consecutive" (a little loss or reordering)


@dataclass(frozen=True, slots=True)
class LatchPolicy:
    """The configurable part of the rule (`[opensips] rtp_latching`, `rtp_latch_*`)."""

    enabled: bool = True
    packets: int = 10
    silence: float = 0.5


class Latch:
    """The current media source of one call and the one candidate that may replace it."""

    __slots__ = ("_cand", "_count", "_seq", "_ssrc", "last_heard", "policy", "sdp", "source")

    def __init__(self, sdp: Address, policy: LatchPolicy, now: float) -> None:
        self.policy = policy
        self.sdp = sdp
        self.source: Address | None = None
        self.last_heard = now  # of `source`; before the first latch, when the stream opened
        self._cand: Address | None = None
        self._ssrc = 0
        self._seq = 0
        self._count = 0

    def moved(self, sdp: Address, now: float) -> None:
        """A re-INVITE announced a new address: start over (the new one is preferred)."""
        self.sdp = sdp
        self.source = None
        self.last_heard = now
        self._cand = None

    def offer(self, addr: Address, ssrc: int, seq: int, now: float) -> bool:
        """A valid packet from `addr`, which is not the current source: True if it takes over."""
        if addr == self.sdp and self.source is None:
            return self._take(addr, now)
        if addr != self.sdp and not self.policy.enabled:
            return False
        if addr == self._cand and ssrc == self._ssrc and 0 < seq_delta(seq, self._seq) <= _MAX_STEP:
            self._count += 1
        else:
            self._cand, self._ssrc, self._count = addr, ssrc, 1
        self._seq = seq
        if self._count < self.policy.packets:
            return False
        if addr != self.sdp and now - self.last_heard < self.policy.silence:
            return False
        return self._take(addr, now)

    def _take(self, addr: Address, now: float) -> bool:
        self.source = addr
        self.last_heard = now
        self._cand = None
        return True
