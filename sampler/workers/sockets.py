"""The sockets the supervisor holds for its workers' whole life, so that a restarted worker finds
everything where its predecessor was.

- The receiver ports: bound with SO_REUSEPORT (not listening), so that a port written as 0
  resolves once, and every worker binds the same port beside the others. A port some other
  process listens on already is refused here, with the receiver's name, not shared silently.
- Per worker, two listening Unix sockets: its hand-over socket (the other workers connect to it)
  and its admin socket (the supervisor connects to it). Connections made while a worker restarts
  wait in the backlog for its successor. They are in the abstract namespace (Linux), so they
  need no writable directory (the root filesystem may be read-only, /tmp included), and their
  names carry a random part. Who connects is checked by its credentials (SO_PEERCRED): a worker
  takes hand-overs only from processes of its own user, and control only from its supervisor.
"""

from __future__ import annotations

import os
import secrets
import socket
import struct
from dataclasses import dataclass, field

from sampler.telemetry.endpoints import ListenError, split_endpoint

_BACKLOG = 512
# Each receiver's name in messages, and the key that moves it.
_LISTENERS = {
    "grpc": ("OTLP/gRPC", "receivers.otlp.protocols.grpc.endpoint"),
    "http": ("OTLP/HTTP", "receivers.otlp.protocols.http.endpoint"),
    "zipkin": ("Zipkin", "receivers.zipkin.endpoint"),
}
_CREDENTIALS = struct.Struct("3i")  # pid, uid, gid


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a connected Unix socket."""
    pid, uid, gid = _CREDENTIALS.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CREDENTIALS.size))
    return pid, uid, gid


def hold_port(name: str, endpoint: str) -> tuple[int, socket.socket]:
    """Bind the receiver's endpoint with SO_REUSEPORT; its port and the socket to keep.
    Raises ListenError, as a receiver of one process does."""
    host, port = split_endpoint(endpoint)
    listener, key = _LISTENERS[name]
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise ListenError(listener, endpoint, key, OSError(exc.errno, exc.strerror)) from None
    if port:
        # Without SO_REUSEPORT, a bind fails if anyone listens there (even with it, as another
        # copy of this daemon would): two daemons must never split one port's connections.
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                raise ListenError(listener, endpoint, key, exc) from None
    held = socket.socket(family, kind, proto)
    held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        held.bind(address)
    except OSError as exc:
        held.close()
        raise ListenError(listener, endpoint, key, exc) from None
    return held.getsockname()[1], held


@dataclass
class WorkerSockets:
    """One worker's listening Unix sockets and their (abstract) addresses."""

    handoff_path: str
    admin_path: str
    handoff: socket.socket
    admin: socket.socket


def _listen_unix(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(address)
        sock.listen(_BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


@dataclass
class HeldSockets:
    """Every socket the supervisor holds; close() releases them."""

    ports: dict[str, int] = field(default_factory=dict)
    workers: list[WorkerSockets] = field(default_factory=list)
    _held: list[socket.socket] = field(default_factory=list)

    @classmethod
    def open(cls, endpoints: dict[str, str], workers: int) -> HeldSockets:
        held = cls()
        prefix = f"\0tail-sampler-{os.getpid()}-{secrets.token_hex(8)}"
        try:
            for name, endpoint in endpoints.items():
                port, sock = hold_port(name, endpoint)
                held.ports[name] = port
                held._held.append(sock)
            for index in range(workers):
                handoff_path, admin_path = f"{prefix}-handoff-{index}", f"{prefix}-admin-{index}"
                sockets = WorkerSockets(handoff_path, admin_path, _listen_unix(handoff_path), _listen_unix(admin_path))
                held.workers.append(sockets)
                held._held += [sockets.handoff, sockets.admin]
        except BaseException:
            held.close()
            raise
        return held

    def close(self) -> None:
        for sock in self._held:
            sock.close()
        self._held.clear()
