"""Files in the OpenSIPS AI Voice Connector INI format: detected, every key mapped (or ignored
with a reason) with one deprecation warning each, mixed files refused, `config migrate`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.legacy_ini import ORIGINAL_DOCKER_INI, ORIGINAL_INI
from tests.unit.config.ini_files import problems
from voice_connector.cli import main
from voice_connector_core.config import Settings, load_settings
from voice_connector_core.config.legacy import RULES, SHARED_SECTIONS, scan
from voice_connector_core.config.loader import migrate

MARKER = "[sip]\nport = 8089\n"
"""A legacy-only line, so a snippet of shared-section keys is read as the legacy format."""

# (section, key) → (value in the file, (new section, field), value read back)
MAPPED: dict[tuple[str, str], tuple[str, tuple[str, str], Any]] = {
    ("opensips", "ip"): ("10.1.2.3", ("opensips", "mi_ip"), "10.1.2.3"),
    ("opensips", "port"): ("8087", ("opensips", "mi_port"), 8087),
    ("engine", "event_ip"): ("0.0.0.0", ("opensips", "event_ip"), "0.0.0.0"),
    ("engine", "event_port"): ("8090", ("opensips", "event_port"), 8090),
    **{
        (rtp, key): (value, ("opensips", field), expected)
        for rtp in ("rtp", "RTP")
        for key, value, field, expected in [
            ("min_port", "34000", "rtp_port_range", "34000-35100"),
            ("max_port", "35003", "rtp_port_range", "35000-35003"),
            ("bind_ip", "127.0.0.1", "rtp_ip", "127.0.0.1"),
            ("ip", "192.0.2.7", "public_ip", "192.0.2.7"),
        ]
    },
    ("llm", "url"): ("ws://llm:8765", ("llm", "url"), "ws://llm:8765"),
    ("llm", "model"): ("llama3.2:3b", ("llm", "model"), "llama3.2:3b"),
    ("llm", "temperature"): ("0.7", ("llm", "temperature"), 0.7),
    ("llm", "max_tokens"): ("33", ("llm", "max_tokens"), 33),
    ("llm", "system_prompt"): ("Be brief.", ("llm", "system_prompt"), "Be brief."),
    ("stt", "url"): ("ws://vosk:2700", ("stt", "url"), "ws://vosk:2700"),
    ("stt", "sample_rate"): ("8000", ("stt", "sample_rate"), 8000),
    ("tts", "url"): ("ws://piper:8000/tts", ("tts", "url"), "ws://piper:8000/tts"),
    ("tts", "host"): ("piper", ("tts", "url"), "ws://piper:8000/tts"),
    ("tts", "port"): ("9000", ("tts", "url"), "ws://127.0.0.1:9000/tts"),
    ("tts", "voice"): ("tr_TR-dfki-medium", ("tts", "voice"), "tr_TR-dfki-medium"),
    ("general", "loglevel"): ("warn", ("general", "log_level"), "WARNING"),
    ("logging", "level"): ("DEBUG", ("general", "log_level"), "DEBUG"),
    ("logging", "format"): ("structured", ("general", "log_format"), "json"),
    ("ai", "type"): ("vosk", ("stt", "provider"), "vosk"),
    ("VAD", "confidence"): ("0.4", ("pipeline", "vad_confidence"), 0.4),
    ("pipeline", "vad_threshold"): ("0.6", ("pipeline", "vad_confidence"), 0.6),
    ("VAD", "stop_secs"): ("0.3", ("pipeline", "vad_stop_secs"), 0.3),
    ("VAD", "min_silence_ms"): ("500", ("pipeline", "vad_stop_secs"), 0.5),
    ("pipeline", "enable_interruption"): ("false", ("pipeline", "allow_interruptions"), False),
    ("interruption", "enabled"): ("false", ("pipeline", "allow_interruptions"), False),
}

IMPLIED = {
    ("llm", "url"): [(("llm", "provider"), "llama_ws")],
    ("stt", "url"): [(("stt", "provider"), "vosk"), (("stt", "mode"), "remote")],
    ("stt", "sample_rate"): [(("stt", "provider"), "vosk")],
    ("tts", "url"): [(("tts", "mode"), "remote")],
    ("tts", "host"): [(("tts", "mode"), "remote")],
    ("tts", "port"): [(("tts", "mode"), "remote")],
}


def one_key(section: str, key: str, raw: str) -> tuple[str, int]:
    """A legacy file setting one key (after a marker when its section exists in both formats),
    and that key's line number."""
    marker = MARKER if section in SHARED_SECTIONS else ""
    return f"{marker}[{section}]\n{key} = {raw}\n", marker.count("\n") + 2


def write(tmp_path: Path, text: str, name: str = "old.ini") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def value(settings: Settings, where: tuple[str, str]) -> Any:
    return getattr(getattr(settings, where[0]), where[1])



def test_every_mapped_rule_has_a_case_here() -> None:
    mapped_rules = {key for key, rule in RULES.items() if rule.target is not None}
    assert mapped_rules == set(MAPPED)


@pytest.mark.parametrize(("legacy_key"), list(MAPPED), ids=lambda k: f"{k[0]}.{k[1]}")
def test_each_key_reaches_its_new_home_with_one_warning(
    tmp_path: Path, legacy_key: tuple[str, str]
) -> None:
    section, key = legacy_key
    raw, target, expected = MAPPED[legacy_key]
    text, number = one_key(section, key, raw)
    settings = load_settings(write(tmp_path, text), env={})
    assert value(settings, target) == expected
    for implied_target, implied in IMPLIED.get(legacy_key, []):
        assert value(settings, implied_target) == implied
    assert settings.transport.providers == ["opensips"]
    (mine,) = [w for w in settings.deprecations if w.startswith(f"[{section}] {key} ")]
    assert mine.startswith(
        f"[{section}] {key} (line {number}) is the OpenSIPS AI Voice Connector format: "
        f"now [{target[0]}] {target[1]}"
    )


@pytest.mark.parametrize(
    "legacy_key",
    [key for key, rule in RULES.items() if rule.target is None],
    ids=lambda k: f"{k[0]}.{k[1]}",
)
def test_keys_without_equivalent_change_nothing_and_say_why(
    tmp_path: Path, legacy_key: tuple[str, str]
) -> None:
    section, key = legacy_key
    sample = {"mi_transport": "datagram", "channels": "1", "disabled": "true"}.get(key, "7")
    settings = load_settings(write(tmp_path, one_key(section, key, sample)[0]), env={})
    baseline = load_settings(write(tmp_path, "[sip]\nhost = x\n", "marker.ini"), env={})
    assert settings.model_dump(exclude={"source", "deprecations"}) == baseline.model_dump(
        exclude={"source", "deprecations"}
    )
    (warning,) = [w for w in settings.deprecations if w.startswith(f"[{section}] {key} ")]
    assert "no longer used (" in warning


@pytest.mark.parametrize("text", [ORIGINAL_INI, ORIGINAL_DOCKER_INI], ids=["main", "docker"])
def test_the_original_files_load_unmodified(tmp_path: Path, text: str) -> None:
    settings = load_settings(write(tmp_path, text), env={})
    assert settings.transport.providers == ["opensips"]
    assert (settings.opensips.mi_ip, settings.opensips.mi_port) == ("opensips", 8087)
    assert (settings.opensips.event_ip, settings.opensips.event_port) == ("0.0.0.0", 8090)
    assert (settings.stt.provider, settings.stt.mode) == ("vosk", "remote")
    assert settings.stt.url == "ws://vosk-server:2700"
    assert (settings.llm.provider, settings.llm.url) == ("llama_ws", "ws://llm-turkish-server:8765")
    assert (settings.tts.mode, settings.tts.url) == ("remote", "ws://piper-tts-server:8000/tts")
    assert settings.tts.voice == "tr_TR-dfki-medium"
    assert settings.pipeline.vad_confidence == 0.5
    # One warning per key line of the file, each naming where the key went or why it is unused.
    assert len(settings.deprecations) == len([line for line in scan(text) if line.key])
    assert all(
        " now [" in w or "no longer used (" in w or "ignored, [" in w for w in settings.deprecations
    )


def test_main_file_advertises_its_host_address_and_docker_file_none(tmp_path: Path) -> None:
    main_file = load_settings(write(tmp_path, ORIGINAL_INI), env={})
    docker = load_settings(write(tmp_path, ORIGINAL_DOCKER_INI, "docker.ini"), env={})
    assert main_file.opensips.public_ip == "192.168.1.120"
    assert main_file.opensips.rtp_port_range == "35000-35100"
    assert docker.opensips.public_ip == ""  # `ip = 0.0.0.0`: advertise the bind address
    assert docker.opensips.rtp_port_range == "35000-35003"


def test_the_first_of_two_keys_for_one_home_wins_and_the_other_is_named(tmp_path: Path) -> None:
    text = "[rtp]\nmin_port = 35000\nmax_port = 35020\n[RTP]\nmin_port = 35000\nmax_port = 35100\n"
    settings = load_settings(write(tmp_path, text), env={})
    assert settings.opensips.rtp_port_range == "35000-35020"
    assert any(
        w.startswith("[RTP] max_port (line 6)") and "already comes from [rtp] min_port" in w
        for w in settings.deprecations
    )


def test_environment_overrides_apply_on_top_of_a_legacy_file(tmp_path: Path) -> None:
    path = write(tmp_path, ORIGINAL_DOCKER_INI)
    settings = load_settings(
        path, env={"VC_LLM_URL": "ws://127.0.0.1:9", "VC_OPENSIPS_MI_IP": "::1"}
    )
    assert (settings.llm.provider, settings.llm.url) == ("llama_ws", "ws://127.0.0.1:9")
    assert settings.opensips.mi_ip == "::1"


def test_a_file_mixing_both_formats_names_the_lines_of_each(tmp_path: Path) -> None:
    text = (
        "[engine]\nevent_port = 8090\n\n[transport]\nproviders = twilio\n[llm]\nprovider = ollama\n"
    )
    (problem,) = problems(write(tmp_path, text))
    assert "line 1 [engine]" in problem and "line 2 [engine] event_port" in problem
    assert "line 4 [transport]" in problem and "line 7 [llm] provider" in problem
    assert "config migrate" in problem


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[rtp]\nmin_port = low\n", "old.ini:2 [rtp] min_port: [opensips] rtp_port_range"),
        ("[VAD]\nmin_silence_ms = soon\n", "old.ini:2: [VAD] min_silence_ms: expected millis"),
        ("[ai]\ntype = deepgram\n", "old.ini:2: [ai] type: only 'vosk' is supported"),
        ("[openai]\ndisabled = false\n", "the openai engine is not supported"),
        ("[stt]\nchannels = 2\n[rtp]\nip = 1.2.3.4\n", "[stt] channels: only '1'"),
        ("[engine]\nevent_portt = 1\n", "old.ini:2: [engine] event_portt: unknown key in the Open"),
        ("[rtp]\nip = x\n[vosk]\nurl = ws://x\n", "old.ini:3: [vosk]: unknown section in the"),
        ("[pipeline]\nvad_threshold = 7\n", "[pipeline] vad_threshold: [pipeline] vad_confidence"),
    ],
)
def test_bad_legacy_values_are_errors_naming_the_old_line(
    tmp_path: Path, text: str, expected: str
) -> None:
    found = problems(write(tmp_path, text))
    assert any(expected in p for p in found), found


def test_migrate_prints_an_equivalent_file_keeping_comments(tmp_path: Path) -> None:
    old = write(tmp_path, ORIGINAL_INI)
    migrated = migrate(old)
    assert "; Docker host IP - client'ların erişebileceği IP" in migrated
    assert "; was [rtp] ip, [RTP] ip\npublic_ip = 192.168.1.120" in migrated
    assert ";   [audio] chunk_size = 160  -- audio moves in 20 ms frames" in migrated
    new = load_settings(write(tmp_path, migrated, "new.ini"), env={})
    before = load_settings(old, env={})
    assert new.deprecations == ()
    assert new.model_dump(exclude={"source", "deprecations"}) == before.model_dump(
        exclude={"source", "deprecations"}
    )


def test_config_migrate_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "migrate", str(write(tmp_path, ORIGINAL_DOCKER_INI))]) == 0
    out = capsys.readouterr().out
    assert "[opensips]\n" in out and "mi_port = 8087" in out
    current = write(tmp_path, "[general]\nlog_level = INFO\n", "new.ini")
    assert main(["config", "migrate", str(current)]) == 2
    assert "nothing to migrate" in capsys.readouterr().err
