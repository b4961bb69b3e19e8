"""Ollama's generation routes: `POST /api/chat` and `POST /api/generate`.

Both stream NDJSON lines (`message` objects for chat, `response` text for generate) ending in a
`done: true` line with Ollama's timing fields, or answer one JSON object for `stream: false`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from ai_services.errors import QueueFullError, ServiceError
from ai_services.llm_engine import (
    GenerationParams,
    GenerationStats,
    ToolCallFilter,
    check_messages,
    check_tools,
    tool_names,
)
from ai_services.request_body import read_json
from ai_services.served_model import Served, ServedModel

log = logging.getLogger("ai_services.ollama")
BUSY = "server busy, please try again.  maximum pending requests exceeded"
router = APIRouter()


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def ndjson(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj, ensure_ascii=False) + "\n").encode()


def response_format(fmt: object) -> dict[str, Any] | None:
    """Ollama `format` ("json" or a JSON schema) -> llama.cpp `response_format`."""
    if fmt in (None, ""):
        return None
    if fmt == "json":
        return {"type": "json_object"}
    if isinstance(fmt, dict):
        return {"type": "json_object", "schema": fmt}
    raise ServiceError(400, f'format must be "json" or a JSON schema, got {fmt!r}')


def final(stats: GenerationStats) -> dict[str, Any]:
    """The closing line's fields, in Ollama's order."""
    fields = stats.as_ollama()
    return {"done_reason": fields.pop("done_reason"), "done": True, **fields}


@dataclass
class Reply:
    """One generation's output as Ollama lines: `key` is "message" (chat) or "response"."""

    model: str
    key: str

    def piece(self, text: str, **extra: Any) -> dict[str, Any]:
        value: Any = text
        if self.key == "message":
            value = {"role": "assistant", "content": text, **extra}
        return {"model": self.model, "created_at": now_iso(), self.key: value}

    async def lines(
        self,
        tokens: AsyncIterator[str | GenerationStats],
        filt: ToolCallFilter | None,
        load_ns: int,
    ) -> AsyncIterator[dict[str, Any]]:
        """A `done: false` line per text piece (tool calls held back by `filt`), then the last."""
        async with aclosing(tokens):
            async for item in tokens:
                if isinstance(item, GenerationStats):
                    item.load_duration = load_ns
                    if filt is not None:
                        rest, calls = filt.finish()
                        if rest or calls:
                            extra = {"tool_calls": calls} if calls else {}
                            yield {**self.piece(rest, **extra), "done": False}
                    yield {**self.piece(""), **final(item)}
                    return
                text = filt.feed(item) if filt is not None else item
                if text:
                    yield {**self.piece(text), "done": False}

    async def collect(self, lines: AsyncIterator[dict[str, Any]]) -> dict[str, Any]:
        """The `stream: false` answer: the last line carrying all the text (and tool calls)."""
        text, extra, last = "", {}, {}
        async for line in lines:
            if line.get("done"):
                last = line
            else:
                value = line[self.key]
                text += value["content"] if self.key == "message" else value
                if self.key == "message" and value.get("tool_calls"):
                    extra["tool_calls"] = value["tool_calls"]
        return {**last, **self.piece(text, **extra)}


async def ndjson_stream(lines: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    """The lines as NDJSON; an error mid-stream becomes an `{"error"}` line, as Ollama does."""
    try:
        async for line in lines:
            yield ndjson(line)
    except Exception as exc:
        log.exception("generation failed")
        yield ndjson({"error": str(exc)})


async def generate(
    served: ServedModel,
    body: dict[str, Any],
    messages: list[dict[str, Any]] | None,
    prompt: str | None,
    key: str,
) -> Response:
    """Run chat `messages` or a raw `prompt` and answer in Ollama's shape (see `Reply`)."""
    name = served.resolve(body)
    params = GenerationParams.from_options(body.get("options"))
    stream = body.get("stream", True) is not False
    tools = check_tools(body.get("tools"))
    fmt = response_format(body.get("format"))
    load_ns = await served.load()
    reply = Reply(name, key)
    if (messages is not None and not messages) or (prompt is not None and not prompt):
        return JSONResponse({**reply.piece(""), "done_reason": "load", "done": True})
    try:
        if messages is not None:
            tokens = await served.engine.stream_chat(messages, params, tools, fmt)
        else:
            assert prompt is not None
            tokens = await served.engine.stream_completion(prompt, params)
    except QueueFullError:
        raise ServiceError(503, BUSY, "server_busy") from None
    filt = ToolCallFilter(tool_names(tools)) if tools and key == "message" else None
    lines = reply.lines(tokens, filt, load_ns)
    if stream:
        return StreamingResponse(ndjson_stream(lines), media_type="application/x-ndjson")
    return JSONResponse(await reply.collect(lines))


@router.post("/api/chat")
async def chat(request: Request, served: Served) -> Response:
    body = await read_json(request)
    served.resolve(body)
    messages = check_messages(body.get("messages") or [])
    return await generate(served, body, messages, None, "message")


@router.post("/api/generate")
async def generate_route(request: Request, served: Served) -> Response:
    body = await read_json(request)
    served.resolve(body)
    prompt = body.get("prompt") or ""
    if not isinstance(prompt, str):
        raise ServiceError(400, "prompt must be a string")
    if body.get("raw"):
        return await generate(served, body, None, prompt, "response")
    messages = []
    if prompt:  # no prompt: Ollama only loads the model
        if isinstance(body.get("system"), str) and body["system"]:
            messages.append({"role": "system", "content": body["system"]})
        messages.append({"role": "user", "content": prompt})
    return await generate(served, body, messages, None, "response")
