"""A node of two worker processes: SIP and Twilio calls, records from any worker, one drain.

The real supervisor (`[general] workers = 2`) runs as its own process; the STT/LLM/TTS are
instant fakes, so what is under test is the process split. The OpenSIPS double stands for
OpenSIPS 3.6 (every worker subscribes its own event socket and sees every event; each INVITE
must be answered by exactly one worker), the simulated Twilio caller speaks Twilio's
Media Streams messages.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.servers import free_port
from voice_connector.caller.opensips_double import OpenSIPSDouble
from voice_connector.loadtest.runner import LoadOptions, run_load
from voice_connector.loadtest.sip_load import sip_caller, subscribed_double

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def two_worker_node() -> Iterator[tuple[int, int, subprocess.Popen[bytes]]]:
    """(HTTP port, OpenSIPS MI port, process) of a running two-worker instant node."""
    port, mi_port, event_port = free_port(), free_port(), free_port()
    rtp = 41000 + (os.getpid() % 50) * 100
    env = {k: v for k, v in os.environ.items() if not k.startswith("VC_")}
    env.update(
        VC_TRANSPORT_PROVIDERS="opensips, twilio",
        VC_OPENSIPS_MI_PORT=str(mi_port),
        VC_OPENSIPS_EVENT_PORT=str(event_port),
        VC_OPENSIPS_RTP_PORT_RANGE=f"{rtp}-{rtp + 99}",
        VC_OPENSIPS_RESUBSCRIBE_INTERVAL="1",
        VC_GENERAL_MAX_CALLS="20",
    )
    node = subprocess.Popen(
        [sys.executable, "-m", "tests.support.instant_node", "--port", str(port), "--workers", "2"],
        cwd=ROOT,
        env=env,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    yield port, mi_port, node
    if node.poll() is None:
        node.kill()
        node.wait()


def count_invite_answers(double: OpenSIPSDouble) -> dict[str, list[int]]:
    """Every answer any worker sends to an INVITE, by session key (kept after the session ends)."""
    answers: dict[str, list[int]] = defaultdict(list)
    reply = double._mi_ua_session_reply

    def counting(params: dict[str, Any]) -> str:
        if params.get("method") == "INVITE":
            answers[params["key"]].append(int(params["code"]))
        return reply(params)

    double._mi_ua_session_reply = counting  # type: ignore[method-assign]
    return answers


def calls_started(port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        if family.name == "voice_connector_calls_started":
            return sum(s.value for s in family.samples if s.name.endswith("_total"))
    return 0.0


async def test_two_workers_share_the_calls_and_the_node_state(
    two_worker_node: tuple[int, int, subprocess.Popen[bytes]],
    speech: Callable[[str], Path],
) -> None:
    port, mi_port, node = two_worker_node
    clip = speech("Hello, how are you today?")

    sip = LoadOptions(url=f"http://127.0.0.1:{port}", audio=clip, calls=6, concurrency=6)
    async with subscribed_double(mi_port, node_workers=2) as double:
        invite_answers = count_invite_answers(double)
        sip_report = await run_load(sip, sip_caller(double))
    assert len(invite_answers) == 6
    for key, codes in invite_answers.items():  # one worker, and one only, took each call
        assert codes.count(200) == 1 and all(c < 300 for c in codes), (key, codes)
    twilio = LoadOptions(
        url=f"ws://127.0.0.1:{port}/twilio/stream", audio=clip, calls=4, concurrency=4
    )
    twilio_report = await run_load(twilio)

    for report in (sip_report, twilio_report):
        assert len(report.completed) == len(report.results) == report.options.calls
        for result in report.results:
            # fetched from /calls/{id}, whichever worker the request reached
            assert result.server_record is not None
            assert result.server_record["outcome"] != "active"
            assert any(t["bot_audio_at"] for t in result.server_record["turns"])
    assert calls_started(port) == 10  # both workers' counters, merged
    async with httpx.AsyncClient() as client:
        readiness = (await client.get(f"http://127.0.0.1:{port}/readyz", timeout=5)).json()
    assert "workers" in readiness["checks"]  # the node's verdict, whichever worker answers

    node.send_signal(signal.SIGTERM)
    assert node.wait(timeout=60) == 0
