"""Render the configuration reference (docs/configuration.md) from the schema.

The schema's field descriptions are the single source:
`python -m voice_connector_core.config.reference > docs/configuration.md` regenerates the page,
and a test fails when the page is stale.
"""

from __future__ import annotations

from pydantic.fields import FieldInfo

from voice_connector_core.config.loader import env_name
from voice_connector_core.config.schema import SECTIONS, FlavorSettings, Section

HEADER = """# Configuration reference

One INI file (default `cfg/voice-connector.ini`, or `--config FILE`). Every key can be overridden
by an environment variable `VC_<SECTION>_<KEY>`; the environment wins over the file (cloud
deployments set env, secrets come from Secret Manager as env). `voice-connector config check`
validates and prints every problem as `FILE: [section] key: message` (exit code 2);
`voice-connector config show` prints the effective configuration with secrets hidden.

A file in the OpenSIPS AI Voice Connector's INI format (`[engine]`, `[rtp]`, `[opensips] ip/port`,
...) is read as well, with one deprecation warning per key naming its new home; `voice-connector
config migrate OLD.ini` prints it in this format (see docs/migration.md).

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


def _table(section: str, model: type[Section], env_section: str | None = None) -> list[str]:
    rows = ["| key | default | env | meaning |", "|---|---|---|---|"]
    for key, field in model.model_fields.items():
        if key == "overrides":
            continue
        env = env_name(env_section or section, key)
        meaning = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{key}` | `{_default(field)}` | `{env}` | {meaning} |")
    return rows


def render() -> str:
    lines = [HEADER]
    for section, model in SECTIONS.items():
        lines += [f"## [{section}]", "", *_table(section, model), ""]
    lines += [
        "## [flavor:NAME]",
        "",
        "Per-call overrides. Besides the keys below, a flavor takes `stt.KEY`, `llm.KEY` and "
        "`tts.KEY` lines that override those sections for calls of this flavor (validated like "
        "the sections themselves). Env: `VC_FLAVOR_<NAME>_<KEY>`, e.g. "
        "`VC_FLAVOR_SUPPORT_LLM_MODEL`. Selection order: `[general] flavor_lookup_url` → "
        "explicit flavor from the signalling (OpenSIPS `extra_params`, Twilio `<Parameter "
        'name="flavor">`) → first `match` regex (in file order) on the called number → '
        "`[general] default_flavor`.",
        "",
        *_table("flavor:NAME", FlavorSettings, "flavor_NAME"),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(), end="")
