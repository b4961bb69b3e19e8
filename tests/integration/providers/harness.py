"""Drive provider services in a small real Pipecat pipeline, and play network failures.

- `Harness`: `[upstream probe, *processors, downstream probe]` run by a real `PipelineWorker`;
  collects what reaches either end (errors travel upstream), lets a test push frames and wait.
- `TcpGate`: a loopback TCP relay in front of a real server; `drop()` cuts every connection (the
  server "closes mid-utterance"), `shut()` stops listening (the server is down).
- speech helpers: deterministic Piper speech, 20 ms audio frames, word error rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable, Iterable
from typing import Any

from pipecat.frames.frames import (
    EndFrame,
    ErrorFrame,
    Frame,
    InputAudioRawFrame,
    StartFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

RATE = 16000
FRAME_BYTES = RATE // 50 * 2


class _Probe(FrameProcessor):
    """Records frames travelling in one direction, passes everything on."""

    def __init__(self, direction: FrameDirection, sink: list[Frame], event: asyncio.Event) -> None:
        super().__init__(enable_direct_mode=True)
        self._direction = direction
        self._sink = sink
        self._event = event

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction == self._direction and not isinstance(frame, StartFrame):
            self._sink.append(frame)
            self._event.set()
        await self.push_frame(frame, direction)


class Harness:
    """One call's worth of pipeline around the services under test."""

    def __init__(self, *processors: FrameProcessor) -> None:
        self.down: list[Frame] = []
        self.up: list[Frame] = []
        self._changed = asyncio.Event()
        pipeline = Pipeline(
            [
                _Probe(FrameDirection.UPSTREAM, self.up, self._changed),
                *processors,
                _Probe(FrameDirection.DOWNSTREAM, self.down, self._changed),
            ]
        )
        self.worker = PipelineWorker(
            pipeline,
            params=PipelineParams(audio_in_sample_rate=RATE, audio_out_sample_rate=RATE),
            cancel_on_idle_timeout=False,
            enable_rtvi=False,
        )
        self._started = asyncio.Event()
        self.worker.event_handler("on_pipeline_started")(self._on_started)
        self._run: asyncio.Task[None] | None = None

    async def _on_started(self, *_: Any) -> None:
        self._started.set()

    async def __aenter__(self) -> Harness:
        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(self.worker)
        self._run = asyncio.create_task(runner.run())
        await asyncio.wait_for(self._started.wait(), 30)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._run is not None and not self._run.done():
            await self.worker.queue_frame(EndFrame())
            try:
                await asyncio.wait_for(self._run, 60)
            except TimeoutError:
                await self.worker.cancel()

    @property
    def finished(self) -> bool:
        return self._run is not None and self._run.done()

    async def wait_finished(self, limit: float = 30) -> None:
        """Wait for the pipeline to end by itself (e.g. a service ended the call)."""
        assert self._run is not None
        await asyncio.wait_for(asyncio.shield(self._run), limit)

    async def push(self, *frames: Frame) -> None:
        for frame in frames:
            await self.worker.queue_frame(frame)

    async def push_audio(self, pcm: bytes, *, realtime: bool = False) -> None:
        """Send PCM16 at 16 kHz as 20 ms input frames, paced like a phone line if `realtime`.

        Unpaced is faster; paced keeps the VAD's audio-idle timer quiet while the test waits.
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        for n, frame in enumerate(audio_frames(pcm)):
            await self.worker.queue_frame(frame)
            await asyncio.sleep(max(0.0, started + n * 0.02 - loop.time()) if realtime else 0)

    async def wait_for(
        self, match: Callable[[Frame], bool], *, upstream: bool = False, limit: float = 60
    ) -> Frame:
        """The first frame (new or already seen) matching `match`."""
        frames = self.up if upstream else self.down
        async with asyncio.timeout(limit):
            while True:
                for frame in frames:
                    if match(frame):
                        return frame
                self._changed.clear()
                await self._changed.wait()

    def of(self, cls: type[Any] | tuple[type[Any], ...], upstream: bool = False) -> list[Any]:
        return [f for f in (self.up if upstream else self.down) if isinstance(f, cls)]

    @property
    def errors(self) -> list[ErrorFrame]:
        return self.of(ErrorFrame, upstream=True)


def audio_frames(pcm: bytes) -> Iterable[InputAudioRawFrame]:
    for i in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES):
        yield InputAudioRawFrame(audio=pcm[i : i + FRAME_BYTES], sample_rate=RATE, num_channels=1)


def silence(seconds: float) -> bytes:
    return b"\0\0" * int(RATE * seconds)


def utterance(pcm: bytes) -> bytes:
    """Speech padded like a caller's turn: a little silence before, enough after for the VAD."""
    return silence(0.5) + pcm + silence(1.5)


def piper_speech(text: str) -> bytes:
    """`text` spoken by Piper's joe voice (noise off, so deterministic), 16 kHz PCM16."""
    from piper import SynthesisConfig

    from ai_services.audio import resample_pcm16
    from voice_connector.services import shared_models
    from voice_connector_core import models

    voice = shared_models.piper_voice(*models.piper_joe_voice())
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    pcm = b"".join(chunk.audio_int16_bytes for chunk in voice.synthesize(text, config))
    return resample_pcm16(pcm, voice.config.sample_rate, RATE)


def words(text: str) -> list[str]:
    return re.sub(r"[^\w\s']", " ", text.lower()).split()


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate (word-level edit distance / reference length)."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / max(len(ref), 1)


class TcpGate:
    """A TCP relay on a free loopback port to a real server, with failures on demand."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._target = 0
        self.port = 0
        self._links: set[asyncio.StreamWriter] = set()

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def open(self, target_port: int) -> TcpGate:
        """Start relaying to 127.0.0.1:target_port (on the same port as before, if reopened)."""
        self._target = target_port
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target)
        except OSError:
            writer.close()
            return
        self._links.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._links.difference_update((writer, up_writer))

    def drop(self) -> None:
        """Cut every open connection at the TCP level (no WebSocket close handshake)."""
        for writer in list(self._links):
            writer.transport.abort()
        self._links.clear()

    async def shut(self) -> None:
        """Stop listening and cut everything: the server is down."""
        if self._server is not None:
            self._server.close()
            self.drop()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
