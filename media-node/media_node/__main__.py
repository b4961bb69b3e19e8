"""`python -m media_node [COMMAND]`: the `voice-connector` command; with no command, `run`."""

import sys

from media_node.cli import main as cli_main


def main() -> None:
    raise SystemExit(cli_main(sys.argv[1:] or ["run"]))


if __name__ == "__main__":
    main()
