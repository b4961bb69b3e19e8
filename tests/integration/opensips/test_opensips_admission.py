"""A full node refuses an INVITE with 503 before answering it (OpenSIPS can fail over)."""

from __future__ import annotations

from conftest import Handlers
from helpers import answered, replies, until

from voice_connector.caller.opensips_double import offer_sdp
from voice_connector.telemetry.outcome import CallOutcome
from voice_connector.transports.base import CallRefused


async def test_a_full_node_answers_503_and_never_200(double, make_provider) -> None:
    full = True
    asked: list[str] = []

    def admit(call_id: str) -> None:
        asked.append(call_id)
        if full:
            raise CallRefused("at capacity (1 calls)")

    handlers = Handlers()
    provider = await make_provider(handlers, admit=admit)
    key = double.new_key()
    double.invite(key, offer_sdp(40000))
    await until(lambda: 503 in replies(double, key))
    await until(lambda: bool(double.mi_calls("ua_session_terminate", key)))
    assert asked == [key]
    assert 200 not in replies(double, key) and 180 not in replies(double, key)
    assert key not in handlers.calls and key not in provider.sessions
    assert handlers.outcome(key) == (CallOutcome.REJECTED, "503 at capacity (1 calls)")

    full = False  # room again: the next call is answered and handed to the pipeline
    second = double.new_key()
    double.invite(second, offer_sdp(40002))
    await answered(double, second)
    double.ack(second)
    await until(lambda: second in handlers.calls)
    double.bye(second)
    await until(lambda: not provider.sessions)
