"""A bare Twilio Media Streams peer for refusal tests: connect, `start`, see how the node closes."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from voice_connector.caller.twilio_caller import CallerOptions, CallResult, SimulatedTwilioCall
from voice_connector.transports.twilio.security import CallTokens


def start_message(call_sid: str, parameters: dict[str, str] | None = None) -> str:
    return json.dumps(
        {
            "event": "start",
            "sequenceNumber": "1",
            "streamSid": "MZ" + call_sid[2:],
            "start": {
                "streamSid": "MZ" + call_sid[2:],
                "callSid": call_sid,
                "accountSid": "AC" + "1" * 32,
                "tracks": ["inbound"],
                "customParameters": parameters or {},
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        }
    )


def signed_parameters(auth_token: str, call_sid: str, **params: str) -> dict[str, str]:
    """`<Parameter>`s as the TwiML of our webhook carries them, call token included."""
    params = {"caller": "+15550001111", **params}
    return {**params, "token": CallTokens(auth_token).issue(call_sid, params)}


@dataclass
class Outcome:
    handshake_status: int | None = None
    """HTTP status when the upgrade itself was refused."""
    close_code: int | None = None
    got_media: bool = False


async def open_stream(
    url: str,
    call_sid: str,
    parameters: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    wait_seconds: float = 10.0,
) -> Outcome:
    """Connect, send `connected` + `start`, and wait until the node closes the stream."""
    outcome = Outcome()
    async with aiohttp.ClientSession() as session:
        try:
            ws = await session.ws_connect(url, headers=headers or {})
        except aiohttp.WSServerHandshakeError as exc:
            outcome.handshake_status = exc.status
            return outcome
        async with ws:
            await ws.send_str(json.dumps({"event": "connected", "protocol": "Call"}))
            await ws.send_str(start_message(call_sid, parameters))
            while True:
                message = await ws.receive(timeout=wait_seconds)
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                outcome.got_media |= json.loads(message.data).get("event") == "media"
            outcome.close_code = ws.close_code
    return outcome


class HangUpTolerantCall(SimulatedTwilioCall):
    """The simulated caller, tolerating the node hanging up while it still sends audio.

    (The stock caller writes to the socket the node is closing, and raises.)
    """

    async def _until_closed(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        for _ in range(500):  # the node hung up: let the close handshake finish
            if ws.closed:
                return
            await asyncio.sleep(0.01)

    async def _silence_until(
        self, ws: aiohttp.ClientWebSocketResponse, done: Any, limit: float
    ) -> None:
        try:
            await super()._silence_until(ws, done, limit)
        except aiohttp.ClientConnectionResetError:
            await self._until_closed(ws)

    async def _send_realtime(self, ws: aiohttp.ClientWebSocketResponse, audio: bytes) -> float:
        try:
            return await super()._send_realtime(ws, audio)
        except aiohttp.ClientConnectionResetError:
            await self._until_closed(ws)
            return time.monotonic()


async def place_call_until_hung_up(options: CallerOptions) -> CallResult:
    return await HangUpTolerantCall(options).run()
