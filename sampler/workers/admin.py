"""The admin endpoint of a daemon with several workers, served by the supervisor: the same paths
as one process serves, answered from the workers' own admin endpoints (Unix sockets).

- /metrics: every worker's metrics merged into the daemon's totals (merge.py), with the
  supervisor's own (workers, restarts).
- /readyz: ready when every worker is; /healthz: the supervisor answers.
- Paths about one trace (BY_TRACE_ID) go to the worker that owns the trace; paths about the
  whole daemon (MERGED_JSON) go to every worker and their JSON answers are merged. An admin API
  added to the daemon plugs in here with one line in either list.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import CollectorRegistry

from sampler.config.model import Config
from sampler.receive.credentials import admin_middlewares
from sampler.spans.fragments import owner_of
from sampler.telemetry.admin import serve_admin
from sampler.telemetry.console import PAGE_PATHS, merge_status
from sampler.telemetry.metrics import Metrics, SupervisorMetrics
from sampler.workers.merge import OPENMETRICS, Families, merge_families, parse_exposition

# Paths with a {trace_id} (32 hex digits): answered by the worker that owns the trace.
BY_TRACE_ID: tuple[str, ...] = ("/api/v1/decisions/{trace_id}",)
# Paths whose answer is the same from every worker (the console's page): answered by one.
FROM_ANY: tuple[str, ...] = tuple(sorted(PAGE_PATHS))
# Paths every worker answers with JSON about itself, merged into the daemon's answer: by the
# producer's own merge where it has one (SupervisorAdmin._merges), else key by key (merge_json).
MERGED_JSON: tuple[str, ...] = ("/api/v1/status",)
_SCRAPE_TIMEOUT_SECONDS = 5.0
# Probes have short timeouts of their own: a worker that does not answer at once is not ready.
_READYZ_TIMEOUT_SECONDS = 0.5
_TRACE_ID_BYTES = 16


class WorkerClient:
    """HTTP to one worker's admin socket. A new connection per request: the socket outlives the
    worker behind it, and a pooled connection to a worker that was restarted would be dead."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=self._path, force_close=True))
        return self._session

    async def request(
        self, method: str, path: str, timeout: float, data: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, str, bytes]:
        """(status, content type, body); raises aiohttp.ClientError or TimeoutError."""
        async with self._client().request(
            method,
            f"http://worker{path}",
            data=data,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            return response.status, response.headers.get("Content-Type", ""), await response.read()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def merge_json(values: Sequence[Any]) -> Any:
    """The workers' JSON answers as one: numbers summed, booleans true if all are, lists joined,
    objects merged key by key; other values kept if all agree, else listed."""
    if all(isinstance(value, dict) for value in values):
        keys: list[str] = []
        for value in values:
            keys += [key for key in value if key not in keys]
        return {key: merge_json([value[key] for value in values if key in value]) for key in keys}
    if all(isinstance(value, bool) for value in values):
        return all(values)
    if all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in values):
        return sum(values)
    if all(isinstance(value, list) for value in values):
        return [item for value in values for item in value]
    return values[0] if all(value == values[0] for value in values) else list(values)


class SupervisorAdmin:
    def __init__(
        self,
        config: Config,
        workers: Sequence[WorkerClient],
        daemon_metrics: Metrics,
        metrics: SupervisorMetrics,
        phase: Callable[[], str],
        descriptions: Callable[[], dict[str, str]],
    ) -> None:
        """`phase`: the supervisor's, starting, running or stopping; ready only while running.
        `descriptions`: the policies as the daemon's config describes them, for the status."""
        self._config = config.admin
        self._workers = workers
        self._daemon_metrics = daemon_metrics
        self._metrics = metrics
        self._phase = phase
        self._merges: dict[str, Callable[[list[Any]], Any]] = {
            "/api/v1/status": lambda statuses: merge_status(statuses, descriptions()),
        }
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def _each(
        self, path: str, headers: dict[str, str] | None = None, timeout: float = _SCRAPE_TIMEOUT_SECONDS
    ) -> list[tuple[int, str, bytes] | None]:
        """Every worker's answer to a GET, None for a worker that did not answer."""

        async def ask(worker: WorkerClient) -> tuple[int, str, bytes] | None:
            try:
                return await worker.request("GET", path, timeout, headers=headers)
            except (aiohttp.ClientError, TimeoutError, OSError):
                return None

        return list(await asyncio.gather(*(ask(worker) for worker in self._workers)))

    async def _metrics_page(self, request: web.Request) -> web.Response:
        answers = await self._each("/metrics", {"Accept": f"{OPENMETRICS}; version=1.0.0"})
        expositions = [
            parse_exposition(body.decode(), content_type)
            for status, content_type, body in (answer for answer in answers if answer is not None)
            if status == 200
        ]
        up = len(expositions)
        self._metrics.workers_up.set(up)
        # The supervisor's own metrics join: its process's CPU time and memory are the daemon's too.
        families = merge_families([*expositions, list(self._daemon_metrics.registry.collect())])
        if up < len(self._workers):
            _set_ready(families, 0.0)  # the daemon is not whole while a worker is missing
        registry = CollectorRegistry(auto_describe=False)
        registry.register(Families(families))
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encoder(registry), headers={"Content-Type": content_type})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        phase = self._phase()
        if phase != "running":
            return web.Response(status=503, text=f"not ready: {phase}\n")
        answers = await self._each("/readyz", timeout=_READYZ_TIMEOUT_SECONDS)
        details = []
        ready = True
        for index, answer in enumerate(answers):
            if answer is None:
                ready = False
                details.append(f"worker {index}: not answering")
            else:
                ready = ready and answer[0] == 200
                details.append(f"worker {index}: {answer[2].decode(errors='replace').strip()}")
        head = "ready" if ready else "not ready"
        return web.Response(status=200 if ready else 503, text=f"{head}: " + "; ".join(details) + "\n")

    async def _by_trace_id(self, request: web.Request) -> web.Response:
        try:
            trace_id = bytes.fromhex(request.match_info["trace_id"])
        except ValueError:
            trace_id = b""
        # A malformed ID gets the worker's own refusal, from any worker.
        owner = owner_of(trace_id, len(self._workers)) if len(trace_id) == _TRACE_ID_BYTES else 0
        try:
            status, content_type, body = await self._workers[owner].request(
                request.method, request.path_qs, _SCRAPE_TIMEOUT_SECONDS
            )
        except (aiohttp.ClientError, TimeoutError, OSError):
            return web.Response(status=503, text=f"worker {owner}, which owns this trace, is not answering\n")
        return web.Response(status=status, body=body, headers={"Content-Type": content_type or "text/plain"})

    async def _merged_json(self, request: web.Request) -> web.Response:
        answers = await self._each(request.path_qs)
        replies = [answer for answer in answers if answer is not None]
        if len(replies) < len(answers):
            missing = [index for index, answer in enumerate(answers) if answer is None]
            return web.Response(status=503, text=f"worker(s) {missing} not answering\n")
        for status, content_type, body in replies:
            if status != 200:  # the same refusal from every worker, as one process would give it
                return web.Response(status=status, body=body, headers={"Content-Type": content_type or "text/plain"})
        try:
            values = [json.loads(body) for _, _, body in replies]
            merge = self._merges.get(request.path, merge_json)
            return web.json_response(merge(values))
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            return web.Response(status=502, text=f"the workers' answers could not be merged: {exc!r}\n")

    async def _from_any(self, request: web.Request) -> web.Response:
        for worker in self._workers:
            try:
                status, content_type, body = await worker.request("GET", request.path_qs, _SCRAPE_TIMEOUT_SECONDS)
            except (aiohttp.ClientError, TimeoutError, OSError):
                continue
            return web.Response(status=status, body=body, headers={"Content-Type": content_type or "text/plain"})
        return web.Response(status=503, text="no worker is answering\n")

    async def start(self) -> None:
        # admin.auth's token, checked here: the workers answer the supervisor alone.
        app = web.Application(middlewares=admin_middlewares(self._config.auth, self._daemon_metrics))
        app.router.add_get("/metrics", self._metrics_page)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        for path in BY_TRACE_ID:
            app.router.add_get(path, self._by_trace_id)
        for path in MERGED_JSON:
            app.router.add_get(path, self._merged_json)
        for path in FROM_ANY:
            app.router.add_get(path, self._from_any)
        self._runner, self.port = await serve_admin(app, self._config.endpoint)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        await asyncio.gather(*(worker.close() for worker in self._workers))


def _set_ready(families: list[Metric], value: float) -> None:
    for family in families:
        if family.name == "tail_sampler_ready":
            family.samples = [sample._replace(value=value) for sample in family.samples]
