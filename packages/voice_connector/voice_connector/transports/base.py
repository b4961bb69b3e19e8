"""The one interface both telephony providers implement.

A *provider* (OpenSIPS, Twilio) accepts calls; each accepted call is a `CallTransport` giving
the pipeline a Pipecat input and output, and call control. The media node hands every new call
to one `CallHandler`, whatever the provider: the pipeline never knows where a call came from; it
asks a call's `capabilities` what it can do. Each transport reports how its calls end
(`CallTransport.end_with`, or `Unanswered` for a call that never ran), so the outcome means the
same on every provider.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipecat.frames.frames import Frame
from pipecat.pipeline.task import PipelineTask
from pipecat.transports.base_transport import BaseTransport

from voice_connector.telemetry.call_record import CallRecord
from voice_connector.telemetry.outcome import CallOutcome, Ending
from voice_connector_core.config import Settings
from voice_connector_core.config.flavors import FlavorSelector
from voice_connector_core.workers import WorkerShard


class CallRefused(Exception):
    """Raised by the call handler when the node cannot take a call now (full, draining).

    Providers turn it into their protocol's polite refusal: Twilio streams close with 1013,
    SIP INVITEs get 503 Service Unavailable (then terminate).
    """


class CallControlNotSupported(RuntimeError):
    """The provider cannot do this (e.g. DTMF out on a transport without it)."""


@dataclass(frozen=True)
class TransportCapabilities:
    """What one call's transport can do beyond audio in and out."""

    playback_marks: bool = False
    """It tells which bot speech the caller heard (`playback_mark`, `heard`): Twilio's marks."""
    transfer: bool = False
    """It can hand the caller to another party (`transfer`)."""
    dtmf_out: bool = False
    """It can send DTMF to the caller (`send_dtmf`)."""


@dataclass
class CallInfo:
    """What is known about a call when it is accepted.

    `call_id` is the correlation id used in every log line and in the AI services: the OpenSIPS
    session key or the Twilio CallSid.
    """

    call_id: str
    transport: str
    caller: str = ""
    callee: str = ""
    flavor: str = "default"
    codec: str = "PCMU"
    edge_sample_rate: int = 8000
    extra: dict[str, Any] = field(default_factory=dict)


class CallTransport(ABC):
    """One call on one provider: media for the pipeline, and call control."""

    def __init__(self, info: CallInfo) -> None:
        self.info = info
        self.task: PipelineTask | None = None
        self.record: CallRecord | None = None
        self._early_end = Ending()  # an end reported before the record is attached

    @property
    def capabilities(self) -> TransportCapabilities:
        """What this call can do (may depend on the call: e.g. DTMF needs telephone-event)."""
        return TransportCapabilities()

    def end_with(self, outcome: CallOutcome, detail: str = "") -> bool:
        """Report how the call ended, from whichever side saw it; the first report wins (see
        `Ending`). True when this one counted."""
        return (self.record or self._early_end).end_with(outcome, detail)

    @property
    @abstractmethod
    def pipecat(self) -> BaseTransport:
        """The Pipecat transport whose `input()` and `output()` the pipeline is built from."""

    def attach(self, task: PipelineTask, record: CallRecord) -> None:
        """Called once the call's pipeline task exists, before it runs.

        A transport whose far end can vanish (WebSocket closed, SIP BYE) ends `task` then and
        reports it (`end_with`); call control (hang-up after the last audio) also needs the task.
        """
        self.task = task
        self.record = record
        record.end_with(self._early_end.outcome, self._early_end.outcome_detail)

    @abstractmethod
    async def hangup(self, reason: str = "normal") -> None:
        """End the call after the bot audio already queued has played."""

    @abstractmethod
    async def transfer(self, target: str) -> None:
        """Hand the caller to `target` (a number or SIP URI) and leave the call."""

    async def send_dtmf(self, digits: str) -> None:
        """Send DTMF digits to the caller, where the provider supports it (`dtmf_out`)."""
        raise CallControlNotSupported(f"{self.info.transport} cannot send DTMF")

    def playback_mark(self, text: str) -> tuple[str, Frame]:
        """(name, frame): the frame goes right behind `text`'s audio; `heard(name)` turns true
        once the caller has heard it (`playback_marks`)."""
        raise CallControlNotSupported(f"{self.info.transport} does not confirm playback")

    def heard(self, mark: str) -> bool:
        """Whether the audio before the mark named `mark` was played to the caller."""
        raise CallControlNotSupported(f"{self.info.transport} does not confirm playback")


CallHandler = Callable[[CallTransport], Awaitable[None]]
"""Runs one call to its end (builds and runs the pipeline); supplied by the media node."""

Admission = Callable[[str], None]
"""`admit(call_id)` raises `CallRefused` when the node cannot take the call now (full, draining):
asked before a call is answered, so the caller's side gets a refusal it can act on (SIP 503,
Twilio busy) instead of an answer and a hang-up. `CallHandler` checks again (the authority)."""

Unanswered = Callable[[CallInfo, CallOutcome, str], None]
"""`unanswered(info, outcome, detail)`: a call ended before it reached the `CallHandler`
(cancelled, rejected); the node records and counts it with the calls that ran."""


class TransportProvider(ABC):
    """A source of calls (OpenSIPS events, Twilio WebSockets) living for the whole process.

    Every provider is built the same way: the whole configuration, this worker's `shard` of the
    node's calls (default: all of them) and the `shared_dir` the node's workers share (default:
    none, a node of one worker). Each call's flavor is picked by `flavors`, from `settings`.
    """

    name: str

    def __init__(
        self,
        settings: Settings,
        *,
        shard: WorkerShard | None = None,
        shared_dir: Path | None = None,
    ) -> None:
        self.settings = settings
        self.shard = shard or WorkerShard()
        self.shared_dir = shared_dir
        self.flavors = FlavorSelector(settings)

    @abstractmethod
    async def start(
        self,
        on_call: CallHandler,
        admit: Admission | None = None,
        unanswered: Unanswered | None = None,
    ) -> None:
        """Begin accepting calls; every accepted call is passed to `on_call`, each new one is
        first put to `admit` when given; a call ending before `on_call` goes to `unanswered`."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop accepting calls and release sockets and ports."""

    @abstractmethod
    def refuse_new_calls(self) -> None:
        """Draining: answer new calls with a refusal while active calls finish."""

    def readiness(self) -> tuple[bool, str]:
        """(ready, why) for `/readyz`: false while, e.g., the OpenSIPS subscription is lost."""
        return True, "ok"

    def routers(self) -> list[Any]:
        """FastAPI routers this provider serves on the media node (Twilio's WebSocket and TwiML)."""
        return []
