"""`voice-connector`: the connector's commands plus `run`, the media node itself.

voice-connector run [--config FILE] [--no-local-llm]   the media node (starts a local LLM if needed)

`run` lives here, with the app it serves; the other commands come from `voice_connector.cli`.
"""

from __future__ import annotations

import argparse

from voice_connector.cli import build_parser, load_or_exit
from voice_connector.cli import main as run_command


def _run(args: argparse.Namespace) -> int:
    from media_node.runner import run_node

    return run_node(load_or_exit(args.config), start_local_llm_server=not args.no_local_llm)


def add_run(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `run` command."""
    run = commands.add_parser("run", help="run the media node")
    run.add_argument("--config", help="INI file (default cfg/voice-connector.ini)")
    run.add_argument(
        "--no-local-llm",
        action="store_true",
        help="never start the bundled Ollama-API server, even if no Ollama answers",
    )
    run.set_defaults(func=_run)


def main(argv: list[str] | None = None) -> int:
    return run_command(argv, build_parser(add_run))


if __name__ == "__main__":
    raise SystemExit(main())
