"""Optional e-mail alerting: someone hears about failing Twilio streams before callers do."""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from voice_infra.cloudrun import service_name
from voice_infra.config import StackConfig


class Alerts(pulumi.ComponentResource):
    """Only declared when `notificationEmail` is set."""

    def __init__(
        self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("voice-connector:infra:Alerts", name, None, opts)
        assert cfg.notification_email, "Alerts needs notificationEmail"
        child = pulumi.ResourceOptions(parent=self)
        channel = gcp.monitoring.NotificationChannel(
            f"{cfg.prefix}-email",
            project=cfg.project,
            display_name=f"voice connector {cfg.stack}",
            type="email",
            labels={"email_address": cfg.notification_email},
            opts=child,
        )
        metric_filter = (
            'resource.type = "cloud_run_revision" '
            f'AND resource.labels.service_name = "{service_name(cfg)}" '
            'AND metric.type = "run.googleapis.com/request_count" '
            'AND metric.labels.response_code_class = "5xx"'
        )
        gcp.monitoring.AlertPolicy(
            f"{cfg.prefix}-run-5xx",
            project=cfg.project,
            display_name=f"voice connector {cfg.stack}: Twilio media node 5xx",
            combiner="OR",
            conditions=[
                gcp.monitoring.AlertPolicyConditionArgs(
                    display_name="5xx responses",
                    condition_threshold=gcp.monitoring.AlertPolicyConditionConditionThresholdArgs(
                        filter=metric_filter,
                        comparison="COMPARISON_GT",
                        threshold_value=5,
                        duration="300s",
                        aggregations=[
                            gcp.monitoring.AlertPolicyConditionConditionThresholdAggregationArgs(
                                alignment_period="60s", per_series_aligner="ALIGN_SUM"
                            )
                        ],
                    ),
                )
            ],
            notification_channels=[channel.id],
            opts=child,
        )
        self.channel = channel
        self.register_outputs({"channel": channel.id})
