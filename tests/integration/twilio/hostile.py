"""A raw Twilio Media Streams peer that misbehaves on purpose, and ways to watch the node."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
import httpx
from loguru import logger

from tests.integration.twilio.stream_client import start_message
from voice_connector_core.logs import setup_logging


def media(payload: bytes) -> str:
    return json.dumps(
        {
            "event": "media",
            "streamSid": "MZhostile",
            "media": {"track": "inbound", "payload": base64.b64encode(payload).decode()},
        }
    )


async def connect(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
) -> aiohttp.ClientWebSocketResponse:
    return await session.ws_connect(url, headers=headers or {}, autoping=True)


async def started(
    session: aiohttp.ClientSession, url: str, call_sid: str, parameters: dict | None = None
) -> aiohttp.ClientWebSocketResponse:
    """A stream past `connected` and `start` (the node has built the call or will refuse it)."""
    ws = await connect(session, url)
    await ws.send_str(json.dumps({"event": "connected", "protocol": "Call"}))
    await ws.send_str(start_message(call_sid, parameters))
    return ws


async def closed_within(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> bool:
    """Whether the node closes `ws` within `seconds` (messages it sends are skipped)."""
    try:
        while True:
            message = await ws.receive(timeout=seconds)
            if message.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.CLOSING,
            ):
                return True
    except TimeoutError:
        return False


async def dropped(base: str, surface: str, reason: str) -> float:
    """`voice_connector_input_dropped_total{surface, reason}` from the node's /metrics."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{base}/metrics")).text
    pattern = (
        rf'^voice_connector_input_dropped_total\{{(?=[^}}]*surface="{surface}")'
        rf'(?=[^}}]*reason="{reason}")[^}}]*\}} ([0-9.e+]+)$'
    )
    match = re.search(pattern, text, re.M)
    return float(match.group(1)) if match else 0.0


@contextmanager
def node_log(level: str = "INFO") -> Iterator[io.StringIO]:
    """What the node logs, through the production sink (redaction included), in a buffer."""
    root = logging.getLogger()
    handlers, root_level = list(root.handlers), root.level
    buffer = io.StringIO()
    setup_logging(level, "console", ["tw-auth-token-7f3a9c1e5b"], stream=buffer)
    try:
        yield buffer
    finally:
        logger.remove()
        logger.configure(extra={}, patcher=None)
        logger.add(sys.stderr)
        root.handlers[:] = handlers
        root.setLevel(root_level)


def rss_mb() -> float:
    """Resident memory of this process (the in-process node included), in MB."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


MODEL_LOAD_SECONDS = 120.0


async def models_loaded(node) -> None:  # type: ignore[no-untyped-def]
    """Wait until the in-process node has loaded its models (loading competes for the CPU and
    grows memory: measurements start after it)."""
    for _ in range(int(MODEL_LOAD_SECONDS / 0.2)):
        if node.app.state.node.checks["models"][0]:
            return
        await asyncio.sleep(0.2)
    raise TimeoutError("models not loaded")
