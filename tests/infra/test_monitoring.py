"""The monitoring component under Pulumi mocks: every query names a metric the code exports.

Names come from the Prometheus registries of the media node (`voice_connector.telemetry.metrics`)
and of the AI services (`ai_services.metrics.ServiceMetrics`), so renaming a metric in code
without its panel or alert (or the reverse) fails here rather than as an empty chart.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pulumi
import pytest
from pulumi.runtime import settings as runtime_settings

from ai_services.metrics import ServiceMetrics
from tests.infra.harness import LOOP, RecordingMocks
from voice_connector.telemetry import metrics
from voice_infra.config import ConfigError, parse_stack_config
from voice_infra.k8s_manifests import labels
from voice_infra.monitoring import (
    EXTERNAL_METRICS,
    Monitoring,
    parse_monitoring_config,
    pod_monitorings,
)

CONFIG = {
    "project": "vc-test-project",
    "notificationEmail": "oncall@example.com",
    "ingressDomain": "voice.example.com",
    "streamTarget": "gke",
    "voiceToVoiceP95TargetMs": "1200",
}
PROMQL_WORDS = {
    "sum", "min", "max", "avg", "rate", "increase", "histogram_quantile", "max_over_time",
    "min_over_time", "vector", "or", "and", "unless", "bool",
}  # fmt: skip
EXPORTED = (
    metrics.series_names()
    | metrics.series_names(ServiceMetrics("any").registry.collect())
    | set(EXTERNAL_METRICS)
)


def metric_names(query: str) -> set[str]:
    """Metric names in a PromQL expression (label matchers, ranges, groupings removed)."""
    text = re.sub(r"\{[^}]*\}", "", query)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    return set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", text)) - PROMQL_WORDS


@pytest.fixture(scope="module")
def recorded() -> list[Any]:
    mocks = RecordingMocks()
    asyncio.set_event_loop(LOOP)
    runtime_settings.ROOT.set(None)
    pulumi.runtime.set_mocks(mocks, project="voice-connector", stack="prod", preview=False)
    stack = {k: v for k, v in CONFIG.items() if k != "voiceToVoiceP95TargetMs"}
    cfg = parse_stack_config({**stack, "cloudRunMinInstances": "1"}, "prod")
    settings = parse_monitoring_config(CONFIG)
    pulumi.runtime.test(lambda: Monitoring("monitoring", cfg, settings))()
    return mocks.resources


def of_type(resources: list[Any], typ: str) -> list[Any]:
    return [r for r in resources if r.typ == typ]


def dashboard_queries(resources: list[Any]) -> dict[str, list[str]]:
    """Panel title → its PromQL queries."""
    (dashboard,) = of_type(resources, "gcp:monitoring/dashboard:Dashboard")
    tiles = json.loads(dashboard.inputs["dashboardJson"])["mosaicLayout"]["tiles"]
    panels: dict[str, list[str]] = {}
    for tile in tiles:
        widget = tile["widget"]
        if "xyChart" in widget:
            sets = widget["xyChart"]["dataSets"]
            panels[widget["title"]] = [s["timeSeriesQuery"]["prometheusQuery"] for s in sets]
        elif "scorecard" in widget:
            panels[widget["title"]] = [widget["scorecard"]["timeSeriesQuery"]["prometheusQuery"]]
    return panels


def alert_queries(resources: list[Any]) -> dict[str, str]:
    """Alert policy name → its PromQL condition query (PromQL policies only)."""
    out = {}
    for policy in of_type(resources, "gcp:monitoring/alertPolicy:AlertPolicy"):
        for condition in policy.inputs["conditions"]:
            promql = condition.get("conditionPrometheusQueryLanguage")
            if promql:
                out[policy.name] = promql["query"]
    return out


def test_every_panel_queries_exported_metrics_and_every_metric_has_a_panel(recorded) -> None:  # type: ignore[no-untyped-def]
    panels = dashboard_queries(recorded)
    assert len(panels) >= 20
    used: set[str] = set()
    for title, queries in panels.items():
        for query in queries:
            names = metric_names(query)
            assert names, (title, query)
            assert names <= EXPORTED, (title, names - EXPORTED)
            used |= names
    families = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in metrics.series_names()}
    unseen = {f for f in families if not any(n.startswith(f) for n in used)}
    assert not unseen, f"metrics without a panel: {unseen}"


def test_the_dashboard_covers_the_questions_operators_ask(recorded) -> None:  # type: ignore[no-untyped-def]
    text = " ".join(q for qs in dashboard_queries(recorded).values() for q in qs)
    for needed in (
        "voice_connector_calls_ended_total",  # outcomes
        "voice_connector_voice_to_voice_seconds_bucket",  # latency percentiles
        "voice_connector_provider_errors_total",  # errors per provider
        "voice_connector_rtp_jitter_seconds_bucket",  # RTP quality
        "ai_service_queue_depth",  # GPU pool saturation
    ):
        assert needed in text, needed


def test_alerts_query_exported_metrics_with_thresholds_from_config(recorded) -> None:  # type: ignore[no-untyped-def]
    queries = alert_queries(recorded)
    for name, query in queries.items():
        assert metric_names(query) <= EXPORTED, (name, metric_names(query) - EXPORTED)
    by_key = {name.removeprefix("vc-prod-"): q for name, q in queries.items()}
    assert by_key["voice-to-voice-p95"].endswith("> 1.2")
    assert "voice_connector_provider_errors_total" in by_key["provider-errors"]
    assert 'platform="gke"' in by_key["no-ready-gke-nodes"]
    assert 'platform="cloud_run"' in by_key["no-ready-cloud-run-nodes"]
    assert "voice_connector_opensips_subscribed" in by_key["opensips-unsubscribed"]


def test_secret_and_certificate_failures_alert_by_e_mail(recorded) -> None:  # type: ignore[no-untyped-def]
    (channel,) = of_type(recorded, "gcp:monitoring/notificationChannel:NotificationChannel")
    assert channel.inputs["labels"] == {"email_address": "oncall@example.com"}
    policies = {p.name: p for p in of_type(recorded, "gcp:monitoring/alertPolicy:AlertPolicy")}
    secret = policies["vc-prod-secret-access"].inputs
    assert (
        "secretmanager.googleapis.com" in secret["conditions"][0]["conditionMatchedLog"]["filter"]
    )
    assert "notificationRateLimit" in secret["alertStrategy"]
    (audit,) = of_type(recorded, "gcp:projects/iAMAuditConfig:IAMAuditConfig")
    assert audit.inputs["service"] == "secretmanager.googleapis.com"
    (check,) = of_type(recorded, "gcp:monitoring/uptimeCheckConfig:UptimeCheckConfig")
    assert check.inputs["httpCheck"]["validateSsl"] is True
    assert "vc-prod-certificate" in policies
    for policy in policies.values():
        assert policy.inputs["notificationChannels"], policy.name
        assert "docs/operations.md#" in policy.inputs["documentation"]["content"]


def test_pod_monitorings_select_the_scraped_workloads() -> None:
    by_name = {m["metadata"]["name"]: m for m in pod_monitorings()}
    assert set(by_name) == {"media-node", "whisper"}
    for name, manifest in by_name.items():
        assert manifest["spec"]["selector"]["matchLabels"] == labels(name)
        assert manifest["spec"]["endpoints"][0]["path"] == "/metrics"


def test_bad_thresholds_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="voiceToVoiceP95TargetMs"):
        parse_monitoring_config({"voiceToVoiceP95TargetMs": "fast"})
    with pytest.raises(ConfigError, match="providerErrorsPerTurn"):
        parse_monitoring_config({"providerErrorsPerTurn": "2"})
    assert parse_monitoring_config({}).voice_to_voice_p95_target_ms == 1500
