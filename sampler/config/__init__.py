"""Configuration: YAML with `${env:NAME}` substitution, validated by typed models (one module per section);
an OpenTelemetry Collector config is translated into the same models."""

from sampler.config.load import (
    LoadedConfig,
    default_config_path,
    load_config,
    parse_config,
    read_config,
    read_config_text,
)
from sampler.config.model import Config
from sampler.config.types import ConfigError

__all__ = [
    "Config",
    "ConfigError",
    "LoadedConfig",
    "default_config_path",
    "load_config",
    "parse_config",
    "read_config",
    "read_config_text",
]
