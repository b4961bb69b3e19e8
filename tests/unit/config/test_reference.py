"""Every configuration key is documented: in docs/configuration.md and in the shipped INI."""

from __future__ import annotations

import configparser
from pathlib import Path

from voice_connector_core.config.reference import render
from voice_connector_core.config.sections import SECTIONS, default_provider
from voice_connector_core.config.services import PROVIDERS

SHIPPED = Path("cfg/voice-connector.ini")


def test_configuration_page_is_generated_from_the_schema() -> None:
    page = Path("docs/configuration.md").read_text()
    assert page == render(), "docs/configuration.md is stale: regenerate it (see its header)"


def test_every_key_has_a_description() -> None:
    models = [*SECTIONS.items()] + [(s, m) for s, ms in PROVIDERS.items() for m in ms.values()]
    for section, model in models:
        for key, field in model.model_fields.items():
            assert field.description, f"[{section}] {key} has no description"


def test_every_key_appears_in_the_shipped_ini() -> None:
    """Set when the shipped provider takes it, commented out (`; key =`) when another does."""
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";",))
    parser.read(SHIPPED)
    text = SHIPPED.read_text()
    for section, model in SECTIONS.items():
        chosen = PROVIDERS.get(section, {}).get(
            default_provider(section) if section in PROVIDERS else ""
        )
        keys = set((chosen or model).model_fields)
        missing = keys - set(parser.options(section))
        assert not missing, f"{SHIPPED} [{section}] lacks {sorted(missing)}"
        for other in PROVIDERS.get(section, {}).values():
            for key in set(other.model_fields) - keys:
                assert f"; {key} =" in text, f"{SHIPPED} [{section}] lacks a `; {key} =` line"
