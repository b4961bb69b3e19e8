"""`twilio_status`: signed status callbacks are logged with the call SID; forgeries get 403."""

from __future__ import annotations

import re

from tests.functions.conftest import AUTH_TOKEN
from voice_connector_core.twilio.security import sign

URL = "http://localhost/"
STATUSES = ["initiated", "ringing", "in-progress", "completed"]


def form(status: str, sequence: int) -> dict[str, str]:
    return {
        "CallSid": "CA" + "b" * 32,
        "AccountSid": "AC" + "2" * 32,
        "CallStatus": status,
        "From": "+15550001111",
        "To": "+15550002222",
        "Direction": "outbound-api",
        "SequenceNumber": str(sequence),
        "CallDuration": "42" if status == "completed" else "",
    }


def logged_statuses(text: str) -> list[tuple[str, str]]:
    return re.findall(r"^INFO call (CA\w+) ([\w-]+) ", text, flags=re.MULTILINE)


def test_lifecycle_is_logged_with_the_call_sid(env, function_client, log_text) -> None:  # type: ignore[no-untyped-def]
    client = function_client("twilio_status")
    for sequence, status in enumerate(STATUSES):
        body = form(status, sequence)
        headers = {"X-Twilio-Signature": sign(AUTH_TOKEN, URL, body)}
        response = client.post("/", data=body, headers=headers)
        assert response.status_code == 204
    logged = logged_statuses(log_text.getvalue())
    assert logged == [("CA" + "b" * 32, status) for status in STATUSES]
    completed = log_text.getvalue().splitlines()[-1]
    assert "'call_id': 'CA" in completed and "'duration_seconds': '42'" in completed
    assert AUTH_TOKEN not in log_text.getvalue()


def test_forged_status_callback_is_403(env, function_client, log_text) -> None:  # type: ignore[no-untyped-def]
    body = form("completed", 9)
    client = function_client("twilio_status")
    assert client.post("/", data=body).status_code == 403
    forged = sign("not-the-token", URL, body)
    assert client.post("/", data=body, headers={"X-Twilio-Signature": forged}).status_code == 403
    assert logged_statuses(log_text.getvalue()) == []


def test_status_without_call_status_is_400(env, function_client) -> None:  # type: ignore[no-untyped-def]
    body = {"CallSid": "CA" + "c" * 32}
    response = function_client("twilio_status").post(
        "/", data=body, headers={"X-Twilio-Signature": sign(AUTH_TOKEN, URL, body)}
    )
    assert response.status_code == 400
