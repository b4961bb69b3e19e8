"""TwiML builders produce Twilio's documented structure."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from voice_connector_core.twilio.twiml import (
    busy_twiml,
    connect_twiml,
    dial_twiml,
    stream_url_from_base,
)


def test_connect_stream_with_parameters_skips_empty_values() -> None:
    root = ET.fromstring(connect_twiml("wss://m/twilio/stream", {"flavor": "x", "caller": ""}))
    stream = root.find("./Connect/Stream")
    assert stream is not None and stream.get("url") == "wss://m/twilio/stream"
    assert [(p.get("name"), p.get("value")) for p in stream] == [("flavor", "x")]


def test_parameter_values_are_escaped() -> None:
    root = ET.fromstring(connect_twiml("wss://m/s", {"caller": '"<&>'}))
    assert root.find("./Connect/Stream/Parameter").get("value") == '"<&>'  # type: ignore[union-attr]


def test_busy_and_dial() -> None:
    assert [e.tag for e in ET.fromstring(busy_twiml("no"))] == ["Say", "Hangup"]
    dial = ET.fromstring(dial_twiml("+15550100")).find("Dial")
    assert dial is not None and dial.text == "+15550100"


def test_stream_url_from_base() -> None:
    assert stream_url_from_base("https://media.example.com/") == (
        "wss://media.example.com/twilio/stream"
    )
    assert stream_url_from_base("http://127.0.0.1:8093") == "ws://127.0.0.1:8093/twilio/stream"
    assert stream_url_from_base("media.example.com") == "wss://media.example.com/twilio/stream"
