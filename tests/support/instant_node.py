"""A media node whose STT, LLM and TTS are instant, to measure the connector alone.

Run: `python -m tests.support.instant_node --port 8095 [--workers N] [--real-stt]` (used by
benchmarks.connector_overhead; `--real-stt` keeps the configured STT, for
benchmarks.word_accuracy). Everything but the model work is real: Twilio transport, Silero
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
from tests.support.fakes import FakeLLM, ToneTTS, fake_services
from voice_connector.pipeline.builder import CallServices
from voice_connector.services import factory
from voice_connector_core.config import Settings, load_settings
from voice_connector_core.logs import setup_logging
from voice_connector_core.workers import WorkerShard


def real_stt_services(settings: Settings, call_id: str) -> CallServices:
    """The configured STT with the instant LLM and TTS: what the STT hears is what is measured."""
    return CallServices(
        stt=factory.create_stt(settings, call_id), llm=FakeLLM("Fine, thanks."), tts=ToneTTS()
    )


def build_app(
    settings: Settings,
    shard: WorkerShard | None = None,
    shared_dir: Path | None = None,
    real_stt: bool = False,
) -> FastAPI:
    """The media node app with instant providers (also each worker's app factory)."""
    return create_app(
        settings,
        services_override=lambda s, info: (
            real_stt_services(s, info.call_id) if real_stt else fake_services("Fine, thanks.")
        ),
        shard=shard,
        shared_dir=shared_dir,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8095)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--real-stt", action="store_true", help="the configured STT, not a fake")
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
    app = build_app(settings, real_stt=args.real_stt)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=args.port, log_level="warning", log_config=None
    )
    # SIGTERM drains as on a real node: /readyz 503, new calls refused, active ones finish.
    lifecycle.serve(config, app.state.drain, settings.general.drain_grace_seconds)


if __name__ == "__main__":
    main()
