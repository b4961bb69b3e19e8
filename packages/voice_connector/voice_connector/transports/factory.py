"""Build the telephony providers named in `[transport] providers`."""

from __future__ import annotations

from voice_connector.config import Settings
from voice_connector.transports.base import TransportProvider


class TransportFactory:
    """Creates one provider per configured name; `opensips, twilio` runs both in one node."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def create(self, name: str) -> TransportProvider:
        if name == "twilio":
            from voice_connector.transports.twilio.provider import TwilioProvider

            return TwilioProvider(self.settings)
        if name == "opensips":
            from voice_connector.config.flavors import FlavorSelector
            from voice_connector.transports.opensips import OpenSIPSProvider

            return OpenSIPSProvider(self.settings.opensips, flavors=FlavorSelector(self.settings))
        raise ValueError(f"unknown transport provider {name!r}")

    def create_all(self) -> list[TransportProvider]:
        return [self.create(name) for name in self.settings.transport.providers]
