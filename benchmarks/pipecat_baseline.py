"""A plain Pipecat 1.14 Twilio bot on the same Whisper model: the side-by-side baseline.

Run: `python -m benchmarks.pipecat_baseline --port N` (benchmarks start it themselves). It is
Pipecat's twilio-chatbot shape and nothing of ours on the audio path: `FastAPIWebsocketTransport`
+ `TwilioFrameSerializer` (soxr resampling), `WhisperSTTService` with its own model load and
decode defaults, Silero VAD in the user aggregator and Pipecat's default turn strategies. The LLM
and TTS are instant stand-ins (a fixed answer, a tone) because what is compared is the STT.

`GET /calls/{call_sid}` answers in the shape of the media node's call record (`outcome`,
`turns[].user_text`), so the same simulated caller reads both.
"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn
from fastapi import FastAPI, WebSocket
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.frames.frames import Frame, TranscriptionFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.runner import PipelineRunner
from pipecat.pipeline.task import PipelineParams, PipelineTask
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.runner.utils import parse_telephony_websocket
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.services.whisper.stt import WhisperSTTService
from pipecat.transports.websocket.fastapi import (
    FastAPIWebsocketParams,
    FastAPIWebsocketTransport,
)

from tests.support.fakes import FakeLLM, ToneTTS
from voice_connector_core import models

ANSWER = "Fine, thanks."


class TranscriptLog(FrameProcessor):
    """Keeps the call's transcripts for `/calls/{sid}`; passes every frame on."""

    def __init__(self, texts: list[str]) -> None:
        super().__init__()
        self._texts = texts

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TranscriptionFrame):
            self._texts.append(frame.text)
        await self.push_frame(frame, direction)


def create_app() -> FastAPI:
    app = FastAPI()
    calls: dict[str, dict[str, Any]] = {}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ready"}

    @app.get("/calls/{call_sid}")
    async def call_record(call_sid: str) -> dict[str, Any]:
        call = calls.get(call_sid, {"outcome": "unknown", "texts": []})
        return {"outcome": call["outcome"], "turns": [{"user_text": " ".join(call["texts"])}]}

    @app.websocket("/ws")
    async def stream(websocket: WebSocket) -> None:
        await websocket.accept()
        _, call_data = await parse_telephony_websocket(websocket)
        call = calls.setdefault(call_data["call_id"], {"outcome": "active", "texts": []})
        serializer = TwilioFrameSerializer(
            stream_sid=call_data["stream_id"],
            call_sid=call_data["call_id"],
            params=TwilioFrameSerializer.InputParams(auto_hang_up=False),
        )
        transport = FastAPIWebsocketTransport(
            websocket,
            FastAPIWebsocketParams(
                audio_in_enabled=True,
                audio_out_enabled=True,
                add_wav_header=False,
                serializer=serializer,
            ),
        )
        stt = WhisperSTTService(
            device="cpu",
            compute_type="int8",
            settings=WhisperSTTService.Settings(model=str(models.whisper_tiny_en()), language="en"),
        )
        user, assistant = LLMContextAggregatorPair(
            LLMContext(), user_params=LLMUserAggregatorParams(vad_analyzer=SileroVADAnalyzer())
        )
        pipeline = Pipeline(
            [
                transport.input(),
                stt,
                TranscriptLog(call["texts"]),
                user,
                FakeLLM(ANSWER),
                ToneTTS(),
                transport.output(),
                assistant,
            ]
        )
        # 16 kHz in: Whisper reads its input as 16 kHz and Pipecat's Whisper service does not
        # resample, so the serializer's soxr does 8 → 16 kHz.
        task = PipelineTask(
            pipeline, params=PipelineParams(audio_in_sample_rate=16000, audio_out_sample_rate=8000)
        )

        @transport.event_handler("on_client_disconnected")
        async def on_client_disconnected(_transport: Any, _client: Any) -> None:
            await task.cancel()

        try:
            await PipelineRunner(handle_sigint=False).run(task)
        finally:
            call["outcome"] = "completed"

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(create_app(), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
