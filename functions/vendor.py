"""Build a self-contained deploy directory for one Cloud Function.

Each function directory holds only its `main.py` and `requirements.txt`; the code it shares with
the media node (config schema and flavors, TwiML builders, signature and token checks, the REST
client, logging) stays in the `voice-connector` package and is copied in here, module by module,
so a function ships without Pipecat, FastAPI or models:

    python functions/vendor.py twilio_voice build/functions/twilio_voice
    gcloud functions deploy twilio-voice --gen2 --runtime=python311 --trigger-http \\
        --source=build/functions/twilio_voice --entry-point=twilio_voice
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

FUNCTIONS = ("twilio_voice", "twilio_status", "outbound_call")
HERE = Path(__file__).resolve().parent
PACKAGE = HERE.parent / "packages" / "voice_connector" / "voice_connector"
VENDORED = (
    "__init__.py",
    "config/__init__.py",
    "config/flavors.py",
    "config/loader.py",
    "config/schema.py",
    "telemetry/__init__.py",
    "telemetry/logging.py",
    "transports/__init__.py",
    "transports/twilio/__init__.py",
    "transports/twilio/cloud.py",
    "transports/twilio/rest.py",
    "transports/twilio/security.py",
    "transports/twilio/twiml.py",
    "transports/twilio/webhook.py",
)
"""The package modules a function imports; a test checks nothing else is needed."""


def build(name: str, out: Path) -> Path:
    """Copy function `name` and its vendored modules into `out` (replaced if present)."""
    if name not in FUNCTIONS:
        raise SystemExit(f"unknown function {name!r}; one of {', '.join(FUNCTIONS)}")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for filename in ("main.py", "requirements.txt"):
        shutil.copy2(HERE / name / filename, out / filename)
    for module in VENDORED:
        target = out / "voice_connector" / module
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PACKAGE / module, target)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("function", choices=FUNCTIONS)
    parser.add_argument("out", type=Path, help="deploy directory to create")
    args = parser.parse_args(argv)
    print(build(args.function, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
