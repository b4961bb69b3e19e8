"""Dashboards and alerts as code, over the metrics the media node and the AI services export.

Every chart and alert is PromQL on Managed Service for Prometheus, so one query works for media
nodes on GKE (scraped by the PodMonitorings below) and on Cloud Run (scraped by the Managed
Prometheus sidecar, see docs/operations.md). The metric names are the code's: a test collects
them from the Prometheus registries and fails on any query that names something else (except
the few Google-provided metrics in `EXTERNAL_METRICS`).

Config keys (stack file, `voice-connector:*`): `voiceToVoiceP95TargetMs` (default 1500) and
`providerErrorsPerTurn` (default 0.05); alerts go to `notificationEmail` when it is set.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_gcp as gcp

from voice_infra.config import NAMESPACE, ConfigError, StackConfig
from voice_infra.conventions import HTTP_PORT, WHISPER_PORT
from voice_infra.k8s_manifests import NAMESPACE as K8S_NAMESPACE
from voice_infra.k8s_manifests import labels

EXTERNAL_METRICS = {
    "kubernetes_io:container_accelerator_duty_cycle":
        "GKE system metric kubernetes.io/container/accelerator/duty_cycle (GPU busy %)",
}  # fmt: skip
"""Series queried that no code of ours exports: Google-provided metrics, named PromQL-style."""

SCRAPE_INTERVAL = "30s"


@dataclass(frozen=True)
class MonitoringSettings:
    """Alert thresholds, validated."""

    voice_to_voice_p95_target_ms: int = 1500
    provider_errors_per_turn: float = 0.05


def parse_monitoring_config(raw: Mapping[str, str]) -> MonitoringSettings:
    """Thresholds from raw `voice-connector:*` values (absent keys: defaults)."""
    problems: list[str] = []
    defaults = MonitoringSettings()
    target, rate = defaults.voice_to_voice_p95_target_ms, defaults.provider_errors_per_turn
    text = raw.get("voiceToVoiceP95TargetMs", "").strip()
    if text:
        if text.isdigit() and 100 <= int(text) <= 30000:
            target = int(text)
        else:
            problems.append(
                f"{NAMESPACE}:voiceToVoiceP95TargetMs: '{text}' must be milliseconds in 100..30000"
            )
    text = raw.get("providerErrorsPerTurn", "").strip()
    if text:
        try:
            rate = float(text)
            if not 0 < rate <= 1:
                raise ValueError
        except ValueError:
            problems.append(
                f"{NAMESPACE}:providerErrorsPerTurn: '{text}' must be a fraction in (0, 1]"
            )
    if problems:
        raise ConfigError(problems)
    return MonitoringSettings(target, rate)


# --------------------------------------------------------------------------- dashboard


@dataclass(frozen=True)
class Chart:
    """One dashboard tile: a line chart of PromQL series, or a scorecard of one."""

    title: str
    queries: Sequence[str]
    question: str
    """What the panel answers (shown in the tile's tooltip and in docs/operations.md)."""
    scorecard: bool = False


def quantiles(metric: str, by: str = "", window: str = "5m") -> list[str]:
    """p50/p95/p99 of a histogram, optionally split by labels."""
    group = f"le, {by}" if by else "le"
    return [
        f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket[{window}])))"
        for q in (0.5, 0.95, 0.99)
    ]


def p95(metric: str, by: str) -> str:
    return f"histogram_quantile(0.95, sum by (le, {by}) (rate({metric}_bucket[5m])))"


def per_minute(metric: str, by: str = "", selector: str = "") -> str:
    group = f" by ({by})" if by else ""
    return f"sum{group} (rate({metric}{selector}[5m])) * 60"


SECTIONS: dict[str, list[Chart]] = {
    "Call volume and outcomes": [
        Chart("Active calls", ["sum(voice_connector_active_calls)"],
              "How many calls are up right now?", scorecard=True),
        Chart("Calls started / min by transport",
              [per_minute("voice_connector_calls_started_total", "transport")],
              "Is traffic arriving, and through which door (OpenSIPS, Twilio)?"),
        Chart("Call outcomes / min",
              [per_minute("voice_connector_calls_ended_total", "outcome")],
              "How do calls end: completed, caller hang-up, bot hang-up, transfer, error?"),
        Chart("Refused calls / min by reason",
              [per_minute("voice_connector_calls_refused_total", "reason")],
              "Are callers turned away (capacity, draining)?"),
        Chart("Calls to an unavailable flavor / min by flavor",
              [per_minute("voice_connector_flavor_unavailable_calls_total", "flavor")],
              "Do callers of one flavor hear the apology because its own services are down?"),
        Chart("Call duration p50 / p95 / p99",
              quantiles("voice_connector_call_duration_seconds", window="30m"),
              "How long do calls last; did that change with a release?"),
    ],
    "Latency per stage": [
        Chart("Voice-to-voice p50 / p95 / p99",
              quantiles("voice_connector_voice_to_voice_seconds"),
              "How long after the caller stops speaking do they hear the bot?"),
        Chart("STT latency p95 by provider",
              [p95("voice_connector_stt_latency_seconds", "provider")],
              "Is speech recognition the slow stage?"),
        Chart("LLM time to first token p95 by provider",
              [p95("voice_connector_llm_time_to_first_token_seconds", "provider")],
              "Is the LLM (GPU pool) the slow stage?"),
        Chart("TTS time to first audio p95 by provider",
              [p95("voice_connector_tts_time_to_first_audio_seconds", "provider")],
              "Is speech synthesis the slow stage?"),
        Chart("Barge-ins per turn",
              ["sum(rate(voice_connector_barge_ins_total[15m])) / "
               "sum(rate(voice_connector_turns_total[15m]))"],
              "Do callers talk over the bot (answers too long or too late)?"),
    ],
    "Errors per provider": [
        Chart("Provider errors / min by kind and provider",
              [per_minute("voice_connector_provider_errors_total", "kind, provider")],
              "Which service (STT, LLM, TTS, transport) fails, with which provider?"),
        Chart("Provider reconnects / min",
              [per_minute("voice_connector_provider_reconnects_total", "provider")],
              "Are connections to the AI services flapping?"),
        Chart("Peer input dropped / min by surface",
              [per_minute("voice_connector_input_dropped_total", "surface")],
              "Is someone sending malformed or oversized input (Twilio, events)?"),
        Chart("AI service 5xx / min",
              [per_minute("ai_service_requests_total", "service", '{status=~"5.."}')],
              "Do the AI services themselves answer with errors?"),
    ],
    "RTP quality (OpenSIPS)": [
        Chart("RTP packet loss ratio",
              ["sum(rate(voice_connector_rtp_packets_lost_total[5m])) / "
               "(sum(rate(voice_connector_rtp_packets_total{direction=\"received\"}[5m])) + "
               "sum(rate(voice_connector_rtp_packets_lost_total[5m])))"],
              "Is caller audio arriving incomplete (network, SBC)?"),
        Chart("RTP jitter p95",
              ["histogram_quantile(0.95, sum by (le) "
               "(rate(voice_connector_rtp_jitter_seconds_bucket[5m])))"],
              "Is caller audio arriving unevenly?"),
        Chart("Late RTP sends / min", [per_minute("voice_connector_rtp_late_sends_total")],
              "Is the node too busy to send bot audio on time (CPU starvation)?"),
        Chart("RTP packets / s by direction",
              ["sum by (direction) (rate(voice_connector_rtp_packets_total[5m]))"],
              "How much media flows through the SIP side?"),
    ],
    "Nodes and GPU pools": [
        Chart("Ready media nodes by platform",
              ["sum by (platform) (voice_connector_node_ready)"],
              "How many nodes accept calls right now (GKE, Cloud Run)?"),
        Chart("OpenSIPS subscription (min over nodes)",
              ["min(voice_connector_opensips_subscribed)"],
              "Does every node receive OpenSIPS call events?", scorecard=True),
        Chart("Model load time by model", ["max by (model) (voice_connector_model_load_seconds)"],
              "How long does a new node take before it can answer (cold start)?"),
        Chart("GPU pool queue depth by service", ["sum by (service) (ai_service_queue_depth)"],
              "Is work waiting for a GPU worker (pool saturated)?"),
        Chart("GPU pool requests refused / min (queue full)",
              [per_minute("ai_service_rejected_total", "service")],
              "Is the pool so saturated it turns requests away?"),
        Chart("GPU duty cycle by container",
              ["avg by (container_name) (kubernetes_io:container_accelerator_duty_cycle"
               f'{{namespace_name="{K8S_NAMESPACE}"}})'],
              "How busy are the GPUs (Ollama has no /metrics; this covers it)?"),
    ],
}  # fmt: skip
"""The dashboard, section by section; docs/operations.md explains each panel."""

COLUMNS = 48
TILE_WIDTH, TILE_HEIGHT = 24, 16


def dashboard_json(title: str) -> str:
    """Cloud Monitoring dashboard (mosaic layout): a collapsible group per section."""
    tiles: list[dict[str, Any]] = []
    y = 0
    for section, charts in SECTIONS.items():
        rows = (len(charts) + 1) // 2
        tiles.append(
            {"xPos": 0, "yPos": y, "width": COLUMNS, "height": 4 + rows * TILE_HEIGHT,
             "widget": {"title": section, "collapsibleGroup": {"collapsed": False}}}
        )  # fmt: skip
        y += 4
        for index, chart in enumerate(charts):
            tiles.append(
                {"xPos": (index % 2) * TILE_WIDTH, "yPos": y + (index // 2) * TILE_HEIGHT,
                 "width": TILE_WIDTH, "height": TILE_HEIGHT, "widget": widget(chart)}
            )  # fmt: skip
        y += rows * TILE_HEIGHT
    return json.dumps(
        {"displayName": title, "mosaicLayout": {"columns": COLUMNS, "tiles": tiles}},
        sort_keys=True,
    )


def widget(chart: Chart) -> dict[str, Any]:
    if chart.scorecard:
        (query,) = chart.queries
        body: dict[str, Any] = {"scorecard": {"timeSeriesQuery": {"prometheusQuery": query}}}
    else:
        body = {
            "xyChart": {
                "dataSets": [
                    {"timeSeriesQuery": {"prometheusQuery": q}, "plotType": "LINE"}
                    for q in chart.queries
                ],
                "yAxis": {"scale": "LINEAR"},
            }
        }
    return {"title": chart.title, "id": slug(chart.title), **body}


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


# --------------------------------------------------------------------------- alerts


@dataclass(frozen=True)
class Alert:
    """One PromQL alert policy and the runbook line that goes with it."""

    key: str
    title: str
    query: str
    duration: str
    runbook: str
    severity: str = "ERROR"
    labels: Mapping[str, str] = field(default_factory=dict)


def alerts(cfg: StackConfig, settings: MonitoringSettings) -> list[Alert]:
    """Alert rules; `runbook` is what the e-mail says to do (docs/operations.md has more)."""
    target_s = settings.voice_to_voice_p95_target_ms / 1000
    error_rate = settings.provider_errors_per_turn
    rules = [
        Alert(
            "voice-to-voice-p95",
            f"Voice-to-voice p95 above {settings.voice_to_voice_p95_target_ms} ms",
            "histogram_quantile(0.95, sum by (le) "
            f"(rate(voice_connector_voice_to_voice_seconds_bucket[10m]))) > {target_s:g}",
            "600s",
            "Callers wait too long for answers. Open the dashboard's 'Latency per stage' "
            "section: the stage whose p95 rose is the cause (STT, LLM first token, TTS); check "
            "that GPU pool's queue depth and duty cycle and scale it, or roll back.",
            severity="WARNING",
        ),
        Alert(
            "provider-errors",
            f"Provider errors above {error_rate:g} per turn",
            "sum by (kind, provider) "
            "(increase(voice_connector_provider_errors_total[10m])) / on() group_left() "
            f"sum(increase(voice_connector_turns_total[10m])) > {error_rate:g}",
            "300s",
            "An AI provider fails during calls (labels kind/provider name it). Check the AI "
            "service's /readyz and logs (filter labels.call_id from a failing call), its GPU "
            "pool, and the 'Provider reconnects' chart.",
        ),
        Alert(
            "no-ready-gke-nodes",
            "No ready media node on GKE",
            '(sum(voice_connector_node_ready{platform="gke"}) or vector(0)) < 1',
            "300s",
            "No GKE media node accepts calls: SIP calls fail. `kubectl -n voice-connector get "
            "pods`, then a node's /readyz names the failing check (models, llm, "
            "transport:opensips, draining).",
            severity="CRITICAL",
        ),
        Alert(
            "opensips-unsubscribed",
            "OpenSIPS events not subscribed",
            "max_over_time(voice_connector_opensips_subscribed[3m]) == 0",
            "60s",
            "This node gets no E_UA_SESSION events, so SIP calls to it are lost. Check the "
            "OpenSIPS container in the pod (MI reachable on the datagram port?) and the node's "
            "log for subscription errors; the node resubscribes every resubscribe_interval.",
            severity="CRITICAL",
        ),
    ]
    if cfg.cloud_run_min_instances >= 1:
        rules.append(
            Alert(
                "no-ready-cloud-run-nodes",
                "No ready media node on Cloud Run",
                '(sum(voice_connector_node_ready{platform="cloud_run"}) or vector(0)) < 1',
                "300s",
                "The Twilio media node on Cloud Run is not ready although min instances >= 1: "
                "Twilio streams fail. Check the revision's logs and /readyz; roll back with "
                "`python -m voice_infra.ops run rollback`.",
                severity="CRITICAL",
            )
        )
    return rules


SECRET_ACCESS_FAILURES = (
    'protoPayload.serviceName="secretmanager.googleapis.com" '
    'AND protoPayload.methodName:"AccessSecretVersion" '
    "AND protoPayload.status.code!=0"
)
"""Data Access audit log entries of failed secret reads (needs DATA_READ audit logs, below)."""


# --------------------------------------------------------------------------- scraping


def pod_monitorings() -> list[dict[str, Any]]:
    """Managed Prometheus PodMonitorings: media nodes (:8080) and the Whisper service (:9000)."""
    targets = {"media-node": HTTP_PORT, "whisper": WHISPER_PORT}
    return [
        {
            "apiVersion": "monitoring.googleapis.com/v1",
            "kind": "PodMonitoring",
            "metadata": {"name": app, "namespace": K8S_NAMESPACE, "labels": labels(app)},
            "spec": {
                "selector": {"matchLabels": labels(app)},
                "endpoints": [{"port": port, "path": "/metrics", "interval": SCRAPE_INTERVAL}],
            },
        }
        for app, port in targets.items()
    ]


# --------------------------------------------------------------------------- component


class Monitoring(pulumi.ComponentResource):
    """Dashboard, alert policies, e-mail channel, certificate check and scrape configs."""

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        settings: MonitoringSettings | None = None,
        *,
        k8s_provider: pulumi.ProviderResource | None = None,
        notification_channels: Sequence[pulumi.Input[str]] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("voice-connector:infra:Monitoring", name, None, opts)
        settings = settings or MonitoringSettings()
        child = pulumi.ResourceOptions(parent=self)
        self.channels: list[pulumi.Input[str]] = list(notification_channels or [])
        if not self.channels and cfg.notification_email:
            channel = gcp.monitoring.NotificationChannel(
                f"{cfg.prefix}-monitoring-email",
                project=cfg.project,
                display_name=f"voice connector {cfg.stack} monitoring",
                type="email",
                labels={"email_address": cfg.notification_email},
                opts=child,
            )
            self.channels = [channel.id]
        self.dashboard = gcp.monitoring.Dashboard(
            f"{cfg.prefix}-dashboard",
            project=cfg.project,
            dashboard_json=dashboard_json(f"Voice connector ({cfg.stack})"),
            opts=child,
        )
        self.policies: dict[str, gcp.monitoring.AlertPolicy] = {
            rule.key: self._promql_policy(cfg, rule, child) for rule in alerts(cfg, settings)
        }
        self.policies["secret-access"] = self._secret_access_policy(cfg, child)
        self.audit = gcp.projects.IAMAuditConfig(
            f"{cfg.prefix}-secretmanager-audit",
            project=cfg.project,
            service="secretmanager.googleapis.com",
            audit_log_configs=[gcp.projects.IAMAuditConfigAuditLogConfigArgs(log_type="DATA_READ")],
            opts=child,
        )
        if cfg.ingress_domain:
            self.policies["certificate"] = self._certificate_policy(cfg, cfg.ingress_domain, child)
        self.scrape_configs = []
        if k8s_provider is not None:
            import pulumi_kubernetes as k8s

            scrape_opts = pulumi.ResourceOptions(parent=self, provider=k8s_provider)
            self.scrape_configs = [
                k8s.apiextensions.CustomResource(
                    f"podmonitoring-{manifest['metadata']['name']}",
                    api_version=manifest["apiVersion"],
                    kind=manifest["kind"],
                    metadata=manifest["metadata"],
                    spec=manifest["spec"],
                    opts=scrape_opts,
                )
                for manifest in pod_monitorings()
            ]
        self.register_outputs({"dashboard": self.dashboard.id})

    def _policy(
        self,
        cfg: StackConfig,
        key: str,
        title: str,
        runbook: str,
        conditions: list[gcp.monitoring.AlertPolicyConditionArgs],
        opts: pulumi.ResourceOptions,
        severity: str = "ERROR",
        **extra: Any,
    ) -> gcp.monitoring.AlertPolicy:
        """An alert policy whose documentation is the runbook and a link to its section."""
        return gcp.monitoring.AlertPolicy(
            f"{cfg.prefix}-{key}",
            project=cfg.project,
            display_name=f"voice connector {cfg.stack}: {title}",
            combiner="OR",
            severity=severity,
            conditions=conditions,
            notification_channels=self.channels,
            documentation=gcp.monitoring.AlertPolicyDocumentationArgs(
                content=f"{runbook}\n\nRunbook: docs/operations.md#{key}", mime_type="text/markdown"
            ),
            opts=opts,
            **extra,
        )

    def _promql_policy(
        self, cfg: StackConfig, rule: Alert, opts: pulumi.ResourceOptions
    ) -> gcp.monitoring.AlertPolicy:
        condition = gcp.monitoring.AlertPolicyConditionArgs(
            display_name=rule.title,
            condition_prometheus_query_language=(
                gcp.monitoring.AlertPolicyConditionConditionPrometheusQueryLanguageArgs(
                    query=rule.query,
                    duration=rule.duration,
                    evaluation_interval="60s",
                    labels={"stack": cfg.stack, **rule.labels},
                )
            ),
        )
        return self._policy(
            cfg, rule.key, rule.title, rule.runbook, [condition], opts, severity=rule.severity
        )

    def _secret_access_policy(
        self, cfg: StackConfig, opts: pulumi.ResourceOptions
    ) -> gcp.monitoring.AlertPolicy:
        condition = gcp.monitoring.AlertPolicyConditionArgs(
            display_name="Failed Secret Manager access",
            condition_matched_log=gcp.monitoring.AlertPolicyConditionConditionMatchedLogArgs(
                filter=SECRET_ACCESS_FAILURES,
                label_extractors={
                    "principal": "EXTRACT(protoPayload.authenticationInfo.principalEmail)",
                    "secret": "EXTRACT(protoPayload.resourceName)",
                },
            ),
        )
        return self._policy(
            cfg,
            "secret-access",
            "Secret access failures",
            "A workload could not read a secret (a Twilio or outbound token): new instances will "
            "not start or will refuse Twilio. The alert names principal and secret: restore its "
            "roles/secretmanager.secretAccessor binding or the secret's enabled version.",
            [condition],
            opts,
            alert_strategy=gcp.monitoring.AlertPolicyAlertStrategyArgs(
                notification_rate_limit=(
                    gcp.monitoring.AlertPolicyAlertStrategyNotificationRateLimitArgs(period="300s")
                ),
                auto_close="1800s",
            ),
        )

    def _certificate_policy(
        self, cfg: StackConfig, domain: str, opts: pulumi.ResourceOptions
    ) -> gcp.monitoring.AlertPolicy:
        """HTTPS check of the Twilio stream host: fails on an invalid or expiring certificate."""
        check = gcp.monitoring.UptimeCheckConfig(
            f"{cfg.prefix}-ingress-https",
            project=cfg.project,
            display_name=f"voice connector {cfg.stack}: https://{domain}/healthz",
            timeout="10s",
            period="300s",
            http_check=gcp.monitoring.UptimeCheckConfigHttpCheckArgs(
                path="/healthz", port=443, use_ssl=True, validate_ssl=True
            ),
            monitored_resource=gcp.monitoring.UptimeCheckConfigMonitoredResourceArgs(
                type="uptime_url", labels={"project_id": cfg.project, "host": domain}
            ),
            opts=opts,
        )
        expiry = check.uptime_check_id.apply(
            lambda check_id: (
                'metric.type="monitoring.googleapis.com/uptime_check/time_until_ssl_cert_expires" '
                f'AND resource.type="uptime_url" AND metric.label.check_id="{check_id}"'
            )
        )
        failing = check.uptime_check_id.apply(
            lambda check_id: (
                'metric.type="monitoring.googleapis.com/uptime_check/check_passed" '
                f'AND resource.type="uptime_url" AND metric.label.check_id="{check_id}"'
            )
        )
        threshold = gcp.monitoring.AlertPolicyConditionConditionThresholdArgs
        aggregation = gcp.monitoring.AlertPolicyConditionConditionThresholdAggregationArgs
        conditions = [
            gcp.monitoring.AlertPolicyConditionArgs(
                display_name="Certificate expires within 14 days",
                condition_threshold=threshold(
                    filter=expiry,
                    comparison="COMPARISON_LT",
                    threshold_value=14,
                    duration="600s",
                    aggregations=[
                        aggregation(
                            alignment_period="1200s",
                            per_series_aligner="ALIGN_NEXT_OLDER",
                            cross_series_reducer="REDUCE_MEAN",
                            group_by_fields=["resource.label.host"],
                        )
                    ],
                ),
            ),
            gcp.monitoring.AlertPolicyConditionArgs(
                display_name="HTTPS check failing (certificate invalid or host down)",
                condition_threshold=threshold(
                    filter=failing,
                    comparison="COMPARISON_GT",
                    threshold_value=1,
                    duration="600s",
                    aggregations=[
                        aggregation(
                            alignment_period="1200s",
                            per_series_aligner="ALIGN_NEXT_OLDER",
                            cross_series_reducer="REDUCE_COUNT_FALSE",
                            group_by_fields=["resource.label.host"],
                        )
                    ],
                ),
            ),
        ]
        return self._policy(
            cfg,
            "certificate",
            f"certificate of {domain}",
            f"https://{domain} serves an invalid or soon-expiring certificate: Twilio refuses "
            "wss:// streams then. Check the GKE ManagedCertificate status (`kubectl -n "
            "voice-connector describe managedcertificate`) and that the domain's DNS still "
            "points at the ingress address.",
            conditions,
            opts,
        )
