"""A media node whose STT, LLM and TTS are instant, to measure the connector alone.

Run: `python -m benchmarks.instant_node --port 8095` (used by benchmarks.connector_overhead).
Everything but the model work is real: Twilio transport, Silero VAD, turn-taking, pipeline,
pacing; the fakes answer in microseconds, so what is measured is the connector's own cost.
"""

from __future__ import annotations

import argparse
import os

import uvicorn

from media_node.app import create_app
from tests.support.fakes import fake_services
from voice_connector.config import load_settings
from voice_connector.telemetry.logging import setup_logging


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8095)
    args = parser.parse_args()
    settings = load_settings(
        "cfg/voice-connector.ini",
        env={"VC_LLM_GREETING": "Hi.", "VC_GENERAL_MAX_CALLS": "1000", **os.environ},
    )
    setup_logging("WARNING")
    app = create_app(settings, services_override=lambda s, info: fake_services("Fine, thanks."))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", log_config=None)


if __name__ == "__main__":
    main()
