"""Helpers of the config tests: an INI written to a temp dir, and the problems loading reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from voice_connector_core.config import ConfigError, load_settings


def write(tmp_path: Path, text: str, name: str = "vc.ini") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path | None, env: dict[str, str] | None = None) -> list[str]:
    """Every problem `load_settings` reports (it must refuse the file)."""
    with pytest.raises(ConfigError) as info:
        load_settings(path, env=env or {})
    return [str(p) for p in info.value.problems]
