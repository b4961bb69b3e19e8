"""The shipped media-node OpenSIPS cfg on the real OpenSIPS 3.6.8: it parses as shipped and with
its start-up rewrites, listens on TCP as well as UDP (the liveness probe connects over TCP),
advertises the public address in its own headers, and admits only trusted sources when told."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from tests.support.real_opensips import (
    BUNDLE_ENV,
    ENV_PREPROCESSOR,
    NODE_CFG,
    bundle_dir,
    node_opensips,
    requires_opensips,
    run_check,
)
from tests.support.sip_probe import final_reply, header, status
from voice_connector.caller.opensips_double import offer_sdp

PUBLIC = "203.0.113.10"


def test_the_bundle_is_found_where_the_environment_says(monkeypatch, tmp_path):
    monkeypatch.setenv(BUNDLE_ENV, str(tmp_path))
    assert bundle_dir() is None  # no run-opensips there: the tests skip, saying why
    (tmp_path / "run-opensips").write_text("#!/bin/sh\n")
    assert bundle_dir() == tmp_path


@requires_opensips
def test_shipped_cfg_passes_opensips_check_as_it_is():
    run_check(NODE_CFG)


@requires_opensips
def test_shipped_cfg_passes_check_with_public_address_and_trusted_sources():
    env = {"VC_OPENSIPS_PUBLIC_IP": PUBLIC, "SIP_TRUSTED_SOURCES": "10.0.0.0/8, 127.0.0.2"}
    run_check(NODE_CFG, env, "-p", str(ENV_PREPROCESSOR))


@requires_opensips
def test_malformed_trusted_sources_fail_the_start():
    with pytest.raises(AssertionError, match="not an IPv4 address or CIDR"):
        run_check(NODE_CFG, {"SIP_TRUSTED_SOURCES": "edge.example"}, "-p", str(ENV_PREPROCESSOR))


@pytest.fixture
def opensips(tmp_path, request):
    instance = node_opensips(tmp_path, **getattr(request, "param", {}))
    yield instance.start()
    instance.stop()


@requires_opensips
def test_listens_on_tcp_and_udp(opensips):
    with socket.create_connection((opensips.sip_ip, opensips.sip_port), timeout=2):
        pass  # what a TCP liveness probe does
    assert status(final_reply("OPTIONS", (opensips.sip_ip, opensips.sip_port))) == 200


class _AnswerEverything(threading.Thread):
    """Stands in for the connector: subscribes to E_UA_SESSION and answers each INVITE 200."""

    def __init__(self, opensips) -> None:
        super().__init__(daemon=True)
        self.opensips = opensips
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(5)
        port = self.sock.getsockname()[1]
        opensips.mi("event_subscribe", ["E_UA_SESSION", f"udp:127.0.0.1:{port}", 60])

    def run(self) -> None:
        event = json.loads(self.sock.recv(65535))["params"]
        self.opensips.mi(
            "ua_session_reply",
            {
                "key": event["key"],
                "method": "INVITE",
                "code": 200,
                "reason": "OK",
                "body": offer_sdp(40000),
            },
        )


@requires_opensips
@pytest.mark.parametrize(
    "opensips",
    [{"env": {"VC_OPENSIPS_PUBLIC_IP": PUBLIC}, "listen_ip": "0.0.0.0"}],
    indirect=True,
)
def test_public_address_is_advertised_in_contact(opensips):
    answerer = _AnswerEverything(opensips)
    answerer.start()
    reply = final_reply("INVITE", ("127.0.0.1", opensips.sip_port), body=offer_sdp(40002))
    answerer.join(5)
    assert status(reply) == 200
    assert f"sip:{PUBLIC}:{opensips.sip_port}>" in header(reply, "Contact"), reply


@requires_opensips
@pytest.mark.parametrize(
    "opensips", [{"env": {"SIP_TRUSTED_SOURCES": "127.0.0.2/32"}}], indirect=True
)
def test_only_trusted_sources_are_let_in(opensips):
    target = (opensips.sip_ip, opensips.sip_port)
    assert status(final_reply("INVITE", target, "127.0.0.3", offer_sdp(40000))) == 403
    assert status(final_reply("OPTIONS", target, "127.0.0.3")) == 403
    assert status(final_reply("OPTIONS", target, "127.0.0.2")) == 200
    assert opensips.mi("b2be_list") == []  # the refused INVITE created no session
