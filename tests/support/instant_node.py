"""A media node whose STT, LLM and TTS are instant, to measure the connector alone.

Run: `python -m tests.support.instant_node --port 8095 [--workers N]` (used by
benchmarks.connector_overhead). Everything but the model work is real: Twilio transport, Silero
VAD, turn-taking, pipeline, pacing, worker processes; the fakes answer in microseconds, so what
is measured is the connector's own cost.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from media_node import lifecycle
from media_node.app import create_app
from tests.support.fakes import fake_services
from voice_connector.config import Settings, load_settings
from voice_connector.telemetry.logging import setup_logging
from voice_connector.workers import WorkerShard


def build_app(
    settings: Settings, shard: WorkerShard | None = None, shared_dir: Path | None = None
) -> FastAPI:
    """The media node app with instant providers (also each worker's app factory)."""
    return create_app(
        settings,
        services_override=lambda s, info: fake_services("Fine, thanks."),
        shard=shard,
        shared_dir=shared_dir,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8095)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    settings = load_settings(
        "cfg/voice-connector.ini",
        env={
            "VC_LLM_GREETING": "Hi.",
            "VC_GENERAL_MAX_CALLS": "1000",
            "VC_GENERAL_LOG_LEVEL": "WARNING",
            "VC_GENERAL_HTTP_HOST": "127.0.0.1",
            "VC_GENERAL_HTTP_PORT": str(args.port),
            "VC_GENERAL_WORKERS": str(args.workers),
            **os.environ,
        },
    )
    setup_logging("WARNING")
    if args.workers > 1:
        from media_node.workers import Supervisor

        raise SystemExit(Supervisor(settings, factory="tests.support.instant_node:build_app").run())
    app = build_app(settings)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=args.port, log_level="warning", log_config=None
    )
    # SIGTERM drains as on a real node: /readyz 503, new calls refused, active ones finish.
    lifecycle.serve(config, app.state.drain, settings.general.drain_grace_seconds)


if __name__ == "__main__":
    main()
