"""A bound on the connections an aiohttp site holds open at once.

aiohttp has no such limit of its own, so the site hands each accepted connection
either to aiohttp's handler, through a thin protocol that frees the slot when the
connection ends, or, past the limit, to a protocol that answers 503 and closes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web

# How long a refused connection may linger for the client to read the refusal.
_REFUSAL_LINGER_SECONDS = 2.0
_REFUSAL_BODY = b"too many open connections (max_connections); retry later\n"
_REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: text/plain\r\n"
    b"Retry-After: 1\r\n"
    b"Connection: close\r\n"
    b"Content-Length: %d\r\n"
    b"\r\n%s" % (len(_REFUSAL_BODY), _REFUSAL_BODY)
)


class _Slot(asyncio.Protocol):
    """Forwards a connection to aiohttp's handler; frees its place in the limit when it ends."""

    __slots__ = ("_inner", "_release")

    def __init__(self, inner: asyncio.Protocol, release: Callable[[], None]) -> None:
        self._inner = inner
        self._release = release

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()
        self._inner.connection_lost(exc)


class _Refused(asyncio.Protocol):
    """Answers 503 at once, reads and discards what the client sends, and closes.

    Closing with unread input would reset the connection and could lose the answer,
    so the connection lingers until the client closes or a short timer fires."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(_REFUSAL)
        if transport.can_write_eof():
            transport.write_eof()
        self._timer = asyncio.get_running_loop().call_later(_REFUSAL_LINGER_SECONDS, transport.abort)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> bool:
        self._transport.close()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._timer.cancel()


class ConnectionLimit:
    """A protocol factory: aiohttp's handler for up to `limit` open connections (0: no limit)."""

    def __init__(self, factory: Callable[[], Any], limit: int, on_refused: Callable[[], None]) -> None:
        self._factory = factory
        self._limit = limit
        self._on_refused = on_refused
        self.open = 0

    def _release(self) -> None:
        self.open -= 1

    def __call__(self) -> asyncio.Protocol:
        if self._limit and self.open >= self._limit:
            self._on_refused()
            return _Refused()
        self.open += 1
        return _Slot(self._factory(), self._release)


class LimitedTCPSite(web.TCPSite):
    """aiohttp's TCPSite, with at most `max_connections` open connections (0: no limit)."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str | None,
        port: int,
        *,
        max_connections: int,
        on_refused: Callable[[], None],
        **kwargs: Any,
    ) -> None:
        super().__init__(runner, host, port, **kwargs)
        self._max_connections = max_connections
        self._on_refused = on_refused
        self.limit: ConnectionLimit | None = None

    @property
    def open_connections(self) -> int:
        return self.limit.open if self.limit is not None else 0

    async def start(self) -> None:
        # TCPSite.start with the protocol factory wrapped.
        await web.BaseSite.start(self)
        assert self._runner.server is not None
        self.limit = ConnectionLimit(self._runner.server, self._max_connections, self._on_refused)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self.limit,
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
        self._bound_port = self._server.sockets[0].getsockname()[1]
