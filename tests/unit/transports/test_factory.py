"""The transport factory builds exactly the providers `[transport] providers` names."""

from __future__ import annotations

from pathlib import Path

from voice_connector.transports.factory import TransportFactory
from voice_connector_core.config import load_settings


def providers_for(tmp_path: Path, line: str) -> list[str]:
    path = tmp_path / "vc.ini"
    path.write_text(line)
    return [p.name for p in TransportFactory(load_settings(path, env={})).create_all()]


def test_twilio_only(tmp_path: Path) -> None:
    assert providers_for(tmp_path, "[transport]\nproviders = twilio\n") == ["twilio"]


def test_both_at_once(tmp_path: Path) -> None:
    assert providers_for(tmp_path, "[transport]\nproviders = opensips, twilio\n") == [
        "opensips",
        "twilio",
    ]


def test_legacy_config_without_transport_section_is_opensips(tmp_path: Path) -> None:
    assert providers_for(tmp_path, "[general]\nlog_level = INFO\n") == ["opensips"]


def test_opensips_provider_gets_the_config_flavors(tmp_path: Path) -> None:
    path = tmp_path / "vc.ini"
    path.write_text("[transport]\nproviders = opensips\n[flavor:sales]\nmatch = ^1800\n")
    (provider,) = TransportFactory(load_settings(path, env={})).create_all()
    assert "sales" in provider.flavors.settings.flavors  # type: ignore[attr-defined]
