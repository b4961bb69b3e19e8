"""Metric names, labels and counting rules (deltas: the default registry is process-wide)."""

from __future__ import annotations

import time
from collections.abc import Callable

from pipecat.frames.frames import ErrorFrame, Frame
from pipecat.observers.base_observer import FramePushed
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.stt_service import STTService
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from voice_connector.telemetry import metrics
from voice_connector.telemetry.call_record import CallRecord, CallRecorder, service_kind
from voice_connector.telemetry.outcome import CallOutcome
from voice_connector.transports.opensips.rtp import RtpStats


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def delta(name: str, **labels: str) -> Callable[[], float]:
    """`d = delta(...)`; later `d()` is how much the sample grew since."""
    before = sample(name, **labels)
    return lambda: sample(name, **labels) - before


def record(**overrides: object) -> CallRecord:
    values: dict = {
        "call_id": "CA1", "transport": "twilio", "flavor": "default",
        "providers": {"stt": "faster_whisper", "llm": "ollama", "tts": "piper"},
    }  # fmt: skip
    return CallRecord(**{**values, **overrides})


def test_a_call_is_counted_from_start_to_end_with_its_outcome() -> None:
    started = delta("voice_connector_calls_started_total", transport="twilio", flavor="default")
    ended = delta(
        "voice_connector_calls_ended_total", transport="twilio", flavor="default",
        outcome="bot_hangup",
    )  # fmt: skip
    durations = delta(
        "voice_connector_call_duration_seconds_count", transport="twilio", outcome="bot_hangup"
    )
    active_before = sample("voice_connector_active_calls")
    call = record()
    metrics.call_started(call)
    assert sample("voice_connector_active_calls") == active_before + 1
    call.end_with(CallOutcome.BOT_HANGUP, "goodbye")
    call.ended_at = call.started_at + 42
    metrics.call_ended(call)
    assert sample("voice_connector_active_calls") == active_before
    assert started() == 1 and ended() == 1 and durations() == 1


def test_unknown_flavors_and_refusal_reasons_have_bounded_labels() -> None:
    metrics.bound_flavors(["default", "sales"])
    try:
        assert metrics.flavor_label("sales") == "sales"
        assert metrics.flavor_label("attacker-chosen-123") == "other"
    finally:
        metrics._flavors = None
    capacity = delta("voice_connector_calls_refused_total", transport="twilio", reason="capacity")
    metrics.call_refused("twilio", "at capacity (100 calls)")
    assert capacity() == 1


def test_the_outcome_detail_stays_out_of_the_label() -> None:
    errors = delta(
        "voice_connector_calls_ended_total", transport="twilio", flavor="default", outcome="error"
    )
    call = record()
    metrics.call_started(call)
    call.end_with(CallOutcome.ERROR, "ValueError")
    metrics.call_ended(call)
    assert errors() == 1
    assert call.to_json()["outcome"] == "error" and call.to_json()["outcome_detail"] == "ValueError"


def test_a_call_ended_before_it_ran_is_counted_by_outcome_but_never_active() -> None:
    cancelled = delta(
        "voice_connector_calls_ended_total", transport="opensips", flavor="default",
        outcome="cancelled",
    )  # fmt: skip
    durations = delta(
        "voice_connector_call_duration_seconds_count", transport="opensips", outcome="cancelled"
    )
    active_before = sample("voice_connector_active_calls")
    call = record(transport="opensips")
    call.end_with(CallOutcome.CANCELLED, "487 Request Terminated")
    metrics.call_not_answered(call)
    assert cancelled() == 1 and durations() == 0
    assert sample("voice_connector_active_calls") == active_before


def test_the_first_reported_end_wins() -> None:
    call = record()
    assert call.end_with(CallOutcome.BOT_HANGUP, "conversation")
    assert not call.end_with(CallOutcome.CALLER_HANGUP)  # the BYE answering our hang-up
    assert (call.outcome, call.outcome_detail) == (CallOutcome.BOT_HANGUP, "conversation")


def test_stage_latencies_are_labelled_by_the_stage_provider() -> None:
    stt = delta("voice_connector_stt_latency_seconds_count", flavor="default", provider="vosk")
    v2v = delta(
        "voice_connector_voice_to_voice_seconds_sum", transport="opensips", flavor="default"
    )
    call = record(transport="opensips", providers={"stt": "vosk"})
    metrics.observe_stage(call, "stt_ms", 250.0)
    metrics.observe_stage(call, "voice_to_voice_ms", 900.0)
    metrics.observe_stage(call, "llm_ttft_ms", None)  # a stage that did not happen
    assert stt() == 1
    assert abs(v2v() - 0.9) < 1e-9


def test_rtp_stats_count_only_what_is_new_since_the_last_report() -> None:
    received = delta("voice_connector_rtp_packets_total", direction="received")
    lost = delta("voice_connector_rtp_packets_lost_total")
    late = delta("voice_connector_rtp_late_sends_total")
    jitter = delta("voice_connector_rtp_jitter_seconds_count")
    stats = RtpStats(packets_received=100, packets_sent=90, packets_lost=2, jitter_ms=4.0)
    metrics.record_rtp_stats(stats)
    stats.packets_received, stats.late_sends = 150, 1
    metrics.record_rtp_stats(stats)  # a periodic report during the call, then the final one
    assert received() == 150 and lost() == 2 and late() == 1 and jitter() == 2


def test_reconnects_and_readiness_gauges() -> None:
    reconnects = delta("voice_connector_provider_reconnects_total", provider="vosk")
    metrics.record_reconnect("vosk")
    assert reconnects() == 1
    metrics.refresh_node(False, {"opensips": False, "twilio": True})
    assert sample("voice_connector_opensips_subscribed") == 0
    assert sample("voice_connector_node_ready", platform=metrics.platform()) == 0
    metrics.refresh_node(True, {"opensips": True})
    assert sample("voice_connector_opensips_subscribed") == 1


def test_model_load_times_come_from_the_shared_model_cache(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from voice_connector.services import shared_models

    monkeypatch.setitem(shared_models.load_seconds, "whisper", 1.25)
    assert sample("voice_connector_model_load_seconds", model="whisper") == 1.25


class BrokenSTT(STTService):
    async def run_stt(self, audio: bytes):  # type: ignore[no-untyped-def, override]
        yield ErrorFrame("model crashed")


async def test_error_frames_count_once_per_error_by_service_kind() -> None:
    stt = BrokenSTT()
    errors = delta("voice_connector_provider_errors_total", kind="stt", provider="faster_whisper")
    call = record()
    recorder = CallRecorder(call)
    frame = ErrorFrame("model crashed", processor=stt)
    hops = [FrameProcessor(), FrameProcessor()]
    await recorder.on_push_frame(push(frame, stt, hops[0], first=True))
    await recorder.on_push_frame(push(frame, hops[0], hops[1], first=False))  # travelling on
    assert errors() == 1 and call.errors == 1
    assert service_kind(FrameProcessor()) == "other"


def push(frame: Frame, source: FrameProcessor, to: FrameProcessor, first: bool) -> FramePushed:
    return FramePushed(source, to, frame, FrameDirection.UPSTREAM, time.monotonic_ns(), first)


def test_exposition_parses_and_every_exported_name_is_listed() -> None:
    metrics.call_refused("twilio", "draining")
    text = generate_latest().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    ours = {name for name in families if name.startswith(metrics.PREFIX)}
    exported = metrics.series_names()
    for name in ours:
        family = families[name]
        series = {s.name for s in family.samples if not s.name.endswith("_created")}
        assert series <= exported, (name, series - exported)
    assert "voice_connector_calls_refused" in families
    assert all(name.startswith(metrics.PREFIX) for name in exported)
