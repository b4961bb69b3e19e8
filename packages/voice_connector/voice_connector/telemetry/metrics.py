"""Prometheus metrics of the media node: calls, per-turn latency, provider health, RTP quality.

Metrics live in prometheus_client's default registry (the media node's `/metrics` serves it, with
the process collectors). Labels are bounded: transport, flavor (the configured ones; anything
else is "other"), outcome (a `CallOutcome` value), provider and kind (from config / code) —
never a call id, which belongs in logs. Feeding points:

- `CallRegistry.handle`: `call_started` / `call_ended` / `call_refused`;
  `CallRegistry.unanswered`: `call_not_answered`;
- `CallRecorder` (the pipeline observer): `observe_stage` as each turn stage is stamped,
  `record_barge_in`, `record_provider_error`;
- provider clients: `record_reconnect(provider)`; the OpenSIPS transport: `record_rtp_stats`;
- `/metrics` itself: `refresh_node` (readiness, OpenSIPS subscription) just before exposition.

The dashboards and alerts in `infra/voice_infra/monitoring.py` query these names; a test checks
that every query refers to one of `series_names()`.
"""

from __future__ import annotations

import os
import re
import weakref
from collections.abc import Iterable, Iterator, Mapping
from typing import Protocol

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from voice_connector.telemetry.outcome import CallOutcome


class CallFacts(Protocol):
    """What the call metrics read of a call: `telemetry.call_record.CallRecord` has it (a protocol,
    so the record can feed metrics without metrics importing the record's module)."""

    transport: str
    flavor: str
    outcome: CallOutcome
    started_at: float
    ended_at: float | None
    providers: dict[str, str]


PREFIX = "voice_connector_"
LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 13.0)
DURATION_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
JITTER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32)
OTHER = "other"

ACTIVE_CALLS = Gauge(
    "voice_connector_active_calls",
    "Calls running on this node now (the GKE autoscaler's per-pod signal).",
    multiprocess_mode="livesum",
)
CALLS_STARTED = Counter(
    "voice_connector_calls_started", "Calls admitted and started.", ["transport", "flavor"]
)
CALLS_ENDED = Counter(
    "voice_connector_calls_ended",
    "Calls ended, by outcome (caller_hangup, bot_hangup, transferred, cancelled, rejected...).",
    ["transport", "flavor", "outcome"],
)
CALLS_REFUSED = Counter(
    "voice_connector_calls_refused",
    "Calls refused at admission (draining, capacity, duplicate).",
    ["transport", "reason"],
)
CALL_DURATION = Histogram(
    "voice_connector_call_duration_seconds",
    "Length of ended calls.",
    ["transport", "outcome"],
    buckets=DURATION_BUCKETS,
)
TURNS = Counter(
    "voice_connector_turns", "Caller utterances transcribed (turns).", ["transport", "flavor"]
)
VOICE_TO_VOICE = Histogram(
    "voice_connector_voice_to_voice_seconds",
    "End of caller speech (VAD stop) to the first bot audio written to the transport.",
    ["transport", "flavor"],
    buckets=LATENCY_BUCKETS,
)
STT_LATENCY = Histogram(
    "voice_connector_stt_latency_seconds",
    "End of caller speech to the transcript being ready.",
    ["flavor", "provider"],
    buckets=LATENCY_BUCKETS,
)
LLM_TTFT = Histogram(
    "voice_connector_llm_time_to_first_token_seconds",
    "Transcript ready to the LLM's first token.",
    ["flavor", "provider"],
    buckets=LATENCY_BUCKETS,
)
TTS_TTFA = Histogram(
    "voice_connector_tts_time_to_first_audio_seconds",
    "LLM first token to the TTS's first audio.",
    ["flavor", "provider"],
    buckets=LATENCY_BUCKETS,
)
BARGE_INS = Counter(
    "voice_connector_barge_ins", "Caller speech that interrupted the bot.", ["transport", "flavor"]
)
FLAVOR_UNAVAILABLE = Counter(
    "voice_connector_flavor_unavailable_calls",
    "Calls answered with the apology because their flavor's own services were down.",
    ["transport", "flavor"],
)
PROVIDER_ERRORS = Counter(
    "voice_connector_provider_errors",
    "Errors reported in call pipelines (Pipecat ErrorFrame), by service kind and provider.",
    ["kind", "provider"],
)
PROVIDER_RECONNECTS = Counter(
    "voice_connector_provider_reconnects",
    "Reconnections of provider clients to their AI service.",
    ["provider"],
)
INPUT_DROPPED = Counter(
    "voice_connector_input_dropped",
    "Malformed or oversized peer input dropped, by surface (twilio, twilio_auth, opensips_event) "
    "and reason (a fixed word: not-json, too-deep, binary...).",
    ["surface", "reason"],
)
RTP_PACKETS = Counter(
    "voice_connector_rtp_packets", "RTP packets, by direction (received, sent).", ["direction"]
)
RTP_LOST = Counter("voice_connector_rtp_packets_lost", "Caller RTP packets never received.")
RTP_LATE_SENDS = Counter(
    "voice_connector_rtp_late_sends", "Outbound RTP ticks sent more than 5 ms behind schedule."
)
RTP_JITTER = Histogram(
    "voice_connector_rtp_jitter_seconds",
    "RFC 3550 interarrival jitter of callers' RTP, sampled per stats report.",
    buckets=JITTER_BUCKETS,
)
NODE_READY = Gauge(
    "voice_connector_node_ready",
    "1 while this node's /readyz says ready (models, LLM, transports, not draining).",
    ["platform"],
    multiprocess_mode="livemin",  # a node of several workers: ready when every worker is
)
OPENSIPS_SUBSCRIBED = Gauge(
    "voice_connector_opensips_subscribed",
    "1 while the OpenSIPS provider is subscribed to E_UA_SESSION and accepting calls.",
    multiprocess_mode="livemin",
)

STAGES: dict[str, tuple[Histogram, str | None]] = {
    "stt_ms": (STT_LATENCY, "stt"),
    "llm_ttft_ms": (LLM_TTFT, "llm"),
    "tts_first_audio_ms": (TTS_TTFA, "tts"),
    "voice_to_voice_ms": (VOICE_TO_VOICE, None),
}
"""`Turn.stages_ms()` key → its histogram and the provider kind labelling it (None: transport)."""


class ModelLoadCollector(Collector):
    """`voice_connector_model_load_seconds{model}`, read from the shared model cache on scrape."""

    NAME = "voice_connector_model_load_seconds"

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return [self._family()]

    def collect(self) -> Iterable[GaugeMetricFamily]:
        from voice_connector.services import shared_models

        family = self._family()
        for kind, seconds in sorted(shared_models.load_seconds.items()):
            family.add_metric([kind], seconds)
        return [family]

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            self.NAME, "Seconds each in-process model took to load.", labels=["model"]
        )


MODEL_LOAD = ModelLoadCollector()
REGISTRY.register(MODEL_LOAD)

MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
_PID_IN_FILE = re.compile(r"_(\d+)\.db$")


class NodeProcessesCollector(Collector):
    """`process_cpu_seconds_total` and `process_resident_memory_bytes` summed over the workers.

    prometheus_client's multiprocess mode has no process metrics; the load tool and dashboards
    read CPU and memory per node, so they are summed over the live worker processes, found by
    the pid in their sample files.
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def collect(self) -> Iterable[Metric]:
        totals: dict[str, Metric] = {}
        for pid in self._live_pids():
            for family in ProcessCollector(pid=lambda pid=pid: pid, registry=None).collect():
                if family.name not in ("process_cpu_seconds", "process_resident_memory_bytes"):
                    continue
                total = totals.setdefault(family.name, family)
                if total is not family:
                    total.samples[0] = total.samples[0]._replace(
                        value=total.samples[0].value + family.samples[0].value
                    )
        return list(totals.values())

    def _live_pids(self) -> list[int]:
        pids = set()
        for name in os.listdir(self.directory):
            match = _PID_IN_FILE.search(name)
            if match and os.path.exists(f"/proc/{match.group(1)}"):
                pids.add(int(match.group(1)))
        return sorted(pids)


def scrape_registry() -> CollectorRegistry:
    """What `/metrics` serves: this process's registry, or, in a node of several worker
    processes (`PROMETHEUS_MULTIPROC_DIR` set), every worker's samples merged plus the node's
    process totals."""
    directory = os.environ.get(MULTIPROCESS_DIR_ENV)
    if not directory:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    registry.register(MODEL_LOAD)
    registry.register(NodeProcessesCollector(directory))
    return registry


METRICS: tuple[MetricWrapperBase | Collector, ...] = (
    ACTIVE_CALLS, CALLS_STARTED, CALLS_ENDED, CALLS_REFUSED, CALL_DURATION, TURNS,
    VOICE_TO_VOICE, STT_LATENCY, LLM_TTFT, TTS_TTFA, BARGE_INS, FLAVOR_UNAVAILABLE,
    PROVIDER_ERRORS, PROVIDER_RECONNECTS, INPUT_DROPPED, RTP_PACKETS, RTP_LOST, RTP_LATE_SENDS,
    RTP_JITTER,
    NODE_READY, OPENSIPS_SUBSCRIBED, MODEL_LOAD,
)  # fmt: skip

_flavors: frozenset[str] | None = None


def bound_flavors(names: Iterable[str]) -> None:
    """Only these flavor names become label values; any other is counted as "other"."""
    global _flavors
    _flavors = frozenset(names)


def flavor_label(name: str) -> str:
    return name if _flavors is None or name in _flavors else OTHER


def platform() -> str:
    """Where this node runs, from the environment each platform sets."""
    if os.environ.get("K_SERVICE"):
        return "cloud_run"
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return "gke"
    return "local"


# --------------------------------------------------------------------------- calls and turns


def call_started(record: CallFacts) -> None:
    ACTIVE_CALLS.inc()
    CALLS_STARTED.labels(record.transport, flavor_label(record.flavor)).inc()


def call_ended(record: CallFacts) -> None:
    """Count the call's end; duration from the record's start/end wall-clock times."""
    ACTIVE_CALLS.dec()
    call_not_answered(record)
    if record.ended_at is not None:
        seconds = max(0.0, record.ended_at - record.started_at)
        CALL_DURATION.labels(record.transport, record.outcome.value).observe(seconds)


def call_not_answered(record: CallFacts) -> None:
    """Count the end of a call that never started (cancelled, rejected): by outcome, like every
    call, so the outcome counts add up to all calls offered; it never was active."""
    CALLS_ENDED.labels(record.transport, flavor_label(record.flavor), record.outcome.value).inc()


def call_refused(transport: str, reason: str) -> None:
    """`reason` as `CallRefused` words it; its first word is the label (bounded)."""
    words = re.findall(r"[a-z]+", reason.lower())
    label = {"at": "capacity"}.get(words[0], words[0]) if words else OTHER
    CALLS_REFUSED.labels(transport, label).inc()


def turn_started(record: CallFacts) -> None:
    TURNS.labels(record.transport, flavor_label(record.flavor)).inc()


def observe_stage(record: CallFacts, stage: str, ms: float | None) -> None:
    """One stage latency of one turn (`stage` is a `Turn.stages_ms()` key)."""
    if ms is None or stage not in STAGES:
        return
    histogram, kind = STAGES[stage]
    flavor = flavor_label(record.flavor)
    if kind is None:
        histogram.labels(record.transport, flavor).observe(ms / 1000)
    else:
        histogram.labels(flavor, record.providers.get(kind, OTHER)).observe(ms / 1000)


def record_barge_in(record: CallFacts) -> None:
    BARGE_INS.labels(record.transport, flavor_label(record.flavor)).inc()


def flavor_unavailable(record: CallFacts) -> None:
    """A call of a flavor whose services were down, answered with the apology."""
    FLAVOR_UNAVAILABLE.labels(record.transport, flavor_label(record.flavor)).inc()


def record_provider_error(kind: str, provider: str) -> None:
    """`kind`: stt, llm, tts, transport or other; `provider`: the configured provider name."""
    PROVIDER_ERRORS.labels(kind, provider).inc()


def record_reconnect(provider: str) -> None:
    """For provider clients: call on each reconnection to the AI service (e.g. `vosk`)."""
    PROVIDER_RECONNECTS.labels(provider).inc()


def record_dropped_input(surface: str, reason: str) -> None:
    """Count one dropped peer message; `reason` must come from code, never from the peer."""
    INPUT_DROPPED.labels(surface, reason).inc()


# --------------------------------------------------------------------------- RTP


class RtpStatsLike(Protocol):
    """The fields of the OpenSIPS transport's `RtpStats` that are exported (cumulative)."""

    packets_received: int
    packets_sent: int
    packets_lost: int
    jitter_ms: float
    late_sends: int


_RTP_FIELDS = ("packets_received", "packets_sent", "packets_lost", "late_sends")
_rtp_reported: dict[int, tuple[int, ...]] = {}


def record_rtp_stats(stats: RtpStatsLike) -> None:
    """Add a call's RTP counters since the last report of the same stats object.

    Call it at call end, and (optionally) periodically during long calls: counters grow by the
    difference only, and each call samples the jitter histogram once.
    """
    now = tuple(int(getattr(stats, name)) for name in _RTP_FIELDS)
    key = id(stats)
    before = _rtp_reported.get(key)
    if before is None:
        before = (0,) * len(_RTP_FIELDS)
        try:
            weakref.finalize(stats, _rtp_reported.pop, key, None)
        except TypeError:  # not weak-referenceable (slots): report as a one-off
            key = 0
    if key:
        _rtp_reported[key] = now
    received, sent, lost, late = (max(0, n - b) for n, b in zip(now, before, strict=True))
    RTP_PACKETS.labels("received").inc(received)
    RTP_PACKETS.labels("sent").inc(sent)
    RTP_LOST.inc(lost)
    RTP_LATE_SENDS.inc(late)
    RTP_JITTER.observe(max(0.0, float(stats.jitter_ms)) / 1000)


# --------------------------------------------------------------------------- node state


def refresh_node(ready: bool, transports: Mapping[str, bool]) -> None:
    """Readiness gauges, set from the same checks as `/readyz` right before a scrape."""
    NODE_READY.labels(platform()).set(1 if ready else 0)
    if "opensips" in transports:
        OPENSIPS_SUBSCRIBED.set(1 if transports["opensips"] else 0)


# --------------------------------------------------------------------------- names


def series_names(families: Iterable[Metric] | None = None) -> set[str]:
    """Every series name PromQL can query (`_total`, `_bucket`...) for these metric families.

    Default: the media node's metrics above; pass e.g. another registry's `collect()`.
    """
    names: set[str] = set()
    for family in _families() if families is None else families:
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
        else:
            names.add(family.name)
    return names


def _families() -> Iterator[Metric]:
    for metric in METRICS:
        yield from metric.describe()
