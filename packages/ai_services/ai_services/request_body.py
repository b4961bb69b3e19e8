"""Reading request bodies with a size limit, so one oversized upload cannot exhaust memory."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from ai_services.errors import ServiceError


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds `limit` bytes (even if chunked)."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise ServiceError(413, f"request body larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise ServiceError(413, f"request body larger than {limit} bytes")
    return bytes(body)


async def read_json(request: Request, limit: int = 32 << 20) -> dict[str, Any]:
    """A JSON object body, or a 400 `ServiceError` saying what is wrong with it."""
    body = await read_body(request, limit)
    if not body.strip():
        raise ServiceError(400, "missing request body")
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise ServiceError(400, f"invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ServiceError(400, "request body must be a JSON object")
    return data
