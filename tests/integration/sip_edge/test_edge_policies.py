"""Edge policies that need no media node, on the real edge OpenSIPS: the per-trunk limit on new
calls, and what a caller hears when no node is in the set."""

from __future__ import annotations

import time

import pytest

from tests.support.real_opensips import requires_opensips
from tests.support.sip_cluster import edge_opensips
from tests.support.sip_probe import request
from voice_connector.caller.opensips_double import offer_sdp

pytestmark = requires_opensips
TRUNK = "127.0.0.7"


@pytest.fixture
def edge(tmp_path):
    instance = edge_opensips(tmp_path, trusted=[TRUNK])
    yield instance.start()
    instance.stop()


def burst(edge, count: int) -> list[str]:
    """`count` INVITEs from the trunk at once; the status line of each answer."""
    target = (edge.sip_ip, edge.sip_port)
    sockets = []
    for _ in range(count):
        message, sock = request("INVITE", target, TRUNK, offer_sdp(40000))
        sock.settimeout(3)
        sock.sendto(message.encode(), target)
        sockets.append(sock)
    answers = []
    for sock in sockets:
        with sock:
            answers.append(sock.recv(65535).decode().split("\r\n", 1)[0])
    return answers


def test_a_trunk_beyond_its_call_rate_gets_503_and_the_rest_go_on(edge):
    """60 INVITEs at once from one trunk: 30 a second pass the limit (and, with no node in the
    set, hear 503 No Media Node Available); the others are refused by the limit itself."""
    for _ in range(2):  # a burst that straddles the limit's 1 s window is retried once
        answers = burst(edge, 60)
        limited = answers.count("SIP/2.0 503 Too Many Calls From This Trunk")
        passed = answers.count("SIP/2.0 503 No Media Node Available")
        assert limited + passed == 60, set(answers)
        if passed == 30:
            break
        time.sleep(1.5)
    assert (passed, limited) == (30, 30)
