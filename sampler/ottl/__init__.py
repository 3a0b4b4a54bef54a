"""The subset of the OpenTelemetry Transformation Language that sampling conditions are written in."""
