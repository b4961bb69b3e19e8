"""Every section of the INI file, and which keys a section accepts for a given provider.

Why a registry apart from the models: loading, the reference page, the legacy format and
`config migrate` all walk the sections, and a provider section (`[stt]`, `[llm]`, `[tts]`) has
one model per provider rather than one model.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import TypeAdapter, ValidationError

from voice_connector_core.config.schema import (
    GeneralSettings,
    OpenSIPSSettings,
    PipelineSettings,
    Section,
    TransportSettings,
    TwilioSettings,
)
from voice_connector_core.config.services import COMMON, PROVIDERS

SECTIONS: dict[str, type[Section]] = {
    "general": GeneralSettings,
    "transport": TransportSettings,
    "pipeline": PipelineSettings,
    "twilio": TwilioSettings,
    "opensips": OpenSIPSSettings,
    **COMMON,
}
"""Sections in the order the INI file documents them. A provider section's model here holds
the keys its providers share; `PROVIDERS` has each provider's own model."""

OVERRIDABLE_BY_FLAVOR = ("stt", "llm", "tts", "pipeline")
"""Sections a flavor may override: its models, and its turn-taking and call limits (a sales line
may want smart-turn and long calls, an IVR-like one a short fixed timeout)."""

ENV_PREFIX = "VC_"


def env_name(section: str, key: str) -> str:
    """`VC_<SECTION>_<KEY>`; for flavors `VC_FLAVOR_<NAME>_<SECTION>_<KEY>` (non-alnum → `_`)."""
    raw = f"{section}_{key}".replace(":", "_").replace(".", "_").replace("-", "_")
    return ENV_PREFIX + raw.upper()


def default_provider(section: str) -> str:
    return next(iter(PROVIDERS[section]))


def provider_of(section: str, raw: Mapping[str, object]) -> str:
    """The provider `raw` (a section's key → value) selects; the default when it names none."""
    return str(raw.get("provider") or default_provider(section)).strip()


def model_for(section: str, raw: Mapping[str, object]) -> type[Section] | None:
    """The model validating `raw`; None when it names a provider the section does not have."""
    if section not in PROVIDERS:
        return SECTIONS[section]
    return PROVIDERS[section].get(provider_of(section, raw))


def section_keys(section: str) -> list[str]:
    """Every key the section takes under any of its providers, in documentation order."""
    models = PROVIDERS.get(section, {}).values() or [SECTIONS[section]]
    return list(dict.fromkeys(key for model in models for key in model.model_fields))


def owners(section: str, key: str) -> list[str]:
    """The providers of `section` that take `key` (empty for plain sections)."""
    return [name for name, model in PROVIDERS.get(section, {}).items() if key in model.model_fields]


def is_default(section: str, key: str, value: object) -> bool:
    """`value` equals `key`'s default under the provider(s) owning it: a copied template line."""
    for name in owners(section, key):
        field = PROVIDERS[section][name].model_fields[key]
        try:
            if TypeAdapter(field.annotation).validate_python(value) == field.get_default(
                call_default_factory=True
            ):
                return True
        except ValidationError:
            continue
    return False


def carried_over(section: str, current: Section, overrides: Mapping[str, str]) -> dict[str, object]:
    """The values a flavor's `overrides` are applied on: all of `current`'s, or only the shared
    ones when the flavor switches provider (the old provider's keys mean nothing to the new)."""
    values = current.model_dump()
    switched = overrides.get("provider", "").strip()
    if section in PROVIDERS and switched and switched != getattr(current, "provider", switched):
        values = {k: v for k, v in values.items() if k in SECTIONS[section].model_fields}
    return values


def foreign_keys(section: str, raw: Mapping[str, object]) -> dict[str, tuple[bool, str]]:
    """Keys of `raw` that belong to another provider of `section` than the one it selects:
    key → (ignorable, message). Ignorable: left at its default, as a copy of the flat
    template has them; any other value would silently do nothing, so it is an error."""
    model = model_for(section, raw)
    if model is None or section not in PROVIDERS:
        return {}
    provider = provider_of(section, raw)
    found: dict[str, tuple[bool, str]] = {}
    for key, value in raw.items():
        others = owners(section, key)
        if key in model.model_fields or not others:
            continue
        message = f"not a setting of provider {provider} (only of {', '.join(others)})"
        found[key] = (is_default(section, key, value), message)
    return found
