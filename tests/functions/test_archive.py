"""Each function's deploy archive stands on its own: built by the program's code path, unpacked
into an empty directory and imported in a fresh interpreter from there.

The archive's core wheel is first on the path (a pure-Python wheel imports as a zip), so its
`voice_connector_core` is the one used; nothing of the connector beyond the core, and nothing heavy
(Pipecat, FastAPI, models), may be imported on the way; the shipped INI (flavors) is what the
config loader reads from the function's working directory. Installing the archive's
requirements.txt into a clean venv is the deploy rehearsal's job (tests/rehearsal).
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from voice_infra import function_source

HEAVY = [
    "voice_connector",
    "media_node",
    "ai_services",
    "pipecat",
    "fastapi",
    "starlette",
    "uvicorn",
    "faster_whisper",
    "piper",
    "vosk",
    "opensips",
]
INI = "[general]\ndefault_flavor = main\n\n[flavor:sales]\nmatch = ^\\+1555\n"
PROBE = """
import json, sys
sys.path.insert(0, {wheel!r})
import functions_framework
app = functions_framework.create_app({name!r}, {main!r})
import voice_connector_core
from voice_connector_core.config import load_settings
settings = load_settings()
print(json.dumps({{
    "core": voice_connector_core.__file__,
    "heavy": sorted({{m.split(".")[0] for m in sys.modules}} & set({heavy!r})),
    "flavors": sorted(settings.flavors),
    "default": settings.general.default_flavor,
}}))
"""


@pytest.mark.parametrize("name", ["twilio_voice", "twilio_status", "outbound_call"])
def test_archive_runs_on_its_own_files(name: str, tmp_path: Path) -> None:
    archive = function_source.archive(name, INI, tmp_path / "build")
    out = tmp_path / "unpacked"
    with zipfile.ZipFile(archive) as unpacked:
        unpacked.extractall(out)
    (wheel,) = (out / "wheels").glob("voice_connector_core-*.whl")
    requirements = (out / "requirements.txt").read_text().splitlines()
    assert f"./wheels/{wheel.name}" in requirements  # installed as a dependency, by relative path
    assert sorted(p.name for p in out.iterdir()) == ["cfg", "main.py", "requirements.txt", "wheels"]
    probe = PROBE.format(wheel=str(wheel), name=name, main=str(out / "main.py"), heavy=HEAVY)
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=out,  # Cloud Functions run from the source directory
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["core"].startswith(str(wheel))
    assert report["heavy"] == []
    assert (report["flavors"], report["default"]) == (["sales"], "main")


def test_archive_is_reproducible_and_named_by_content(tmp_path: Path) -> None:
    first = function_source.archive("twilio_voice", INI, tmp_path / "a")
    again = function_source.archive("twilio_voice", INI, tmp_path / "b")
    other = function_source.archive("twilio_voice", INI + "\n", tmp_path / "c")
    assert first.name == again.name and first.read_bytes() == again.read_bytes()
    assert other.name != first.name
