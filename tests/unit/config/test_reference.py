"""Every configuration key is documented: in docs/configuration.md and in the shipped INI."""

from __future__ import annotations

import configparser
from pathlib import Path

from voice_connector_core.config.reference import render
from voice_connector_core.config.schema import SECTIONS


def test_configuration_page_is_generated_from_the_schema() -> None:
    page = Path("docs/configuration.md").read_text()
    assert page == render(), "docs/configuration.md is stale: regenerate it (see its header)"


def test_every_key_has_a_description() -> None:
    for section, model in SECTIONS.items():
        for key, field in model.model_fields.items():
            assert field.description, f"[{section}] {key} has no description"


def test_every_key_appears_in_the_shipped_ini() -> None:
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";",))
    parser.read("cfg/voice-connector.ini")
    for section, model in SECTIONS.items():
        missing = set(model.model_fields) - set(parser.options(section))
        assert not missing, f"cfg/voice-connector.ini [{section}] lacks {sorted(missing)}"
