"""Ollama's model-management routes: `/`, version, tags, ps, show and pull.

The server has one model and nothing to download, so these describe it (pull "succeeds" for
it and fails, with Ollama's message, for any other name).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from ai_services.errors import ServiceError
from ai_services.llm_engine import ModelInfo
from ai_services.ollama_generation import ndjson
from ai_services.request_body import read_json
from ai_services.served_model import Served

OLLAMA_VERSION = "0.12.0"
NEVER_EXPIRES = "2318-01-01T00:00:00Z"  # what Ollama reports for keep_alive < 0
NO_MANIFEST = "pull model manifest: file does not exist"
router = APIRouter()


@router.api_route("/", methods=["GET", "HEAD"])
async def root() -> PlainTextResponse:
    return PlainTextResponse("Ollama is running")


@router.get("/api/version")
async def version() -> dict[str, str]:
    return {"version": OLLAMA_VERSION}


@router.get("/api/tags")
async def tags(served: Served) -> dict[str, Any]:
    return {"models": [served.listing(await served.loaded_info())]}


@router.get("/api/ps")
async def ps(served: Served) -> dict[str, Any]:
    if not served.engine.model.ready:
        return {"models": []}
    running = {
        **served.listing(await served.loaded_info()),
        "expires_at": NEVER_EXPIRES,
        "size_vram": 0,
        "context_length": served.engine.n_ctx,
    }
    return {"models": [running]}


def model_info(metadata: dict[str, str]) -> dict[str, Any]:
    """GGUF metadata as `/api/show` reports it: numbers as numbers, the tokenizer left out."""
    out: dict[str, Any] = {}
    for k, v in metadata.items():
        if k.startswith("tokenizer."):
            continue
        try:
            out[k] = int(v) if v.lstrip("-").isdigit() else float(v)
        except ValueError:
            out[k] = v
    return out


@router.post("/api/show")
async def show(request: Request, served: Served) -> dict[str, Any]:
    body = await read_json(request)
    served.resolve(body)
    info = await served.loaded_info()
    capabilities = ["completion"]
    if "tools" in info.chat_template:
        capabilities.append("tools")
    return {
        "license": info.metadata.get("general.license", ""),
        "modelfile": f"# Modelfile served by ai_services.ollama_api\nFROM {info.path}\n",
        "parameters": "",
        "template": info.chat_template,
        "details": info.details,
        "model_info": model_info(info.metadata),
        "capabilities": capabilities,
        "modified_at": info.modified_at,
    }


def pull_progress(info: ModelInfo) -> list[dict[str, Any]]:
    """The progress lines of a pull that finds the model already complete."""
    return [
        {"status": "pulling manifest"},
        {
            "status": f"pulling {info.digest[:12]}",
            "digest": f"sha256:{info.digest}",
            "total": info.size,
            "completed": info.size,
        },
        {"status": "verifying sha256 digest"},
        {"status": "writing manifest"},
        {"status": "success"},
    ]


@router.post("/api/pull")
async def pull(request: Request, served: Served) -> Response:
    body = await read_json(request)
    stream = body.get("stream", True) is not False
    try:
        served.resolve(body)
    except ServiceError as exc:
        if exc.status != 404:
            raise
        if not stream:
            raise ServiceError(500, NO_MANIFEST) from None
        lines = [{"status": "pulling manifest"}, {"error": NO_MANIFEST}]
    else:
        lines = pull_progress(await served.loaded_info())
    if not stream:
        return JSONResponse(lines[-1])

    async def body_stream() -> AsyncIterator[bytes]:
        for line in lines:
            yield ndjson(line)

    return StreamingResponse(body_stream(), media_type="application/x-ndjson")
