"""Private paths (/calls, /metrics, /readyz details) need the token or a private network."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import node_settings

TOKEN = "priv-token-4d9e1c7a"


async def get(node, path: str, **headers: str) -> httpx.Response:  # type: ignore[no-untyped-def]
    async with httpx.AsyncClient() as client:
        return await client.get(f"{node.http}{path}", headers=headers)


async def test_private_paths_need_the_bearer_token(node_with) -> None:  # type: ignore[no-untyped-def]
    """`/calls/{id}` gave anyone the numbers and the transcript, `/metrics` the node's state."""
    node = node_with(VC_GENERAL_PRIVATE_TOKEN=TOKEN, VC_GENERAL_PRIVATE_NETWORKS="")
    good = {"Authorization": f"Bearer {TOKEN}"}
    bad = {"Authorization": "Bearer not-the-token"}
    for path in ("/calls/CA123", "/metrics"):
        assert (await get(node, path)).status_code == 401
        assert (await get(node, path, **bad)).status_code == 401
    assert (await get(node, "/calls/CA123", **good)).status_code == 404  # allowed: no such call
    assert (await get(node, "/metrics", **good)).status_code == 200
    public = await get(node, "/readyz")
    assert set(public.json()) == {"ready"}  # the status for probes, no details
    assert "checks" in (await get(node, "/readyz", **good)).json()
    assert (await get(node, "/healthz")).status_code == 200


async def test_loopback_is_private_by_default(node_with) -> None:  # type: ignore[no-untyped-def]
    node = node_with()
    assert (await get(node, "/metrics")).status_code == 200
    assert "checks" in (await get(node, "/readyz")).json()


@pytest.mark.parametrize("trusted", [False, True])
async def test_forwarded_client_address_counts_only_from_a_trusted_proxy(
    node_with, trusted: bool
) -> None:  # type: ignore[no-untyped-def]
    env = {"VC_GENERAL_PRIVATE_NETWORKS": "10.0.0.0/8"}
    if trusted:
        env["VC_GENERAL_TRUSTED_PROXIES"] = "127.0.0.1/32"
    node = node_with(**env)
    response = await get(node, "/metrics", **{"X-Forwarded-For": "192.0.2.7, 10.1.2.3"})
    assert response.status_code == (200 if trusted else 401)
    spoofed = await get(node, "/metrics", **{"X-Forwarded-For": "10.1.2.3, 192.0.2.7"})
    assert spoofed.status_code == 401  # the proxy saw 192.0.2.7; the left entry is the client's


def test_the_token_is_hidden_when_the_config_is_printed() -> None:
    settings = node_settings(VC_GENERAL_PRIVATE_TOKEN=TOKEN)
    assert TOKEN not in str(settings.redacted()) and TOKEN in settings.secrets()
