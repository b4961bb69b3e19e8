"""Load the INI file, apply `VC_<SECTION>_<KEY>` environment overrides, validate everything.

All problems are collected before failing, each naming where it came from (file or environment
variable), the section and the key, so an operator fixes a broken config in one pass.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loguru import logger
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from voice_connector_core.config import legacy, moved, upgrade
from voice_connector_core.config.schema import (
    FlavorSettings,
    GeneralSettings,
    OpenSIPSSettings,
    PipelineSettings,
    Section,
    TransportSettings,
    TwilioSettings,
)
from voice_connector_core.config.sections import (
    ENV_PREFIX,
    OVERRIDABLE_BY_FLAVOR,
    SECTIONS,
    carried_over,
    env_name,
    foreign_keys,
    model_for,
    owners,
    section_keys,
)
from voice_connector_core.config.services import (
    FasterWhisperSTT,
    LLMSettings,
    OllamaLLM,
    PiperTTS,
    STTSettings,
    TTSSettings,
)

DEFAULT_CONFIG_PATH = Path("cfg/voice-connector.ini")
FLAVOR_PREFIX = "flavor:"
FLAVOR_SELECTORS = ("match", "transfer_target")
REDACTED = "********"


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with the configuration, and where it is."""

    source: str
    section: str
    key: str
    message: str

    def __str__(self) -> str:
        where = f"[{self.section}]" + (f" {self.key}" if self.key else "")
        return f"{self.source}: {where}: {self.message}"


class ConfigError(Exception):
    """The configuration is invalid; `problems` lists every reason."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class Settings(BaseModel):
    """The validated, effective configuration of one process (or of one call, after a flavor)."""

    model_config = ConfigDict(frozen=True)

    general: GeneralSettings = GeneralSettings()
    transport: TransportSettings = TransportSettings()
    pipeline: PipelineSettings = PipelineSettings()
    twilio: TwilioSettings = TwilioSettings()
    opensips: OpenSIPSSettings = OpenSIPSSettings()
    stt: STTSettings = FasterWhisperSTT()
    llm: LLMSettings = OllamaLLM()
    tts: TTSSettings = PiperTTS()
    flavors: dict[str, FlavorSettings] = {}
    flavor: str = "default"
    source: str = "<defaults>"
    deprecations: tuple[str, ...] = ()
    """One warning per key of a file in the OpenSIPS AI Voice Connector format, per moved key,
    and per key of another provider left at its default."""

    def for_flavor(self, name: str) -> Settings:
        """The settings one call runs with: this config with flavor `name`'s overrides applied.

        Overrides were validated at load time, so applying them cannot fail here; an unknown
        flavor name falls back to the unmodified settings.
        """
        flavor = self.flavors.get(name)
        if flavor is None:
            return self.model_copy(update={"flavor": name})
        updates: dict[str, Any] = {"flavor": name}
        for section in OVERRIDABLE_BY_FLAVOR:
            values = _section_overrides(flavor.overrides, section)
            if values:
                merged = {**carried_over(section, getattr(self, section), values), **values}
                model = model_for(section, merged)
                assert model is not None  # checked at load time
                updates[section] = model.model_validate(merged)
        return self.model_copy(update=updates)

    def redacted(self) -> dict[str, dict[str, Any]]:
        """Effective values with every secret replaced, for `config show` and logs."""
        out: dict[str, dict[str, Any]] = {}
        for name in SECTIONS:
            section: Section = getattr(self, name)
            out[name] = {
                key: _printable(getattr(section, key)) for key in type(section).model_fields
            }
        for name, flavor in self.flavors.items():
            out[f"{FLAVOR_PREFIX}{name}"] = {
                "match": flavor.match,
                "transfer_target": flavor.transfer_target,
                **flavor.overrides,
            }
        return out

    def secrets(self) -> list[str]:
        """Every non-empty secret value, so log formatters can scrub them."""
        values = []
        for name in SECTIONS:
            section = getattr(self, name)
            for key in type(section).model_fields:
                value = getattr(section, key)
                if isinstance(value, SecretStr) and value.get_secret_value():
                    values.append(value.get_secret_value())
        return values


def _printable(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, SecretStr):
        return REDACTED if value.get_secret_value() else ""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return value


def _section_overrides(overrides: Mapping[str, str], section: str) -> dict[str, str]:
    prefix = f"{section}."
    return {k[len(prefix) :]: v for k, v in overrides.items() if k.startswith(prefix)}


def _read_ini(path: Path, problems: list[ConfigProblem]) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        with path.open(encoding="utf-8") as handle:
            parser.read_file(handle)
    except FileNotFoundError:
        problems.append(ConfigProblem(str(path), "-", "", "config file not found"))
    except (configparser.Error, UnicodeDecodeError) as exc:
        problems.append(ConfigProblem(str(path), "-", "", f"cannot parse: {exc}"))
    return parser


def _validate_section(
    name: str,
    section: str,
    raw: Mapping[str, object],
    origin: Mapping[str, str],
    notes: list[str],
    problems: list[ConfigProblem],
    key_prefix: str = "",
) -> Section | None:
    """`raw` validated as `section` under the provider it selects (`name` labels the problems:
    the section, or the flavor overriding it)."""
    model = model_for(section, raw)
    if model is None:
        choices = " or ".join(repr(p) for p in owners(section, "provider"))
        source = origin.get(key_prefix + "provider", origin[""])
        problems.append(
            ConfigProblem(source, name, key_prefix + "provider", f"input should be {choices}")
        )
        return None
    kept = dict(raw)
    for key, (ignorable, message) in foreign_keys(section, raw).items():
        del kept[key]
        source = origin.get(key_prefix + key, origin[""])
        if ignorable:
            notes.append(f"{source}: [{name}] {key_prefix}{key} is {message}: ignored, remove it")
        else:
            problems.append(ConfigProblem(source, name, key_prefix + key, message))
    return _validate(name, model, kept, origin, problems, key_prefix)


def _validate(
    name: str,
    model: type[Section],
    raw: Mapping[str, object],
    origin: Mapping[str, str],
    problems: list[ConfigProblem],
    key_prefix: str = "",
) -> Section | None:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors():
            key = str(error["loc"][0]) if error["loc"] else ""
            message = error["msg"].removeprefix("Value error, ")
            first_word = message.split(" ", 1)[0]
            if not key and first_word in model.model_fields:
                key = first_word  # cross-field rules name their key first
            if error["type"] == "extra_forbidden":
                message = "unknown key"
            elif error["type"] == "missing":
                message = "required value missing"
            source = origin.get(key_prefix + key, origin[""])
            problems.append(ConfigProblem(source, name, key_prefix + key, message))
        return None


def load_settings(
    path: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    *,
    require_file: bool = False,
) -> Settings:
    """Read `path` (default `cfg/voice-connector.ini` if present), apply env, validate.

    Raises `ConfigError` listing every problem. Without a file the defaults plus env apply,
    unless `require_file` is set (an explicitly named file must exist).
    """
    env = os.environ if env is None else env
    problems: list[ConfigProblem] = []
    ini_path = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    parser = configparser.ConfigParser()
    if path is not None or require_file or ini_path.exists():
        parser = _read_ini(ini_path, problems)
    file_label = str(ini_path)
    readable = parser.sections() and not problems
    conversion = _legacy_conversion(ini_path, parser, problems) if readable else None
    if conversion is not None:
        parser = _as_parser(conversion.sections())

    raw: dict[str, dict[str, str]] = {name: {} for name in SECTIONS}
    origin: dict[str, dict[str, str]] = {name: {"": file_label} for name in SECTIONS}
    flavor_raw: dict[str, dict[str, str]] = {}
    for section in parser.sections():
        if section.startswith(FLAVOR_PREFIX):
            name = section[len(FLAVOR_PREFIX) :].strip()
            if not name:
                problems.append(ConfigProblem(file_label, section, "", "flavor needs a name"))
                continue
            flavor_raw[name] = dict(parser.items(section))
        elif section in SECTIONS:
            raw[section].update(parser.items(section))
            origin[section].update({key: file_label for key in parser.options(section)})
        else:
            problems.append(ConfigProblem(file_label, section, "", "unknown section"))
    if conversion is not None:
        for target, mapped in conversion.values.items():
            section, _, key = target.partition(".")
            line = mapped.source
            if line.key:
                origin[section][key] = f"{file_label}:{line.number} [{line.section}] {line.key}"

    notes: list[str] = []
    known_env: set[str] = set()
    _move_keys(raw, origin, notes, problems)
    env_raw, env_origin = _env_layer(env, known_env)
    _move_keys(env_raw, env_origin, notes, problems)
    for section, values in env_raw.items():
        raw[section].update(values)
        origin[section].update(env_origin[section])

    sections: dict[str, Section | None] = {
        name: _validate_section(name, name, raw[name], origin[name], notes, problems)
        for name in SECTIONS
    }
    flavors = _load_flavors(flavor_raw, sections, env, known_env, file_label, notes, problems)

    for var in env:
        if var.startswith(ENV_PREFIX) and var not in known_env:
            problems.append(ConfigProblem(f"env {var}", "-", "", "unknown configuration variable"))

    if problems:
        raise ConfigError(problems)
    general = sections["general"]
    assert isinstance(general, GeneralSettings)
    return Settings(
        general=general,
        transport=sections["transport"],  # type: ignore[arg-type]
        pipeline=sections["pipeline"],  # type: ignore[arg-type]
        twilio=sections["twilio"],  # type: ignore[arg-type]
        opensips=sections["opensips"],  # type: ignore[arg-type]
        stt=sections["stt"],  # type: ignore[arg-type]
        llm=sections["llm"],  # type: ignore[arg-type]
        tts=sections["tts"],  # type: ignore[arg-type]
        flavors=flavors,
        flavor=general.default_flavor,
        source=file_label if parser.sections() else "<defaults>",
        deprecations=(*(conversion.warnings if conversion else ()), *_warned(notes)),
    )


_LOGGED: set[str] = set()
"""Deprecation notes already logged by this process: one line per key, however often loaded."""


def _warned(notes: list[str]) -> list[str]:
    """`notes` without repeats, each logged as a warning the first time this process sees it."""
    unique = list(dict.fromkeys(notes))
    for note in unique:
        if note not in _LOGGED:
            _LOGGED.add(note)
            logger.warning(note)
    return unique


def _env_layer(
    env: Mapping[str, str], known_env: set[str]
) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    """The `VC_<SECTION>_<KEY>` variables set (keys at their old places included), and where
    each came from; every name read joins `known_env`."""
    wanted = [(s, k) for s in SECTIONS for k in section_keys(s)] + list(moved.MOVED)
    values: dict[str, dict[str, str]] = {}
    origin: dict[str, dict[str, str]] = {}
    for section, key in wanted:
        var = env_name(section, key)
        known_env.add(var)
        if var in env:
            values.setdefault(section, {})[key] = env[var]
            origin.setdefault(section, {})[key] = f"env {var}"
    return values, origin


def _move_keys(
    layer: dict[str, dict[str, str]],
    origin: dict[str, dict[str, str]],
    notes: list[str],
    problems: list[ConfigProblem],
) -> None:
    def problem(source: str, section: str, key: str, message: str) -> None:
        problems.append(ConfigProblem(source, section, key, message))

    moved.apply(layer, origin, notes.append, problem)


def migrate(path: Path | str) -> str:
    """The file equivalent to `path` in this connector's current format: converted from the
    legacy format, or with the keys at deprecated places moved to their new ones.

    Raises `ConfigError` with every problem of the file, or when there is nothing to change.
    """
    path = Path(path)
    load_settings(path, env={}, require_file=True)
    problems: list[ConfigProblem] = []
    conversion = _legacy_conversion(path, _read_ini(path, problems), problems, quiet=True)
    if conversion is not None:
        return legacy.render(conversion, path)
    text, changes = upgrade.rewrite(path.read_text(encoding="utf-8"))
    if not changes:
        message = "already in this connector's format: nothing to migrate"
        raise ConfigError([ConfigProblem(str(path), "-", "", message)])
    return text


def _legacy_conversion(
    path: Path,
    parser: configparser.ConfigParser,
    problems: list[ConfigProblem],
    *,
    quiet: bool = False,
) -> legacy.Conversion | None:
    """The file mapped from the OpenSIPS AI Voice Connector format, or None if it is ours."""
    try:
        lines = legacy.scan(path.read_text(encoding="utf-8"))
        is_legacy = legacy.detect(lines)
    except legacy.MixedFormats as exc:
        problems.append(ConfigProblem(str(path), "-", "", str(exc)))
        return legacy.Conversion()  # nothing of the file is read: the one problem says why
    if not is_legacy:
        return None
    conversion = legacy.convert(parser, lines)
    for line, message in conversion.problems:
        source = f"{path}:{line.number}" if line.number else str(path)
        problems.append(ConfigProblem(source, line.section, line.key, message))
    for warning in [] if quiet else conversion.warnings:
        logger.warning(f"{path}: {warning}")
    return conversion


def _as_parser(sections: dict[str, dict[str, str]]) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_dict(sections)
    return parser


def _load_flavors(
    flavor_raw: dict[str, dict[str, str]],
    sections: Mapping[str, Section | None],
    env: Mapping[str, str],
    known_env: set[str],
    file_label: str,
    notes: list[str],
    problems: list[ConfigProblem],
) -> dict[str, FlavorSettings]:
    flavors: dict[str, FlavorSettings] = {}
    for name, items in flavor_raw.items():
        label = f"{FLAVOR_PREFIX}{name}"
        origin = {key: file_label for key in items} | {"": file_label}
        for key in (*FLAVOR_SELECTORS, *_overridable_keys()):
            var = env_name(f"flavor_{name}", key)
            known_env.add(var)
            if var in env:
                items[key] = env[var]
                origin[key] = f"env {var}"
        selectors = {k: v for k, v in items.items() if k in FLAVOR_SELECTORS}
        overrides: dict[str, str] = {}
        for key, value in items.items():
            if key in FLAVOR_SELECTORS:
                continue
            section, _, field = key.partition(".")
            if section not in OVERRIDABLE_BY_FLAVOR or not field:
                problems.append(
                    ConfigProblem(
                        origin[key],
                        label,
                        key,
                        "unknown key (a flavor takes match, transfer_target and "
                        "stt./llm./tts./pipeline. overrides)",
                    )
                )
                continue
            overrides[key] = value
        for section in OVERRIDABLE_BY_FLAVOR:
            base = sections.get(section)
            values = _section_overrides(overrides, section)
            if base is None or not values:
                continue
            merged = {**carried_over(section, base, values), **values}
            _validate_section(label, section, merged, origin, notes, problems, f"{section}.")
        flavor = _validate(
            label, FlavorSettings, {**selectors, "overrides": overrides}, origin, problems
        )
        if isinstance(flavor, FlavorSettings):
            flavors[name] = flavor
    return flavors


def _overridable_keys() -> list[str]:
    return [f"{s}.{key}" for s in OVERRIDABLE_BY_FLAVOR for key in section_keys(s)]
