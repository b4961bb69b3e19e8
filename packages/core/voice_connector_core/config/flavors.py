"""Per-call flavor selection, in the order OpenSIPS' own connector uses.

1. the lookup URL (`[general] flavor_lookup_url`), asked with the called user;
2. an explicit flavor from the signalling (OpenSIPS `extra_params`, Twilio `<Parameter>`);
3. the first flavor (in file order) whose `match` regex matches the called user;
4. `[general] default_flavor`.

Deterministic: file order decides between overlapping regexes, never a hash.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import aiohttp
from loguru import logger

from voice_connector_core.config.loader import Settings

LOOKUP_TIMEOUT_SECS = 0.5
"""The lookup is on the call set-up path: a slow one falls through rather than delay the answer."""


def flavor_from_params(params: Mapping[str, Any] | str | None) -> str | None:
    """The flavor named in signalling parameters (a dict, or OpenSIPS' JSON string)."""
    if isinstance(params, str):
        try:
            params = json.loads(params)
        except json.JSONDecodeError:
            logger.warning(f"extra_params is not JSON, ignored: {params[:80]!r}")
            return None
    if isinstance(params, Mapping):
        value = params.get("flavor")
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def flavor_by_match(settings: Settings, called: str) -> str | None:
    """The first flavor whose `match` regex matches the called user."""
    for name, flavor in settings.flavors.items():
        if flavor.match and re.search(flavor.match, called):
            return name
    return None


async def flavor_from_lookup(
    url: str, called: str, caller: str = "", call_id: str = ""
) -> str | None:
    """Ask the operator's lookup service (GET ?called=&caller=&call_id=, answer {"flavor": NAME});
    any failure falls through to the next rule."""
    params = {"called": called, "caller": caller, "call_id": call_id}
    try:
        timeout = aiohttp.ClientTimeout(total=LOOKUP_TIMEOUT_SECS)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(url, params=params) as response:
                if response.status != 200:
                    return None
                data = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        logger.warning(f"flavor lookup {url} failed: {exc!r}")
        return None
    return flavor_from_params(data if isinstance(data, dict) else None)


async def select_flavor(
    settings: Settings,
    called: str,
    params: Mapping[str, Any] | str | None = None,
    *,
    caller: str = "",
    call_id: str = "",
) -> str:
    """The flavor name for a call to `called`; unknown names fall back to the next rule."""
    candidates = []
    if settings.general.flavor_lookup_url:
        url = settings.general.flavor_lookup_url
        candidates.append(await flavor_from_lookup(url, called, caller, call_id))
    candidates.append(flavor_from_params(params))
    candidates.append(flavor_by_match(settings, called))
    for name in candidates:
        if name is None:
            continue
        if name in settings.flavors or name == settings.general.default_flavor:
            return name
        logger.warning(f"flavor {name!r} is not configured; trying the next rule")
    return settings.general.default_flavor


class FlavorSelector:
    """Flavor selection bound to one configuration: what a provider holds for its calls."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def select(
        self,
        call_id: str,
        called: str,
        caller: str = "",
        extra_params: Mapping[str, Any] | str | None = None,
    ) -> str:
        """`extra_params`: the signalling's own (OpenSIPS' JSON string, Twilio's parameters)."""
        return await select_flavor(
            self.settings, called, extra_params, caller=caller, call_id=call_id
        )
