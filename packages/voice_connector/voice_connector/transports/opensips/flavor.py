"""Per-call flavor selection for SIP calls.

Order (as in OpenSIPS' own AI connector, and the same for Twilio): a lookup URL if configured →
`extra_params` from the OpenSIPS script (`{"flavor": "..."}`) → the first flavor whose `match`
regex matches the called user → the default. Deterministic: flavors are tried in their configured
order and a failing lookup falls through instead of failing the call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping

import aiohttp
from loguru import logger


class FlavorSelector:
    """Chooses a flavor name for a call."""

    def __init__(
        self,
        matches: Mapping[str, re.Pattern[str] | str] | None = None,
        default: str = "default",
        lookup_url: str | None = None,
        lookup_timeout: float = 0.5,
        known: Iterable[str] | None = None,
    ) -> None:
        """`matches`: flavor → regex on the called user, in order; `known`: every flavor name
        (those without a regex too), to reject typos from lookups and extra_params."""
        self._matches = [
            (name, re.compile(p) if isinstance(p, str) else p)
            for name, p in (matches or {}).items()
        ]
        self._known = (
            set(known) | {name for name, _ in self._matches} | {default}
            if known is not None
            else None
        )
        self.default = default
        self._lookup_url = lookup_url
        self._timeout = aiohttp.ClientTimeout(total=lookup_timeout)

    async def select(
        self, call_id: str, called: str, caller: str = "", extra_params: str | None = None
    ) -> str:
        """The flavor for a call to `called` (user part of the To URI)."""
        if self._lookup_url:
            flavor = await self._lookup(call_id, called, caller)
            if flavor:
                return flavor
        flavor = self._from_extra_params(call_id, extra_params)
        if flavor:
            return flavor
        for name, pattern in self._matches:
            if pattern.search(called):
                return name
        return self.default

    async def _lookup(self, call_id: str, called: str, caller: str) -> str | None:
        """GET lookup_url?called=..&caller=..&call_id=..; expects {"flavor": NAME} (or 404)."""
        params = {"called": called, "caller": caller, "call_id": call_id}
        try:
            async with aiohttp.ClientSession(timeout=self._timeout) as http:
                async with http.get(self._lookup_url, params=params) as resp:
                    if resp.status != 200:
                        return None
                    data = await resp.json(content_type=None)
        except Exception as exc:
            logger.warning(f"[{call_id}] flavor lookup failed, falling through: {exc!r}")
            return None
        return self._valid(
            call_id, data.get("flavor") if isinstance(data, dict) else None, "lookup"
        )

    def _from_extra_params(self, call_id: str, extra_params: str | None) -> str | None:
        if not extra_params:
            return None
        try:
            data = json.loads(extra_params)
        except json.JSONDecodeError:
            logger.warning(f"[{call_id}] extra_params is not JSON: {extra_params[:80]!r}")
            return None
        return self._valid(
            call_id, data.get("flavor") if isinstance(data, dict) else None, "extra_params"
        )

    def _valid(self, call_id: str, flavor: object, source: str) -> str | None:
        if not isinstance(flavor, str) or not flavor:
            return None
        if self._known is not None and flavor not in self._known:
            logger.warning(f"[{call_id}] {source} named unknown flavor {flavor!r}; ignored")
            return None
        return flavor
