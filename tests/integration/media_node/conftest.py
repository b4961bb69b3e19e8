"""Fixtures of the media node tests: a node served with its own HTTP settings."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from media_node.app import create_app
from tests.conftest import node_settings
from tests.support.fakes import fake_services
from tests.support.servers import ServerThread


@pytest.fixture
def node_with() -> Iterator[Callable[..., ServerThread]]:
    """`node_with(**env)`: a media node served with its own HTTP settings (media_node.server)."""
    servers: list[ServerThread] = []

    def start(**env: str) -> ServerThread:
        settings = node_settings(**env)
        app = create_app(settings, services_override=lambda s, info: fake_services())
        servers.append(ServerThread(app, node_settings=settings).start(wait_ready=False))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()
