"""The one model an Ollama-API app serves, and how its route handlers reach it.

`ollama_api.build_app` puts a `ServedModel` in `app.state.served`; handlers declare a `Served`
parameter (the `served_model` dependency) instead of closing over it, so each router runs on
any app carrying that state, e.g. a bare app with a stand-in engine in a test.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request

from ai_services.errors import ServiceError
from ai_services.llm_engine import GenerationParams, GenerationStats, ModelInfo
from ai_services.model_slot import ModelSlot


class ChatEngine(Protocol):
    """What the routes use of `llm_engine.LlamaEngine`."""

    gguf: Path
    n_ctx: int
    model: ModelSlot[Any]
    info: ModelInfo | None

    async def stream_chat(
        self,
        messages: list[dict[str, Any]],
        params: GenerationParams,
        tools: list[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> AsyncIterator[str | GenerationStats]: ...

    async def stream_completion(
        self, prompt: str, params: GenerationParams
    ) -> AsyncIterator[str | GenerationStats]: ...


def normalize_name(name: str) -> str:
    """Ollama's name matching: registry prefix optional, tag defaults to `latest`."""
    name = name.strip().lower()
    for prefix in ("registry.ollama.ai/library/", "registry.ollama.ai/", "library/"):
        name = name.removeprefix(prefix)
    if ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name


@dataclass
class ServedModel:
    """`engine` answering to `name` (the name clients ask for, matched the way Ollama does)."""

    engine: ChatEngine
    name: str

    def resolve(self, body: dict[str, Any]) -> str:
        """The model name the request asked for: 400 if missing, 404 if not the served one."""
        name = body.get("model") or body.get("name")
        if not name or not isinstance(name, str):
            raise ServiceError(400, "model is required")
        if normalize_name(name) != normalize_name(self.name):
            raise ServiceError(404, f"model '{name}' not found")
        return name

    async def load(self) -> int:
        """Wait for the model; the wait is Ollama's `load_duration` (ns)."""
        started = time.perf_counter_ns()
        await self.engine.model.get()
        return time.perf_counter_ns() - started

    async def loaded_info(self) -> ModelInfo:
        """The GGUF's description, once the model is loaded (waits for it)."""
        await self.engine.model.get()
        info = self.engine.info
        assert info is not None, "the engine describes its model when it loads it"
        return info

    def listing(self, info: ModelInfo) -> dict[str, Any]:
        """The model as `/api/tags` and `/api/ps` list it."""
        return {
            "name": self.name,
            "model": self.name,
            "modified_at": info.modified_at,
            "size": info.size,
            "digest": info.digest,
            "details": info.details,
        }


async def served_model(request: Request) -> ServedModel:
    """The app's `ServedModel` (async: a plain accessor needs no worker thread)."""
    served: ServedModel = request.app.state.served
    return served


Served = Annotated[ServedModel, Depends(served_model)]
