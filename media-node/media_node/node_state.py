"""What the node's readiness is made of: each dependency's status, asked or reported, by name.

Models (loaded once), the AI services each flavor needs (probed in the background), live checks
(the bundled LLM server's supervisor), each transport provider, draining. Admission asks
`serving()`; `/readyz` reports `ready()`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from media_node.calls import CallRegistry
from media_node.health import flavor_needs, optional_probes
from voice_connector.transports.base import TransportProvider
from voice_connector_core.config import Settings

LiveCheck = Callable[[], tuple[bool, str]]
"""A readiness check asked at the moment (e.g. the bundled LLM server's supervisor)."""


class NodeState:
    """What `/readyz` reports: each dependency's status, by name."""

    def __init__(
        self, live: dict[str, LiveCheck] | None = None, settings: Settings | None = None
    ) -> None:
        """`settings`: whose flavors' services are checked apart from the default flavor's."""
        self.checks: dict[str, tuple[bool, str]] = {"models": (False, "loading")}
        self.changed = asyncio.Event()
        """Set whenever a check is reported (for tasks waiting on one)."""
        self.live = dict(live or {})
        self.optional = optional_probes(settings) if settings else set()
        self.needs = flavor_needs(settings) if settings else {}
        self.flavor_names = set(settings.flavors) if settings else set()

    def set(self, name: str, ok: bool, why: str = "ok") -> None:
        self.checks[name] = (ok, why)
        self.changed.set()

    async def wait_for(self, *names: str) -> None:
        """Until every named check passes."""
        while not all(self.checks.get(name, (False, ""))[0] for name in names):
            self.changed.clear()
            await self.changed.wait()

    def services(self) -> dict[str, tuple[bool, str]]:
        """Models and the AI services the default flavor's calls need: what admission asks
        before taking a call. Services only other flavors use are left out (`outage`)."""
        required = {n: c for n, c in self.checks.items() if n not in self.optional}
        return {**required, **{name: check() for name, check in self.live.items()}}

    def outage(self, flavor: str) -> str:
        """Why `flavor`'s own services are down ("" while they answer or are still checked)."""
        names = self.needs.get(flavor if flavor in self.flavor_names else "", set())
        failing = [
            f"{name}: {self.checks[name][1]}"
            for name in sorted(names & self.optional)
            if self.checks.get(name, (True, ""))[1] != "checking" and not self.checks[name][0]
        ]
        return "; ".join(failing)

    def serving(self) -> tuple[bool, str]:
        """(calls can be answered, why not): every model and service check passes."""
        failing = [f"{n}: {why}" for n, (ok, why) in self.services().items() if not ok]
        return not failing, "; ".join(failing) or "ok"

    def ready(self, providers: list[TransportProvider], registry: CallRegistry) -> dict[str, Any]:
        checks = self.services()
        for provider in providers:
            checks[f"transport:{provider.name}"] = provider.readiness()
        checks["draining"] = (not registry.draining, "draining" if registry.draining else "ok")
        return {
            "ready": all(ok for ok, _ in checks.values()),
            "checks": {name: {"ok": ok, "detail": why} for name, (ok, why) in checks.items()},
            "flavors": {
                name: {"ok": not (why := self.outage(name)), "detail": why or "ok"}
                for name in sorted(self.flavor_names)
            },
            "active_calls": registry.count,
        }
