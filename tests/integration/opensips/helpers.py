"""Small helpers shared by the OpenSIPS integration tests."""

from __future__ import annotations

import asyncio
import re

from voice_connector.transports.opensips.sdp import parse_offer


def replies(double, key: str) -> list[int]:
    return [int(p["code"]) for p in double.mi_calls("ua_session_reply", key)]


def answer_body(double, key: str) -> str:
    return next(p["body"] for p in double.mi_calls("ua_session_reply", key) if p["code"] == 200)


def answer_port(double, key: str) -> int:
    return parse_offer(answer_body(double, key)).port


def answer_direction(body: str) -> str:
    return re.search(r"a=(sendrecv|sendonly|recvonly|inactive)", body).group(1)


async def until(predicate, limit: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.01)


async def answered(double, key: str) -> int:
    """Wait for the 200 OK; return our RTP port from its SDP."""
    await double.wait_for(lambda: 200 in replies(double, key))
    return answer_port(double, key)
