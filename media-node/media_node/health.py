"""Readiness of the services a node depends on, kept current by a background monitor.

A node whose LLM, remote STT or remote TTS is down would answer calls with silence, so `/readyz`
must say so while it lasts, not only at start-up. The monitor probes every distinct dependency of
the configuration and its flavors: quickly while one fails (a fresh node becomes ready as soon as
its dependencies are), slowly while all answer (a readiness probe costs no network call).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path
from urllib.parse import urlparse

import aiohttp
from loguru import logger

from voice_connector.services.llm.ollama_models import ensure_model
from voice_connector_core.config import Settings
from voice_connector_core.shared_files import read_json, write_json

Probe = Callable[[], Awaitable[tuple[bool, str]]]
Report = Callable[[str, bool, str], None]

PROBE_TIMEOUT_SECS = 2.0
INTERVAL_OK_SECS = 10.0
INTERVAL_FAILING_SECS = 0.5


def readyz_url(url: str) -> str:
    """`/readyz` on the same host and port as a service URL (ws:// servers answer HTTP too)."""
    parsed = urlparse(url)
    scheme = "https" if parsed.scheme in ("https", "wss") else "http"
    return f"{scheme}://{parsed.netloc}/readyz"


async def probe_service(url: str) -> tuple[bool, str]:
    """Ready if `/readyz` answers 200; reachable-and-ok for a server without one (4xx).

    Our AI services answer 503 while their model loads; a third-party server (alphacep
    vosk-server, a proxy) may not know `/readyz` at all, and then answering is all we can check.
    A comma-separated list of endpoints (clients fail over between them) is ready while any is.
    """
    endpoints = [u.strip() for u in url.split(",") if u.strip()]
    if len(endpoints) > 1:
        results = await asyncio.gather(*(probe_service(u) for u in endpoints))
        failing = [why for ok, why in results if not ok]
        return len(failing) < len(results), "; ".join(failing) or "ok"
    target = readyz_url(url)
    timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT_SECS)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(target) as response,
        ):
            status = response.status
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return False, f"{url} unreachable: {exc or type(exc).__name__}"
    if status == 200:
        return True, "ok"
    if status < 500:
        return True, f"reachable ({target} answered {status})"
    return False, f"{target} answered {status}"


def dependency_probes(settings: Settings) -> dict[str, Probe]:
    """One probe per distinct remote dependency of the settings and every flavor."""
    return _plan(settings)[0]


def flavor_needs(settings: Settings) -> dict[str, set[str]]:
    """The probe names each flavor's calls depend on; "" is the flavor-less configuration."""
    return _plan(settings)[1]


def optional_probes(settings: Settings) -> set[str]:
    """Probes only other flavors than the default need: they do not gate readiness.

    A retired legacy host behind one flavor must not make every node unready; that flavor's
    calls are answered with an apology instead (see `CallRegistry.outage`).
    """
    needs = flavor_needs(settings)
    default = settings.general.default_flavor
    required = needs[default if default in settings.flavors else ""]
    return set().union(*needs.values()) - required


def _plan(settings: Settings) -> tuple[dict[str, Probe], dict[str, set[str]]]:
    probes: dict[str, Probe] = {}
    names: dict[tuple[str, ...], str] = {}
    needs: dict[str, set[str]] = {}
    variants = [("", settings)] + [(name, settings.for_flavor(name)) for name in settings.flavors]
    for flavor, variant in variants:
        llm, stt, tts = variant.llm, variant.stt, variant.tts
        wanted: list[tuple[tuple[str, ...], Probe]] = []
        if llm.provider == "ollama":
            wanted.append((
                ("llm", llm.url, llm.model),
                lambda u=llm.url, m=llm.model, p=llm.pull_missing: ensure_model(u, m, p),
            ))
        else:
            wanted.append((("llm", llm.url), lambda u=llm.url: probe_service(u)))
        if stt.mode == "remote":
            wanted.append((("stt", stt.url), lambda u=stt.url: probe_service(u)))
        if tts.mode == "remote":
            wanted.append((("tts", tts.url), lambda u=tts.url: probe_service(u)))
        for key, probe in wanted:
            if key not in names:
                names[key] = f"{key[0]}@{flavor}" if flavor else key[0]
                probes[names[key]] = probe
            needs.setdefault(flavor, set()).add(names[key])
    return probes, needs


class DependencyMonitor:
    """Runs the probes forever, reporting each result as a readiness check by name."""

    def __init__(
        self,
        probes: dict[str, Probe],
        report: Report,
        interval_ok: float = INTERVAL_OK_SECS,
        interval_failing: float = INTERVAL_FAILING_SECS,
        optional: Collection[str] = (),
    ) -> None:
        """`optional`: probes that do not gate readiness (other flavors' services); while only
        they fail, probing stays at the slow pace (a retired flavor host is a steady state)."""
        self.probes = probes
        self.report = report
        self.interval_ok = interval_ok
        self.interval_failing = interval_failing
        self.optional = set(optional)
        self._last: dict[str, bool] = {}
        for name in probes:
            report(name, False, "checking")

    async def check_once(self) -> bool:
        """Probe everything at once; True if all but the optional ones are ready."""
        names = list(self.probes)
        results = await asyncio.gather(*(self.probes[n]() for n in names), return_exceptions=True)
        all_ok = True
        for name, result in zip(names, results, strict=True):
            if isinstance(result, BaseException):
                ok, why = False, f"probe failed: {result!r}"
            else:
                ok, why = result
            if self._last.get(name) != ok:
                (logger.info if ok else logger.warning)(f"dependency {name}: {why}")
            self._last[name] = ok
            self.report(name, ok, why)
            all_ok = all_ok and (ok or name in self.optional)
        return all_ok

    async def run(self) -> None:
        while True:
            all_ok = await self.check_once()
            await asyncio.sleep(self.interval_ok if all_ok else self.interval_failing)


class SharedReadiness:
    """Readiness of every worker of a node, through the directory the workers share.

    A probe reaches one worker, but a call may reach any: each worker publishes its own verdict
    every `PUBLISH_SECS`, and `/readyz` on any of them is ready only while every worker's latest
    verdict is ready and fresh (a worker still loading its models, hung or restarting is not).
    """

    PUBLISH_SECS = 1.0
    STALE_SECS = 10.0

    def __init__(self, directory: Path, index: int, count: int) -> None:
        self.directory = directory
        self.index = index
        self.count = count
        directory.mkdir(parents=True, exist_ok=True)

    def publish(self, ready: bool, detail: str) -> None:
        verdict = {"ready": ready, "detail": detail, "at": time.time()}
        write_json(self.directory / f"{self.index}.json", verdict)

    def node(self) -> tuple[bool, str]:
        """(every worker ready, why not: the first worker that is not)."""
        now = time.time()
        for index in range(self.count):
            verdict = read_json(self.directory / f"{index}.json")
            if not isinstance(verdict, dict):
                return False, f"worker {index}: not started"
            if now - float(verdict.get("at", 0)) > self.STALE_SECS:
                return False, f"worker {index}: silent for {now - float(verdict['at']):.0f} s"
            if not verdict.get("ready"):
                return False, f"worker {index}: {verdict.get('detail', 'not ready')}"
        return True, f"{self.count} workers ready"

    async def keep_publishing(self, verdict: Callable[[], tuple[bool, str]]) -> None:
        """Publish this worker's `verdict()` until cancelled."""
        while True:
            try:
                self.publish(*verdict())
            except OSError as exc:
                logger.warning(f"worker readiness not published: {exc}")
            await asyncio.sleep(self.PUBLISH_SECS)
