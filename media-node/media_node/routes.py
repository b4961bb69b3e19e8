"""The node's own HTTP routes: liveness, readiness, metrics, call records.

A module-level router whose handlers find the node in `request.app.state.node_parts` (set by
`create_app`), so each can be mounted and tested on a bare app with the parts it needs.
`/metrics`, `/calls/{id}` and the details of `/readyz` are private (access.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from media_node.access import PrivateAccess
from media_node.calls import CallRegistry
from media_node.health import SharedReadiness
from media_node.node_state import NodeState
from voice_connector.telemetry import metrics as node_metrics
from voice_connector.transports.base import TransportProvider


@dataclass
class NodeParts:
    """What the node's routes and its drain act on: one process's state, calls and providers."""

    state: NodeState
    registry: CallRegistry
    providers: list[TransportProvider]
    access: PrivateAccess
    workers: SharedReadiness | None = None
    """In a node of several workers: every worker's published verdict."""

    def readiness(self) -> dict[str, Any]:
        """This worker's checks, and in a node of several workers every worker's verdict."""
        body = self.state.ready(self.providers, self.registry)
        if self.workers is not None:
            ok, why = self.workers.node()
            body["checks"]["workers"] = {"ok": ok, "detail": why}
            body["ready"] = body["ready"] and ok
        return body

    def own_verdict(self) -> tuple[bool, str]:
        """(ready, failing checks) of this worker alone: what it publishes to the others."""
        body = self.state.ready(self.providers, self.registry)
        failing = [f"{n}: {c['detail']}" for n, c in body["checks"].items() if not c["ok"]]
        return body["ready"], "; ".join(failing) or "ok"

    async def drain(self, grace_seconds: float) -> bool:
        """SIGTERM (see lifecycle): refuse new calls on every provider, let active ones finish."""
        for provider in self.providers:
            provider.refuse_new_calls()
        return await self.registry.drain(grace_seconds)


def node_parts(request: Request) -> NodeParts:
    """FastAPI dependency: the node serving this request."""
    parts: NodeParts = request.app.state.node_parts
    return parts


def private(request: Request) -> None:
    """FastAPI dependency of the private routes: 401 unless the client may read them."""
    node_parts(request).access.require(request)


Parts = Annotated[NodeParts, Depends(node_parts)]
router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "alive"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """The status code for anyone (probes); which check fails only for private clients."""
    parts = node_parts(request)
    body = parts.readiness()
    if not parts.access.allows(request):
        body = {"ready": body["ready"]}
    return JSONResponse(body, status_code=200 if body["ready"] else 503)


@router.get("/metrics", dependencies=[Depends(private)])
async def metrics(parts: Parts) -> PlainTextResponse:
    body = parts.readiness()
    node_metrics.refresh_node(body["ready"], {p.name: p.readiness()[0] for p in parts.providers})
    return PlainTextResponse(
        generate_latest(node_metrics.scrape_registry()), media_type=CONTENT_TYPE_LATEST
    )


@router.get("/calls/{call_id}", dependencies=[Depends(private)])
async def call_record(call_id: str, parts: Parts) -> dict[str, Any]:
    record = parts.registry.get_json(call_id)
    if record is None:
        raise HTTPException(404, f"no call {call_id}")
    return record
