"""The Cloud Functions' deploy archives, built by `functions/archive.py`: the builder a developer
runs by hand is the one the program uploads from, and the one the deploy rehearsal unpacks."""

from __future__ import annotations

import importlib.util
import tempfile
from functools import cache
from pathlib import Path
from types import ModuleType

FUNCTIONS_DIR = Path(__file__).resolve().parents[2] / "functions"
BUILD_DIR = Path(tempfile.gettempdir()) / "voice-connector-functions"
"""Archives are named by content digest: a rebuild of unchanged sources reuses the file."""


@cache
def builder() -> ModuleType:
    """`functions/archive.py`, loaded from the checkout (a script, not an installed module)."""
    path = FUNCTIONS_DIR / "archive.py"
    spec = importlib.util.spec_from_file_location("voice_connector_function_archive", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"function builder missing: {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def archive(name: str, ini_text: str, out_dir: Path = BUILD_DIR) -> Path:
    """The zip uploaded for function `name`, carrying `ini_text` as its connector INI."""
    path: Path = builder().write_archive(name, out_dir, ini_text)
    return path
