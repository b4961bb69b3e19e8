"""Fixtures for Twilio media-node tests: the REST double and signed-node settings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.twilio.rest_double import TwilioRestDouble
from tests.support.servers import ServerThread

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "tw-auth-token-7f3a9c1e5b"


@pytest.fixture
def twilio_rest() -> Iterator[tuple[TwilioRestDouble, ServerThread]]:
    """Twilio's REST API double on a loopback port."""
    double = TwilioRestDouble(ACCOUNT_SID, AUTH_TOKEN)
    server = ServerThread(double.app).start(wait_ready=False)
    try:
        yield double, server
    finally:
        server.stop()
