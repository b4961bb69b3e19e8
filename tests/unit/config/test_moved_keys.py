"""Keys that moved section (`[transport]` turn-taking, `[twilio]` call and message limits) still
load from files and `VC_` variables at their old places, with one warning naming the new key;
old and new set differently is an error; `config migrate` rewrites the file to the new places."""

from __future__ import annotations

from pathlib import Path

import pytest
from loguru import logger

from tests.unit.config.ini_files import problems, write
from voice_connector.cli import main
from voice_connector_core.config import env_name, load_settings
from voice_connector_core.config.loader import migrate
from voice_connector_core.config.moved import MOVED

VALUES = {
    "vad_stop_secs": ("0.35", 0.35),
    "user_speech_timeout_secs": ("0.9", 0.9),
    "vad_confidence": ("0.55", 0.55),
    "allow_interruptions": ("false", False),
    "turn_detection": ("smart_turn", "smart_turn"),
    "max_call_seconds": ("3540", 3540.0),
    "max_message_bytes": ("4096", 4096),
}
"""Old key → (a non-default value, as read back)."""




@pytest.mark.parametrize("old", list(MOVED), ids=lambda k: f"{k[0]}.{k[1]}")
def test_an_old_ini_key_lands_in_its_new_place_with_a_warning(
    tmp_path: Path, old: tuple[str, str]
) -> None:
    (section, key), (new_section, new_key) = old, MOVED[old]
    raw, expected = VALUES[key]
    settings = load_settings(write(tmp_path, f"[{section}]\n{key} = {raw}\n"), env={})
    assert getattr(getattr(settings, new_section), new_key) == expected
    (warning,) = settings.deprecations
    assert f"[{section}] {key} is deprecated, now [{new_section}] {new_key}" in warning


@pytest.mark.parametrize("old", list(MOVED), ids=lambda k: f"{k[0]}.{k[1]}")
def test_an_old_env_variable_lands_in_its_new_place_naming_the_new_variable(
    old: tuple[str, str],
) -> None:
    (section, key), (new_section, new_key) = old, MOVED[old]
    raw, expected = VALUES[key]
    settings = load_settings(None, env={env_name(section, key): raw})
    assert getattr(getattr(settings, new_section), new_key) == expected
    (warning,) = settings.deprecations
    assert warning.startswith(f"env {env_name(section, key)}: ")
    assert f"({env_name(new_section, new_key)})" in warning


def test_old_and_new_keys_set_differently_is_an_error(tmp_path: Path) -> None:
    text = "[transport]\nvad_stop_secs = 0.3\n[pipeline]\nvad_stop_secs = 0.4\n"
    (problem,) = problems(write(tmp_path, text))
    assert "[transport] vad_stop_secs: moved to [pipeline] vad_stop_secs" in problem
    env = {"VC_TWILIO_MAX_CALL_SECONDS": "60", "VC_PIPELINE_MAX_CALL_SECONDS": "90"}
    (problem,) = problems(None, env)
    assert problem.startswith("env VC_TWILIO_MAX_CALL_SECONDS: [twilio] max_call_seconds: moved")


def test_old_and_new_keys_set_alike_load(tmp_path: Path) -> None:
    text = "[twilio]\nmax_call_seconds = 60\n[pipeline]\nmax_call_seconds = 60\n"
    assert load_settings(write(tmp_path, text), env={}).pipeline.max_call_seconds == 60


def test_the_environment_still_wins_over_the_file_across_old_and_new_places(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "[transport]\nvad_stop_secs = 0.3\n")
    settings = load_settings(path, env={"VC_PIPELINE_VAD_STOP_SECS": "0.6"})
    assert settings.pipeline.vad_stop_secs == 0.6
    path = write(tmp_path, "[pipeline]\nvad_stop_secs = 0.3\n", "new.ini")
    settings = load_settings(path, env={"VC_TRANSPORT_VAD_STOP_SECS": "0.6"})
    assert settings.pipeline.vad_stop_secs == 0.6


def test_each_deprecation_is_logged_once_per_process(tmp_path: Path) -> None:
    path = write(tmp_path, "[transport]\nturn_detection = smart_turn\n")
    lines: list[str] = []
    sink = logger.add(lines.append, level="WARNING", format="{message}")
    try:
        load_settings(path, env={})
        load_settings(path, env={})
    finally:
        logger.remove(sink)
    assert len([line for line in lines if "turn_detection is deprecated" in line]) == 1


OLD_STYLE = """\
[general]
log_level = INFO

[transport]
providers = twilio
; Silence that closes a segment.
vad_stop_secs = 0.3
turn_detection = smart_turn

[twilio]
; Largest message.
max_message_bytes = 4096
max_call_seconds = 3540

[stt]
provider = vosk
; Left over from the flat template.
beam_size = 5
sample_rate = 8000

[flavor:support]
llm.greeting = Support line.
"""


def test_migrate_moves_old_keys_keeping_comments_and_the_result_loads_the_same(
    tmp_path: Path,
) -> None:
    old = write(tmp_path, OLD_STYLE)
    migrated = migrate(old)
    assert "[transport]\nproviders = twilio\n\n[pipeline]\n" in migrated
    assert "; Silence that closes a segment.\nvad_stop_secs = 0.3\n" in migrated
    assert "max_call_seconds = 3540" in migrated.split("[pipeline]")[1].split("[twilio]")[0]
    assert "; Largest message.\nhttp_ws_max_message_bytes = 4096" in migrated
    assert "; removed by config migrate: beam_size = 5: not a setting of provider vosk" in migrated
    new = load_settings(write(tmp_path, migrated, "new.ini"), env={})
    before = load_settings(old, env={})
    assert new.deprecations == () and len(before.deprecations) == 5
    exclude = {"source", "deprecations"}
    assert new.model_dump(exclude=exclude) == before.model_dump(exclude=exclude)


def test_config_migrate_and_show_write_the_new_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, OLD_STYLE)
    assert main(["config", "migrate", str(path)]) == 0
    assert "[transport] vad_stop_secs" not in capsys.readouterr().out
    assert main(["config", "show", "--config", str(path)]) == 0
    shown = capsys.readouterr().out
    assert "[pipeline]\nvad_stop_secs = 0.3\n" in shown
    assert "http_ws_max_message_bytes = 4096" in shown
    assert "max_message_bytes = 4096\n" not in shown.replace("http_ws_max_message_bytes", "")
