"""Build the telephony providers named in `[transport] providers`."""

from __future__ import annotations

from pathlib import Path

from voice_connector.transports.base import TransportProvider
from voice_connector_core.config import Settings
from voice_connector_core.workers import WorkerShard


class TransportFactory:
    """Creates one provider per configured name; `opensips, twilio` runs both in one node.

    In a node of several workers, `shard` is this worker's share and `shared_dir` a directory
    all of them see (spent Twilio call tokens live there, so a token opens one stream per node).
    """

    def __init__(
        self, settings: Settings, shard: WorkerShard | None = None, shared_dir: Path | None = None
    ) -> None:
        self.settings = settings
        self.shard = shard or WorkerShard()
        self.shared_dir = shared_dir

    def create(self, name: str) -> TransportProvider:
        provider: type[TransportProvider]
        if name == "twilio":
            from voice_connector.transports.twilio.provider import TwilioProvider

            provider = TwilioProvider
        elif name == "opensips":
            from voice_connector.transports.opensips import OpenSIPSProvider

            provider = OpenSIPSProvider
        else:
            raise ValueError(f"unknown transport provider {name!r}")
        return provider(self.settings, shard=self.shard, shared_dir=self.shared_dir)

    def create_all(self) -> list[TransportProvider]:
        return [self.create(name) for name in self.settings.transport.providers]
