"""Request authenticity for Twilio: webhook signatures, the public URL behind proxies, call tokens.

Twilio signs every webhook and the Media Streams WebSocket upgrade with `X-Twilio-Signature`
(HMAC-SHA1 over the exact public URL plus the sorted POST parameters, keyed by the auth token).
Behind Cloud Run, Cloud Functions or a load balancer the server sees an internal scheme and
host, so the URL Twilio signed is rebuilt from `X-Forwarded-Proto` / `X-Forwarded-Host`.

The upgrade signature covers only the URL, which is the same for every stream (Twilio drops query
strings), so a captured upgrade could be replayed. The TwiML we hand out therefore also carries a
*call token* as a `<Parameter>`: an HMAC (keyed from the auth token) over the call SID and the other
parameters, with an expiry and a nonce the media node accepts once.

Framework-neutral on purpose (plain strings and mappings): the media node (Starlette) and the Cloud
Functions (Flask) share it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from twilio.request_validator import RequestValidator

from voice_connector_core.shared_files import ExpirySweeper, key_path

SIGNATURE_HEADER = "X-Twilio-Signature"
TOKEN_PARAMETER = "token"
SIGNED_PARAMETERS = ("flavor", "caller", "called")
"""`<Parameter>`s covered by the call token, besides the call SID."""
TOKEN_TTL_SECONDS = 300.0
_TOKEN_VERSION = "v1"
_KEY_LABEL = b"voice-connector call token v1"


def _first(value: str | None) -> str:
    """First entry of a possibly comma-joined forwarded header (`a, b` from chained proxies)."""
    return (value or "").split(",")[0].strip()


def public_url(
    *,
    scheme: str,
    host: str,
    path: str,
    query: str = "",
    headers: Mapping[str, str],
    websocket: bool = False,
    trust_forwarded: bool = True,
) -> str:
    """The URL the client used, as Twilio signed it, rebuilt from proxy headers when trusted.

    `scheme`, `host`, `path`, `query` are what this server saw; `headers` must be
    case-insensitive (Starlette and Werkzeug headers are). `trust_forwarded`: whether the
    connection comes from our own proxy (the media node passes False for anyone else: a client's
    `X-Forwarded-Host` would let a signature made for another host pass). The Cloud Functions sit
    behind Google's front end, which always writes these headers.
    """
    forwarded = headers if trust_forwarded else {}
    proto = _first(forwarded.get("x-forwarded-proto")) or scheme
    secure = proto in ("https", "wss")
    if websocket:
        proto = "wss" if secure else "ws"
    else:
        proto = "https" if secure else "http"
    public_host = _first(forwarded.get("x-forwarded-host")) or headers.get("host") or host
    url = f"{proto}://{public_host}{path or '/'}"
    return f"{url}?{query}" if query else url


def valid_signature(
    auth_token: str, url: str, params: Mapping[str, str], signature: str | None
) -> bool:
    """Whether `signature` is Twilio's signature of `url` + `params` (constant-time compare)."""
    if not auth_token or not signature:
        return False
    return bool(RequestValidator(auth_token).validate(url, dict(params), signature))


def sign(auth_token: str, url: str, params: Mapping[str, str] | None = None) -> str:
    """The `X-Twilio-Signature` Twilio would send (for tests and the simulated caller)."""
    return RequestValidator(auth_token).compute_signature(url, dict(params or {}))


@dataclass(frozen=True)
class TokenCheck:
    """Outcome of checking a call token: `ok`, else `reason`; `nonce`/`expires` for replay."""

    ok: bool
    reason: str = ""
    nonce: str = ""
    expires: float = 0.0


class CallTokens:
    """Issues and checks call tokens: `v1.<expiry>.<nonce>.<hmac>`, bound to call and parameters.

    The key is derived from the auth token, never the token itself. Outbound calls get their TwiML
    before Twilio assigns a call SID: their token signs an empty SID and is accepted for any call,
    still once and only until it expires.
    """

    def __init__(
        self,
        auth_token: str,
        ttl_seconds: float = TOKEN_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = hmac.new(auth_token.encode(), _KEY_LABEL, hashlib.sha256).digest()
        self._ttl = ttl_seconds
        self._clock = clock

    def _mac(self, expires: str, nonce: str, call_sid: str, params: Mapping[str, str]) -> str:
        fields = [_TOKEN_VERSION, expires, nonce, call_sid]
        fields += [str(params.get(name, "")) for name in SIGNED_PARAMETERS]
        digest = hmac.new(self._key, "|".join(fields).encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def issue(self, call_sid: str, params: Mapping[str, str]) -> str:
        """A token for `call_sid` ("" when not known yet) and these `<Parameter>` values."""
        expires = str(int(self._clock() + self._ttl))
        nonce = secrets.token_urlsafe(12)
        mac = self._mac(expires, nonce, call_sid, params)
        return ".".join((_TOKEN_VERSION, expires, nonce, mac))

    def check(self, token: str, call_sid: str, params: Mapping[str, str]) -> TokenCheck:
        """Signature and expiry of `token` for this call (replay is `ReplayGuard`'s job)."""
        parts = token.split(".") if isinstance(token, str) else []
        if len(parts) != 4 or parts[0] != _TOKEN_VERSION or not parts[1].isdigit():
            return TokenCheck(False, "malformed token")
        _, expires, nonce, mac = parts
        if not mac.isascii():
            return TokenCheck(False, "malformed token")
        matches = any(
            hmac.compare_digest(mac, self._mac(expires, nonce, sid, params))
            for sid in (call_sid, "")
        )
        if not matches:
            return TokenCheck(False, "bad token signature")
        if int(expires) < self._clock():
            return TokenCheck(False, "token expired")
        return TokenCheck(True, nonce=nonce, expires=float(expires))


class ReplayGuard:
    """Remembers used token nonces until they expire, so each token opens one stream only.

    In memory for one process; with `directory` (shared by a node's worker processes) a nonce is
    an exclusively created file, so the check holds across the node's workers too. Across nodes
    a replay would look new, which the short expiry bounds (Twilio connects to one node).
    """

    def __init__(
        self, clock: Callable[[], float] = time.time, directory: Path | None = None
    ) -> None:
        self._used: dict[str, float] = {}
        self._clock = clock
        self._lock = threading.Lock()
        self._directory = directory
        self._sweeper: ExpirySweeper | None = None
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            self._sweeper = ExpirySweeper(directory, clock=clock)

    def use(self, nonce: str, expires: float) -> bool:
        """True the first time `nonce` is presented, False on every replay."""
        now = self._clock()
        if self._directory is not None:
            return self._use_file(nonce, expires, now)
        with self._lock:
            for old in [n for n, exp in self._used.items() if exp < now]:
                del self._used[old]
            if nonce in self._used:
                return False
            self._used[nonce] = expires
            return True

    def _use_file(self, nonce: str, expires: float, now: float) -> bool:
        assert self._directory is not None and self._sweeper is not None
        self._sweeper.sweep(now)  # a spent nonce's file carries its expiry as mtime
        path = key_path(self._directory, nonce)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            return False
        os.close(fd)
        os.utime(path, (expires, expires))
        return True
