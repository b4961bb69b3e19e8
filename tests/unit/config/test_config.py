"""Configuration: INI + env overrides, validation that names file/section/key, redaction."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.config.ini_files import problems, write
from voice_connector_core.config import load_settings

SHIPPED = Path("cfg/voice-connector.ini")




def test_shipped_config_is_valid() -> None:
    settings = load_settings(SHIPPED, env={})
    assert settings.transport.providers == ["twilio"]
    assert "support" in settings.flavors


def test_env_overrides_the_ini_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[llm]\nmodel = from-file\ntemperature = 0.5\n")
    settings = load_settings(path, env={"VC_LLM_MODEL": "from-env"})
    assert settings.llm.model == "from-env"
    assert settings.llm.temperature == 0.5


def test_env_overrides_flavor_keys() -> None:
    settings = load_settings(SHIPPED, env={"VC_FLAVOR_SUPPORT_LLM_MODEL": "tiny"})
    assert settings.for_flavor("support").llm.model == "tiny"
    assert settings.for_flavor("default").llm.model != "tiny"


def test_flavor_overrides_apply_per_call_only() -> None:
    settings = load_settings(SHIPPED, env={})
    support = settings.for_flavor("support")
    assert support.flavor == "support"
    assert support.llm.greeting.startswith("Support line")
    assert settings.llm.greeting.startswith("Hello")


def test_a_flavor_sets_its_own_turn_taking_and_call_limit(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[pipeline]\nturn_detection = timeout\nmax_call_seconds = 600\n\n"
        "[flavor:sales]\nmatch = ^\\+1555\npipeline.turn_detection = smart_turn\n"
        "pipeline.max_call_seconds = 1800\n",
    )
    settings = load_settings(path, env={"VC_FLAVOR_SALES_PIPELINE_VAD_STOP_SECS": "0.3"})
    sales = settings.for_flavor("sales").pipeline
    assert (sales.turn_detection, sales.max_call_seconds, sales.vad_stop_secs) == (
        "smart_turn",
        1800,
        0.3,
    )
    assert (settings.pipeline.turn_detection, settings.pipeline.max_call_seconds) == (
        "timeout",
        600,
    )


def test_a_flavor_pipeline_override_is_validated_at_load(tmp_path: Path) -> None:
    path = write(tmp_path, "[flavor:sales]\npipeline.turn_detection = psychic\n")
    (problem,) = problems(path)
    assert "flavor:sales" in problem and "pipeline.turn_detection" in problem


def test_without_transport_section_the_node_is_opensips_only(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "[general]\nlog_level = INFO\n"), env={})
    assert settings.transport.providers == ["opensips"]


def test_providers_list_accepts_both(tmp_path: Path) -> None:
    path = write(tmp_path, "[transport]\nproviders = opensips, twilio\n")
    assert load_settings(path, env={}).transport.providers == ["opensips", "twilio"]


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("[bogus]\nx = 1\n", {}, "[bogus]: unknown section"),
        ("[llm]\ncolour = red\n", {}, "[llm] colour: unknown key"),
        ("[llm]\ntemperature = hot\n", {}, "[llm] temperature: Input should be a valid number"),
        ("[stt]\nmodel_path = /does/not/exist\n", {}, "[stt] model_path: path does not exist"),
        ("[twilio]\nvalidate_signatures = true\n", {}, "[twilio] auth_token: "),
        ("[stt]\nmode = remote\n", {}, "[stt] url: "),
        ("[opensips]\nrtp_port_range = 9-1\n", {}, "[opensips] rtp_port_range: "),
        ("[transport]\nproviders = sip\n", {}, "[transport] providers: "),
        ("[flavor:x]\nllm.temperature = 9\n", {}, "[flavor:x] llm.temperature: "),
        ("[flavor:x]\ncolour = red\n", {}, "[flavor:x] colour: unknown key"),
        ("[flavor:x]\nmatch = (\n", {}, "[flavor:x] match: invalid regex"),
        ("", {"VC_LLM_MAX_TOKENS": "many"}, "env VC_LLM_MAX_TOKENS: [llm] max_tokens"),
        ("", {"VC_NOT_A_KEY": "1"}, "env VC_NOT_A_KEY"),
    ],
)
def test_each_kind_of_invalid_config_names_where(
    tmp_path: Path, text: str, env: dict[str, str], expected: str
) -> None:
    found = problems(write(tmp_path, text), env)
    assert any(expected in p for p in found), found
    if not expected.startswith("env"):
        assert all(p.startswith(str(tmp_path / "vc.ini")) for p in found if "env" not in p), found


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    found = problems(write(tmp_path, "[llm]\ntemperature = hot\nmax_tokens = -1\n[nope]\n"))
    assert len(found) == 3


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    clean = {k: v for k, v in os.environ.items() if not k.startswith("VC_")}
    return subprocess.run(
        [sys.executable, "-m", "voice_connector.cli", *args],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        timeout=60,
    )


def test_config_check_exits_2_and_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, "[llm]\ntemperature = hot\n")
    result = run_cli("config", "check", "--config", str(path))
    assert result.returncode == 2
    assert f"{path}: [llm] temperature" in result.stderr


def test_config_check_missing_file_exits_2(tmp_path: Path) -> None:
    result = run_cli("config", "check", "--config", str(tmp_path / "missing.ini"))
    assert result.returncode == 2
    assert "config file not found" in result.stderr


def test_config_show_redacts_secrets() -> None:
    secret = "s3cr3t-auth-token-value"
    result = run_cli(
        "config", "show", "--config", str(SHIPPED), env={"VC_TWILIO_AUTH_TOKEN": secret}
    )
    assert result.returncode == 0
    assert secret not in result.stdout + result.stderr
    assert "auth_token = ********" in result.stdout


def test_secrets_listed_for_log_scrubbing() -> None:
    settings = load_settings(SHIPPED, env={"VC_TWILIO_AUTH_TOKEN": "abcd1234"})
    assert settings.secrets() == ["abcd1234"]


def test_call_without_audio_or_text_is_a_usage_error() -> None:
    result = run_cli("call", "--url", "ws://127.0.0.1:9/twilio/stream")
    assert result.returncode == 2
    assert "--audio" in result.stderr and "--say" in result.stderr
