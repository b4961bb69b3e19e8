"""Which share of the node one worker process owns (`[general] workers`).

A node with N workers runs N processes behind one HTTP port. Each owns a fixed share: an equal
part of `max_calls` and of the RTP port range, its own OpenSIPS event socket (event_port +
index), and the OpenSIPS sessions whose key hashes to its index. Every worker subscribes to
E_UA_SESSION and so sees every event; hashing the key (stable across processes, unlike
`hash()`) lets exactly one of them answer each INVITE without talking to the others.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

from voice_connector_core.config import Settings


@dataclass(frozen=True)
class WorkerShard:
    """Worker `index` of `count`; the default is the whole node (one process)."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"worker index {self.index} outside 0..{self.count - 1}")

    def owns(self, key: str) -> bool:
        """Whether the call with this key (OpenSIPS B2B key) is this worker's to handle."""
        return self.count == 1 or zlib.crc32(key.encode()) % self.count == self.index

    def apply(self, settings: Settings) -> Settings:
        """`settings` narrowed to this worker's share of calls, ports and event socket."""
        if self.count == 1:
            return settings
        general = settings.general.model_copy(
            update={"max_calls": max(1, math.ceil(settings.general.max_calls / self.count))}
        )
        low, high = settings.opensips.ports
        size = (high - low + 1) // self.count
        if size < 1:
            raise ValueError(
                f"[opensips] rtp_port_range {settings.opensips.rtp_port_range} has fewer ports "
                f"than [general] workers = {self.count}"
            )
        first = low + self.index * size
        opensips = settings.opensips.model_copy(
            update={
                "event_port": settings.opensips.event_port + self.index,
                "rtp_port_range": f"{first}-{first + size - 1}",
            }
        )
        return settings.model_copy(update={"general": general, "opensips": opensips})
