"""Async MI client: the `opensips` package's datagram MI, run in a thread pool.

`OpenSIPSMI.execute` blocks on a UDP reply (one socket per call, so calls are independent and
thread-safe); running it in a small dedicated executor keeps the event loop, and therefore RTP
pacing, free while OpenSIPS answers. The ua_session_* helpers name the exact parameters OpenSIPS
3.6 expects (see docs/opensips.md).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from opensips.mi import OpenSIPSMI, OpenSIPSMIException

from voice_connector_core.config.schema import OpenSIPSSettings


class MIError(RuntimeError):
    """An MI command failed: OpenSIPS answered with an error, or did not answer in time."""


class MIClient:
    """MI commands as coroutines."""

    def __init__(self, settings: OpenSIPSSettings, max_workers: int = 8) -> None:
        self.mi = OpenSIPSMI(
            conn="datagram",
            datagram_ip=settings.mi_ip,
            datagram_port=settings.mi_port,
            datagram_timeout=settings.mi_timeout,
        )
        self._executor = ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="opensips-mi"
        )

    async def execute(self, command: str, params: dict[str, Any] | list[Any] | None = None) -> Any:
        """Run one MI command; returns its `result`, raises MIError."""
        try:
            return await self.run_blocking(self.mi.execute, command, params)
        except OpenSIPSMIException as exc:
            raise MIError(f"{command}: {exc}") from exc

    async def run_blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a blocking `opensips` package call (e.g. its event subscribe) off the loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    async def reply(
        self,
        key: str,
        code: int,
        reason: str,
        body: str | None = None,
        method: str = "INVITE",
        extra_headers: str | None = None,
    ) -> Any:
        """`ua_session_reply`: answer the pending request of a session."""
        params: dict[str, Any] = {"key": key, "method": method, "code": code, "reason": reason}
        if body:
            params["body"] = body
        if extra_headers:
            params["extra_headers"] = extra_headers
        return await self.execute("ua_session_reply", params)

    async def terminate(self, key: str, extra_headers: str | None = None) -> Any:
        """`ua_session_terminate`: BYE a confirmed session, or delete a rejected one."""
        params: dict[str, Any] = {"key": key}
        if extra_headers:
            params["extra_headers"] = extra_headers
        return await self.execute("ua_session_terminate", params)

    async def update(
        self, key: str, method: str, body: str | None = None, extra_headers: str | None = None
    ) -> Any:
        """`ua_session_update`: an in-dialog request (REFER for transfers)."""
        params: dict[str, Any] = {"key": key, "method": method}
        if body:
            params["body"] = body
        if extra_headers:
            params["extra_headers"] = extra_headers
        return await self.execute("ua_session_update", params)

    def close(self) -> None:
        """Release the worker threads."""
        self._executor.shutdown(wait=False, cancel_futures=True)
