"""Build the deploy archive of one Cloud Function: the one builder the Pulumi program uses too.

Each function directory holds only its `main.py`; `functions/requirements.txt` lists the PyPI
packages every function installs. The archive holds:

- `main.py`;
- the connector's light core (`voice_connector_core`: config, TwiML, signatures, call tokens) as
  a wheel built from `packages/core`, installed by `requirements.txt` like any dependency (no
  Pipecat, FastAPI or models come with it: the core depends on none of them);
- `requirements.txt`: the PyPI list plus that wheel, by relative path (Cloud Functions' Python
  build runs `pip install -r requirements.txt` in the source directory);
- the connector INI as `cfg/voice-connector.ini` (per-number flavors, defaults): Cloud Functions
  run from the source directory, where the config loader looks for it.

The zip is byte-for-byte reproducible (sorted entries, fixed timestamps, the wheel built with
`SOURCE_DATE_EPOCH`), so its digest names the uploaded object and an unchanged function is not
redeployed.

    python functions/archive.py twilio_voice build/functions/twilio_voice      # a directory
    python functions/archive.py twilio_voice build/functions --zip              # the archive
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from functools import cache
from pathlib import Path

FUNCTIONS = ("twilio_voice", "twilio_status", "outbound_call")
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CORE_PROJECT = ROOT / "packages" / "core"
REQUIREMENTS = HERE / "requirements.txt"
DEFAULT_INI = ROOT / "cfg" / "voice-connector.ini"
INI_PATH = "cfg/voice-connector.ini"
"""Where the archive carries the INI: the config loader's default path, from the source dir."""
WHEEL_DIR = "wheels"
_EPOCH = (1980, 1, 1, 0, 0, 0)
_SOURCE_DATE_EPOCH = "315532800"  # 1980-01-01: the earliest time a zip entry can carry


def _core_sources() -> dict[str, bytes]:
    """The core project's files a wheel is built from (no caches, no build leftovers)."""
    files = {"pyproject.toml": (CORE_PROJECT / "pyproject.toml").read_bytes()}
    for path in sorted((CORE_PROJECT / "voice_connector_core").rglob("*.py")):
        files[path.relative_to(CORE_PROJECT).as_posix()] = path.read_bytes()
    return files


@cache
def _wheel_for(digest: str) -> tuple[str, bytes]:
    """(file name, bytes) of the core wheel, built once per source digest."""
    del digest  # the cache key: the sources' content
    with tempfile.TemporaryDirectory(prefix="vc-core-wheel-") as tmp:
        project, out = Path(tmp) / "core", Path(tmp) / "out"
        for relative, data in _core_sources().items():
            target = project / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check",
             "--no-deps", "--wheel-dir", str(out), str(project)],
            check=True,
            env={**os.environ, "SOURCE_DATE_EPOCH": _SOURCE_DATE_EPOCH},
        )
        (wheel,) = out.glob("*.whl")
        return wheel.name, wheel.read_bytes()


def core_wheel() -> tuple[str, bytes]:
    """(file name, bytes) of `voice_connector_core`'s wheel, reproducible from its sources."""
    digest = hashlib.sha256(repr(sorted(_core_sources().items())).encode()).hexdigest()
    return _wheel_for(digest)


def files(name: str, ini_text: str | None = None) -> dict[str, bytes]:
    """Archive path → content for function `name` (the INI: `ini_text`, else the repo's)."""
    if name not in FUNCTIONS:
        raise SystemExit(f"unknown function {name!r}; one of {', '.join(FUNCTIONS)}")
    wheel_name, wheel = core_wheel()
    requirements = REQUIREMENTS.read_text(encoding="utf-8").rstrip("\n")
    requirements += f"\n./{WHEEL_DIR}/{wheel_name}\n"
    ini = ini_text if ini_text is not None else DEFAULT_INI.read_text(encoding="utf-8")
    return {
        "main.py": (HERE / name / "main.py").read_bytes(),
        "requirements.txt": requirements.encode("utf-8"),
        f"{WHEEL_DIR}/{wheel_name}": wheel,
        INI_PATH: ini.encode("utf-8"),
    }


def archive_bytes(name: str, ini_text: str | None = None) -> bytes:
    """The deploy zip of function `name`, reproducible byte for byte."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in sorted(files(name, ini_text).items()):
            info = zipfile.ZipInfo(path, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()


def write_archive(name: str, out_dir: Path, ini_text: str | None = None) -> Path:
    """`out_dir/<name>-<digest>.zip` (kept if already there): what the Pulumi program uploads."""
    data = archive_bytes(name, ini_text)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}-{hashlib.sha256(data).hexdigest()[:16]}.zip"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return path


def build(name: str, out: Path, ini_text: str | None = None) -> Path:
    """The same files as a directory `out` (replaced if present), for `gcloud --source`."""
    content = files(name, ini_text)
    if out.exists():
        shutil.rmtree(out)
    for path, data in content.items():
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("function", choices=FUNCTIONS)
    parser.add_argument("out", type=Path, help="directory to create (with --zip: to write into)")
    parser.add_argument("--zip", action="store_true", help="write the deploy archive instead")
    parser.add_argument("--config", type=Path, help=f"INI to ship (default {DEFAULT_INI})")
    args = parser.parse_args(argv)
    ini = args.config.read_text(encoding="utf-8") if args.config else None
    if args.zip:
        print(write_archive(args.function, args.out, ini))
    else:
        print(build(args.function, args.out, ini))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
