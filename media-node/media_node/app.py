"""The media node's HTTP server: Twilio routes, health, readiness, metrics, call records.

Start-up loads the in-process models (once, shared by all calls) and keeps probing the remote
services it needs (LLM, remote STT/TTS) in the background; `/readyz` says 503 until the models
are loaded, while any dependency of the default flavor fails, while any provider (e.g. the
OpenSIPS subscription) is unhealthy, and while draining (SIGTERM, see lifecycle.py). Services only
other flavors use do not gate it: while they are down, those flavors' calls hear an apology.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

from fastapi import FastAPI

from media_node import routes
from media_node.access import PrivateAccess
from media_node.calls import CallRegistry, SharedRecords
from media_node.health import DependencyMonitor, SharedReadiness, dependency_probes
from media_node.node_state import LiveCheck, NodeState
from media_node.routes import NodeParts
from voice_connector.pipeline.builder import ServicesFactory
from voice_connector.pipeline.warm_up import warm_up
from voice_connector.services import factory
from voice_connector.transports.factory import TransportFactory
from voice_connector_core.config import Settings
from voice_connector_core.logs import TraceContextMiddleware, set_phone_masking
from voice_connector_core.workers import WorkerShard

__all__ = ["NodeState", "create_app"]


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
    shared = SharedRecords(shared_dir / "calls") if shared_dir else None
    registry = CallRegistry(settings, services_override, shared)
    state = NodeState(checks, settings)
    if services_override is None:
        registry.serving = state.serving
        registry.outage = state.outage
    parts = NodeParts(
        state=state,
        registry=registry,
        providers=TransportFactory(settings, shard, shared_dir).create_all(),
        access=PrivateAccess(settings),
        workers=(
            SharedReadiness(shared_dir / "ready", shard.index, shard.count)
            if shared_dir and shard.count > 1
            else None
        ),
    )
    app = FastAPI(
        title="voice-connector media node",
        lifespan=partial(node_lifespan, settings, parts, warm=services_override is None),
    )
    app.add_middleware(TraceContextMiddleware)
    app.state.node_parts = parts
    app.state.registry = registry
    app.state.node = state
    app.state.providers = parts.providers
    app.state.drain = parts.drain
    for provider in parts.providers:
        for provider_router in provider.routers():
            app.include_router(provider_router)
    app.include_router(routes.router)
    return app


@asynccontextmanager
async def node_lifespan(
    settings: Settings, parts: NodeParts, app: FastAPI, *, warm: bool
) -> AsyncIterator[None]:
    """Load the models and probe the services in the background, start the providers, publish
    this worker's verdict; on shutdown stop them all. `warm`: warm the LLM's prompt cache (not
    with tests' own services)."""
    state = parts.state
    loading = asyncio.create_task(asyncio.to_thread(factory.preload, settings))
    loading.add_done_callback(
        lambda t: state.set("models", t.exception() is None, repr(t.exception() or "ok"))
    )
    monitor = DependencyMonitor(dependency_probes(settings), state.set, optional=state.optional)
    monitoring = asyncio.create_task(monitor.run())
    warming = asyncio.create_task(warm_up_when_ready(settings, state)) if warm else None
    registry = parts.registry
    for provider in parts.providers:
        await provider.start(registry.handle, registry.admit, registry.unanswered)
    publishing = (
        asyncio.create_task(parts.workers.keep_publishing(parts.own_verdict))
        if parts.workers is not None
        else None
    )
    try:
        yield
    finally:
        if publishing is not None:
            publishing.cancel()
        for provider in parts.providers:
            await provider.stop()
        monitoring.cancel()
        if warming is not None:
            warming.cancel()
