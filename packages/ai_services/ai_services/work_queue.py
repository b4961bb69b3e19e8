"""Running blocking model calls on worker threads, with bounded admission and streaming."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ai_services.errors import QueueFullError
from ai_services.metrics import ServiceMetrics

T = TypeVar("T")


class WorkQueue:
    """Runs blocking model calls on `workers` threads; admits at most `max_queue` waiting jobs.

    Bounding the waiting room turns overload into an immediate, explicit "busy" answer that a
    load balancer or client can act on, rather than ever-growing latency for every caller.
    """

    def __init__(self, workers: int, max_queue: int, metrics: ServiceMetrics, name: str) -> None:
        if workers < 1 or max_queue < 0:
            raise ValueError("workers must be >= 1 and max_queue >= 0")
        self.workers = workers
        self.max_queue = max_queue
        self._metrics = metrics
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._pending = 0

    @property
    def pending(self) -> int:
        return self._pending

    def admit(self) -> None:
        """Reserve a place or raise `QueueFullError`; pair with `release()`."""
        if self._pending >= self.workers + self.max_queue:
            self._metrics.rejected.labels(self._metrics.service).inc()
            raise QueueFullError()
        self._pending += 1
        self._metrics.queue_depth.labels(self._metrics.service).set(self._pending)

    def release(self) -> None:
        self._pending -= 1
        self._metrics.queue_depth.labels(self._metrics.service).set(self._pending)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Admit, run `fn(*args)` on a worker thread (with the caller's call id), release.

        The place is released when the thread is done, not when a cancelled caller gives up:
        a thread cannot be interrupted, and the bound must count the work really in progress.
        """
        self.admit()
        try:
            future = self.submit_raw(fn, *args)
        except BaseException:
            self.release()
            raise
        future.add_done_callback(lambda _: self.release())
        return await asyncio.shield(future)

    def submit_raw(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run on the pool without admission control (caller already holds a place)."""
        ctx = contextvars.copy_context()
        return asyncio.get_running_loop().run_in_executor(self._executor, ctx.run, fn, *args)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def stream_from_thread(
    produce: Callable[[Callable[[T], None], threading.Event], None],
    run: Callable[[Callable[[], None]], Awaitable[None]],
) -> AsyncIterator[T]:
    """Bridge a blocking producer (running on a worker thread) to an async iterator.

    `produce(emit, stop)` calls `emit(item)` per item and should return soon after `stop` is set;
    `run(job)` schedules `job` on a worker. Closing the iterator early (a client went away) sets
    `stop`, and the iterator waits for the producer to finish so serialized resources (llama.cpp)
    are free again before the next job starts.
    """

    async def iterate() -> AsyncIterator[T]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stop = threading.Event()

        def emit(item: T) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, ("item", item))

        def job() -> None:
            try:
                produce(emit, stop)
            except BaseException as exc:
                loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))
            else:
                loop.call_soon_threadsafe(queue.put_nowait, ("done", None))

        worker = asyncio.ensure_future(run(job))
        try:
            while True:
                kind, value = await queue.get()
                if kind == "item":
                    yield value
                elif kind == "error":
                    raise value
                else:
                    return
        finally:
            stop.set()
            # Wait for the producer even if we are being cancelled: the model is busy until then.
            await asyncio.shield(worker)

    return iterate()
