"""The connector's commands: check the config, place a simulated call, load a node.

The `voice-connector` command (installed by media-node, which adds `run`) is this parser plus
`run`; `python -m voice_connector.cli` gives these commands alone.

voice-connector config check [--config FILE]   validate; print every problem; exit 2 if any
voice-connector config show  [--config FILE]   effective config (env applied, secrets hidden)
voice-connector config migrate OLD.ini          an OpenSIPS AI Voice Connector INI, in this format
voice-connector call --audio FILE.wav          a simulated Twilio caller
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

from voice_connector_core.config import ConfigError, Settings, load_settings

EXIT_CONFIG = 2


def load_or_exit(path: str | None) -> Settings:
    """The settings, or every problem printed and exit code 2."""
    try:
        return load_settings(path, require_file=path is not None)
    except ConfigError as exc:
        print(f"configuration invalid ({len(exc.problems)} problems):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


def _config(args: argparse.Namespace) -> int:
    if args.action == "migrate":
        return _migrate(args.file or args.config)
    settings = load_or_exit(args.config)
    if args.action == "check":
        print(f"configuration OK ({settings.source})")
        return 0
    for section, values in settings.redacted().items():
        print(f"[{section}]")
        for key, value in values.items():
            print(f"{key} = {value}")
        print()
    return 0


def _migrate(path: str | None) -> int:
    from voice_connector_core.config.loader import migrate

    if not path:
        print("give the file to migrate: voice-connector config migrate OLD.ini", file=sys.stderr)
        return EXIT_CONFIG
    try:
        print(migrate(path), end="")
    except ConfigError as exc:
        print(f"cannot migrate ({len(exc.problems)} problems):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_CONFIG
    return 0


def _spoken(text: str) -> Path:
    """`text` spoken by the bundled Piper voice, as a WAV the caller can send."""
    import tempfile
    import wave

    from voice_connector.services import shared_models
    from voice_connector_core import models

    voice = shared_models.piper_voice(*models.piper_joe_voice())
    path = Path(tempfile.mkstemp(prefix="caller-", suffix=".wav")[1])
    with wave.open(str(path), "wb") as wav:
        voice.synthesize_wav(text, wav)
    return path


def _call(args: argparse.Namespace) -> int:
    from voice_connector.caller.twilio_caller import CallerOptions, place_call

    audio = [Path(p) for p in args.audio or []] + [_spoken(text) for text in args.say or []]
    if not audio:
        print("give --audio FILE.wav or --say TEXT (once per turn)", file=sys.stderr)
        return 2
    options = CallerOptions(
        audio=audio,
        url=args.url,
        flavor=args.flavor,
        called=args.to,
        out=Path(args.out) if args.out else None,
        answer_timeout=args.answer_timeout,
        dtmf=args.dtmf,
    )
    result = asyncio.run(place_call(options))
    print(result.report())
    return 0 if result.ok else 1


def _load_test(args: argparse.Namespace) -> int:
    from voice_connector.loadtest.runner import LoadOptions, UnsafeTarget, run_load

    if args.transport != "twilio":
        from voice_connector.loadtest.sip_load import run_sip_load

        if args.allow_remote_target:
            print("SIP loads drive a local OpenSIPS double: loopback only", file=sys.stderr)
            return 2

        return run_sip_load(args)
    try:
        report = asyncio.run(run_load(LoadOptions.from_args(args, args.url)))
    except UnsafeTarget as exc:
        print(exc, file=sys.stderr)
        return 2
    print(report.table())
    return 0 if report.completed else 1


CommandAdder = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


def build_parser(more_commands: CommandAdder | None = None) -> argparse.ArgumentParser:
    """The commands' parser; `more_commands` adds an app's own (media-node adds `run`)."""
    parser = argparse.ArgumentParser(prog="voice-connector", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    if more_commands is not None:
        more_commands(commands)

    config = commands.add_parser("config", help="check or show the configuration")
    config.add_argument("action", choices=["check", "show", "migrate"])
    config.add_argument("file", nargs="?", help="migrate: the file in the old format")
    config.add_argument("--config", help="INI file (default cfg/voice-connector.ini)")
    config.set_defaults(func=_config)

    call = commands.add_parser("call", help="place a simulated Twilio call")
    call.add_argument("--audio", nargs="+", help="WAV file(s), one per turn")
    call.add_argument("--say", action="append", help="a sentence to speak (Piper), per turn")
    call.add_argument("--url", default="ws://127.0.0.1:8080/twilio/stream")
    call.add_argument("--flavor", default="", help="sent as <Parameter name=flavor>")
    call.add_argument("--to", default="", help="called number, sent as <Parameter name=called>")
    call.add_argument("--out", help="write what the bot said to this WAV")
    call.add_argument("--answer-timeout", type=float, default=60.0, help="seconds per answer")
    call.add_argument("--dtmf", default="", help="digits to press after the audio")
    call.set_defaults(func=_call)

    load = commands.add_parser("load", help="load a running node with simulated calls")
    load.add_argument("--calls", type=int, default=10, help="calls to place in all")
    load.add_argument("--concurrency", type=int, default=5, help="calls at once, at most")
    load.add_argument("--transport", choices=["twilio", "sip"], default="twilio")
    load.add_argument("--duration", type=float, default=120.0, help="no new call after this (s)")
    load.add_argument("--rate", type=float, default=0.0, help="new calls per second (0: at once)")
    load.add_argument("--url", default="ws://127.0.0.1:8080/twilio/stream", help="Twilio stream")
    load.add_argument("--node", default="http://127.0.0.1:8080", help="SIP: the node's HTTP URL")
    load.add_argument("--mi-port", type=int, default=8080, help="SIP: [opensips] mi_port")
    load.add_argument(
        "--node-workers", type=int, default=1, help="SIP: the node's [general] workers"
    )
    load.add_argument("--audio", required=True, help="WAV the callers say")
    load.add_argument(
        "--allow-remote-target",
        default="",
        metavar="HOST",
        help="load a deployed node: the Twilio --url's host must be exactly HOST "
        "(default: loopback only)",
    )
    load.set_defaults(func=_load_test)
    return parser


def main(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    """Parse and run one command (`parser`: this one with more commands added)."""
    args = (parser or build_parser()).parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
