"""Cloud Function tests: each function through functions-framework's own Flask app.

The media node is a stand-in answering `/readyz`; Twilio's REST API is the protocol double.
Configuration comes from the shipped INI plus `VC_*` environment variables, as in the cloud.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import functions_framework
import pytest
from loguru import logger
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.integration.twilio.rest_double import TwilioRestDouble
from tests.support.servers import ServerThread

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
ACCOUNT_SID = "AC" + "2" * 32
AUTH_TOKEN = "fn-auth-token-93b1d0c4"


def readyz_app(status: int) -> Starlette:
    """A media node as the functions see it: only `/readyz`."""

    async def readyz(_request: Any) -> JSONResponse:
        return JSONResponse({"ready": status == 200}, status_code=status)

    return Starlette(routes=[Route("/readyz", readyz)])


@pytest.fixture
def media_node() -> Iterator[ServerThread]:
    server = ServerThread(readyz_app(200)).start(wait_ready=True)
    yield server
    server.stop()


@pytest.fixture
def rest() -> Iterator[tuple[TwilioRestDouble, ServerThread]]:
    double = TwilioRestDouble(ACCOUNT_SID, AUTH_TOKEN)
    server = ServerThread(double.app).start(wait_ready=False)
    yield double, server
    server.stop()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, media_node: ServerThread) -> pytest.MonkeyPatch:
    """Signed webhooks, a healthy media node; tests override single variables."""
    monkeypatch.chdir(FUNCTIONS.parent)  # the shipped cfg/voice-connector.ini (flavors)
    monkeypatch.delenv("K_SERVICE", raising=False)
    monkeypatch.setenv("VC_TWILIO_ACCOUNT_SID", ACCOUNT_SID)
    monkeypatch.setenv("VC_TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    monkeypatch.setenv("VC_TWILIO_VALIDATE_SIGNATURES", "true")
    monkeypatch.setenv("VC_GENERAL_PUBLIC_URL", media_node.http)
    return monkeypatch


@pytest.fixture
def function_client() -> Callable[[str], Any]:
    """`function_client("twilio_voice")` → a Flask test client of that function."""

    def make(name: str) -> Any:
        app = functions_framework.create_app(name, str(FUNCTIONS / name / "main.py"))
        return app.test_client()

    return make


@pytest.fixture
def log_text() -> Iterator[io.StringIO]:
    """Everything logged through loguru while the test runs."""
    buffer = io.StringIO()
    sink = logger.add(buffer, level="DEBUG", format="{level} {message} {extra}")
    yield buffer
    logger.remove(sink)
