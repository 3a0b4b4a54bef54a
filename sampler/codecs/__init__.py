"""Formats other than OTLP protobuf, converted to and from it: OTLP/JSON and Zipkin v2."""
