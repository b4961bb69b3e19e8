"""The load tool's target opt-in: loopback by default; a deployed node only when the operator
names its host exactly. Only the validation is exercised: no traffic leaves this machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from voice_connector.cli import build_parser, main
from voice_connector.loadtest.runner import LoadOptions, UnsafeTarget, check_target, run_load

DEPLOYED = "wss://voice.example.com/twilio/stream"


def test_a_deployed_node_is_refused_without_the_flag_and_the_refusal_says_how() -> None:
    with pytest.raises(UnsafeTarget, match=r"--allow-remote-target voice\.example\.com"):
        check_target(DEPLOYED)


@pytest.mark.parametrize(
    "allowed", ["voice.example.com", "VOICE.example.com", "voice.example.com."]
)
def test_a_deployed_node_is_accepted_when_its_host_is_named(allowed: str) -> None:
    check_target(DEPLOYED, allowed)


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        (DEPLOYED, "example.com"),  # a parent domain names no deployment
        ("wss://voice.example.com.attacker.net/x", "voice.example.com"),
        ("ws://10.0.0.5:8080/x", "10.0.0.6"),
        ("ws://192.168.1.2/", "voice.example.com"),
    ],
)
def test_only_the_named_host_is_accepted(url: str, allowed: str) -> None:
    with pytest.raises(UnsafeTarget):
        check_target(url, allowed)


@pytest.mark.parametrize("url", ["ws://127.0.0.1:8080/x", "ws://localhost:1/x", "ws://[::1]:80/"])
def test_loopback_stays_accepted_with_or_without_the_flag(url: str) -> None:
    check_target(url)
    check_target(url, "voice.example.com")


def test_the_flag_reaches_the_load_options() -> None:
    args = build_parser().parse_args(
        [
            "load",
            "--url",
            DEPLOYED,
            "--audio",
            "q.wav",
            "--allow-remote-target",
            "voice.example.com",
        ]
    )
    assert LoadOptions.from_args(args, args.url).allowed_host == "voice.example.com"
    default = build_parser().parse_args(["load", "--audio", "q.wav"])
    assert LoadOptions.from_args(default, default.url).allowed_host == ""


async def test_run_load_refuses_before_any_connection() -> None:
    with pytest.raises(UnsafeTarget):
        await run_load(LoadOptions(url=DEPLOYED, audio=Path("q.wav")))


def test_the_command_refuses_a_deployed_node_without_the_flag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["load", "--url", DEPLOYED, "--audio", "q.wav"]) == 2
    assert "--allow-remote-target voice.example.com" in capsys.readouterr().err


def test_sip_loads_stay_on_loopback(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["load", "--transport", "sip", "--audio", "q.wav", "--allow-remote-target", "h.example"]
    assert main(argv) == 2
    assert "loopback only" in capsys.readouterr().err
