"""The media node's HTTP server: Twilio routes, health, readiness, metrics, call records.

Start-up loads the in-process models (once, shared by all calls) and keeps probing the remote
services it needs (LLM, remote STT/TTS) in the background; `/readyz` says 503 until the models
are loaded, while any dependency of the default flavor fails, while any provider (e.g. the
OpenSIPS subscription) is unhealthy, and while draining (SIGTERM, see lifecycle.py). Services only
other flavors use do not gate it: while they are down, those flavors' calls hear an apology.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from media_node.access import PrivateAccess
from media_node.calls import CallRegistry, SharedRecords
from media_node.health import (
    DependencyMonitor,
    SharedReadiness,
    dependency_probes,
    flavor_needs,
    optional_probes,
)
from voice_connector.pipeline.builder import ServicesFactory
from voice_connector.pipeline.warm_up import warm_up
from voice_connector.services import factory
from voice_connector.telemetry import metrics as node_metrics
from voice_connector.transports.base import TransportProvider
from voice_connector.transports.factory import TransportFactory
from voice_connector_core.config import Settings
from voice_connector_core.logs import TraceContextMiddleware, set_phone_masking
from voice_connector_core.workers import WorkerShard

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


async def warm_up_when_ready(settings: Settings, state: NodeState) -> None:
    """Once the models are loaded and the LLM answers, warm its prompt cache (pipeline/warm_up).

    Readiness does not wait for it: a call arriving meanwhile queues behind it at the LLM and
    finds the prefix evaluated all the same."""
    await state.wait_for("models", "llm")
    await warm_up(settings)


def create_app(
    settings: Settings,
    services_override: ServicesFactory | None = None,
    shard: WorkerShard | None = None,
    shared_dir: Path | None = None,
    checks: dict[str, LiveCheck] | None = None,
) -> FastAPI:
    """The FastAPI app of one media node process.

    In a node of several workers (`media_node.workers`), `shard` is this worker's share and
    `shared_dir` the directory the workers share (call records, spent call tokens). `checks`:
    readiness checks asked live (the bundled LLM server's state). While models or services are
    not ready, new calls are refused as when draining (SIP 503, Twilio busy); with
    `services_override` (tests' own services) the configured services are not the calls' own,
    so they do not gate admission.
    """
    shard = shard or WorkerShard()
    settings = shard.apply(settings)
    set_phone_masking(settings.general.mask_phone_numbers)
    access = PrivateAccess(settings)
    private = [Depends(access.require)]
    shared = SharedRecords(shared_dir / "calls") if shared_dir else None
    registry = CallRegistry(settings, services_override, shared)
    providers = TransportFactory(settings, shard, shared_dir).create_all()
    state = NodeState(checks, settings)
    if services_override is None:
        registry.serving = state.serving
        registry.outage = state.outage
    workers = (
        SharedReadiness(shared_dir / "ready", shard.index, shard.count)
        if shared_dir and shard.count > 1
        else None
    )

    def readiness() -> dict[str, Any]:
        """This worker's checks, and in a node of several workers every worker's verdict."""
        body = state.ready(providers, registry)
        if workers is not None:
            ok, why = workers.node()
            body["checks"]["workers"] = {"ok": ok, "detail": why}
            body["ready"] = body["ready"] and ok
        return body

    def own_verdict() -> tuple[bool, str]:
        body = state.ready(providers, registry)
        failing = [f"{n}: {c['detail']}" for n, c in body["checks"].items() if not c["ok"]]
        return body["ready"], "; ".join(failing) or "ok"

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        loading = asyncio.create_task(asyncio.to_thread(factory.preload, settings))
        loading.add_done_callback(
            lambda t: state.set("models", t.exception() is None, repr(t.exception() or "ok"))
        )
        monitor = DependencyMonitor(dependency_probes(settings), state.set, optional=state.optional)
        monitoring = asyncio.create_task(monitor.run())
        warming = (
            asyncio.create_task(warm_up_when_ready(settings, state))
            if services_override is None
            else None
        )
        for provider in providers:
            await provider.start(registry.handle, registry.admit, registry.unanswered)
        publishing = asyncio.create_task(workers.keep_publishing(own_verdict)) if workers else None
        try:
            yield
        finally:
            if publishing is not None:
                publishing.cancel()
            for provider in providers:
                await provider.stop()
            monitoring.cancel()
            if warming is not None:
                warming.cancel()

    app = FastAPI(title="voice-connector media node", lifespan=lifespan)
    app.add_middleware(TraceContextMiddleware)
    app.state.registry = registry
    app.state.node = state
    app.state.providers = providers

    for provider in providers:
        for router in provider.routers():
            app.include_router(router)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    async def drain(grace_seconds: float) -> bool:
        """SIGTERM (see lifecycle): refuse new calls on every provider, let active ones finish."""
        for provider in providers:
            provider.refuse_new_calls()
        return await registry.drain(grace_seconds)

    app.state.drain = drain

    @app.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        """The status code for anyone (probes); which check fails only for private clients."""
        body = readiness()
        if not access.allows(request):
            body = {"ready": body["ready"]}
        return JSONResponse(body, status_code=200 if body["ready"] else 503)

    @app.get("/metrics", dependencies=private)
    async def metrics() -> PlainTextResponse:
        body = readiness()
        node_metrics.refresh_node(body["ready"], {p.name: p.readiness()[0] for p in providers})
        return PlainTextResponse(
            generate_latest(node_metrics.scrape_registry()), media_type=CONTENT_TYPE_LATEST
        )

    @app.get("/calls/{call_id}", dependencies=private)
    async def call_record(call_id: str) -> dict[str, Any]:
        record = registry.get_json(call_id)
        if record is None:
            raise HTTPException(404, f"no call {call_id}")
        return record

    return app
