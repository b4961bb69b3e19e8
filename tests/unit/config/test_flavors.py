"""Flavor selection order: lookup URL → signalling parameter → regex on called user → default."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web

from voice_connector_core.config import load_settings
from voice_connector_core.config.flavors import FlavorSelector, select_flavor

seen_queries: list[dict[str, str]] = []

INI = """
[general]
default_flavor = main
flavor_lookup_url = {lookup}
[flavor:sales]
match = ^1800
[flavor:vip]
match = ^1800555
[flavor:looked]
"""


def settings(tmp_path: Path, lookup: str = ""):  # type: ignore[no-untyped-def]
    path = tmp_path / "vc.ini"
    path.write_text(INI.format(lookup=lookup))
    return load_settings(path, env={})


@pytest.fixture
async def lookup_server():  # type: ignore[no-untyped-def]
    async def handler(request: web.Request) -> web.Response:
        seen_queries.append(dict(request.query))
        if request.query.get("called") == "42":
            return web.json_response({"flavor": "looked"})
        if request.query.get("called") == "500":
            return web.Response(status=500)
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/flavor", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/flavor"
    await runner.cleanup()


async def test_regex_in_file_order_wins_over_later_matches(tmp_path: Path) -> None:
    assert await select_flavor(settings(tmp_path), "18005551234") == "sales"


async def test_default_when_nothing_matches(tmp_path: Path) -> None:
    assert await select_flavor(settings(tmp_path), "4420000") == "main"


async def test_signalling_parameter_beats_regex(tmp_path: Path) -> None:
    chosen = await select_flavor(settings(tmp_path), "18005551234", '{"flavor": "vip"}')
    assert chosen == "vip"


async def test_unknown_or_malformed_parameter_falls_through(tmp_path: Path) -> None:
    s = settings(tmp_path)
    assert await select_flavor(s, "18001", {"flavor": "nope"}) == "sales"
    assert await select_flavor(s, "18001", "{not json") == "sales"


async def test_lookup_url_comes_first_and_failures_fall_through(
    tmp_path: Path, lookup_server: str
) -> None:
    s = settings(tmp_path, lookup_server)
    assert await select_flavor(s, "42", {"flavor": "vip"}, caller="alice", call_id="k1") == "looked"
    assert seen_queries[-1] == {"called": "42", "caller": "alice", "call_id": "k1"}
    assert await select_flavor(s, "500", {"flavor": "vip"}) == "vip"


async def test_unreachable_lookup_falls_through(tmp_path: Path) -> None:
    s = settings(tmp_path, "http://127.0.0.1:9/flavor")
    assert await select_flavor(s, "18001") == "sales"


async def test_selector_bound_to_settings_is_what_providers_use(tmp_path: Path) -> None:
    selector = FlavorSelector(settings(tmp_path))
    assert await selector.select("k", "18005551234", "bob", '{"flavor": "vip"}') == "vip"
    assert await selector.select("k", "999") == "main"
