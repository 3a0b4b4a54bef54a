"""Wiring and lifecycle: builds the pipeline from a config, runs it, shuts it down."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from sampler import __version__
from sampler.clock import Clock, monotonic
from sampler.config.model import Config
from sampler.decide.durable import DurableWindow
from sampler.decide.engine import TailSampler
from sampler.decide.explain import DecisionLookup
from sampler.decide.reload import ConfigReloader
from sampler.forward.batcher import Batcher, Payload
from sampler.forward.exporters.registry import build_exporter
from sampler.forward.fanout import Fanout
from sampler.receive.credentials import admin_middlewares
from sampler.receive.grpc import GrpcReceiver
from sampler.receive.http import HttpReceiver
from sampler.receive.ingest import Ingest
from sampler.receive.zipkin import ZipkinReceiver
from sampler.spans.trace import LogPosition, TraceSpans
from sampler.telemetry.admin import AdminServer
from sampler.telemetry.console import Console
from sampler.telemetry.logs import effective_config
from sampler.telemetry.metrics import Metrics
from sampler.telemetry.span_metrics import SpanMetrics

if TYPE_CHECKING:
    from sampler.telemetry.selftrace import SelfTracing

log = logging.getLogger("sampler")

# Due traces are looked for this often; it bounds how late past its wait a trace is decided.
TICK_SECONDS = 0.05
_RECEIVER_GRACE_SECONDS = 2.0


class Daemon:
    """One tail sampler: receivers, window, policies, batcher, exporters and admin endpoint."""

    def __init__(
        self,
        config: Config,
        metrics: Metrics | None = None,
        config_path: str | None = None,
        clock: Clock = monotonic,
        shared_ports: bool = False,
    ) -> None:
        """`shared_ports`: the receivers listen with SO_REUSEPORT, beside the other workers (sampler/workers)."""
        self.config = config
        self._clock = clock
        self.metrics = metrics or Metrics()
        self.exporters = [build_exporter(name, body, self.metrics, clock) for name, body in config.exporters.items()]
        self.self_tracing: SelfTracing | None = None
        if config.telemetry.traces is not None:
            # Imported only when configured: the SDK comes with the `demo` extra (checked at load).
            from sampler.telemetry.selftrace import SelfTracing

            self.self_tracing = SelfTracing(config.telemetry.traces)
        if self.self_tracing is not None:
            for exporter in self.exporters:
                exporter.tracer = self.self_tracing.tracer
        self.fanout = Fanout(self.exporters, hold_when_full=config.tail_sampling.block_on_overflow, clock=clock)
        self.batcher = Batcher(config.batch, self._deliver, self.metrics, clock, release=self._release)
        self.span_metrics: SpanMetrics | None = None
        keep = self.batcher.add
        if config.span_metrics.enabled:
            self.span_metrics = SpanMetrics(config.span_metrics, self.metrics)
            self.metrics.registry.register(self.span_metrics)
            keep = self._keep_with_exemplar
        self.sampler = TailSampler(config.tail_sampling, keep, self.metrics, clock, forward=self.fanout)
        self.durable = DurableWindow(config.tail_sampling, self.sampler, self.metrics, clock)
        untraced = self.batcher.add_logs if config.tail_sampling.untraced_logs == "pass_through" else None
        self.ingest = ingest = Ingest(
            self.sampler, self.metrics, config.receivers.otlp, untraced, self.span_metrics, self.durable
        )
        protocols = config.receivers.otlp.protocols
        self.grpc_receiver = GrpcReceiver(protocols.grpc, ingest) if protocols.grpc else None
        self.http_receiver = HttpReceiver(protocols.http, ingest) if protocols.http else None
        zipkin = config.receivers.zipkin
        self.zipkin_receiver = ZipkinReceiver(zipkin, ingest) if zipkin else None
        for receiver in (self.grpc_receiver, self.http_receiver, self.zipkin_receiver):
            if receiver is not None:
                receiver.reuse_port = shared_ports
        self.admin = AdminServer(
            config.admin,
            self.metrics,
            self._readiness,
            Console(self.metrics, DecisionLookup(self.sampler, clock), clock),
        )
        self.reloader = ConfigReloader(config_path, config, self.sampler, self.metrics) if config_path else None
        self._tasks: list[asyncio.Task[None]] = []
        self._ready = False
        self._stopping: asyncio.Future[None] | None = None
        self._finishing: asyncio.Future[None] | None = None
        self._stop_started = 0.0
        self._was_serving = False
        # How many buffered traces the shutdown decided (a worker's supervisor adds them up).
        self.decided_at_shutdown = 0
        # A worker's config is its share of the daemon's: the supervisor logs the daemon's instead.
        self.log_effective_config = True
        self.metrics.build_info.labels(__version__).set(1)

    def _keep_with_exemplar(self, trace: TraceSpans) -> None:
        # Exemplars name kept traces only: the span metrics learn of a trace as it is kept.
        assert self.span_metrics is not None
        if trace.span_count:
            self.span_metrics.exemplify(trace)
        self.batcher.add(trace)

    def _deliver(self, payload: Payload) -> None:
        self.fanout.deliver(payload)

    def _release(self, positions: list[LogPosition]) -> None:
        self.durable.release(positions)

    def _readiness(self) -> tuple[bool, str]:
        if not self._ready:
            return False, "not ready: starting or shutting down"
        receivers = (self.grpc_receiver, self.http_receiver, self.zipkin_receiver)
        listening = [r for r in receivers if r is not None and r.port]
        return True, f"ready: {len(listening)} receiver(s) listening, {len(self.exporters)} exporter(s) running"

    async def start(self) -> None:
        await self.durable.open()
        # Reads the token file: may raise OSError.
        self.admin.middlewares += admin_middlewares(self.config.admin.auth, self.metrics)
        await self.admin.start()
        for exporter in self.exporters:
            await exporter.start()
        await self.durable.recover()
        if self.grpc_receiver:
            await self.grpc_receiver.start()
        if self.http_receiver:
            await self.http_receiver.start()
        if self.zipkin_receiver:
            await self.zipkin_receiver.start()
            log.info("Zipkin receiver on port %s", self.zipkin_receiver.port)
        self._tasks = [
            asyncio.create_task(self._decide_loop(), name="decide"),
            asyncio.create_task(self.batcher.run(), name="batch-timeout"),
        ]
        if self.reloader is not None and self.config.reload.watch_file:
            self._tasks.append(
                asyncio.create_task(self.reloader.watch(self.config.reload.check_interval), name="config-watch")
            )
        if self.config.logging.summary_interval:
            self._tasks.append(asyncio.create_task(self._summary_loop(), name="summary"))
        if not any(exporter.sends_logs for exporter in self.exporters):
            log.info("no exporter sends log records (Zipkin has none): log records received are dropped")
        self._ready = True
        self.metrics.ready.set(1)
        if self.log_effective_config:
            log.info("effective config (secrets masked)", extra={"config": effective_config(self.config)})
        log.info(
            "tail sampler %s ready: OTLP/gRPC on port %s, OTLP/HTTP on port %s, %s; policies: %s; exporters: %s",
            __version__,
            self.grpc_receiver.port if self.grpc_receiver else "off",
            self.http_receiver.port if self.http_receiver else "off",
            # A worker's admin endpoint is a socket its supervisor holds, which answers for it.
            f"admin on port {self.admin.port}" if self.admin.port else "admin through the supervisor",
            ", ".join(f"{p.name} ({p.describe()})" for p in self.sampler.policies),
            ", ".join(e.name for e in self.exporters),
        )

    async def _decide_loop(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            started = time.time_ns()
            decided = self.sampler.decide_due()
            if decided and self.self_tracing is not None:
                # One span per tick that decided something: the batch, never its traces one by one.
                attributes = {"tail_sampler.traces_decided": decided}
                self.self_tracing.tracer.start_span("decide", start_time=started, attributes=attributes).end()

    async def _summary_loop(self) -> None:
        interval = self.config.logging.summary_interval
        previous = self._summary_counts()
        while True:
            await asyncio.sleep(interval)
            current = self._summary_counts()
            delta = {key: current[key] - previous.get(key, 0.0) for key in current}
            previous = current
            kept_by = ", ".join(
                f"{policy.name}={int(delta.get('kept_by:' + policy.name, 0))}" for policy in self.sampler.policies
            )
            log.info(
                "last %gs: received %d spans; decided %d traces: kept %d (first sampled by: %s), dropped %d; "
                "exported %d spans; window holds %d traces",
                interval,
                delta["received"],
                delta["kept"] + delta["dropped"],
                delta["kept"],
                kept_by,
                delta["dropped"],
                delta["exported"],
                self.sampler.window.trace_count,
            )

    def _summary_counts(self) -> dict[str, float]:
        registry = self.metrics.registry

        def total(name: str, **match: str) -> float:
            value = 0.0
            for family in registry.collect():
                for sample in family.samples:
                    if sample.name == name and all(sample.labels.get(k) == v for k, v in match.items()):
                        value += sample.value
            return value

        counts = {
            "received": total("tail_sampler_received_spans_total"),
            "kept": total("tail_sampler_traces_decided_total", decision="kept"),
            "dropped": total("tail_sampler_traces_decided_total", decision="dropped"),
            "exported": total("tail_sampler_exporter_sent_spans_total"),
        }
        for policy in self.sampler.policies:
            counts["kept_by:" + policy.name] = total("tail_sampler_traces_kept_by_policy_total", policy=policy.name)
        return counts

    async def stop(self) -> None:
        """Stop accepting, decide every buffered trace, flush the exporters within the shutdown timeout.

        Safe after a failed or partial start: each part stops only what it started."""
        await self.stop_receiving()
        await self.finish()
        await self.admin.stop()

    async def stop_receiving(self) -> None:
        """The first step of stop(): no more requests; those in progress are answered. A worker
        process (sampler/workers) finishes only when every worker got this far, as until then
        the others may still hand it traces."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop_receiving())
        await asyncio.shield(self._stopping)

    async def _stop_receiving(self) -> None:
        # A daemon that never got ready (a start-up error) stops what it started without a word:
        # the error is the news.
        self._was_serving = self._ready
        self._stop_started = self._clock()
        self._ready = False
        self.metrics.ready.set(0)
        if self._was_serving:
            log.info("shutting down: no longer accepting spans")
        if self.grpc_receiver:
            await self.grpc_receiver.stop(_RECEIVER_GRACE_SECONDS)
        if self.http_receiver:
            await self.http_receiver.stop()
        if self.zipkin_receiver:
            await self.zipkin_receiver.stop()

    async def finish(self) -> None:
        """The second step of stop(): decide every buffered trace, flush the exporters, save the
        decisions, within the shutdown timeout counted from stop_receiving(). The admin endpoint
        stays up (it is the last step of stop())."""
        await self.stop_receiving()
        if self._finishing is None:
            self._finishing = asyncio.ensure_future(self._finish())
        await asyncio.shield(self._finishing)

    async def _finish(self) -> None:
        started = self._stop_started
        deadline = started + self.config.shutdown.timeout
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self.decided_at_shutdown = decided = self.sampler.decide_all()
        self.batcher.flush()
        await self.fanout.drain(deadline)
        await asyncio.gather(*(exporter.shutdown(deadline) for exporter in self.exporters))
        # After the exporters: what they took is settled in the window's log, the rest stays for the next start.
        await self.durable.close()
        if self.self_tracing is not None:
            await asyncio.to_thread(self.self_tracing.shutdown)
        if self._was_serving:
            log.info("shut down in %.1fs; decided %d buffered trace(s) on the way", self._clock() - started, decided)

    async def run_until_signalled(
        self,
        on_ready: Callable[[], Awaitable[None]] | None = None,
        on_stopping: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Start, run until SIGTERM or SIGINT, then stop. SIGHUP reloads the policies."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if self.reloader is not None:
            loop.add_signal_handler(signal.SIGHUP, self.reloader.reload)
        try:
            await self.start()
            if on_ready is not None:
                await on_ready()
            await stop.wait()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(sig)
            if on_stopping is not None:
                await on_stopping()
            await self.stop()


# Young objects between two collections of the youngest generation (CPython's default: 700).
GC_YOUNG_THRESHOLD = 10_000


def tune_garbage_collection() -> None:
    """The trace window holds every trace for decision_wait, so nearly all the objects the daemon
    makes live long enough to reach the oldest generation, and CPython collects that one each
    time it has grown by a quarter: measured under the CPU benchmark's load (gc callbacks), a
    quarter of the daemon's CPU went to collections, full ones of over 100 ms each. Objects made
    at start-up are moved out of the collector's way (gc.freeze), and the youngest generation is
    collected after GC_YOUNG_THRESHOLD new objects instead of 700, which spaces out the full
    collections as much: about a tenth of the CPU then. Cyclic garbage still goes at the next
    young collection, a few milliseconds later."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, oldest)
