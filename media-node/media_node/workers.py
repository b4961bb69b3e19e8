"""A media node of several worker processes behind one HTTP port (`[general] workers`).

One Python event loop carries ~40 Twilio or ~60 SIP call pipelines before Pipecat's per-frame
work saturates it (benchmarks/results/). With `workers = N` the supervisor starts N worker
processes, each listening on the HTTP port through SO_REUSEPORT (the kernel spreads new
connections evenly between them). Each worker runs the whole media node on its share
(`WorkerShard`): an equal part of `max_calls` and of the RTP ports, its own OpenSIPS event
socket, the OpenSIPS sessions whose key hashes to it. What must be node-wide lives in a
directory they share: call records (any worker answers `/calls/{id}`), spent Twilio call tokens,
and the Prometheus samples (any worker's `/metrics` serves the node's totals).

The supervisor forwards SIGTERM (each worker drains its calls, see lifecycle.py), restarts a
worker that dies on its own, and removes the shared directory at the end.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import time
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import Any

from loguru import logger
from prometheus_client import multiprocess

from voice_connector.telemetry.metrics import MULTIPROCESS_DIR_ENV
from voice_connector_core.config import Settings
from voice_connector_core.logs import config_secrets, setup_logging
from voice_connector_core.workers import WorkerShard

DEFAULT_APP_FACTORY = "media_node.app:create_app"
RESTART_DELAY_SECS = 1.0


def bind_http_socket(host: str, port: int) -> socket.socket:
    """A socket on the node's HTTP port in the port's SO_REUSEPORT group.

    Each worker listens on its own one, and the kernel spreads new connections evenly between
    the listening sockets of the group (by hash); one socket shared by all would hand each
    connection to whichever worker woke first, and a busy worker would take more. The supervisor
    binds one too, without listening (so it gets no connections): a port already taken fails
    at start, not in a worker restart loop.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def load_factory(path: str) -> Any:
    """`module:function`, imported (a worker builds its app itself: apps do not pickle)."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def worker_main(settings: Settings, shard: WorkerShard, shared_dir: Path, factory: str) -> None:
    """One worker process: the media node app on its share, on its own socket of the port."""
    from media_node import lifecycle
    from media_node.server import http_config

    os.setpgid(0, 0)  # a terminal's Ctrl-C reaches the supervisor, which forwards it once
    general = settings.general
    setup_logging(general.log_level, general.log_format, config_secrets(settings))
    app = load_factory(factory)(settings, shard=shard, shared_dir=shared_dir)
    config = http_config(app, settings, lifespan="on")  # the node's HTTP limits
    sock = bind_http_socket(general.http_host, general.http_port)
    logger.info(f"worker {shard.index + 1}/{shard.count} (pid {os.getpid()}) serving")
    lifecycle.serve(config, app.state.drain, general.drain_grace_seconds, sockets=[sock])


class Supervisor:
    """Starts, watches and stops the worker processes of one node."""

    def __init__(self, settings: Settings, factory: str = DEFAULT_APP_FACTORY) -> None:
        self.settings = settings
        self.factory = factory
        self.count = settings.general.workers
        self.shared_dir = Path(tempfile.mkdtemp(prefix="voice-connector-node-"))
        self.metrics_dir = self.shared_dir / "metrics"
        self.metrics_dir.mkdir()
        self.workers: dict[int, BaseProcess] = {}
        self.stopping = False
        self.restarts = 0
        self._context = multiprocessing.get_context("spawn")
        self._sock: socket.socket | None = None

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT and every worker's drain are over; 0 if all exited cleanly."""
        os.environ[MULTIPROCESS_DIR_ENV] = str(self.metrics_dir)  # inherited by the workers
        general = self.settings.general
        self._sock = bind_http_socket(general.http_host, general.http_port)  # claims the port
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        logger.info(
            f"media node: {self.count} workers on {general.http_host}:{general.http_port}, "
            f"shared state in {self.shared_dir}"
        )
        clean = True
        try:
            for index in range(self.count):
                self._start(index)
            clean = self._watch()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._sock.close()
            os.environ.pop(MULTIPROCESS_DIR_ENV, None)
            shutil.rmtree(self.shared_dir, ignore_errors=True)
        return 0 if clean else 1

    def _start(self, index: int) -> None:
        process = self._context.Process(
            target=worker_main,
            args=(self.settings, WorkerShard(index, self.count), self.shared_dir, self.factory),
            name=f"media-node-worker-{index}",
        )
        process.start()
        self.workers[index] = process

    def _watch(self) -> bool:
        clean = True
        while self.workers:
            for index, process in list(self.workers.items()):
                process.join(timeout=0.2)
                if process.is_alive():
                    continue
                multiprocess.mark_process_dead(process.pid, str(self.metrics_dir))
                del self.workers[index]
                if self.stopping:
                    clean = clean and process.exitcode == 0
                    continue
                logger.error(f"worker {index} exited ({process.exitcode}): restarting it")
                self.restarts += 1
                time.sleep(RESTART_DELAY_SECS)
                if not self.stopping:
                    self._start(index)
        return clean

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        """First signal: every worker drains; a second one: they stop at once (as one process)."""
        logger.info(f"{signal.Signals(sig).name}: stopping {len(self.workers)} workers")
        self.stopping = True
        for process in self.workers.values():
            if process.pid is not None and process.is_alive():
                os.kill(process.pid, signal.SIGTERM)
