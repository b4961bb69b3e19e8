"""A plain Pipecat 1.14 Twilio bot on the same models: the side-by-side baseline.

Run: `python -m benchmarks.pipecat_baseline --port N [--llm-url URL]` (benchmarks start it
themselves). It is Pipecat's twilio-chatbot shape and nothing of ours on the audio path:
`FastAPIWebsocketTransport` + `TwilioFrameSerializer` (soxr resampling), `WhisperSTTService` with
its own model load and decode defaults, Silero VAD in the user aggregator and Pipecat's default
turn strategies. With `--llm-url` it answers with the same models as the media node: Pipecat's
`OLLamaLLMService` (OpenAI-compatible API of an Ollama-API server, the node's system prompt,
temperature and answer length, no tools) and `PiperTTSService` on the same Piper voice, and it
greets the caller with the node's greeting. Without it the LLM and TTS are instant stand-ins (a
fixed answer, a tone), for benchmarks that compare the STT alone.

`GET /calls/{call_sid}` answers with the media node's call record, filled by the node's own
observer (`CallRecorder`, which watches frames and sits in no pipeline): the same simulated
caller and the same stage timings read both servers.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import uvicorn
from fastapi import FastAPI, WebSocket
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.frames.frames import TTSSpeakFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.runner import PipelineRunner
from pipecat.pipeline.task import PipelineParams, PipelineTask
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.runner.utils import parse_telephony_websocket
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.services.ollama.llm import OLLamaLLMService
from pipecat.services.piper.tts import PiperTTSService
from pipecat.services.whisper.stt import WhisperSTTService
from pipecat.transports.websocket.fastapi import (
    FastAPIWebsocketParams,
    FastAPIWebsocketTransport,
)

from tests.support.fakes import FakeLLM, ToneTTS
from voice_connector.telemetry.call_record import CallRecord, CallRecorder
from voice_connector.telemetry.outcome import CallOutcome
from voice_connector_core import models
from voice_connector_core.config.services import OllamaLLM

ANSWER = "Fine, thanks."


def answering_services(llm_url: str) -> tuple[FrameProcessor, FrameProcessor]:
    """Pipecat's own Ollama LLM and Piper TTS services on the media node's models and settings."""
    node = OllamaLLM()
    llm = OLLamaLLMService(
        base_url=llm_url.rstrip("/") + "/v1",
        settings=OLLamaLLMService.Settings(
            model=node.model, temperature=node.temperature, max_tokens=node.max_tokens
        ),
    )
    voice, _config = models.piper_joe_voice()
    tts = PiperTTSService(voice_id=voice.stem, download_dir=voice.parent)
    return llm, tts


def create_app(llm_url: str = "", device: str = "auto") -> FastAPI:
    """The bot's app; `device` is where its Whisper runs (`--device`, as our node's)."""
    app = FastAPI()
    calls: dict[str, CallRecord] = {}
    node = OllamaLLM()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ready"}

    @app.get("/calls/{call_sid}")
    async def call_record(call_sid: str) -> dict[str, Any]:
        record = calls.get(call_sid)
        return record.to_json() if record else {"outcome": "unknown", "turns": []}

    @app.websocket("/ws")
    async def stream(websocket: WebSocket) -> None:
        await websocket.accept()
        _, call_data = await parse_telephony_websocket(websocket)
        record = CallRecord(call_id=call_data["call_id"], transport="twilio", flavor="baseline")
        calls[record.call_id] = record
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
            device=device,
            compute_type="int8",
            settings=WhisperSTTService.Settings(model=str(models.whisper_tiny_en()), language="en"),
        )
        messages = [{"role": "system", "content": node.system_prompt}] if llm_url else []
        user, assistant = LLMContextAggregatorPair(
            LLMContext(messages),
            user_params=LLMUserAggregatorParams(vad_analyzer=SileroVADAnalyzer()),
        )
        llm, tts = answering_services(llm_url) if llm_url else (FakeLLM(ANSWER), ToneTTS())
        pipeline = Pipeline([transport.input(), stt, user, llm, tts, transport.output(), assistant])
        # 16 kHz in: Whisper reads its input as 16 kHz and Pipecat's Whisper service does not
        # resample, so the serializer's soxr does 8 → 16 kHz.
        task = PipelineTask(
            pipeline,
            params=PipelineParams(audio_in_sample_rate=16000, audio_out_sample_rate=8000),
            observers=[CallRecorder(record)],
        )

        @transport.event_handler("on_client_connected")
        async def on_client_connected(_transport: Any, _client: Any) -> None:
            if llm_url and node.greeting:
                await task.queue_frame(TTSSpeakFrame(node.greeting))

        @transport.event_handler("on_client_disconnected")
        async def on_client_disconnected(_transport: Any, _client: Any) -> None:
            await task.cancel()

        try:
            await PipelineRunner(handle_sigint=False).run(task)
        finally:
            record.ended_at = time.time()
            record.end_with(CallOutcome.CALLER_HANGUP)  # the caller's disconnect ends it

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--llm-url", default="", help="an Ollama-API server: answer with the node's models"
    )
    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="where Whisper runs"
    )
    args = parser.parse_args()
    app = create_app(args.llm_url, args.device)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
