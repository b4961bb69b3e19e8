"""`python -m media_node`: run the media node (same as `voice-connector run`)."""

from voice_connector.cli import main as cli_main


def main() -> None:
    cli_main(["run"])


if __name__ == "__main__":
    main()
