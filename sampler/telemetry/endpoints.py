"""host:port endpoints as written in the config, and the error of one that cannot be listened on."""

from __future__ import annotations

import errno
import os
import socket


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """("0.0.0.0", 4317) from "0.0.0.0:4317"; IPv6 hosts in brackets ("[::1]:4317")."""
    host, sep, port = endpoint.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"endpoint {endpoint!r} must be host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host or "0.0.0.0", int(port)  # nosec B104 # ":4317" asks for all interfaces, as in the Collector


class ListenError(OSError):
    """A listener cannot bind its endpoint: which one, where, why, and what to do (the config key
    that moves it). The command reports it as a start-up error, not as a crash."""

    def __init__(self, listener: str, endpoint: str, key: str, cause: OSError | None = None) -> None:
        cause = cause or _bind_error(endpoint)
        code = cause.errno if cause is not None else None
        # The system's words for the errno; aiohttp's own strerror repeats the address around them.
        reason = os.strerror(code) if code else (cause.strerror if cause is not None else None)
        reason = reason or "the address cannot be bound"
        try:
            host, port = split_endpoint(endpoint)
        except ValueError:
            host, port = endpoint, 0
        if code == errno.EADDRINUSE:
            advice = f"another process listens on port {port}: stop it, or give this listener another port ({key})"
        elif code == errno.EACCES:
            advice = f"port {port} needs privileges: choose one above 1023 ({key})"
        elif code == errno.EADDRNOTAVAIL:
            advice = f"{host} is not an address of this machine: change {key} (0.0.0.0 listens on all)"
        else:
            advice = f"change {key}"
        super().__init__(f"cannot listen for {listener} on {endpoint}: {reason}; {advice}")
        self.listener = listener
        self.endpoint = endpoint


def _bind_error(endpoint: str) -> OSError | None:
    """Why binding `endpoint` fails, found by trying (gRPC reports a failed bind without its cause)."""
    try:
        host, port = split_endpoint(endpoint)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        return exc
    except ValueError:
        return None
    return None
