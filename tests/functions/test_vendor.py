"""Each function deploys on its own: its directory plus the vendored modules are enough.

The built directory is imported in a fresh interpreter with the built directory first on the path,
so its copy of `voice_connector` is the one used, and nothing heavy (Pipecat, FastAPI, models)
may be imported on the way.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.functions.conftest import FUNCTIONS

HEAVY = [
    "pipecat",
    "fastapi",
    "starlette",
    "uvicorn",
    "faster_whisper",
    "piper",
    "vosk",
    "opensips",
]
PROBE = """
import json, sys
sys.path.insert(0, {out!r})
import functions_framework
app = functions_framework.create_app({name!r}, {main!r})
import voice_connector
print(json.dumps({{
    "vendored": voice_connector.__file__,
    "heavy": sorted({{m.split(".")[0] for m in sys.modules}} & set({heavy!r})),
}}))
"""


@pytest.mark.parametrize("name", ["twilio_voice", "twilio_status", "outbound_call"])
def test_built_function_runs_on_vendored_modules_only(name: str, tmp_path: Path) -> None:
    out = tmp_path / name
    subprocess.run(
        [sys.executable, str(FUNCTIONS / "vendor.py"), name, str(out)],
        check=True,
        capture_output=True,
    )
    assert (out / "main.py").exists() and (out / "requirements.txt").exists()
    probe = PROBE.format(out=str(out), name=name, main=str(out / "main.py"), heavy=HEAVY)
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["vendored"].startswith(str(out))
    assert report["heavy"] == []
