"""Pulumi entry point: validate the stack config first, then declare the stack."""

from voice_infra.config import load_config, load_secrets
from voice_infra.program import INFRA_DIR, deploy

config = load_config()  # raises, naming the key, before any resource exists
secret_values = load_secrets()
deploy(config, secret_values, config.read_config_file(INFRA_DIR))
