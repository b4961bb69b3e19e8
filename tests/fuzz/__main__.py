"""`python -m tests.fuzz [--long] [--seed N] [pytest args]`: the fuzz suite in one command.

`--long` runs at least 10,000 inputs per surface (`VC_FUZZ_LONG=1`); `--seed` replays a run
(`VC_FUZZ_SEED`). Without them it is the short run CI does on every change.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pytest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__)
    parser.add_argument("--long", action="store_true", help="at least 10,000 inputs per surface")
    parser.add_argument("--seed", type=int, help="seed of the run to replay")
    args, rest = parser.parse_known_args(argv)
    if args.long:
        os.environ["VC_FUZZ_LONG"] = "1"
    if args.seed is not None:
        os.environ["VC_FUZZ_SEED"] = str(args.seed)
    return int(pytest.main([str(Path(__file__).parent), "-p", "no:randomly", *rest]))


if __name__ == "__main__":
    sys.exit(main())
