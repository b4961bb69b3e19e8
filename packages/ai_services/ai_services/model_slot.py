"""Loading a model once, in a thread, after the server is listening; readiness follows it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from ai_services.errors import ServiceError
from ai_services.metrics import ServiceMetrics

T = TypeVar("T")
log = logging.getLogger("ai_services")


class ModelSlot(Generic[T]):
    """Holds one model, loaded once in a thread after start-up; `/readyz` reports its state.

    Requests that arrive while it loads wait for it (like Ollama loading on first use) instead of
    failing; a load failure is reported to them as 503 with the reason.
    """

    def __init__(self, name: str, loader: Callable[[], T], metrics: ServiceMetrics) -> None:
        self.name = name
        self._loader = loader
        self._metrics = metrics
        self._task: asyncio.Task[T | None] | None = None
        self._value: T | None = None
        self.error: str | None = None
        self.load_seconds: float | None = None

    def start(self) -> None:
        """Begin loading in the background (idempotent)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._load())

    async def _load(self) -> T | None:
        started = time.perf_counter()
        try:
            value = await asyncio.to_thread(self._loader)
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("loading model %s failed", self.name)
            return None
        self.load_seconds = time.perf_counter() - started
        self._value = value
        self._metrics.model_load_seconds.labels(self._metrics.service).set(self.load_seconds)
        self._metrics.model_ready.labels(self._metrics.service).set(1)
        log.info("model %s loaded in %.2f s", self.name, self.load_seconds)
        return value

    @property
    def ready(self) -> bool:
        return self._value is not None

    async def get(self) -> T:
        """The loaded model; waits while it loads, raises a 503 `ServiceError` if loading failed."""
        if self._value is not None:
            return self._value
        if self._task is None:
            self.start()
        assert self._task is not None
        value = await asyncio.shield(self._task)
        if value is None:
            raise ServiceError(503, f"model {self.name} failed to load: {self.error}")
        return value
