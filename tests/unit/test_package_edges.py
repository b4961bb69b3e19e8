"""The packages' import edges: each imports only the packages it declares, none imports one that
depends on it, and no modules import each other in a circle (lazy and type-only imports count).

Layers, lowest first: `voice_connector_core` (no Pipecat, no models) ← `voice_connector` and
`ai_services` ← `media_node`; the Cloud Functions and the infra program see only the core.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "voice_connector_core": ROOT / "packages" / "core",
    "voice_connector": ROOT / "packages" / "voice_connector",
    "ai_services": ROOT / "packages" / "ai_services",
    "media_node": ROOT / "media-node",
}
DISTRIBUTIONS = {
    "voice_connector_core": "voice-connector-core",
    "voice_connector": "voice-connector",
    "ai_services": "voice-connector-ai-services",
    "media_node": "voice-connector-media-node",
}
MAY_IMPORT = {
    "voice_connector_core": set(),
    "voice_connector": {"voice_connector_core"},
    "ai_services": {"voice_connector_core"},
    "media_node": {"voice_connector_core", "voice_connector"},
}
CORE_THIRD_PARTY = {"pydantic", "loguru", "aiohttp", "twilio"}
"""All the core may import beyond the standard library: what a Cloud Function installs."""


def _imported_names(path: Path, package: str) -> Iterator[str]:
    """Every module name `path` imports, anywhere in the file (`from a import b` also gives a.b)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def _optional_imports(path: Path) -> set[str]:
    """Modules imported only inside `try: ... except ImportError:` (probed, not required)."""
    optional: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Try) and any(
            isinstance(h.type, ast.Name) and h.type.id in {"ImportError", "ModuleNotFoundError"}
            for h in node.handlers
        ):
            for inner in node.body:
                if isinstance(inner, ast.Import):
                    optional.update(alias.name for alias in inner.names)
    return optional


def _modules() -> dict[str, Path]:
    found = {}
    for top, base in PACKAGES.items():
        for path in (base / top).rglob("*.py"):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _first_party(name: str) -> str | None:
    """The first-party module `name` denotes (its longest known prefix), if any."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets = {_first_party(name) for name in _imported_names(path, package)}
        edges[module] = {
            t for t in targets if t and t != module and not module.startswith(f"{t}.")
        }
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_another_that_imports_it_back() -> None:
    assert _cycles(_edges()) == []


def test_the_cycle_finder_sees_a_lazy_import_circle() -> None:
    edges = {"a.x": {"a.y"}, "a.y": {"a.z"}, "a.z": {"a.x"}, "a.w": {"a.x"}}
    assert _cycles(edges) == [["a.x", "a.y", "a.z"]]


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_a_package_imports_only_the_layers_below_it(package: str) -> None:
    upward = sorted(
        f"{module} → {target}"
        for module, targets in _edges().items()
        if module.split(".")[0] == package
        for target in targets
        if target.split(".")[0] not in MAY_IMPORT[package] | {package}
    )
    assert upward == []


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_a_package_declares_the_first_party_packages_it_imports(package: str) -> None:
    project = tomllib.loads((PACKAGES[package] / "pyproject.toml").read_text())["project"]
    declared = {re.split(r"[\[<>=~! ]", dep)[0] for dep in project["dependencies"]}
    used = {
        target.split(".")[0]
        for module, targets in _edges().items()
        if module.split(".")[0] == package
        for target in targets
    } - {package}
    assert {DISTRIBUTIONS[name] for name in used} <= declared


def test_the_core_needs_no_pipecat_no_web_server_and_no_models() -> None:
    """Model engines may only be probed (a GPU check), never required."""
    stdlib = set(sys.stdlib_module_names)
    imported = {
        name.split(".")[0]
        for module, path in MODULES.items()
        if module.split(".")[0] == "voice_connector_core"
        for name in set(_imported_names(path, module.rpartition(".")[0])) - _optional_imports(path)
        if name
    }
    assert imported - stdlib - {"voice_connector_core"} <= CORE_THIRD_PARTY


@pytest.mark.parametrize("code", ["functions", "infra/voice_infra"])
def test_functions_and_infra_see_only_the_core(code: str) -> None:
    reached = {
        name.split(".")[0]
        for path in (ROOT / code).rglob("*.py")
        for name in _imported_names(path, "")
        if name.split(".")[0] in PACKAGES
    }
    assert reached <= {"voice_connector_core"}
