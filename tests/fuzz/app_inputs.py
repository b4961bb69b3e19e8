"""Seeded generators of hostile JSON, Twilio messages and webhooks, event datagrams, log lines.

The classes of input seen in attacks on the HTTP side: nesting deep enough to blow the parser's
recursion (`[[[[…`), values of the wrong type where Twilio puts strings (`{"event": []}`), numbers
the parser turns into infinity (`1e999`), lone surrogates and control characters, binary frames,
sizes around the limits, truncations anywhere, and valid messages with one field replaced. Counts
and seeds come from `sip_media_inputs` (`VC_FUZZ_LONG=1`, `VC_FUZZ_SEED`).
"""

from __future__ import annotations

import base64
import json
import random
from typing import Any

from voice_connector.caller.opensips_double import recorded

ODD_VALUES: tuple[Any, ...] = (
    None, True, 0, -1, 1e308, 2**70, "", "x" * 5000, [], {}, [[[]]], {"a": {"b": {}}},
    "\u0000", "\ud800", "\n\r\t", "CA" + "Z" * 3000, "+15551234567", "🙂" * 50,
)  # fmt: skip
"""Values dropped into fields that expect something else."""
ODD_TEXT = (
    "[" * 60_000,
    "{" * 5_000 + "}" * 5_000,
    '{"a":' * 100 + "1" + "}" * 100,
    '{"event": "media", "media": {"payload": 1e999}}',
    '{"event": NaN}',
    '{"event": -Infinity}',
    "1" * 5000,
    '"\\ud800"',
    '{"event": "start", "start": ' + "[" * 3000 + "]" * 3000 + "}",
    "",
    "null",
    "[]",
    '{"event": []}',
    '{"event": {"nested": "object"}}',
)
"""Whole messages that broke parsing once (RecursionError, OverflowError, TypeError)."""


def twilio_message(rng: random.Random, call_sid: str = "CA" + "f" * 32) -> str | bytes:
    """One Media Streams message: valid, mutated, truncated, odd text or binary."""
    kind = rng.random()
    if kind < 0.1:
        return rng.randbytes(rng.choice((0, 1, 3, 160, rng.randrange(4096))))
    if kind < 0.25:
        return rng.choice(ODD_TEXT)
    message = _valid_message(rng, call_sid)
    if kind < 0.7:
        _mutate(rng, message)
    text = json.dumps(message, default=str)
    if kind > 0.93:
        text = text[: rng.randrange(len(text) + 1)]
    return text


def _valid_message(rng: random.Random, call_sid: str) -> dict[str, Any]:
    event = rng.choice(("media", "media", "media", "mark", "dtmf", "start", "stop", "connected"))
    sid = {"streamSid": "MZ" + call_sid[2:]}
    if event == "media":
        size = rng.choice((0, 1, 159, 160, 161, 1600, 1601, 16_000))
        payload = base64.b64encode(rng.randbytes(size)).decode()
        return {"event": "media", **sid, "media": {"track": "inbound", "payload": payload}}
    if event == "mark":
        return {"event": "mark", **sid, "mark": {"name": rng.choice(("m1", "", "x" * 300))}}
    if event == "dtmf":
        return {"event": "dtmf", **sid, "dtmf": {"digit": rng.choice("0123456789*#AX")}}
    if event == "start":
        return {"event": "start", **sid, "start": {"callSid": call_sid, **sid}}
    return {"event": event, **sid}


def _mutate(rng: random.Random, value: Any, depth: int = 0) -> None:
    """Replace, delete or add one field somewhere in a message (in place)."""
    if not isinstance(value, dict) or not value:
        return
    key = rng.choice(list(value))
    action = rng.random()
    if isinstance(value[key], dict) and action < 0.4 and depth < 3:
        _mutate(rng, value[key], depth + 1)
    elif action < 0.8:
        value[key] = rng.choice(ODD_VALUES)
    elif action < 0.9:
        del value[key]
    else:
        value[rng.choice(("event", "extra", "\u0000", "x" * 200))] = rng.choice(ODD_VALUES)


def webhook_form(rng: random.Random, index: int) -> dict[str, str]:
    """A voice webhook form: Twilio's fields, some missing, odd or oversized, plus extras."""
    form = {
        "CallSid": f"CA{index:032x}",
        "From": "+15550001111",
        "To": "+15550002222",
        "AccountSid": "AC" + "1" * 32,
    }
    for _ in range(rng.randrange(3)):
        choice = rng.random()
        key = rng.choice([*form, "Extra", "x" * 100, "Ünï", ""])
        if choice < 0.3 and key in form:
            del form[key]
        else:
            form[key] = str(rng.choice(ODD_VALUES))
    # what a form can carry: UTF-8 text (a lone surrogate cannot be sent at all)
    return {k.encode("utf-8", "replace").decode(): v.encode("utf-8", "replace").decode()
            for k, v in form.items()}  # fmt: skip


def event_datagram(rng: random.Random) -> bytes:
    """One E_UA_SESSION JSON-RPC datagram: recorded, mutated, truncated, odd or random bytes."""
    kind = rng.random()
    if kind < 0.1:
        return rng.randbytes(rng.choice((0, 1, 100, rng.randrange(2000))))
    if kind < 0.25:
        return rng.choice(ODD_TEXT).encode("utf-8", "surrogatepass")
    name = rng.choice(("INVITE-NEW", "ACK-UPDATED", "BYE-TERMINATED", "CANCEL-TERMINATED"))
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": "E_UA_SESSION", "params": recorded(name)}
    if kind < 0.75:
        _mutate(rng, message)
    params = message.get("params")
    if isinstance(params, dict) and rng.random() < 0.4:  # invented methods, absurd statuses
        invented = "".join(rng.choices("ABCDEF", k=8))
        params["method"] = rng.choice(("INVITE", "FOO", "x" * 40, invented))
        params["status"] = rng.choice((0, 200, "1e999", 10**30, -5, "abc"))
    data = json.dumps(message, default=str).replace('"1e999"', "1e999").encode()
    if kind > 0.93:
        data = data[: rng.randrange(len(data) + 1)]
    return data


SECRET_SHAPES = (
    "Authorization: Bearer {s}",
    "api_key={s}",
    '"auth_token": "{s}"',
    "password = {s}",
    "{s}",
)


def log_line(rng: random.Random, secret: str) -> tuple[str, bool]:
    """A line as a peer could shape it (long runs, near-credentials, control characters), and
    whether it carries `secret`."""
    parts: list[str] = []
    carries = False
    for _ in range(rng.randrange(1, 6)):
        kind = rng.random()
        if kind < 0.25:
            parts.append(rng.choice("aA9_-") * rng.randrange(1, 20_000))
        elif kind < 0.4:
            parts.append("token" * rng.randrange(1, 2_000))
        elif kind < 0.5:
            parts.append("authorization:" + " " * rng.randrange(5_000))
        elif kind < 0.65:
            parts.append(rng.choice(SECRET_SHAPES).format(s=secret))
            carries = True
        elif kind < 0.8:
            parts.append("".join(chr(rng.randrange(0, 0x2FF)) for _ in range(rng.randrange(200))))
        else:
            parts.append(f"call CA{rng.getrandbits(128):032x} from +1555{rng.randrange(10**7):07d}")
    return " ".join(parts), carries
