"""Build the deploy archive of one Cloud Function: the one builder the Pulumi program uses too.

Each function directory holds only its `main.py`; `functions/requirements.txt` is what every
function installs. The archive adds what the function needs at run time and nothing else:

- the `voice_connector` modules `main.py` imports, found by following its imports (no hand-kept
  list to forget a module in), so a function ships without Pipecat, FastAPI or models;
- the connector INI as `cfg/voice-connector.ini` (per-number flavors, defaults): Cloud Functions
  run from the source directory, where the config loader looks for it.

The zip is byte-for-byte reproducible (sorted entries, fixed timestamps), so its digest names the
uploaded object and an unchanged function is not redeployed.

    python functions/vendor.py twilio_voice build/functions/twilio_voice      # a directory
    python functions/vendor.py twilio_voice build/functions --zip              # the archive
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import io
import shutil
import zipfile
from pathlib import Path

FUNCTIONS = ("twilio_voice", "twilio_status", "outbound_call")
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PACKAGE_ROOT = ROOT / "packages" / "voice_connector"
PACKAGE = "voice_connector"
REQUIREMENTS = HERE / "requirements.txt"
DEFAULT_INI = ROOT / "cfg" / "voice-connector.ini"
INI_PATH = "cfg/voice-connector.ini"
"""Where the archive carries the INI: the config loader's default path, from the source dir."""
_EPOCH = (1980, 1, 1, 0, 0, 0)


def _module_file(module: str) -> Path | None:
    """The source file of a `voice_connector` module (a package's `__init__.py`), if any."""
    base = PACKAGE_ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, module: str) -> set[str]:
    """`voice_connector` modules one file imports (`from a import b` may name module a.b)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] == PACKAGE and _module_file(name)}


def vendored_modules(main: Path) -> list[str]:
    """Every `voice_connector` module `main` needs, with the packages that contain them."""
    wanted = sorted(_imports(main, "main"))
    seen: set[str] = set()
    while wanted:
        module = wanted.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        parents = {".".join(parts[:i]) for i in range(1, len(parts))}
        file = _module_file(module)
        assert file is not None
        wanted += sorted((_imports(file, module) | parents) - seen)
    return sorted(seen)


def files(name: str, ini_text: str | None = None) -> dict[str, bytes]:
    """Archive path → content for function `name` (the INI: `ini_text`, else the repo's)."""
    if name not in FUNCTIONS:
        raise SystemExit(f"unknown function {name!r}; one of {', '.join(FUNCTIONS)}")
    source = HERE / name
    content = {
        "main.py": (source / "main.py").read_bytes(),
        "requirements.txt": REQUIREMENTS.read_bytes(),
    }
    for module in vendored_modules(source / "main.py"):
        file = _module_file(module)
        assert file is not None
        content[file.relative_to(PACKAGE_ROOT).as_posix()] = file.read_bytes()
    ini = ini_text if ini_text is not None else DEFAULT_INI.read_text(encoding="utf-8")
    content[INI_PATH] = ini.encode("utf-8")
    return content


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
