"""The bundled LLM server's supervisor, against a real child process that speaks `/api/version`."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator

import pytest

from tests.support.servers import free_port
from voice_connector.services.llm import local_server
from voice_connector.services.llm.local_server import LocalLLMServer, child_environment

VERSION_SERVER = """
import http.server, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/api/version" else 404)
        self.end_headers()
        self.wfile.write(b'{"version": "0.0.0"}')
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


@pytest.fixture
def server() -> Iterator[LocalLLMServer]:
    port = free_port()
    supervisor = LocalLLMServer(
        [sys.executable, "-c", VERSION_SERVER, str(port)],
        f"http://127.0.0.1:{port}",
        backoff=(0.2, 0.4),
        start_timeout=20,
    )
    yield supervisor
    supervisor.stop()


def wait_until(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGILL, signal.SIGSEGV])
def test_a_dead_server_is_reported_then_restarted(server: LocalLLMServer, sig: int) -> None:
    server.start()
    assert server.status() == (True, "ok")
    first = server.process
    assert first is not None
    os.kill(first.pid, sig)
    wait_until(lambda: not server.status()[0])
    _, why = server.status()
    assert f"killed by {signal.Signals(sig).name}" in why and "restarting in 0.2 s" in why
    wait_until(lambda: server.status() == (True, "ok"))
    assert server.restarts == 1 and server.process is not first
    assert server.process.poll() is None


def test_backoff_grows_while_it_keeps_dying(server: LocalLLMServer) -> None:
    server.start()
    for expected in ("0.2", "0.4", "0.4"):
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGKILL)
        wait_until(lambda: not server.status()[0])
        assert f"restarting in {expected} s" in server.status()[1]
        wait_until(lambda: server.status()[0])


def test_stop_ends_the_child_and_does_not_restart_it(server: LocalLLMServer) -> None:
    server.start()
    process = server.process
    assert process is not None
    server.stop()
    assert process.poll() is not None
    time.sleep(0.5)
    assert server.process is process and server.restarts == 0


def test_the_child_gets_no_secrets() -> None:
    env = child_environment({
        "PATH": "/usr/bin",
        "HOME": "/root",
        "OMP_NUM_THREADS": "2",
        "VOICE_CONNECTOR_MODEL_CACHE": "/models",
        "VC_TWILIO_AUTH_TOKEN": "secret",
        "TWILIO_AUTH_TOKEN": "secret",
        "VC_GENERAL_PRIVATE_TOKEN": "secret",
        "AWS_SECRET_ACCESS_KEY": "secret",
    })
    assert env == {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "OMP_NUM_THREADS": "2",
        "VOICE_CONNECTOR_MODEL_CACHE": "/models",
    }


def test_command_serves_the_configured_gguf_and_threads() -> None:
    from tests.conftest import node_settings

    settings = node_settings(
        VC_LLM_URL="http://127.0.0.1:11500",
        VC_LLM_MODEL="tiny:1b",
        VC_LLM_MODEL_PATH="/models/tiny.gguf",
        VC_LLM_SERVER_THREADS="3",
    )
    command = local_server.server_command(settings)
    assert command[1:3] == ["-m", "ai_services.ollama_api"]
    joined = " ".join(command)
    assert "--port 11500" in joined and "--model-name tiny:1b" in joined
    assert "--gguf /models/tiny.gguf" in joined and "--threads 3" in joined
    assert "--gguf" not in local_server.server_command(node_settings())


def test_threads_by_default_leave_a_core_to_the_node(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import node_settings

    def command_threads() -> str:
        command = local_server.server_command(node_settings())
        return command[command.index("--threads") + 1]

    monkeypatch.setattr(local_server.os, "sched_getaffinity", lambda _pid: {0, 1})
    assert command_threads() == "1"
    monkeypatch.setattr(local_server.os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3})
    assert command_threads() == "3"
    monkeypatch.setattr(local_server.os, "sched_getaffinity", lambda _pid: {0})
    assert command_threads() == "1"
