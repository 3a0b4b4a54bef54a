"""One worker process: today's daemon with its share of the config, its receivers beside the
other workers' on the same ports, and the hand-over of fragments to the workers that own them.

Started by the supervisor (supervisor.py) as `python -m sampler.workers.worker --plan JSON`,
with its config text on stdin. Stdin then stays open as a lifeline: when it closes, the
supervisor is gone, and the worker stops on its own (deciding what it buffers) rather than
holding the ports. The worker's admin endpoint is a Unix socket the supervisor holds and
reaches it by: /metrics and the rest for the supervisor's merged endpoint, and /control/* by
which the supervisor drives reloads and the two-step shutdown.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence

from aiohttp import web
from aiohttp.typedefs import Handler

from sampler.config.load import parse_config
from sampler.config.model import Config
from sampler.config.types import ConfigError
from sampler.daemon import Daemon, tune_garbage_collection
from sampler.receive.handoff import HandoffServer, PeerLink, Router
from sampler.telemetry.endpoints import ListenError
from sampler.telemetry.logs import configure_logging
from sampler.workers.plan import CONFIG_LENGTH, START_ERROR, WorkerIndex, WorkerPlan
from sampler.workers.shares import worker_config
from sampler.workers.sockets import peer_credentials

log = logging.getLogger("sampler")


def _same_user(peer: socket.socket) -> bool:
    """Hand-overs come from the other workers: processes of this user."""
    return peer_credentials(peer)[1] == os.getuid()


@web.middleware
async def _from_supervisor(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A worker's admin socket answers its supervisor (its parent process) alone."""
    peer = request.transport.get_extra_info("socket") if request.transport is not None else None
    if peer is None or peer_credentials(peer)[0] != os.getppid():
        return web.Response(status=403, text="a worker answers its supervisor only\n")
    return await handler(request)


def _confirm(config: Config) -> bool:
    """Whether a client is answered only once the owners confirmed they took its spans: when
    the owners store what they take before answering (durable window storage), so that an
    answer means the spans are stored. A window in memory is as safe as the socket to it."""
    return config.tail_sampling.storage is not None


class Worker:
    def __init__(self, plan: WorkerPlan, config: Config) -> None:
        self.plan = plan
        shared = worker_config(config, plan.index, plan.workers, plan.ports)
        self.daemon = Daemon(shared, config_path=plan.config_path, shared_ports=True)
        self.daemon.log_effective_config = False
        tune_garbage_collection()  # each worker holds a window of its own
        if self.daemon.reloader is not None:
            self.daemon.reloader.transform = lambda new: worker_config(new, plan.index, plan.workers, plan.ports)
        sampler = self.daemon.sampler
        links = {index: PeerLink(index, path) for index, path in plan.peers.items()}
        ingest = self.daemon.ingest
        self.router = Router(
            plan.index, plan.workers, sampler, links, self.daemon.metrics, confirm=_confirm(shared), store=ingest.store
        )
        ingest.handover = self.router
        self.handoff = HandoffServer(
            socket.socket(fileno=plan.handoff_fd), sampler, self.daemon.metrics, admit=_same_user, store=ingest.store
        )
        admin = self.daemon.admin
        admin.sock = socket.socket(fileno=plan.admin_fd)
        admin.middlewares.append(_from_supervisor)
        admin.routes += [
            web.post("/control/reload", self._reload),
            web.post("/control/stop-receiving", self._stop_receiving),
            web.post("/control/drain", self._drain),
        ]
        self.done = asyncio.Event()
        self._stopped_receiving: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None

    async def start(self) -> None:
        await self.handoff.start()
        await self.daemon.start()
        log.info("worker %d of %d ready", self.plan.index, self.plan.workers)

    async def _reload(self, request: web.Request) -> web.Response:
        reloader = self.daemon.reloader
        ok = reloader is not None and reloader.reload(await request.text())
        return web.json_response({"ok": ok})

    async def _stop_receiving(self, request: web.Request) -> web.Response:
        await self.stop_receiving()
        return web.json_response({"ok": True})

    async def stop_receiving(self) -> None:
        """No more requests; every fragment handed to another worker is in its window. Done
        once: asked again by drain(), it must not wait on owners that may be draining (or gone)
        by then."""
        if self._stopped_receiving is None:
            self._stopped_receiving = asyncio.ensure_future(self._stop_receiving_once())
        await asyncio.shield(self._stopped_receiving)

    async def _stop_receiving_once(self) -> None:
        await self.daemon.stop_receiving()
        await self.router.flush(self.daemon.config.shutdown.timeout)

    async def _drain(self, request: web.Request) -> web.Response:
        await self.drain()
        return web.json_response({"ok": True, "decided": self.daemon.decided_at_shutdown})

    async def drain(self) -> None:
        """Decide everything buffered and flush the exporters: once every worker stopped
        receiving, none hands this one anything any more. Then the process may end."""
        if self._drained is None:
            self._drained = asyncio.ensure_future(self._drain_once())
        await asyncio.shield(self._drained)

    async def _drain_once(self) -> None:
        await self.stop_receiving()
        await self.handoff.stop()
        await self.router.close()
        await self.daemon.finish()
        self.done.set()

    async def stop_alone(self, why: str) -> None:
        """Stop without the supervisor (it is gone, or a signal came to this process itself)."""
        if self._drained is None:
            log.warning("worker %d stopping on its own: %s", self.plan.index, why)
        await self.drain()


async def run_worker(plan: WorkerPlan, config: Config) -> int:
    loop = asyncio.get_running_loop()
    worker = Worker(plan, config)
    stops: set[asyncio.Task[None]] = set()

    def stop_alone(why: str) -> None:
        task = asyncio.create_task(worker.stop_alone(why))
        stops.add(task)
        task.add_done_callback(stops.discard)

    def lifeline() -> None:
        try:
            data = os.read(0, 4096)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(0)
            stop_alone("the supervisor is gone")

    # Terminal signals reach the supervisor, not the workers (they run in a session of their
    # own); a signal sent to a worker itself stops that worker, which the supervisor notices.
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_alone, f"signal {signal.Signals(sig).name}")
    loop.add_signal_handler(signal.SIGHUP, lambda: None)  # the supervisor tells every worker to reload
    loop.add_reader(0, lifeline)
    try:
        await worker.start()
    except OSError as exc:
        log.error("worker %d cannot start: %s", plan.index, exc)
        await worker.drain()
        await worker.daemon.admin.stop()
        return START_ERROR if isinstance(exc, ListenError) else 1
    await worker.done.wait()
    # Stopping the admin server waits for the request in progress: the supervisor's drain is answered.
    await worker.daemon.admin.stop()
    return 0


def read_config_text(stream: int = 0) -> str:
    header = _read_exactly(stream, CONFIG_LENGTH.size)
    (length,) = CONFIG_LENGTH.unpack(header)
    return _read_exactly(stream, length).decode()


def _read_exactly(fd: int, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            raise EOFError("the supervisor closed the worker's stdin before sending its config")
        data += chunk
    return bytes(data)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sampler.workers.worker")
    parser.add_argument("--plan", required=True, help="what the supervisor tells the worker, as JSON")
    args = parser.parse_args(argv)
    plan = WorkerPlan.from_json(args.plan)
    try:
        config = parse_config(read_config_text(), plan.config_path)
    except (ConfigError, EOFError) as exc:
        print(f"error: worker {plan.index}: {exc}", file=sys.stderr)
        return 2
    configure_logging(plan.log_level, config.logging.format)
    for handler in logging.getLogger().handlers:
        handler.addFilter(WorkerIndex(plan.index))
    return asyncio.run(run_worker(plan, config))


if __name__ == "__main__":
    sys.exit(main())
