"""Forwarding kept traces: batching, per-exporter queues, retries."""
