"""Configuration: YAML with `${env:NAME}` substitution, validated by typed models (one module per section)."""

from sampler.config.load import default_config_path, load_config, parse_config
from sampler.config.model import Config
from sampler.config.types import ConfigError

__all__ = ["Config", "ConfigError", "default_config_path", "load_config", "parse_config"]
