"""Zipkin v2 spans: to OTLP (receiving), from OTLP (exporting), and Zipkin's protobuf encoding."""
