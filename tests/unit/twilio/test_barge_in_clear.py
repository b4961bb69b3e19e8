"""Barge-in on Twilio: `clear` goes out at once, behind at most the one audio frame in flight.

The real output side of a Twilio call (Pipecat's FastAPI WebSocket output + our serializer) writes
to a WebSocket stand-in that records every message; TTS audio is queued, and an interruption
arrives while it is being sent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import numpy as np
from pipecat.frames.frames import InterruptionFrame, TTSAudioRawFrame, TTSStartedFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.runner import PipelineRunner
from pipecat.pipeline.task import PipelineParams, PipelineTask
from starlette.websockets import WebSocketState

from voice_connector.transports.base import CallInfo
from voice_connector.transports.twilio.transport import TwilioCallTransport
from voice_connector_core.config.schema import TwilioSettings


class RecordingWebSocket:
    """Enough of Starlette's WebSocket for the output side; records the text frames sent."""

    client_state = WebSocketState.CONNECTED
    application_state = WebSocketState.CONNECTED

    def __init__(self) -> None:
        self.sent: list[dict] = []
        self._sent_more = asyncio.Event()

    async def send_text(self, data: str) -> None:
        self.sent.append(json.loads(data))
        self._sent_more.set()

    async def until(self, predicate: Callable[[list[dict]], bool]) -> None:
        """Wait until what was sent satisfies `predicate`."""
        while not predicate(self.sent):
            self._sent_more.clear()
            await self._sent_more.wait()

    async def send_bytes(self, data: bytes) -> None:
        raise AssertionError("Twilio gets text frames only")

    async def receive(self) -> dict:
        await asyncio.Event().wait()
        return {}

    async def close(self, code: int = 1000) -> None:
        self.client_state = WebSocketState.DISCONNECTED


def tone(seconds: float, rate: int = 16000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16).tobytes()


async def test_clear_follows_the_interruption_within_one_frame() -> None:
    websocket = RecordingWebSocket()
    call = TwilioCallTransport(
        CallInfo(call_id="CAclear", transport="twilio"), websocket, "MZclear", TwilioSettings()
    )
    task = PipelineTask(
        Pipeline([call.pipecat.output()]),
        params=PipelineParams(audio_in_sample_rate=16000, audio_out_sample_rate=16000),
        enable_rtvi=False,
    )
    runner = PipelineRunner(handle_sigint=False, handle_sigterm=False)
    running = asyncio.create_task(runner.run(task))
    await task.queue_frame(TTSStartedFrame())
    audio = tone(4.0)
    for offset in range(0, len(audio), 6400):  # 200 ms TTS chunks, 4 s in all
        await task.queue_frame(TTSAudioRawFrame(audio[offset : offset + 6400], 16000, 1))
    await websocket.until(lambda sent: sum(m["event"] == "media" for m in sent) >= 10)
    sent_before = len(websocket.sent)
    await task.queue_frame(InterruptionFrame())
    await asyncio.wait_for(
        websocket.until(lambda sent: any(m["event"] == "clear" for m in sent)), timeout=10
    )
    await asyncio.sleep(0.3)  # anything still queued would be sent meanwhile
    await task.cancel()
    await running

    after = [m["event"] for m in websocket.sent[sent_before:]]
    clear_at = after.index("clear")
    assert after[:clear_at].count("media") <= 1, after
    assert "media" not in after[clear_at + 1 :], "audio queued before the barge-in still went out"
    assert websocket.sent[sent_before + clear_at] == {"event": "clear", "streamSid": "MZclear"}
