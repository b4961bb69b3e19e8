"""Which services gate readiness: the default flavor's; other flavors' are watched apart."""

from __future__ import annotations

from pathlib import Path

from media_node.health import DependencyMonitor, flavor_needs, optional_probes
from media_node.node_state import NodeState
from voice_connector_core.config import load_settings

CONFIG = """
[general]
default_flavor = default
[llm]
url = http://127.0.0.1:11434
[flavor:retired]
llm.provider = llama_ws
llm.url = ws://127.0.0.1:9
tts.mode = remote
tts.url = ws://127.0.0.1:9/tts
[flavor:sales]
llm.system_prompt = Sell.
"""


def settings(tmp_path: Path, default: str = "default"):  # type: ignore[no-untyped-def]
    path = tmp_path / "vc.ini"
    path.write_text(CONFIG.replace("default_flavor = default", f"default_flavor = {default}"))
    return load_settings(path, env={})


def test_only_the_services_no_default_call_needs_are_optional(tmp_path: Path) -> None:
    config = settings(tmp_path)
    assert flavor_needs(config) == {"": {"llm"}, "retired": {"llm@retired", "tts@retired"},
                                    "sales": {"llm"}}  # fmt: skip
    assert optional_probes(config) == {"llm@retired", "tts@retired"}
    # With the retired flavor as the default, the shared Ollama becomes the optional one.
    assert optional_probes(settings(tmp_path, "retired")) == {"llm"}


def test_a_down_optional_service_marks_its_flavor_not_the_node(tmp_path: Path) -> None:
    state = NodeState(settings=settings(tmp_path))
    state.set("models", True)
    state.set("llm", True)
    state.set("tts@retired", True)
    state.set("llm@retired", False, "checking")
    assert state.outage("retired") == "", "not down before a probe has failed"
    state.set("llm@retired", False, "ws://127.0.0.1:9 unreachable")
    assert state.serving() == (True, "ok")
    assert state.outage("retired") == "llm@retired: ws://127.0.0.1:9 unreachable"
    assert state.outage("sales") == state.outage("default") == state.outage("unknown") == ""
    state.set("llm", False, "Ollama down")
    assert state.serving()[0] is False, "the default flavor's LLM gates admission"


async def test_only_required_failures_speed_up_probing() -> None:
    async def ok() -> tuple[bool, str]:
        return True, "ok"

    async def down() -> tuple[bool, str]:
        return False, "unreachable"

    reports: list[str] = []
    probes = {"llm": ok, "llm@retired": down}
    relaxed = DependencyMonitor(probes, lambda n, *_: reports.append(n), optional={"llm@retired"})
    assert await relaxed.check_once() is True
    assert await DependencyMonitor(probes, lambda *_: None).check_once() is False
    assert reports.count("llm@retired") == 2  # "checking", then the failed probe
