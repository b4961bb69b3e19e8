"""faster-whisper on the network Whisper service: one HTTP request per VAD-cut utterance.

Whisper costs one decode per utterance whatever its length, so the segment is sent once, when the
VAD ends it, as raw PCM16 (`Content-Type: audio/pcm`, no WAV or multipart to build or parse) on a
keep-alive connection. Plain HTTP rather than the service's WebSocket: per-utterance latency is the
same within noise on this CPU (see docs/providers.md), and stateless requests spread over a GPU
pool behind any load balancer and retry on another replica. `url` may list several endpoints
(comma-separated, e.g. two zones' services): a connection failure moves to the next one at once,
and the call ends with the apology only when every endpoint failed for the whole backoff.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
from loguru import logger
from pipecat.frames.frames import CancelFrame, EndFrame, Frame, StartFrame, TranscriptionFrame
from pipecat.services.settings import STTSettings
from pipecat.services.stt_service import SegmentedSTTService
from pipecat.utils.errors import ErrorCategory
from pipecat.utils.time import time_now_iso8601

from voice_connector.services.outage import CallEnder
from voice_connector.services.ws_client import Backoff

T = TypeVar("T")
WHISPER_TTFS_P99 = 2.0
TRANSCRIBE_PATH = "/v1/audio/transcriptions"


class RemoteWhisperSTTService(SegmentedSTTService):
    """Posts each utterance to `/v1/audio/transcriptions` with the call's `X-Call-Id`."""

    def __init__(
        self,
        *,
        url: str,
        language: str = "en",
        call_id: str = "",
        backoff: Backoff | None = None,
        request_timeout: float = 30.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            ttfs_p99_latency=WHISPER_TTFS_P99,
            settings=STTSettings(model=None, language=language),
            **kwargs,
        )
        self._endpoints = [u.strip().rstrip("/") for u in url.split(",") if u.strip()] or [""]
        self._base_url = self._endpoints[0]
        self._language = language
        self._headers = {"Content-Type": "audio/pcm"} | ({"X-Call-Id": call_id} if call_id else {})
        self._backoff = backoff or Backoff()
        self._timeout = aiohttp.ClientTimeout(total=request_timeout, sock_connect=3.0)
        self._session: aiohttp.ClientSession | None = None
        self._probe: asyncio.Task[None] | None = None
        self._ender = CallEnder(self, can_apologize=True)

    @property
    def wants_wav_segments(self) -> bool:
        return False  # raw PCM: the service takes audio/pcm with ?sample_rate

    def can_generate_metrics(self) -> bool:
        return True

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        self._probe = self.create_task(self._check_reachable(), name="whisper_probe")

    async def stop(self, frame: EndFrame) -> None:
        await super().stop(frame)
        await self._close()

    async def cancel(self, frame: CancelFrame) -> None:
        await super().cancel(frame)
        await self._close()

    async def _close(self) -> None:
        if self._probe is not None:
            await self.cancel_task(self._probe)
            self._probe = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _with_retries(
        self, what: str, attempt_once: Callable[[], Awaitable[T]]
    ) -> T | None:
        """`await attempt_once()` with backoff on connection failures; None once given up.

        A failure moves to the next endpoint at once; the backoff waits only after a round in
        which every endpoint failed (the endpoint that answered last is tried first next time).
        """
        last: Exception | None = None
        for attempt in range(1, self._backoff.attempts + 1):
            for _ in self._endpoints:
                try:
                    return await attempt_once()
                except (aiohttp.ClientConnectionError, TimeoutError) as exc:
                    last = exc
                    logger.warning(f"{self}: {what} at {self._base_url} failed ({attempt}): {exc}")
                    self._next_endpoint()
            if attempt < self._backoff.attempts:
                await asyncio.sleep(self._backoff.delay(attempt))
        where = ", ".join(self._endpoints)
        await self._ender.end_call(f"Whisper service unreachable at {where}", last)
        return None

    def _next_endpoint(self) -> None:
        index = self._endpoints.index(self._base_url)
        self._base_url = self._endpoints[(index + 1) % len(self._endpoints)]

    async def _check_reachable(self) -> None:
        """At call start: a dead service ends the call now, not after the caller's first words.

        Any HTTP answer counts (a third-party Whisper server may have no `/healthz`); readiness
        is the media node's `/readyz` business, this only catches an unreachable service.
        """
        assert self._session is not None
        session = self._session

        async def probe() -> None:
            async with session.get(f"{self._base_url}/healthz"):
                pass

        await self._with_retries("health probe", probe)

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame | None, None]:
        """Transcribe one utterance (raw PCM16 at the pipeline rate)."""
        if self._session is None or self._ender.ended:
            yield None
            return
        session = self._session
        params = {"sample_rate": str(self.sample_rate), "language": self._language}

        async def post() -> tuple[int, Any]:
            async with session.post(
                self._base_url + TRANSCRIBE_PATH, data=audio, params=params, headers=self._headers
            ) as response:
                return response.status, await response.json(content_type=None)

        await self.start_processing_metrics()
        result = await self._with_retries("transcription", post)
        await self.stop_processing_metrics()
        if result is None:
            yield None
            return
        status, body = result
        if status != 200:  # e.g. 503 busy: this utterance is lost, the call goes on
            message = body.get("error", {}).get("message") if isinstance(body, dict) else body
            await self.push_error(
                f"Whisper service answered {status}: {message}", category=ErrorCategory.SERVER
            )
            yield None
            return
        text = str(body.get("text", "")).strip()
        if text:
            yield TranscriptionFrame(text, self._user_id, time_now_iso8601(), self._language)
