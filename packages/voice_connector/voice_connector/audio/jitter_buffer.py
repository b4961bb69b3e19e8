"""A small reordering jitter buffer for inbound RTP.

In order packets pass straight through (no added latency in the common case). A gap holds later
packets back until either the missing one arrives or `depth` packets are waiting, which bounds the
extra delay to `depth` × ptime (60 ms by default); then the gap is declared lost. Duplicates and
packets older than what was already played are dropped. A jump far ahead or far back (the peer
restarted its stream) resynchronises instead of declaring thousands of losses or dropping the new
stream as late, and so does `resync=True`, for gaps the receiver made itself (packets its flood
limiter dropped are not network loss).

Every packet of the stream goes through it, whatever its payload type: RFC 4733 events and comfort
noise share the sequence space with audio, so leaving them out would count each one as lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

_SEQ_MOD = 1 << 16
_RESYNC_GAP = 1000

T = TypeVar("T")


def seq_delta(a: int, b: int) -> int:
    """Signed distance from sequence number `b` to `a`, across the 16-bit wrap."""
    d = (a - b) % _SEQ_MOD
    return d - _SEQ_MOD if d >= _SEQ_MOD // 2 else d


@dataclass(slots=True)
class JitterStats:
    """What the buffer did, for the call's RTP stats."""

    lost: int = 0
    late: int = 0
    duplicate: int = 0
    held: int = 0
    resyncs: int = 0


class JitterBuffer(Generic[T]):
    """Reorders items by sequence number; `push` returns what can be played now, in order.

    A `None` in the output stands for one lost packet, so the caller can conceal it.
    """

    def __init__(self, depth: int = 3) -> None:
        self.depth = max(1, depth)
        self.stats = JitterStats()
        self._expected: int | None = None
        self._held: dict[int, T] = {}

    def push(self, seq: int, item: T, resync: bool = False) -> list[T | None]:
        """Add one packet; return the items (or `None` for a loss) now due, in order.

        `resync`: the gap before `seq` is not loss (the receiver dropped those packets itself):
        what is held is released without concealment and `seq` becomes the next expected.
        """
        out: list[T | None] = []  # what was held before a resync, then what is due now
        if resync and self._expected is not None:
            out = self._release_held()
            self._expected = seq
        if self._expected is None:
            self._expected = seq
        delta = seq_delta(seq, self._expected)
        if -_RESYNC_GAP <= delta < 0:
            self.stats.late += 1
            return out
        if abs(delta) > _RESYNC_GAP:
            self.stats.resyncs += 1
            out += self._release_held()
            self._expected = seq
            delta = 0
        if seq in self._held:
            self.stats.duplicate += 1
            return out
        if delta == 0 and not self._held:  # in order, nothing waiting: the common case
            self._expected = (seq + 1) % _SEQ_MOD
            out.append(item)
            return out
        if delta > 0:
            self.stats.held += 1
        self._held[seq] = item
        out += self._release()
        return out

    def _release_held(self) -> list[T | None]:
        """Everything held, in sequence order, gaps skipped (bounded by `depth`)."""
        assert self._expected is not None
        expected = self._expected
        seqs = sorted(self._held, key=lambda s: seq_delta(s, expected))
        out: list[T | None] = [self._held[s] for s in seqs]
        self._held.clear()
        return out

    def _release(self) -> list[T | None]:
        out: list[T | None] = []
        assert self._expected is not None
        while self._held:
            item = self._held.pop(self._expected, None)
            if item is None:
                if len(self._held) < self.depth:
                    break
                self.stats.lost += 1
                out.append(None)
            else:
                out.append(item)
            self._expected = (self._expected + 1) % _SEQ_MOD
        return out

    def flush(self) -> list[T | None]:
        """Everything still held, gaps included (at call end)."""
        out: list[T | None] = []
        while self._held and self._expected is not None:
            item = self._held.pop(self._expected, None)
            if item is None:
                self.stats.lost += 1
            out.append(item)
            self._expected = (self._expected + 1) % _SEQ_MOD
        return out
