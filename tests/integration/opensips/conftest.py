"""Fixtures: an OpenSIPS 3.6 double, a started provider on loopback, and small call handlers."""

from __future__ import annotations

import asyncio
import pathlib
import socket
import sys

import numpy as np
import pytest
from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    InputDTMFFrame,
    OutputAudioRawFrame,
    StartFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

from voice_connector_core.config import Settings
from voice_connector_core.config.schema import FlavorSettings

sys.path.insert(0, str(pathlib.Path(__file__).parent))

from voice_connector.caller.opensips_double import OpenSIPSDouble
from voice_connector.telemetry.call_record import CallRecord
from voice_connector.telemetry.outcome import CallOutcome
from voice_connector.transports.base import CallInfo, CallTransport
from voice_connector.transports.opensips import OpenSIPSProvider, OpenSIPSSettings


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_NEXT_RANGE = [41000]


def port_range(size: int = 60) -> str:
    """A fresh RTP range per test, so a leak in one test cannot hide in the next."""
    low = _NEXT_RANGE[0]
    _NEXT_RANGE[0] += size + 2
    return f"{low}-{low + size - 1}"


class Echo(FrameProcessor):
    """Sends the caller's audio straight back (and records DTMF)."""

    def __init__(self) -> None:
        super().__init__()
        self.digits: list[str] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            await self.push_frame(OutputAudioRawFrame(frame.audio, frame.sample_rate, 1))
        elif isinstance(frame, InputDTMFFrame):
            self.digits.append(frame.button.value)
        else:
            await self.push_frame(frame, direction)


class Tone(Echo):
    """Plays `seconds` of a 440 Hz tone when the pipeline starts, then echoes."""

    def __init__(self, seconds: float = 2.0) -> None:
        super().__init__()
        self.seconds = seconds
        self._played = False

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not self._played and isinstance(frame, StartFrame):
            self._played = True
            t = np.arange(int(self.seconds * 16000)) / 16000
            pcm = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16).tobytes()
            for i in range(0, len(pcm), 640):
                await self.push_frame(OutputAudioRawFrame(pcm[i : i + 640], 16000, 1))


class Handlers:
    """Call handlers that run a real Pipecat pipeline: input → processor → output; each call's
    record (`records`) gets the outcome the transport reports, as in the node."""

    def __init__(self, processor_factory=Echo) -> None:
        self.factory = processor_factory
        self.calls: dict[str, CallTransport] = {}
        self.processors: dict[str, Echo] = {}
        self.records: dict[str, CallRecord] = {}
        self.finished: list[str] = []
        self.started = asyncio.Event()

    def outcome(self, key: str) -> tuple[CallOutcome, str] | None:
        """(outcome, detail) of call `key`, None before it is known."""
        record = self.records.get(key)
        return None if record is None else (record.outcome, record.outcome_detail)

    def unanswered(self, info: CallInfo, outcome: CallOutcome, detail: str = "") -> None:
        """The provider's report of a call that never reached `__call__`."""
        record = CallRecord(call_id=info.call_id, transport=info.transport, flavor=info.flavor)
        record.end_with(outcome, detail)
        self.records[info.call_id] = record

    async def __call__(self, call: CallTransport) -> None:
        processor = self.factory()
        info = call.info
        self.calls[info.call_id] = call
        self.processors[info.call_id] = processor
        self.started.set()
        pipeline = Pipeline([call.pipecat.input(), processor, call.pipecat.output()])
        worker = PipelineWorker(
            pipeline,
            params=PipelineParams(audio_in_sample_rate=16000, audio_out_sample_rate=16000),
            idle_timeout_secs=None,
            enable_rtvi=False,
            enable_turn_tracking=False,  # as the connector's own call pipelines
            check_dangling_tasks=False,
        )
        record = CallRecord(call_id=info.call_id, transport=info.transport, flavor=info.flavor)
        call.attach(worker, record)  # type: ignore[arg-type]  # a PipelineTask minus its params
        self.records[info.call_id] = record
        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        await runner.run()
        self.finished.append(info.call_id)


@pytest.fixture
async def double():
    d = await OpenSIPSDouble().start()
    yield d
    d.close()


def flavors_for(matches: dict | None) -> dict[str, FlavorSettings]:
    """Flavors matching the called user by `matches` (name → regex), in order."""
    return {
        name: FlavorSettings(match=getattr(p, "pattern", p)) for name, p in (matches or {}).items()
    }


async def start_provider(
    mi_port: int, handler: Handlers | None = None, **overrides
) -> OpenSIPSProvider:
    """A started OpenSIPSProvider whose MI is `mi_port`: the double, a real OpenSIPS or a tap."""
    flavor_matches = overrides.pop("flavor_matches", None)
    admit = overrides.pop("admit", None)
    settings = OpenSIPSSettings(
        mi_ip="127.0.0.1",
        mi_port=mi_port,
        mi_timeout=overrides.pop("mi_timeout", 0.5),
        event_ip="127.0.0.1",
        event_port=free_udp_port(),
        rtp_ip="127.0.0.1",
        rtp_port_range=overrides.pop("rtp_port_range", port_range()),
        resubscribe_interval=overrides.pop("resubscribe_interval", 0.2),
        **overrides,
    )
    provider = OpenSIPSProvider(Settings(opensips=settings, flavors=flavors_for(flavor_matches)))
    handler = handler or Handlers()
    await provider.start(handler, admit, handler.unanswered)
    return provider


@pytest.fixture
async def make_provider(double):
    """Start an OpenSIPSProvider against the double; stopped at teardown."""
    providers: list[OpenSIPSProvider] = []

    async def _make(handler=None, **overrides) -> OpenSIPSProvider:
        provider = await start_provider(double.mi_port, handler, **overrides)
        providers.append(provider)
        await double.wait_for(lambda: provider.readiness()[0])
        return provider

    yield _make
    for provider in providers:
        await provider.stop()
