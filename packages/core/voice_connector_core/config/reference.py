"""Render the configuration reference (docs/configuration.md) from the schema.

The schema's field descriptions are the single source:
`python -m voice_connector_core.config.reference > docs/configuration.md` regenerates the page,
and a test fails when the page is stale.
"""

from __future__ import annotations

from pydantic.fields import FieldInfo

from voice_connector_core.config.moved import MOVED
from voice_connector_core.config.schema import FlavorSettings, Section
from voice_connector_core.config.sections import SECTIONS, env_name
from voice_connector_core.config.services import PROVIDERS

HEADER = """# Configuration reference

One INI file (default `cfg/voice-connector.ini`, or `--config FILE`). Every key can be overridden
by an environment variable `VC_<SECTION>_<KEY>`; the environment wins over the file (cloud
deployments set env, secrets come from Secret Manager as env). `voice-connector config check`
validates and prints every problem as `FILE: [section] key: message` (exit code 2);
`voice-connector config show` prints the effective configuration with secrets hidden.

A file in the OpenSIPS AI Voice Connector's INI format (`[engine]`, `[rtp]`, `[opensips] ip/port`,
...) is read as well, with one deprecation warning per key naming its new home; `voice-connector
config migrate OLD.ini` prints it in this format (see docs/migration.md).

`[stt]`, `[llm]` and `[tts]` take the keys shared by their providers plus those of the chosen
`provider` only: another provider's key is an error (left at its default, as in a copy of an older
template, it is ignored with a warning).

This page is generated from the schema (`python -m voice_connector_core.config.reference`).
"""


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    else:
        value = field.default
    if value is None or value == "":
        return "(empty)"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if hasattr(value, "get_secret_value"):
        return "(empty, secret)"
    return str(value)


def _table(
    section: str, model: type[Section], env_section: str | None = None, skip: tuple[str, ...] = ()
) -> list[str]:
    rows = ["| key | default | env | meaning |", "|---|---|---|---|"]
    for key, field in model.model_fields.items():
        if key == "overrides" or key in skip:
            continue
        env = env_name(env_section or section, key)
        meaning = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{key}` | `{_default(field)}` | `{env}` | {meaning} |")
    return rows


def _providers(section: str, common: type[Section]) -> list[str]:
    """One table per provider, of the keys only it takes."""
    lines: list[str] = []
    shared = tuple(common.model_fields)
    for name, model in PROVIDERS[section].items():
        own = _table(section, model, skip=shared)
        lines += [f"### [{section}] provider = {name}", "", (model.__doc__ or "").strip(), ""]
        lines += [*own, ""] if len(own) > 2 else ["No keys of its own.", ""]
    return lines


def _moved() -> list[str]:
    lines = [
        "## Deprecated key places",
        "",
        "Still read, with a warning naming the new key; "
        "the same key set at both places to different values is an error.",
        "",
        "| old | new |",
        "|---|---|",
    ]
    for (old_section, old_key), (new_section, new_key) in MOVED.items():
        lines.append(f"| `[{old_section}] {old_key}` | `[{new_section}] {new_key}` |")
    return [*lines, ""]


def render() -> str:
    lines = [HEADER]
    for section, model in SECTIONS.items():
        lines += [f"## [{section}]", ""]
        if section in PROVIDERS:
            lines += ["Keys of every provider:", ""]
        lines += [*_table(section, model), ""]
        if section in PROVIDERS:
            lines += _providers(section, model)
    lines += [
        "## [flavor:NAME]",
        "",
        "Per-call overrides. Besides the keys below, a flavor takes `stt.KEY`, `llm.KEY`, "
        "`tts.KEY` and `pipeline.KEY` (turn-taking, call limits) lines that override those "
        "sections for calls of this flavor (validated like "
        "the sections themselves); one that sets another `provider` keeps only the section's "
        "shared keys, the new provider's own start at their defaults. Env: "
        "`VC_FLAVOR_<NAME>_<KEY>`, e.g. "
        "`VC_FLAVOR_SUPPORT_LLM_MODEL`. Selection order: `[general] flavor_lookup_url` → "
        "explicit flavor from the signalling (OpenSIPS `extra_params`, Twilio `<Parameter "
        'name="flavor">`) → first `match` regex (in file order) on the called number → '
        "`[general] default_flavor`.",
        "",
        *_table("flavor:NAME", FlavorSettings, "flavor_NAME"),
        "",
        *_moved(),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(), end="")
