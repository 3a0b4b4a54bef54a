"""Admin HTTP endpoint: /metrics (Prometheus text, or OpenMetrics with exemplars when the scraper
asks for it), /healthz, /readyz, and the console with its API (console.py).

`middlewares` (the daemon sets the token check of `admin.auth`) see every request; the
token check lets PROBE_PATHS through, so probes need no token."""

from __future__ import annotations

import socket
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client.exposition import choose_encoder

from sampler.config.model import AdminConfig
from sampler.telemetry.console import Console
from sampler.telemetry.endpoints import ListenError, split_endpoint
from sampler.telemetry.metrics import Metrics

# Open even when admin.auth is set: liveness and readiness probes carry no token.
PROBE_PATHS = frozenset({"/healthz", "/readyz"})


class AdminServer:
    def __init__(
        self,
        config: AdminConfig,
        metrics: Metrics,
        readiness: Callable[[], tuple[bool, str]],
        console: Console | None = None,
    ) -> None:
        self._config = config
        self._metrics = metrics
        self._readiness = readiness
        self._console = console
        # Set before start (the daemon's admin.auth check).
        self.middlewares: list[Middleware] = []
        self._runner: web.AppRunner | None = None
        self.port = 0
        # Set before start() in a worker process (the `workers` key): the supervisor's socket to
        # serve on instead of the configured endpoint, and the routes it drives the worker by.
        self.sock: socket.socket | None = None
        self.routes: list[web.RouteDef] = []

    async def _metrics_page(self, request: web.Request) -> web.Response:
        # Accept: application/openmetrics-text (as Prometheus sends it) gets OpenMetrics, exemplars included.
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encode(self._metrics.registry), headers={"Content-Type": content_type})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        ready, detail = self._readiness()
        return web.Response(status=200 if ready else 503, text=detail + "\n")

    async def start(self) -> None:
        app = web.Application(middlewares=self.middlewares)
        app.router.add_get("/metrics", self._metrics_page)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        if self._console is not None:
            self._console.add_routes(app)
        app.add_routes(self.routes)
        self._runner, self.port = await serve_admin(app, self._config.endpoint, self.sock)
        if self._console is not None:
            self._console.start()

    async def stop(self) -> None:
        if self._console is not None:
            await self._console.stop()
        if self._runner is not None:
            await self._runner.cleanup()


async def serve_admin(
    app: web.Application, endpoint: str, sock: socket.socket | None = None
) -> tuple[web.AppRunner, int]:
    """Serve an admin app on `endpoint` (host:port), or on `sock` if given; its runner and port (0 for a socket)."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5.0)
    await runner.setup()
    if sock is not None:
        await web.SockSite(runner, sock).start()
        return runner, 0
    host, port = split_endpoint(endpoint)
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        key = "admin.endpoint, TAIL_SAMPLER_ADMIN_ENDPOINT or --admin-endpoint"
        raise ListenError("the admin endpoint", endpoint, key, exc) from None
    return runner, runner.addresses[0][1]
