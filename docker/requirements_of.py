"""Print a pyproject's requirements (with extras), minus some: `pip install -r` them.

    python docker/requirements_of.py packages/ai_services/pyproject.toml whisper \
        --exclude voice-connector

Why: the AI service images need only `voice_connector.models` (stdlib) from the connector, but
pip resolves an installed package's dependencies too, so `ai_services` is installed --no-deps
and its own requirements from here (the pyproject stays the single list).
"""

import argparse
import re
import tomllib


def requirement_name(requirement: str) -> str:
    """The normalized distribution name of a PEP 508 requirement."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    return re.sub(r"[-_.]+", "-", match[1]).lower() if match else ""


def requirements(pyproject: str, extras: list[str], exclude: list[str]) -> list[str]:
    with open(pyproject, "rb") as file:
        project = tomllib.load(file)["project"]
    wanted = list(project.get("dependencies", []))
    for extra in extras:
        wanted += project.get("optional-dependencies", {})[extra]
    skip = {requirement_name(name) for name in exclude}
    return [req for req in wanted if requirement_name(req) not in skip]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pyproject")
    parser.add_argument("extras", nargs="*")
    parser.add_argument("--exclude", action="append", default=[])
    args = parser.parse_args()
    print("\n".join(requirements(args.pyproject, args.extras, args.exclude)))
