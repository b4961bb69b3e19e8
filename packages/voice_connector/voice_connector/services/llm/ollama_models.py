"""Ollama model management at start-up: is the model there, and pull it if allowed.

Readiness depends on it: a node whose LLM has no model would answer every call with silence.
"""

from __future__ import annotations

import ollama
from loguru import logger


def _names(listing: ollama.ListResponse) -> set[str]:
    names: set[str] = set()
    for model in listing.models:
        if model.model:
            names.add(model.model)
            names.add(model.model.removesuffix(":latest"))
    return names


async def ensure_model(host: str, model: str, pull_missing: bool) -> tuple[bool, str]:
    """(ready, why): checks `/api/tags`; pulls a missing model when `pull_missing`."""
    client = ollama.AsyncClient(host=host, timeout=10)
    try:
        names = _names(await client.list())
    except (ollama.ResponseError, ollama.RequestError, ConnectionError, OSError) as exc:
        return False, f"Ollama at {host} unreachable: {exc}"
    except Exception as exc:  # httpx transport errors surface under several types
        return False, f"Ollama at {host} unreachable: {exc!r}"
    if model in names or model.removesuffix(":latest") in names:
        return True, "ok"
    if not pull_missing:
        return False, f"model {model!r} missing on {host} ([llm] pull_missing = false)"
    logger.info(f"pulling {model} from {host}")
    last_status = ""
    try:
        async for progress in await client.pull(model, stream=True):
            status = progress.status or ""
            if progress.total and progress.completed is not None:  # 0 % is progress too
                pct = 100 * progress.completed / progress.total
                status = f"{status} {pct:.0f}%"
            if status != last_status:
                logger.info(f"pull {model}: {status}")
                last_status = status
    except ollama.ResponseError as exc:
        return False, f"pull of {model!r} failed: {exc.error}"
    return True, "ok"
