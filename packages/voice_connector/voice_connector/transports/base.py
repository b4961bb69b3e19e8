"""The one interface both telephony providers implement.

A *provider* (OpenSIPS, Twilio) accepts calls; each accepted call is a `CallTransport` giving
the pipeline a Pipecat input and output, and call control. The media node hands every new call
to one `CallHandler`, whatever the provider: the pipeline never knows where a call came from.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pipecat.pipeline.task import PipelineTask
from pipecat.transports.base_transport import BaseTransport

from voice_connector.telemetry.call_record import CallRecord


class CallRefused(Exception):
    """Raised by the call handler when the node cannot take a call now (full, draining).

    Providers turn it into their protocol's polite refusal: Twilio streams close with 1013,
    SIP INVITEs get 503 Service Unavailable (then terminate).
    """


class CallControlNotSupported(RuntimeError):
    """The provider cannot do this (e.g. DTMF out on a transport without it)."""


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

    @property
    @abstractmethod
    def pipecat(self) -> BaseTransport:
        """The Pipecat transport whose `input()` and `output()` the pipeline is built from."""

    def attach(self, task: PipelineTask, record: CallRecord) -> None:
        """Called once the call's pipeline task exists, before it runs.

        A transport whose far end can vanish (WebSocket closed, SIP BYE) ends `task` then and
        sets `record.outcome`; call control (hang-up after the last audio) also needs the task.
        """
        self.task = task
        self.record = record

    @abstractmethod
    async def hangup(self, reason: str = "normal") -> None:
        """End the call after the bot audio already queued has played."""

    @abstractmethod
    async def transfer(self, target: str) -> None:
        """Hand the caller to `target` (a number or SIP URI) and leave the call."""

    async def send_dtmf(self, digits: str) -> None:
        """Send DTMF digits to the caller, where the provider supports it."""
        raise CallControlNotSupported(f"{self.info.transport} cannot send DTMF")


CallHandler = Callable[[CallTransport], Awaitable[None]]
"""Runs one call to its end (builds and runs the pipeline); supplied by the media node."""

Admission = Callable[[str], None]
"""`admit(call_id)` raises `CallRefused` when the node cannot take the call now (full, draining):
asked before a call is answered, so the caller's side gets a refusal it can act on (SIP 503,
Twilio busy) instead of an answer and a hang-up. `CallHandler` checks again (the authority)."""


class TransportProvider(ABC):
    """A source of calls (OpenSIPS events, Twilio WebSockets) living for the whole process."""

    name: str

    @abstractmethod
    async def start(self, on_call: CallHandler, admit: Admission | None = None) -> None:
        """Begin accepting calls; every accepted call is passed to `on_call`, each new one is
        first put to `admit` when given."""

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
