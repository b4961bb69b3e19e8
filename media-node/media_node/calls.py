"""The call registry: admission (capacity, drain), one pipeline per call, recent call records."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loguru import logger

from voice_connector.pipeline.apology import apologize
from voice_connector.pipeline.builder import ServicesFactory, run_call
from voice_connector.telemetry import metrics
from voice_connector.telemetry.call_record import CallRecord
from voice_connector.telemetry.outcome import CallOutcome
from voice_connector.transports.base import CallInfo, CallRefused, CallTransport
from voice_connector_core.config import Settings
from voice_connector_core.logs import call_context
from voice_connector_core.shared_files import ExpirySweeper, key_path, read_json, write_json

RECENT_CALLS = 200
SHARED_RECORD_SECONDS = 3600
"""How long a finished call's record stays in the node's shared directory (several workers)."""


class SharedRecords:
    """Call records in a directory every worker of the node reads: `/calls/{id}` may reach any.

    The worker running a call writes its record when the call starts and when it ends (atomic
    rename); another worker asked for that id reads the file.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._sweeper = ExpirySweeper(directory)

    def save(self, record: CallRecord) -> None:
        write_json(key_path(self.directory, record.call_id, ".json"), record.to_json())

    def load(self, call_id: str) -> dict[str, Any] | None:
        return read_json(key_path(self.directory, call_id, ".json"))

    def prune(self, older_than: float = SHARED_RECORD_SECONDS) -> None:
        """Forget records older than `older_than` (at most once a minute: called per call)."""
        self._sweeper.sweep(time.time() - older_than)


class CallRegistry:
    """Runs every accepted call and remembers the last few for `/calls/{id}`."""

    def __init__(
        self,
        settings: Settings,
        services_override: ServicesFactory | None = None,
        shared: SharedRecords | None = None,
    ) -> None:
        """`services_override`: calls' services instead of the configured ones (tests,
        benchmarks); `shared`: the node's record directory when it runs several workers."""
        self.settings = settings
        self.shared = shared
        self.active: dict[str, CallRecord] = {}
        self.recent: OrderedDict[str, CallRecord] = OrderedDict()
        self.draining = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._services_override = services_override
        self.serving: Callable[[], tuple[bool, str]] = lambda: (True, "ok")
        """Whether the models and AI services calls need are up (the node's readiness)."""
        self.outage: Callable[[str], str] = lambda flavor: ""
        """Why a flavor's own services are down ("" while up): its calls hear an apology."""
        metrics.bound_flavors(["default", settings.general.default_flavor, *settings.flavors])

    @property
    def count(self) -> int:
        return len(self.active)

    def get(self, call_id: str) -> CallRecord | None:
        return self.active.get(call_id) or self.recent.get(call_id)

    def get_json(self, call_id: str) -> dict[str, Any] | None:
        """The record of `call_id` from this worker, else from the node's shared directory."""
        record = self.get(call_id)
        if record is not None:
            return record.to_json()
        return self.shared.load(call_id) if self.shared else None

    def _share(self, record: CallRecord) -> None:
        if self.shared is None:
            return
        try:
            self.shared.save(record)
        except OSError as exc:  # a full disk must not end the call
            logger.warning(
                f"call {record.call_id}: record not shared with the other workers: {exc}"
            )

    def admit(self, call_id: str) -> None:
        """Raise `CallRefused` when the node is draining, not ready or full."""
        if self.draining:
            raise CallRefused("draining")
        serving, why = self.serving()
        if not serving:
            raise CallRefused(f"not ready: {why}")
        if self.count >= self.settings.general.max_calls:
            raise CallRefused(f"at capacity ({self.settings.general.max_calls} calls)")
        if call_id in self.active:
            raise CallRefused("duplicate call id")

    async def handle(self, call: CallTransport) -> None:
        """The `CallHandler` every provider calls: admit, run the pipeline, record.

        Everything logged while the call runs, including in the tasks Pipecat starts for it,
        carries the call id, flavor and transport (loguru context, inherited by tasks).
        """
        info = call.info
        with call_context(info.call_id, info.flavor, info.transport):
            await self._run(call)

    async def _run(self, call: CallTransport) -> None:
        info = call.info
        try:
            self.admit(info.call_id)
        except CallRefused as exc:
            metrics.call_refused(info.transport, str(exc))
            self.unanswered(info, CallOutcome.REJECTED, str(exc))
            raise
        settings = self.settings.for_flavor(info.flavor)
        outage = self.outage(info.flavor)
        record = _new_record(info)
        record.providers = {
            "stt": settings.stt.provider,
            "llm": settings.llm.provider,
            "tts": settings.tts.provider,
        }
        self.active[info.call_id] = record
        self._idle.clear()
        metrics.call_started(record)
        self._share(record)
        try:
            if outage:
                metrics.flavor_unavailable(record)
                logger.warning(f"call {info.call_id}: flavor {info.flavor} is down ({outage})")
                default = self.settings.for_flavor(self.settings.general.default_flavor)
                await apologize(call, default, record)
                return
            override = self._services_override
            services = override(settings, info) if override is not None else None
            await run_call(call, settings, record, services)
        except Exception as exc:  # one call's failure must never reach the others
            record.end_with(CallOutcome.ERROR, type(exc).__name__)
            logger.exception(f"call {info.call_id}: pipeline failed: {exc}")
        finally:
            record.ended_at = record.ended_at or time.time()
            metrics.call_ended(record)
            self.active.pop(info.call_id, None)
            self._remember(record)
            if not self.active:
                self._idle.set()

    def unanswered(self, info: CallInfo, outcome: CallOutcome, detail: str = "") -> None:
        """The `Unanswered` every provider reports to: a call that ended before it ran
        (cancelled, rejected) is counted by its outcome and kept with the recent calls."""
        record = _new_record(info)
        record.end_with(outcome, detail)
        record.ended_at = record.started_at
        metrics.call_not_answered(record)
        if info.call_id not in self.active:  # a refused duplicate leaves the running call's
            self._remember(record)

    def _remember(self, record: CallRecord) -> None:
        self.recent[record.call_id] = record
        self._share(record)
        if self.shared is not None:
            self.shared.prune()
        while len(self.recent) > RECENT_CALLS:
            self.recent.popitem(last=False)

    async def drain(self, grace_seconds: float) -> bool:
        """Refuse new calls and wait up to `grace_seconds` for active ones; True if all ended."""
        self.draining = True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout=grace_seconds)
        except TimeoutError:
            logger.warning(f"drain: {self.count} calls still active after {grace_seconds} s")
            return False
        return True


def _new_record(info: CallInfo) -> CallRecord:
    return CallRecord(
        call_id=info.call_id,
        transport=info.transport,
        flavor=info.flavor,
        caller=info.caller,
        callee=info.callee,
    )
