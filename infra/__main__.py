"""Pulumi entry point: validate the stack config first, then declare the stack."""

import pulumi

from voice_infra.config import load_secrets, parse_stack_config, raw_config
from voice_infra.monitoring import parse_monitoring_config
from voice_infra.program import INFRA_DIR, deploy

raw = raw_config()
config = parse_stack_config(raw, pulumi.get_stack())  # raises, naming the key, before any resource
monitoring = parse_monitoring_config(raw)
secret_values = load_secrets()
deploy(config, secret_values, config.read_config_file(INFRA_DIR), monitoring)
