"""A bare Twilio Media Streams peer for refusal tests: connect, `start`, see how the node closes."""

from __future__ import annotations

import json
from dataclasses import dataclass

import aiohttp

from voice_connector_core.twilio.security import CallTokens


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
