"""The per-call RTP engine: one asyncio UDP endpoint, G.711 in both directions.

Inbound: header checks (version, payload type, size), latching to the caller's source under the
rule in `latch.py` (NAT: the caller's RTP may not come from the SDP address, but nobody else may
take the stream), flood limits (the current source, and everyone else together), a small
reordering jitter buffer over every packet of the stream (audio, telephone-event, CN share one
sequence space), loss concealment with silence for real sequence gaps only (not for packets the
flood limit dropped), G.711 → 16 kHz PCM for the pipeline, RFC 4733 DTMF once per event.
A caller that stops sending while silent (discontinuous transmission, comfort noise) gets its
silence filled in on the clock, so the pipeline's VAD and turn detection, which count audio
frames, still see the silence pass and end the turn.
Outbound: the shared `PacingClock` thread takes one 20 ms packet per tick from a short queue (or
sends silence), so sequence numbers and timestamps follow the wall clock; a barge-in clears the
queue. Encoding happens in `write()` on the event loop; the clock thread only pops and sends.
Every rejected packet is counted, and each kind of problem is logged once per call.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from loguru import logger

from voice_connector.audio.g711 import G711Codec
from voice_connector.audio.jitter_buffer import JitterBuffer
from voice_connector.audio.resample import Downsampler2x, Upsampler2x
from voice_connector.transports.opensips import rfc4733
from voice_connector.transports.opensips.clock import PacingClock
from voice_connector.transports.opensips.latch import Latch, LatchPolicy

RTP_HEADER = struct.Struct("!BBHII")
SAMPLES_PER_PACKET = 160  # 20 ms at 8 kHz
PCM16K_PER_PACKET = SAMPLES_PER_PACKET * 2 * 2  # 20 ms of 16 kHz PCM16 bytes
MAX_PAYLOAD = 1200  # 150 ms of G.711; anything bigger is not a sane phone stream
LATE_SEND_THRESHOLD = 0.005
SILENCE_FILL_AFTER = 0.1
"""Seconds without a packet from the caller before their silence is filled in: past the jitter
buffer's 60 ms of holding, so a late packet is never overtaken by made-up silence."""
PACKET_SECONDS = SAMPLES_PER_PACKET / 8000
FLOOD_RATE = 200  # packets/s allowed per call (normal is 50, DTMF bursts a bit more)
CN_PT = 13


class RtpError(ValueError):
    """A datagram that is not a usable RTP packet; `reason` is the stats/log key."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class RtpPacket:
    """The fields of an RTP packet this engine uses."""

    payload_type: int
    seq: int
    timestamp: int
    ssrc: int
    marker: bool
    payload: bytes


def parse_rtp(data: bytes) -> RtpPacket:
    """Decode one datagram (RFC 3550 §5.1), skipping CSRCs, extension and padding."""
    if len(data) < 12:
        raise RtpError("truncated header")
    b0, b1, seq, ts, ssrc = RTP_HEADER.unpack_from(data)
    if b0 >> 6 != 2:
        raise RtpError("wrong version")
    offset = 12 + 4 * (b0 & 0x0F)
    if b0 & 0x10:  # header extension
        if len(data) < offset + 4:
            raise RtpError("truncated header")
        offset += 4 + 4 * struct.unpack_from("!H", data, offset + 2)[0]
    end = len(data)
    if b0 & 0x20:  # padding
        end -= data[-1]
    if offset > end:
        raise RtpError("truncated header")
    return RtpPacket(b1 & 0x7F, seq, ts, ssrc, bool(b1 & 0x80), data[offset:end])


def build_rtp(
    payload_type: int, seq: int, timestamp: int, ssrc: int, marker: bool, payload: bytes
) -> bytes:
    """Encode one RTP packet with a plain 12-byte header."""
    return (
        RTP_HEADER.pack(
            0x80, (0x80 if marker else 0) | payload_type, seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc
        )
        + payload
    )


@dataclass
class RtpStats:
    """Per-call media counters; telemetry exports them, logs print them at call end."""

    packets_received: int = 0
    packets_sent: int = 0
    audio_packets_sent: int = 0
    packets_lost: int = 0
    packets_late: int = 0
    packets_duplicate: int = 0
    packets_rejected: dict[str, int] = field(default_factory=dict)
    jitter_ms: float = 0.0  # RFC 3550 interarrival jitter of the caller's stream
    late_sends: int = 0  # ticks more than 5 ms behind schedule
    max_send_lateness_ms: float = 0.0
    skipped_ticks: int = 0
    relatches: int = 0  # the stream moved to another source address after the first latch
    dtmf_received: int = 0
    dtmf_sent: int = 0
    dropped_outbound: int = 0  # queued bot audio dropped on barge-in
    send_errors: int = 0
    silence_filled: int = 0  # 20 ms frames of silence given the pipeline while the caller sent none


class TokenBucket:
    """A packets-per-second limit with half a second of burst (O(1) per packet)."""

    __slots__ = ("_at", "_tokens", "burst", "rate")

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.burst = max(1.0, rate / 2)
        self._tokens = self.burst
        self._at = now

    def take(self, now: float) -> bool:
        """Spend one token; False when the rate is exceeded (drop the packet)."""
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


class RtpStream(asyncio.DatagramProtocol):
    """One call's media endpoint: caller RTP → `on_audio`/`on_dtmf`; `write()` → paced RTP out."""

    def __init__(
        self,
        call_id: str,
        codec: G711Codec,
        remote: tuple[str, int],
        *,
        clock: PacingClock,
        on_audio: Callable[[bytes], None],
        on_dtmf: Callable[[str], None],
        telephone_event_pt: int | None = None,
        jitter_buffer_ms: int = 60,
        max_queue_packets: int = 3,
        sock: socket.socket | None = None,
        latch: LatchPolicy | None = None,
        flood_rate: float = FLOOD_RATE,
    ) -> None:
        """`sock`: the bound UDP socket; the clock thread sends on it (asyncio transports are
        not thread-safe). `latch`: when another address may take the stream; `flood_rate`:
        packets/s accepted from the caller (and, separately, from all other addresses)."""
        self.call_id = call_id
        self.codec = codec
        self.remote = remote
        self.telephone_event_pt = telephone_event_pt
        self.stats = RtpStats()
        self._clock = clock
        self._on_audio = on_audio
        self._on_dtmf = on_dtmf
        self._transport: asyncio.DatagramTransport | None = None
        self._sock = sock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wants_space = False
        self._wants_empty = False
        now = time.monotonic()
        self._latch = Latch(remote, latch or LatchPolicy(), now)
        self._jitter: JitterBuffer[RtpPacket] = JitterBuffer(max(1, jitter_buffer_ms // 20))
        self._upsampler = Upsampler2x()
        self._downsampler = Downsampler2x()
        self._logged: set[str] = set()
        # inbound state
        self._last_dtmf_ts: int | None = None
        self._transit: float | None = None
        self._jitter_units = 0.0
        self._flood = TokenBucket(flood_rate, now)  # the current source
        self._others_flood = TokenBucket(flood_rate, now)  # every other address together
        self._resync_next = False  # the next packet starts a new timeline (flood drops, new source)
        self._ssrc_in: int | None = None  # the caller's current SSRC
        self._heard_until: float | None = None  # monotonic time the caller's audio reaches
        self._fill_pending = False  # a silence fill is scheduled on the event loop
        # outbound state
        self._ssrc = random.getrandbits(32)
        self._seq = random.getrandbits(16)
        self._ts = random.getrandbits(32)
        self._queue: deque[bytes] = deque()
        self._pcm_rest = b""
        self._max_queue = max_queue_packets
        self._generation = 0
        self._space = asyncio.Event()
        self._space.set()
        self._empty = asyncio.Event()
        self._empty.set()
        self._dtmf_out: deque[tuple[bytes, bool, bool]] = deque()  # payload, marker, first
        self._dtmf_ts = 0
        self._talking = False
        self._first_packet = True
        self._unsendable: tuple[str, int] | None = None  # a destination sendto can never reach
        self.sending = True  # False while the caller holds the call
        self.closed = False

    # -- lifecycle ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._loop = asyncio.get_running_loop()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True

    def start(self) -> None:
        """Begin sending on the clock (silence until the bot speaks)."""
        self._clock.register(self)

    def close(self) -> None:
        """Stop sending and receiving; wakes anyone waiting to write or drain."""
        self.closed = True
        self._clock.unregister(self)
        self._queue.clear()
        self._space.set()
        self._empty.set()
        if self._transport is not None:
            self._transport.close()

    @property
    def source(self) -> tuple[str, int] | None:
        """The address the caller's media is taken from (None until the first latch)."""
        return self._latch.source

    def update_remote(self, remote: tuple[str, int], codec: G711Codec | None = None) -> None:
        """A re-INVITE moved the caller's media; latch again, preferring the new address.

        Hold by `c=0.0.0.0` (nothing is sent meanwhile) and the resume to the same address keep
        the source: a NAT caller is not made to earn its latch again.
        """
        if remote != self.remote:
            self.remote = remote
            if remote[0] != "0.0.0.0" and remote != self._latch.sdp:
                self._latch.moved(remote, time.monotonic())
                self._restart_timeline()
        if codec is not None and codec.name != self.codec.name:
            self.codec = codec

    def _log_once(self, reason: str, detail: str = "", level: str = "WARNING") -> None:
        self.stats.packets_rejected[reason] = self.stats.packets_rejected.get(reason, 0) + 1
        if reason not in self._logged:
            self._logged.add(reason)
            logger.log(level, f"[{self.call_id}] RTP {reason}{detail} (further ones counted only)")

    # -- inbound --------------------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.closed:
            return
        now = time.monotonic()
        if addr != self._latch.source:
            self._from_other_source(data, addr, now)
            return
        if not self._flood.take(now):
            self._resync_next = True
            self._log_once("flood")
            return
        packet = self._parse(data)
        if packet is not None:
            self._latch.last_heard = now
            self._accept(packet)

    def _from_other_source(self, data: bytes, addr: tuple[str, int], now: float) -> None:
        """A packet not from the current source: dropped, unless it takes the stream (latch)."""
        latched = self._latch.source is not None
        # the SDP address spends the caller's budget: strangers flooding cannot keep it out
        bucket = self._flood if addr == self._latch.sdp else self._others_flood
        if not bucket.take(now):
            self._log_once("flood from other sources")
            return
        packet = self._parse(data, counted=not latched)
        if packet is None or packet.payload_type not in (
            self.codec.payload_type,
            self.telephone_event_pt,
        ):
            if packet is not None and not latched:
                self._log_once("unknown payload type", f" {packet.payload_type}")
            elif latched:
                self._log_once("from a second source", f" {addr}")
            return
        if not self._latch.offer(addr, packet.ssrc, packet.seq, now):
            if latched:
                self._log_once("from a second source", f" {addr}")
            else:  # a caller behind NAT, until its latch: normal
                self._log_once("not latched", f" {addr} (SDP said {self.remote})", "INFO")
            return
        if latched:
            self.stats.relatches += 1
            self._restart_timeline()
            logger.warning(f"[{self.call_id}] RTP re-latched to {addr}")
        elif addr != self.remote:
            logger.info(f"[{self.call_id}] RTP latched to {addr} (SDP said {self.remote})")
        self._accept(packet)

    def _parse(self, data: bytes, counted: bool = True) -> RtpPacket | None:
        """The packet, or None (rejection counted and logged once, unless `counted` is False)."""
        if len(data) > 12 + MAX_PAYLOAD:
            reason = "oversized packet"
        else:
            try:
                packet = parse_rtp(data)
            except RtpError as exc:
                reason = exc.reason
            else:
                if packet.payload or packet.payload_type != self.codec.payload_type:
                    return packet
                reason = "empty payload"
        if counted:
            self._log_once(reason)
        return None

    def _accept(self, packet: RtpPacket) -> None:
        """A packet of the latched stream: through the jitter buffer, in sequence order."""
        pt = packet.payload_type
        if pt != self.codec.payload_type and pt != self.telephone_event_pt and pt != CN_PT:
            self._log_once("unknown payload type", f" {pt}")
            return
        self.stats.packets_received += 1
        self._heard_until = time.monotonic()
        if packet.ssrc != self._ssrc_in:  # the caller restarted its stream: a new timeline
            self._ssrc_in = packet.ssrc
            self._resync_next = True
        resync, self._resync_next = self._resync_next, False
        if resync:  # the gap is ours (flood limit, new source), not the network's: no concealment
            self._transit = None
        if pt == self.codec.payload_type:
            self._update_jitter(packet.timestamp)
        for item in self._jitter.push(packet.seq, packet, resync):
            if item is None:
                self._deliver(None)
            elif item.payload_type == self.codec.payload_type:
                self._deliver(item.payload)
            elif item.payload_type == CN_PT:
                continue  # comfort noise: silence, nothing to play
            else:
                self._handle_dtmf(item)
        self._sync_jitter_stats()

    def _restart_timeline(self) -> None:
        """A new source (or address) begins its own sequence and timestamps: no loss across."""
        self._resync_next = True
        self._transit = None
        self._last_dtmf_ts = None

    def _update_jitter(self, timestamp: int) -> None:
        """RFC 3550 §6.4.1 interarrival jitter, in timestamp units, reported in ms."""
        arrival = time.monotonic() * self.codec.sample_rate
        transit = arrival - timestamp
        if self._transit is not None:
            d = abs(transit - self._transit)
            if d < self.codec.sample_rate * 10:  # ignore timestamp jumps (new talkspurt source)
                self._jitter_units += (d - self._jitter_units) / 16.0
        self._transit = transit
        self.stats.jitter_ms = self._jitter_units * 1000.0 / self.codec.sample_rate

    def _sync_jitter_stats(self) -> None:
        js = self._jitter.stats
        self.stats.packets_lost = js.lost
        self.stats.packets_late = js.late
        self.stats.packets_duplicate = js.duplicate

    def _deliver(self, payload: bytes | None) -> None:
        if payload is None:  # concealment: one packet of silence keeps the timeline
            pcm8k = np.zeros(SAMPLES_PER_PACKET, dtype=np.int16)
        else:
            pcm8k = self.codec.decode(payload)
        self._on_audio(self._upsampler.process(pcm8k))

    def _fill_silence(self) -> None:
        """The caller's silence up to now, in 20 ms frames, while they send nothing (on the loop;
        scheduled by the clock thread)."""
        self._fill_pending = False
        heard, now = self._heard_until, time.monotonic()
        if self.closed or heard is None or now - heard <= SILENCE_FILL_AFTER:
            return
        if self._packet_waiting():  # the event loop is behind, not the caller silent
            return
        frames = int((now - heard) / PACKET_SECONDS)
        silence = np.zeros(SAMPLES_PER_PACKET, dtype=np.int16)
        for _ in range(frames):
            self._on_audio(self._upsampler.process(silence))
        self._heard_until = heard + frames * PACKET_SECONDS
        self.stats.silence_filled += frames

    def _packet_waiting(self) -> bool:
        """Whether a datagram waits unread in the socket. A fill runs before the packets that
        arrived while the event loop was busy: it must not put made-up silence ahead of them."""
        recv = getattr(self._sock, "recv", None)
        if recv is None:  # a send-only test socket
            return False
        try:
            recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except OSError:  # BlockingIOError: nothing waiting (or the socket is gone)
            return False
        return True

    def _handle_dtmf(self, packet: RtpPacket) -> None:
        event = rfc4733.parse_event(packet.payload)
        if event is None:
            self._log_once("non-DTMF telephone-event")
            return
        # one event = one RTP timestamp; report it at its first end packet, ignore the repeats
        if not event.end or packet.timestamp == self._last_dtmf_ts:
            return
        self._last_dtmf_ts = packet.timestamp
        self.stats.dtmf_received += 1
        logger.debug(f"[{self.call_id}] DTMF {event.digit}")
        self._on_dtmf(event.digit)

    # -- outbound -------------------------------------------------------------------------

    async def write(self, pcm16k: bytes) -> None:
        """Queue bot audio (16 kHz PCM16); waits while ~60 ms is already queued (back-pressure)."""
        if self.closed:
            return
        generation = self._generation
        data = self._pcm_rest + pcm16k
        whole = len(data) - len(data) % PCM16K_PER_PACKET
        self._pcm_rest = data[whole:]
        for offset in range(0, whole, PCM16K_PER_PACKET):
            while len(self._queue) >= self._max_queue and not self.closed:
                self._space.clear()
                self._wants_space = True
                await self._space.wait()
            if self.closed or generation != self._generation:
                return  # hung up, or a barge-in happened while this write waited
            pcm8k = self._downsampler.process_array(data[offset : offset + PCM16K_PER_PACKET])
            self._queue.append(self.codec.encode(pcm8k))

    def clear(self) -> None:
        """Barge-in: drop queued bot audio now; the next tick sends silence."""
        self.stats.dropped_outbound += len(self._queue)
        self._generation += 1
        self._queue.clear()
        self._pcm_rest = b""
        self._downsampler.reset()
        self._space.set()
        self._empty.set()

    async def drain(self, max_wait: float = 30.0) -> None:
        """Wait until every queued packet has been sent (before hanging up)."""
        if self._pcm_rest and not self.closed:  # pad the last partial packet
            await self.write(bytes(PCM16K_PER_PACKET - len(self._pcm_rest)))
        if self._queue:
            self._empty.clear()
            self._wants_empty = True
        try:
            await asyncio.wait_for(self._empty.wait(), max_wait)
        except TimeoutError:
            logger.warning(f"[{self.call_id}] RTP drain timed out")

    def send_dtmf(self, digits: str) -> None:
        """Queue RFC 4733 events for `digits` (needs telephone-event in the SDP)."""
        for digit in digits:
            for i, (payload, marker) in enumerate(rfc4733.digit_packets(digit)):
                self._dtmf_out.append((payload, marker, i == 0))
            self.stats.dtmf_sent += 1

    def on_skip(self, periods: int) -> None:
        self._ts += periods * SAMPLES_PER_PACKET
        self.stats.skipped_ticks += periods

    def on_tick(self, lateness: float) -> None:
        heard = self._heard_until
        if heard is not None and not self._fill_pending and not self.closed:
            if time.monotonic() - heard > SILENCE_FILL_AFTER and self._loop is not None:
                self._fill_pending = True
                self._loop.call_soon_threadsafe(self._fill_silence)
        if lateness > LATE_SEND_THRESHOLD:
            self.stats.late_sends += 1
        self.stats.max_send_lateness_ms = max(self.stats.max_send_lateness_ms, lateness * 1000)
        ts = self._ts
        self._ts += SAMPLES_PER_PACKET
        if self.closed or self._sock is None:
            return
        if not self.sending:  # on hold: keep the timeline, send nothing, keep the bot paused
            self._talking = False
            return
        if self._dtmf_out and self.telephone_event_pt is not None:
            payload, marker, first = self._dtmf_out.popleft()
            if first:
                self._dtmf_ts = ts
            self._send(self.telephone_event_pt, self._dtmf_ts, marker, payload)
            self._talking = False
            return
        try:
            payload = self._queue.popleft()
        except IndexError:
            payload = None
        if payload is not None:
            marker = not self._talking
            self._talking = True
            self.stats.audio_packets_sent += 1
            if self._wants_space and len(self._queue) < self._max_queue:
                self._wants_space = False
                self._signal(self._space)
        else:
            payload = self.codec.silence(SAMPLES_PER_PACKET)
            marker = self._first_packet
            self._talking = False
            if self._wants_empty:
                self._wants_empty = False
                self._signal(self._empty)
        self._send(self.codec.payload_type, ts, marker, payload)

    def _signal(self, event: asyncio.Event) -> None:
        """Set an asyncio event from the clock thread."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(event.set)

    def _send(self, pt: int, ts: int, marker: bool, payload: bytes) -> None:
        self._first_packet = False
        self._seq = (self._seq + 1) & 0xFFFF
        packet = build_rtp(pt, self._seq, ts, self._ssrc, marker, payload)
        dest = self._latch.source or self.remote
        if dest == self._unsendable:
            return
        try:
            self._sock.sendto(packet, dest)  # type: ignore[union-attr]
        except OSError:  # socket closed under us, or the kernel buffer is full
            self.stats.send_errors += 1
            return
        except (OverflowError, ValueError, TypeError) as exc:  # never valid: stop trying it
            self.stats.send_errors += 1
            self._unsendable = dest
            logger.error(f"[{self.call_id}] RTP cannot be sent to {dest}: {exc}; not retried")
            return
        self.stats.packets_sent += 1
