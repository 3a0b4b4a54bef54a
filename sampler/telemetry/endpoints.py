"""host:port endpoints as written in the config."""

from __future__ import annotations


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """("0.0.0.0", 4317) from "0.0.0.0:4317"; IPv6 hosts in brackets ("[::1]:4317")."""
    host, sep, port = endpoint.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"endpoint {endpoint!r} must be host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host or "0.0.0.0", int(port)  # nosec B104 # ":4317" asks for all interfaces, as in the Collector
