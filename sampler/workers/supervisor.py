"""The supervisor: `tail-sampler run` with `workers` above 1. It starts the worker processes,
speaks for them on the admin endpoint, brings reloads and shutdown to every one of them, and
starts a worker again when it dies.

- Start: the supervisor binds the receiver ports and each worker's Unix sockets (sockets.py),
  then starts the workers, fresh interpreters (`python -P -m sampler.workers.worker`, which
  import this very package), in a session of their own; it is ready when every worker is.
- Reload (SIGHUP, or the config file changed): the supervisor reads the file and hands its text
  to every worker, which applies its share; the text every worker accepted is what a restarted
  worker starts from, so a bad edit never keeps a worker from coming back.
- Shutdown (SIGTERM, SIGINT): first every worker stops receiving and answers the requests in
  progress, handing their fragments over; only then does each decide what it buffers and flush
  its exporters. The exit status is 0 only if every worker drained and exited cleanly.
- A worker that exits unexpectedly (kill -9, a crash) is started again at once, on the same
  sockets: meanwhile the other workers' hand-overs to it wait or are refused with a retry hint
  (tail_sampler_receiver_requests_total{result="unavailable"}), so its share of the trace IDs
  is refused, never dropped silently. What it buffered is lost, as with a crash of one process.
  A worker that dies again and again (MAX_RESTARTS within RESTART_WINDOW_SECONDS), or any worker
  that dies before the daemon was first ready, stops the daemon with exit status 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import site
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

import sampler
from sampler import __version__
from sampler.config.load import parse_config
from sampler.config.model import Config
from sampler.config.types import ConfigError
from sampler.decide.reload import file_digest
from sampler.telemetry.logs import effective_config
from sampler.telemetry.metrics import Metrics, SupervisorMetrics
from sampler.workers.admin import SupervisorAdmin, WorkerClient
from sampler.workers.plan import CONFIG_LENGTH, START_ERROR, WorkerPlan
from sampler.workers.shares import receiver_endpoints, warn_orphaned_state
from sampler.workers.sockets import HeldSockets

log = logging.getLogger("sampler")

MAX_RESTARTS = 5
RESTART_WINDOW_SECONDS = 60.0
START_TIMEOUT_SECONDS = 60.0
_READY_POLL_SECONDS = 0.05
_EXIT_TIMEOUT_SECONDS = 10.0
# The workers run the supervisor's interpreter. When its path is not executable for the daemon's
# user (an interpreter under another user's home, started by a privileged launcher), by the
# kernel's link to the running binary; argv[0] stays sys.executable either way, so a virtual
# environment is found as the supervisor found it.
_INTERPRETER = sys.executable if os.access(sys.executable, os.X_OK) else "/proc/self/exe"


def worker_environment() -> dict[str, str]:
    """The environment a worker starts in: this one, plus what makes it import the very `sampler`
    package the supervisor runs. Workers start with `-P`, so the working directory (which `python
    -m` would put first) cannot slip another copy in; the directory this package came from goes
    first on PYTHONPATH unless it is an installation's site-packages, which a fresh interpreter
    finds anyway (and which must not go before the standard library)."""
    root = str(Path(sampler.__file__).resolve().parent.parent)
    environment = dict(os.environ)
    installed = {str(Path(path).resolve()) for path in (*site.getsitepackages(), site.getusersitepackages())}
    if root not in installed:
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, (root, os.environ.get("PYTHONPATH"))))
    return environment


class Supervisor:
    def __init__(self, config: Config, config_path: str, workers: int, log_level: str) -> None:
        self.config = config
        self.config_path = config_path
        self.workers = workers
        self._log_level = log_level
        self._text = Path(config_path).read_text(encoding="utf-8")
        self._digest = file_digest(Path(config_path))
        # The daemon's metrics of the supervisor's own (its process, its admin token checks), with
        # what it says of its workers: all added to the workers' on /metrics.
        self.daemon_metrics = Metrics()
        self.daemon_metrics.build_info.labels(__version__).set(1)
        self.metrics = SupervisorMetrics(self.daemon_metrics.registry)
        self.metrics.workers.set(workers)
        self.sockets: HeldSockets | None = None
        self._clients: list[WorkerClient] = []
        self._processes: list[asyncio.subprocess.Process | None] = [None] * workers
        self._restarts: list[deque[float]] = [deque() for _ in range(workers)]
        self._watchers: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        self._stopping = False
        self._ready_once = False
        self._environment = worker_environment()
        self._failed = 0  # the exit status a failure calls for, 0 for none
        self._reload_lock = asyncio.Lock()
        self._described: tuple[object, dict[str, str]] = (None, {})
        self.admin: SupervisorAdmin | None = None

    @property
    def ports(self) -> dict[str, int]:
        return self.sockets.ports if self.sockets is not None else {}

    # --- workers ------------------------------------------------------------------------

    async def _spawn(self, index: int) -> None:
        sockets = self.sockets
        assert sockets is not None
        mine = sockets.workers[index]
        plan = WorkerPlan(
            index=index,
            workers=self.workers,
            config_path=self.config_path,
            ports=dict(sockets.ports),
            handoff_fd=mine.handoff.fileno(),
            admin_fd=mine.admin.fileno(),
            peers={other: s.handoff_path for other, s in enumerate(sockets.workers) if other != index},
            log_level=self._log_level,
        )
        # A session of its own: a terminal's Ctrl-C reaches the supervisor, which stops the workers in order.
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-P",
            "-m",
            "sampler.workers.worker",
            "--plan",
            plan.to_json(),
            executable=_INTERPRETER,
            stdin=asyncio.subprocess.PIPE,
            pass_fds=(mine.handoff.fileno(), mine.admin.fileno()),
            start_new_session=True,
            env=self._environment,
        )
        assert process.stdin is not None
        text = self._text.encode()
        process.stdin.write(CONFIG_LENGTH.pack(len(text)) + text)
        with contextlib.suppress(ConnectionError):
            await process.stdin.drain()
        self._processes[index] = process
        watcher = asyncio.create_task(self._watch(index, process), name=f"watch-worker-{index}")
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)

    async def _watch(self, index: int, process: asyncio.subprocess.Process) -> None:
        code = await process.wait()
        if self._stopping or self._processes[index] is not process:
            return
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
        if not self._ready_once:
            log.error("worker %d %s while starting; stopping", index, how)
            self._fail(START_ERROR if code == START_ERROR else 1)
            return
        now = time.monotonic()
        recent = self._restarts[index]
        while recent and now - recent[0] > RESTART_WINDOW_SECONDS:
            recent.popleft()
        if len(recent) >= MAX_RESTARTS:
            log.error(
                "worker %d %s, its %d exit in %gs: giving up; stopping the daemon",
                index,
                how,
                len(recent) + 1,
                RESTART_WINDOW_SECONDS,
            )
            self._fail(1)
            return
        recent.append(now)
        self.metrics.worker_restarts.labels(str(index)).inc()
        log.error(
            "worker %d %s; starting it again (the traces it buffered are lost; until it is back, "
            "requests with traces it owns are refused with a retry hint)",
            index,
            how,
        )
        await self._spawn(index)

    def _fail(self, status: int) -> None:
        self._failed = self._failed or status
        self._stop.set()

    async def _post(self, index: int, path: str, timeout: float, data: bytes = b"") -> dict[str, Any] | None:
        """The worker's JSON answer to a control request, None unless it answered {"ok": true, ...}."""
        try:
            status, _, body = await self._clients[index].request("POST", path, timeout, data=data)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.error("worker %d did not answer %s: %s", index, path, exc or type(exc).__name__)
            return None
        try:
            answer = json.loads(body) if status == 200 else {}
        except ValueError:
            answer = {}
        return answer if isinstance(answer, dict) and answer.get("ok") else None

    async def _all_ready(self) -> bool:
        async def ready(client: WorkerClient) -> bool:
            try:
                status, _, _ = await client.request("GET", "/readyz", 1.0)
            except (aiohttp.ClientError, TimeoutError, OSError):
                return False
            return status == 200

        return all(await asyncio.gather(*(ready(client) for client in self._clients)))

    async def _wait_ready(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self._stop.is_set():
            if await self._all_ready():
                return True
            if time.monotonic() > deadline:
                log.error("the workers were not all ready within %gs; stopping", START_TIMEOUT_SECONDS)
                self._failed = 1
                return False
            await asyncio.sleep(_READY_POLL_SECONDS)
        return False

    # --- reload -------------------------------------------------------------------------

    async def reload(self) -> None:
        """Hand the file's text to every worker to reload; kept for restarts if all took it."""
        async with self._reload_lock:
            path = Path(self.config_path)
            self._digest = file_digest(path)
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                log.error("config reload: cannot read %s: %s", path, exc.strerror)
                return
            timeout = self.config.shutdown.timeout
            results = await asyncio.gather(
                *(self._post(index, "/control/reload", timeout, text.encode()) for index in range(self.workers))
            )
            if all(result is not None for result in results):
                self._text = text
                with contextlib.suppress(ConfigError):  # every worker took it: so would this process
                    self.config = parse_config(text, self.config_path)
                log.info("config reloaded from %s by all %d workers", path, self.workers)
            else:
                rejected = [index for index, result in enumerate(results) if result is None]
                log.error("config reload not taken by worker(s) %s; see their log lines", rejected)

    async def _watch_file(self, interval: float) -> None:
        path = Path(self.config_path)
        while True:
            await asyncio.sleep(interval)
            digest = file_digest(path)
            if digest is not None and digest != self._digest:
                await self.reload()

    # --- lifecycle ----------------------------------------------------------------------

    async def run(
        self,
        on_ready: Callable[[], Awaitable[None]] | None = None,
        on_stopping: Callable[[], Awaitable[None]] | None = None,
    ) -> int:
        """Start the workers, run until SIGTERM or SIGINT (SIGHUP reloads), stop them; the exit status."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        reloads: set[asyncio.Task[None]] = set()

        def reload() -> None:
            task = asyncio.create_task(self.reload())
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        loop.add_signal_handler(signal.SIGHUP, reload)
        tasks: list[asyncio.Task[None]] = []
        drained = False
        try:
            warn_orphaned_state(self.config, self.workers)
            self.sockets = HeldSockets.open(receiver_endpoints(self.config), self.workers)
            self._clients = [WorkerClient(worker.admin_path) for worker in self.sockets.workers]
            self.admin = SupervisorAdmin(
                self.config, self._clients, self.daemon_metrics, self.metrics, self._phase, self._descriptions
            )
            await self.admin.start()
            for index in range(self.workers):
                await self._spawn(index)
            if await self._wait_ready():
                self._ready_once = True
                self.daemon_metrics.ready.set(1)
                self._log_ready()
                if self.config.reload.watch_file:
                    tasks.append(asyncio.create_task(self._watch_file(self.config.reload.check_interval)))
                if on_ready is not None:
                    await on_ready()
                await self._stop.wait()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(sig)
            for task in tasks:
                task.cancel()
            if on_stopping is not None:
                await on_stopping()
            drained = await self._shutdown()
        return self._failed or (0 if drained else 1)

    def _descriptions(self) -> dict[str, str]:
        """The policies as the daemon's config describes them (each worker runs its share)."""
        policies = self.config.tail_sampling.policies
        if self._described[0] is not policies:
            self._described = (policies, {policy.name: policy.build(time.monotonic).describe() for policy in policies})
        return self._described[1]

    def _phase(self) -> str:
        if self._stopping:
            return "stopping"
        return "running" if self._ready_once else "starting"

    def _log_ready(self) -> None:
        whole = self.config.model_copy(update={"workers": self.workers})
        log.info("effective config (secrets masked)", extra={"config": effective_config(whole)})
        ports = self.ports
        log.info(
            "tail sampler %s ready: %d workers; OTLP/gRPC on port %s, OTLP/HTTP on port %s, admin on port %s",
            __version__,
            self.workers,
            ports.get("grpc", "off"),
            ports.get("http", "off"),
            self.admin.port if self.admin is not None else "off",
        )

    async def _shutdown(self) -> bool:
        """Every worker stops receiving; then every worker drains; then they exit. True if all did."""
        self._stopping = True
        self.daemon_metrics.ready.set(0)
        started = time.monotonic()
        timeout = self.config.shutdown.timeout
        alive = [index for index, process in enumerate(self._processes) if process and process.returncode is None]
        ok = len(alive) == sum(process is not None for process in self._processes)
        decided = 0
        if alive:
            if self._ready_once:
                log.info("shutting down %d workers: they stop receiving first", len(alive))
            stopped = await asyncio.gather(*(self._post(i, "/control/stop-receiving", timeout) for i in alive))
            drained = await asyncio.gather(*(self._post(i, "/control/drain", timeout + 5) for i in alive))
            ok = ok and all(answer is not None for answer in (*stopped, *drained))
            decided = sum(int(answer.get("decided", 0)) for answer in drained if answer is not None)
        for index, process in enumerate(self._processes):
            if process is None:
                continue
            if process.stdin is not None:
                process.stdin.close()  # the lifeline: a worker that missed the drain stops on its own
            try:
                code = await asyncio.wait_for(process.wait(), _EXIT_TIMEOUT_SECONDS + (0 if ok else timeout))
            except TimeoutError:
                log.error("worker %d did not exit; killing it", index)
                process.kill()
                code = await process.wait()
            if code != 0:
                log.error("worker %d exited with status %d", index, code)
                ok = False
        if self._watchers:
            await asyncio.gather(*self._watchers, return_exceptions=True)
        if self.admin is not None:
            await self.admin.stop()
        if self.sockets is not None:
            self.sockets.close()
        if self._ready_once:  # a daemon that never got ready has its start-up error to say, nothing else
            log.info(
                "shut down %d workers in %.1fs; decided %d buffered trace(s) on the way%s",
                self.workers,
                time.monotonic() - started,
                decided,
                "" if ok else " (with errors, see above)",
            )
        return ok
