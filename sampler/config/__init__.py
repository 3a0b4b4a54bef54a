"""Configuration: YAML loading and the typed models that validate it."""

from sampler.config.load import *  # noqa: F403
