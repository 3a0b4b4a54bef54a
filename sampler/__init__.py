"""Tail-based sampling proxy for OpenTelemetry traces."""

__version__ = "0.1.0"
