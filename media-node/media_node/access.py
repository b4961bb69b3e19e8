"""Public and private paths of the media node.

Public: what Twilio and the platform's probes must reach (`/twilio/*`, `/healthz`, the status
code of `/readyz`). Private: what tells about calls and the node (`/calls/{id}`: numbers and the
transcript; `/metrics`; the details of `/readyz`). A private request must come from
`[general] private_networks` (loopback by default; e.g. the pod network Prometheus scrapes from)
or carry `Authorization: Bearer <[general] private_token>`. The client address is the connection's
peer, or behind `[general] trusted_proxies` the address they forwarded.
"""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request

from voice_connector_core.config import Settings
from voice_connector_core.netaccess import Networks, client_address


class PrivateAccess:
    """Decides whether a request may read the private paths."""

    def __init__(self, settings: Settings) -> None:
        general = settings.general
        self._token = general.private_token.get_secret_value().encode()
        self._networks = Networks(general.private_networks)
        self._proxies = Networks(general.trusted_proxies)

    def allows(self, request: Request) -> bool:
        """From a private network, or with the bearer token (compared in constant time)."""
        peer = request.client.host if request.client else None
        if client_address(peer, request.headers, self._proxies) in self._networks:
            return True
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        if not self._token or scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(credential.strip().encode(), self._token)

    def require(self, request: Request) -> None:
        """FastAPI dependency of the private routes: 401 unless `allows`."""
        if not self.allows(request):
            raise HTTPException(
                401, "private: bearer token required", headers={"WWW-Authenticate": "Bearer"}
            )
