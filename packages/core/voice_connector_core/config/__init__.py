"""Configuration: INI schema, environment overrides, validation and per-call flavors."""

from voice_connector_core.config.loader import (
    DEFAULT_CONFIG_PATH,
    ConfigError,
    ConfigProblem,
    Settings,
    env_name,
    load_settings,
)

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "ConfigError",
    "ConfigProblem",
    "Settings",
    "env_name",
    "load_settings",
]
