"""TwiML documents the connector answers with; shared by the media node and the Cloud Functions.

Only `twilio.twiml` is imported here (no Pipecat, no FastAPI): the Cloud Functions install it
with the core package, without the media node's dependencies.
"""

from __future__ import annotations

from collections.abc import Mapping

from twilio.twiml.voice_response import Connect, VoiceResponse

STREAM_PATH = "/twilio/stream"
SORRY_TEXT = "Sorry, we cannot take your call right now. Please call again later."


def stream_url_from_base(base_url: str) -> str:
    """`https://host[/prefix]` → `wss://host[/prefix]/twilio/stream` (http → ws)."""
    base = base_url.strip().rstrip("/")
    if base.startswith("https://"):
        base = "wss://" + base[len("https://") :]
    elif base.startswith("http://"):
        base = "ws://" + base[len("http://") :]
    elif "://" not in base:
        base = "wss://" + base
    return base + STREAM_PATH


def connect_twiml(url: str, parameters: Mapping[str, str]) -> str:
    """`<Response><Connect><Stream url=...><Parameter .../></Stream></Connect></Response>`.

    Twilio drops query strings from stream URLs: everything the media node must know travels as
    `<Parameter>` (it arrives in the `start` message's `customParameters`). Empty values are left
    out.
    """
    response = VoiceResponse()
    connect = Connect()
    stream = connect.stream(url=url)
    for name, value in parameters.items():
        if value:
            stream.parameter(name=name, value=value)
    response.append(connect)
    return str(response)


def busy_twiml(text: str = SORRY_TEXT) -> str:
    """A polite refusal: say `text`, hang up."""
    response = VoiceResponse()
    response.say(text)
    response.hangup()
    return str(response)


def dial_twiml(target: str) -> str:
    """`<Response><Dial>target</Dial></Response>`: what a transfer redirects the live call to."""
    response = VoiceResponse()
    response.dial(target)
    return str(response)
