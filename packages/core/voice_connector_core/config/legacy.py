"""The OpenSIPS AI Voice Connector INI format: detect it and map every key onto this schema.

Why: a deployment of that connector must start with its configuration file unchanged. Each of
its keys is either mapped to its new home or, when this connector has no use for it, ignored for
a stated reason; either way the operator gets one deprecation warning per key. A file mixing both
formats is refused with the lines of each, because which line wins would be a guess.
"""

from __future__ import annotations

import configparser
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from voice_connector_core.config.sections import SECTIONS, owners, provider_of, section_keys
from voice_connector_core.config.services import PROVIDERS

FORMAT_NAME = "the OpenSIPS AI Voice Connector format"

Convert = Callable[[str, Mapping[str, str]], str]
"""(value, the legacy section's items) → the new value."""


def _same(value: str, _: Mapping[str, str]) -> str:
    return value.strip()


def _log_level(value: str, _: Mapping[str, str]) -> str:
    level = value.strip().upper()
    return {"WARN": "WARNING", "CRITICAL": "ERROR", "FATAL": "ERROR"}.get(level, level)


def _log_format(value: str, _: Mapping[str, str]) -> str:
    return "json" if value.strip().lower() in ("structured", "json") else "console"


def _advertised(value: str, _: Mapping[str, str]) -> str:
    """`[rtp] ip = 0.0.0.0` advertised nothing useful; empty lets rtp_ip/loopback decide."""
    return "" if value.strip() in ("", "0.0.0.0") else value.strip()


def _port_low(value: str, section: Mapping[str, str]) -> str:
    return f"{value.strip()}-{section.get('max_port', '35100').strip()}"


def _port_high(value: str, section: Mapping[str, str]) -> str:
    return f"{section.get('min_port', '35000').strip()}-{value.strip()}"


def _ms_to_seconds(value: str, _: Mapping[str, str]) -> str:
    try:
        return f"{float(value) / 1000:g}"
    except ValueError:
        raise ValueError(f"expected milliseconds, got {value.strip()!r}") from None


def _tts_url_from_host(value: str, section: Mapping[str, str]) -> str:
    return f"ws://{value.strip()}:{section.get('port', '8000').strip()}/tts"


def _tts_url_from_port(value: str, section: Mapping[str, str]) -> str:
    return f"ws://{section.get('host', '127.0.0.1').strip()}:{value.strip()}/tts"


def _only(expected: str, why: str) -> Convert:
    """A key this connector accepts only at one value (anything else cannot be honoured)."""

    def check(value: str, _: Mapping[str, str]) -> str:
        if value.strip().lower() != expected:
            raise ValueError(f"only {expected!r} is supported ({why}), got {value.strip()!r}")
        return value.strip()

    return check


def _llm_provider(url: str) -> dict[str, str]:
    ws = url.strip().lower().startswith(("ws://", "wss://"))
    return {"llm.provider": "llama_ws" if ws else "ollama"}


def _stt_remote(url: str) -> dict[str, str]:
    ws = url.strip().lower().startswith(("ws://", "wss://"))
    return {"stt.provider": "vosk" if ws else "faster_whisper", "stt.mode": "remote"}


def _tts_remote(_: str) -> dict[str, str]:
    return {"tts.mode": "remote"}


def _vosk(_: str) -> dict[str, str]:
    return {"stt.provider": "vosk"}


@dataclass(frozen=True)
class Rule:
    """Where one legacy key goes (`target` "section.key"), or why it is ignored (`target` None)."""

    target: str | None
    note: str = ""
    convert: Convert = _same
    implies: Callable[[str], dict[str, str]] | None = None
    """Further new keys the value implies (a ws:// LLM URL means provider = llama_ws)."""


def _ignored(note: str, check: Convert | None = None) -> Rule:
    return Rule(None, note, check or _same)


# In order of precedence: when two legacy keys land on one new key, the first present wins.
RULES: dict[tuple[str, str], Rule] = {
    ("opensips", "ip"): Rule("opensips.mi_ip", "address of OpenSIPS' mi_datagram socket"),
    ("opensips", "port"): Rule("opensips.mi_port", "port of OpenSIPS' mi_datagram socket"),
    ("opensips", "host"): _ignored("the MI address is [opensips] ip, now mi_ip"),
    ("opensips", "mi_transport"): _ignored(
        "MI always speaks datagram", _only("datagram", "MI always speaks datagram")
    ),
    ("engine", "event_ip"): Rule("opensips.event_ip"),
    ("engine", "event_port"): Rule("opensips.event_port"),
    ("engine", "sip_ip"): _ignored("calls arrive as E_UA_SESSION events: no SIP listener here"),
    ("engine", "sip_port"): _ignored("calls arrive as E_UA_SESSION events: no SIP listener here"),
    ("oavc", "host"): _ignored("calls arrive as E_UA_SESSION events: no SIP listener here"),
    ("oavc", "sip_port"): _ignored("calls arrive as E_UA_SESSION events: no SIP listener here"),
    ("sip", "host"): _ignored("calls arrive as E_UA_SESSION events: no SIP listener here"),
    ("sip", "port"): _ignored("calls arrive as E_UA_SESSION events: no SIP listener here"),
    **{
        (rtp, key): rule
        for rtp in ("rtp", "RTP")
        for key, rule in {
            "min_port": Rule("opensips.rtp_port_range", "LOW-HIGH", _port_low),
            "max_port": Rule("opensips.rtp_port_range", "LOW-HIGH", _port_high),
            "bind_ip": Rule("opensips.rtp_ip"),
            "ip": Rule("opensips.public_ip", "0.0.0.0 becomes empty", _advertised),
            "bind_port": _ignored("each call takes a port from the range"),
        }.items()
    },
    ("llm", "url"): Rule("llm.url", "ws:// sets provider = llama_ws", implies=_llm_provider),
    ("llm", "model"): Rule("llm.model"),
    ("llm", "temperature"): Rule("llm.temperature"),
    ("llm", "max_tokens"): Rule("llm.max_tokens"),
    ("llm", "system_prompt"): Rule("llm.system_prompt"),
    ("llm", "timeout"): _ignored("the client's own timeouts and retries apply"),
    ("llm", "stream"): _ignored("answers are always streamed"),
    ("llm", "top_p"): _ignored("no equivalent; temperature is kept"),
    ("stt", "url"): Rule("stt.url", "mode = remote; ws:// means vosk", implies=_stt_remote),
    ("stt", "sample_rate"): Rule("stt.sample_rate", "the format's STT was Vosk", implies=_vosk),
    ("stt", "channels"): _ignored("audio is always mono", _only("1", "audio is always mono")),
    ("stt", "send_eof"): _ignored("the end of stream is always sent"),
    ("stt", "model"): _ignored("the model is the Vosk server's own"),
    ("tts", "url"): Rule("tts.url", "sets mode = remote", implies=_tts_remote),
    ("tts", "host"): Rule("tts.url", "ws://HOST:PORT/tts", _tts_url_from_host, _tts_remote),
    ("tts", "port"): Rule("tts.url", "ws://HOST:PORT/tts", _tts_url_from_port, _tts_remote),
    ("tts", "voice"): Rule("tts.voice"),
    ("tts", "sample_rate"): _ignored("the voice's own rate is used"),
    ("general", "loglevel"): Rule("general.log_level", convert=_log_level),
    ("logging", "level"): Rule("general.log_level", convert=_log_level),
    ("logging", "format"): Rule("general.log_format", "structured → json", _log_format),
    ("general", "logfile"): _ignored("logs go to standard output"),
    ("ai", "type"): Rule(
        "stt.provider", "vosk", _only("vosk", "Vosk is the engine this format ran")
    ),
    ("ai", "flavor"): _ignored("every call runs the Pipecat pipeline"),
    ("ai", "model"): _ignored("models are set per service: [llm] model, [stt] model_path"),
    ("audio", "sample_rate"): _ignored("the pipeline runs at 16 kHz"),
    ("audio", "chunk_size"): _ignored("audio moves in 20 ms frames"),
    ("audio", "format"): _ignored("the pipeline carries PCM16"),
    ("VAD", "confidence"): Rule("pipeline.vad_confidence"),
    ("pipeline", "vad_threshold"): Rule("pipeline.vad_confidence"),
    ("VAD", "stop_secs"): Rule("pipeline.vad_stop_secs"),
    ("VAD", "min_silence_ms"): Rule("pipeline.vad_stop_secs", "in seconds", _ms_to_seconds),
    ("VAD", "enabled"): _ignored("the VAD always runs: it drives turn-taking"),
    ("VAD", "start_secs"): _ignored("Silero's start window is used"),
    ("VAD", "min_speech_ms"): _ignored("Silero's start window is used"),
    ("VAD", "speech_threshold"): _ignored("an energy threshold; Silero's confidence replaces it"),
    ("VAD", "turkish_optimized"): _ignored("no language-specific VAD tuning"),
    ("pipeline", "enable_interruption"): Rule("pipeline.allow_interruptions"),
    ("interruption", "enabled"): Rule("pipeline.allow_interruptions"),
    ("pipeline", "stt_timeout"): _ignored("the services' own timeouts apply"),
    ("pipeline", "llm_timeout"): _ignored("the services' own timeouts apply"),
    ("pipeline", "tts_timeout"): _ignored("the services' own timeouts apply"),
    ("pipeline", "interruption_min_words"): _ignored("caller speech (VAD) interrupts"),
    ("pipeline", "interruption_volume_threshold"): _ignored("caller speech (VAD) interrupts"),
    ("interruption", "min_words_strategy"): _ignored("caller speech (VAD) interrupts"),
    ("interruption", "volume_threshold"): _ignored("caller speech (VAD) interrupts"),
    ("interruption", "volume_duration_ms"): _ignored("caller speech (VAD) interrupts"),
    **{
        (engine, "disabled"): _ignored(
            "engine not supported", _only("true", f"the {engine} engine is not supported")
        )
        for engine in ("deepgram", "openai", "azure")
    },
}

LEGACY_SECTIONS = {section for section, _ in RULES}
SHARED_SECTIONS = LEGACY_SECTIONS & set(SECTIONS)
IMPLIED = {"transport.providers": "opensips"}
"""A file in this format ran OpenSIPS calls only."""


@dataclass(frozen=True)
class Line:
    """One `key = value` line (or a section header, key "") with the comments just above it."""

    section: str
    key: str
    number: int
    comments: tuple[str, ...] = ()


def scan(text: str) -> list[Line]:
    """Section headers and keys with their line numbers; configparser keeps neither."""
    lines: list[Line] = []
    section = ""
    pending: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith(("#", ";")):
            pending.append(stripped.lstrip("#;").strip())
        elif header := re.fullmatch(r"\[([^\]]+)\]", stripped):
            section = header[1].strip()
            lines.append(Line(section, "", number, tuple(pending)))
            pending = []
        elif section and (key := re.match(r"([^=:\s][^=:]*?)\s*[=:]", stripped)):
            lines.append(Line(section, key[1].strip().lower(), number, tuple(pending)))
            pending = []
    return lines


def _is_legacy(line: Line) -> bool:
    if not line.key:
        return line.section in LEGACY_SECTIONS - SHARED_SECTIONS
    if line.section in SHARED_SECTIONS:
        known = section_keys(line.section)
        return (line.section, line.key) in RULES and line.key not in known
    return line.section in LEGACY_SECTIONS


def _is_current(line: Line) -> bool:
    if line.section.startswith("flavor:"):
        return True
    if line.section not in SECTIONS:
        return False
    if line.section not in SHARED_SECTIONS:
        return not line.key  # a header of [transport] or [twilio]
    known = section_keys(line.section)
    return line.key in known and (line.section, line.key) not in RULES


class MixedFormats(ValueError):
    """The file has lines of both formats."""


def detect(lines: list[Line]) -> bool:
    """True if the file is in the legacy format; `MixedFormats` if it mixes both."""
    legacy = [line for line in lines if _is_legacy(line)]
    current = [line for line in lines if _is_current(line)]
    if legacy and current:

        def where(group: list[Line]) -> str:
            shown = [f"line {x.number} [{x.section}]" + (f" {x.key}" * bool(x.key)) for x in group]
            return ", ".join(shown[:6]) + (", ..." if len(shown) > 6 else "")

        raise MixedFormats(
            f"mixes {FORMAT_NAME} ({where(legacy)}) with this connector's format "
            f"({where(current)}); convert it with `voice-connector config migrate`"
        )
    return bool(legacy)


@dataclass(frozen=True)
class Mapped:
    """One new key's value, and the legacy line it came from."""

    value: str
    source: Line
    implied: bool = False


@dataclass
class Conversion:
    """A legacy file read into this schema."""

    values: dict[str, Mapped] = field(default_factory=dict)
    """"section.key" → value, in the order the rules set them."""
    warnings: list[str] = field(default_factory=list)
    ignored: list[tuple[Line, str, str]] = field(default_factory=list)
    """(line, value, why) of keys with no equivalent."""
    problems: list[tuple[Line, str]] = field(default_factory=list)
    sources: dict[str, list[Line]] = field(default_factory=dict)
    """"section.key" → every legacy line that set it (min_port and max_port → the range)."""

    def sections(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for target, mapped in self.values.items():
            section, _, key = target.partition(".")
            out.setdefault(section, {})[key] = mapped.value
        return out


def _home(target: str) -> str:
    section, _, key = target.partition(".")
    return f"[{section}] {key}"


def convert(parser: configparser.ConfigParser, lines: list[Line]) -> Conversion:
    """Map every key of a legacy file; unknown sections and keys become problems.

    Two passes: the first decides each section's provider (a ws:// LLM URL means llama_ws), the
    second ignores, with a reason, the keys that provider does not take (the LLM `model` of a
    Llama WebSocket service, which serves its own).
    """
    first = _convert(parser, lines, {})
    chosen = first.sections()
    return _convert(parser, lines, {s: provider_of(s, chosen.get(s, {})) for s in PROVIDERS})


def _convert(
    parser: configparser.ConfigParser, lines: list[Line], providers: Mapping[str, str]
) -> Conversion:
    result = Conversion()
    found = {(line.section, line.key): line for line in lines if line.key}
    for section in parser.sections():
        if section not in LEGACY_SECTIONS:
            header = next((x for x in lines if x.section == section), Line(section, "", 0))
            result.problems.append((header, f"unknown section in {FORMAT_NAME}"))
            continue
        items = {key.lower(): value for key, value in parser.items(section)}
        for key in items:
            if (section, key) not in RULES:
                line = found.get((section, key), Line(section, key, 0))
                result.problems.append((line, f"unknown key in {FORMAT_NAME}"))
    for (section, key), rule in RULES.items():
        if not parser.has_section(section):
            continue
        items = {k.lower(): v for k, v in parser.items(section)}
        if key not in items:
            continue
        line = found.get((section, key), Line(section, key, 0))
        _apply(_for_provider(rule, providers), line, items[key], items, result)
    for target, value in IMPLIED.items():
        result.values.setdefault(target, Mapped(value, Line("", "", 0), implied=True))
    return result


def _for_provider(rule: Rule, providers: Mapping[str, str]) -> Rule:
    """`rule`, or an ignoring one when its key is another provider's than the file's."""
    section, _, key = (rule.target or "").partition(".")
    provider = providers.get(section, "")
    model = PROVIDERS.get(section, {}).get(provider)
    if model is None or key in model.model_fields or not owners(section, key):
        return rule
    return Rule(None, f"not a setting of provider {provider}", rule.convert)


def _apply(
    rule: Rule, line: Line, value: str, items: Mapping[str, str], result: Conversion
) -> None:
    where = f"[{line.section}] {line.key} (line {line.number})"
    try:
        new_value = rule.convert(value, items)
    except ValueError as exc:
        result.problems.append((line, str(exc)))
        return
    if rule.target is None:
        result.ignored.append((line, value.strip(), rule.note))
        result.warnings.append(f"{where} is {FORMAT_NAME}: no longer used ({rule.note})")
        return
    earlier = result.values.get(rule.target)
    if earlier is not None and not earlier.implied and earlier.value != new_value:
        first = f"[{earlier.source.section}] {earlier.source.key}"
        result.warnings.append(
            f"{where} is {FORMAT_NAME}: ignored, {_home(rule.target)} already comes from {first}"
        )
        result.ignored.append((line, value.strip(), f"{_home(rule.target)} comes from {first}"))
        return
    if earlier is None or earlier.implied:
        result.values[rule.target] = Mapped(new_value, line)
    result.sources.setdefault(rule.target, []).append(line)
    note = f" ({rule.note})" if rule.note else ""
    result.warnings.append(f"{where} is {FORMAT_NAME}: now {_home(rule.target)}{note}")
    for target, implied in (rule.implies(value) if rule.implies else {}).items():
        result.values.setdefault(target, Mapped(implied, line, implied=True))


def render(conversion: Conversion, source: Path) -> str:
    """The equivalent file in this connector's format, legacy comments kept beside their keys."""
    out = [
        f"; Converted from {source.name} ({FORMAT_NAME})",
        "; by `voice-connector config migrate`.",
        "; Check it with `voice-connector config check --config FILE`; reference:",
        "; docs/configuration.md.",
    ]
    by_section: dict[str, list[tuple[str, Mapped]]] = {}
    for target, mapped in conversion.values.items():
        section, _, key = target.partition(".")
        by_section.setdefault(section, []).append((key, mapped))
    for section in SECTIONS:
        if section not in by_section:
            continue
        out += ["", f"[{section}]"]
        for key, mapped in by_section[section]:
            line = mapped.source
            if mapped.implied:
                origin = f"[{line.section}] {line.key}" if line.key else "this format"
                out.append(f"; implied by {origin}")
            else:
                lines = conversion.sources[f"{section}.{key}"]
                out += [f"; {c}" if c else ";" for x in lines for c in x.comments]
                out.append("; was " + ", ".join(f"[{x.section}] {x.key}" for x in lines))
            out.append(f"{key} = {mapped.value}")
    if conversion.ignored:
        out += ["", "; Keys with no use here (kept for reference):"]
        for line, value, why in conversion.ignored:
            out += [f"; {c}" if c else ";" for c in line.comments]
            out.append(f";   [{line.section}] {line.key} = {value}  -- {why}")
    return "\n".join(out) + "\n"
