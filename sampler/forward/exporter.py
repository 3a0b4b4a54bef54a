"""The part every exporter shares: a bounded queue, consumers, retries with
backoff and jitter, and accounting for whatever is finally not delivered."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import StatusCode, Tracer
from opentelemetry.util.types import Attributes
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    retry_never,
    stop_before_delay,
    stop_never,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base

from sampler.clock import Clock, monotonic
from sampler.config.exporters import QueueConfig, RetryConfig
from sampler.forward.batcher import Payload, Signal
from sampler.forward.disk_queue.queue import DiskQueue
from sampler.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

# A drop is logged at most this often per exporter and reason; the counter has every one.
_DROP_LOG_INTERVAL = 10.0
# While sends keep failing, one line per exporter this often sums up the failed attempts.
FAILURE_LOG_INTERVAL = 30.0


class ExportError(Exception):
    """A failed send; `reason` is a short label value (e.g. unavailable, http_503)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class RetryableError(ExportError):
    """The downstream may accept the same request later, possibly after `retry_after` seconds."""

    def __init__(self, reason: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(reason, message)
        self.retry_after = retry_after


class PermanentError(ExportError):
    """Sending the same request again cannot succeed."""


class _stop_past_shutdown_deadline(stop_base):  # noqa: N801 - named like tenacity's stop conditions
    """While shutting down, retries stop rather than sleep past the deadline."""

    def __init__(self, exporter: Exporter) -> None:
        self._exporter = exporter

    def __call__(self, retry_state: RetryCallState) -> bool:
        deadline = self._exporter._closing_deadline
        if deadline is None:
            return False
        return self._exporter._clock() + (retry_state.upcoming_sleep or 0.0) >= deadline


class FailureLog:
    """Failed sends, loud and early: the first failed attempt of a run of failures is an ERROR
    naming the exporter and the cause (retries can take minutes to run out, and a wrong
    endpoint must not wait that long to be seen); then one line per FAILURE_LOG_INTERVAL with
    how many attempts failed meanwhile; the recovery once."""

    def __init__(self, exporter: str, target: str, clock: Clock) -> None:
        self._exporter = exporter
        self._target = target
        self._clock = clock
        self._since: float | None = None  # when the run of failures began
        self._failures = 0  # in the run
        self._unreported = 0  # since the last line
        self._last_line = 0.0

    def failed(self, error: ExportError) -> None:
        now = self._clock()
        self._failures += 1
        if self._since is None:
            self._since = self._last_line = now
            log.error(
                "exporter %s: sending to %s failed: %s; retrying (failures are summed up every %gs until it recovers)",
                self._exporter,
                self._target,
                error,
                FAILURE_LOG_INTERVAL,
            )
            return
        self._unreported += 1
        if now - self._last_line >= FAILURE_LOG_INTERVAL:
            log.error(
                "exporter %s: still failing: %d failed attempt(s) in the last %.0fs, %d since %.0fs ago; last: %s",
                self._exporter,
                self._unreported,
                now - self._last_line,
                self._failures,
                now - self._since,
                error,
            )
            self._last_line = now
            self._unreported = 0

    def succeeded(self) -> None:
        if self._since is None:
            return
        log.info(
            "exporter %s: delivering again to %s, after %d failed attempt(s) over %.0fs",
            self._exporter,
            self._target,
            self._failures,
            self._clock() - self._since,
        )
        self._since = None
        self._failures = self._unreported = 0


class Exporter(ABC):
    """Sends payloads to one downstream. Subclasses implement `send`."""

    kind: str = ""
    # Where it sends, as logs name it (its endpoint, and TLS or plaintext); subclasses set it.
    target: str = ""
    # Whether its format carries log records (Zipkin's has none: they are counted as dropped).
    sends_logs: bool = True
    # Set by the daemon when telemetry.traces is on: each batch's delivery becomes a span.
    tracer: Tracer | None = None

    def __init__(
        self,
        name: str,
        metrics: Metrics,
        queue: QueueConfig,
        retry: RetryConfig | None,
        clock: Clock = monotonic,
    ) -> None:
        self.name = name
        self._clock = clock
        self._queue_config = queue
        self._retry = retry
        self._queue: asyncio.Queue[Payload] = asyncio.Queue(maxsize=queue.queue_size if queue.enabled else 1)
        self._workers: list[asyncio.Task[None]] = []
        self._closing_deadline: float | None = None
        self._last_drop_log: dict[str, float] = {}
        self._failure_log = FailureLog(name, self.kind, clock)
        self._sent = {
            "traces": metrics.exporter_sent_spans.labels(name),
            "logs": metrics.exporter_sent_log_records.labels(name),
        }
        self._sent_requests = metrics.exporter_sent_requests.labels(name)
        self._retries = metrics.exporter_retries.labels(name)
        self._failed = metrics.exporter_failed_requests
        self._dropped = {"traces": metrics.exporter_dropped_spans, "logs": metrics.exporter_dropped_log_records}
        self._disk: DiskQueue | None = None
        if queue.enabled and queue.storage is not None:
            disk = self._disk = DiskQueue(name, queue.storage, metrics, self._drop_count, clock=clock)
            # Bounded in bytes, not batches: no batch capacity to report.
            metrics.exporter_queue_size.labels(name).set_function(lambda: disk.records)
        else:
            metrics.exporter_queue_size.labels(name).set_function(self._queue.qsize)
            metrics.exporter_queue_capacity.labels(name).set(self._queue.maxsize)

    # --- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        self._failure_log = FailureLog(self.name, self.target or self.kind, self._clock)
        await self.open()
        if self._disk is not None:
            await self._disk.open()
        consume = self._consume if self._disk is None else self._consume_from_disk
        self._workers = [
            asyncio.create_task(consume(), name=f"exporter-{self.name}-{index}")
            for index in range(self._queue_config.num_consumers)
        ]

    async def shutdown(self, deadline: float) -> None:
        """Deliver what is queued until `deadline` (on the clock), then give up on the rest;
        with a persistent queue, the rest stays on disk for the next start."""
        self._closing_deadline = deadline
        drained = self._queue.join() if self._disk is None else self._disk.join()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(drained, timeout=max(0.0, deadline - self._clock()))
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        if self._disk is not None:
            await self._disk.close()
        while not self._queue.empty():
            payload = self._queue.get_nowait()
            self._drop(payload, "shutdown", "the shutdown deadline passed before it could be sent")
        await self.close()

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Create connections; called once before the first send."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    # --- sending -----------------------------------------------------------

    def enqueue(self, payload: Payload) -> None:
        if payload.signal == "logs" and not self.sends_logs:
            self._drop(payload, "unsupported", f"the {self.kind} format has no log records")
            payload.settle()
            return
        if self._disk is not None:
            self._disk.put(payload)
            return
        try:
            self._queue.put_nowait(payload)
        except asyncio.QueueFull:
            self._drop(payload, "queue_full", f"the queue of {self._queue.maxsize} batches is full")
            payload.settle()

    @abstractmethod
    async def send(self, payload: Payload) -> int:
        """Send one request. Returns how many spans the downstream rejected
        (OTLP partial success); raises RetryableError or PermanentError."""

    async def _consume(self) -> None:
        while True:
            payload = await self._queue.get()
            try:
                with self._batch_span(payload):
                    await self._deliver(payload)
            except asyncio.CancelledError:
                self._drop(payload, "shutdown", "the shutdown deadline passed while it was being sent")
                self._queue.task_done()
                raise
            except Exception as exc:  # never let one payload stop the consumer
                log.exception("exporter %s: unexpected failure", self.name)
                self._drop(payload, "permanent_error", str(exc))
            payload.settle()
            self._queue.task_done()

    async def _consume_from_disk(self) -> None:
        disk = self._disk
        assert disk is not None
        while True:
            record = await disk.get()
            await disk.mark_sending(record)
            try:
                with self._batch_span(record.payload):
                    settled = await self._deliver(record.payload)
            except Exception as exc:  # never let one payload stop the consumer
                log.exception("exporter %s: unexpected failure", self.name)
                self._drop(record.payload, "permanent_error", str(exc))
                settled = True
            if not settled:
                # Shutdown stopped its retries: it stays on disk, unacknowledged, for the next start,
                # and so does everything behind it.
                return
            disk.ack(record)

    def queue_full(self) -> bool:
        """Whether enqueue would drop another batch: the memory queue is full, or a persistent
        queue's size cap is reached (block_on_overflow waits on this, see forward/fanout.py)."""
        if self._disk is not None:
            return self._disk.full()
        return self._queue.full()

    async def _deliver(self, payload: Payload) -> bool:
        """Send with retries; False if shutdown stopped the retries of a payload a persistent queue keeps."""
        try:
            async for attempt in self._retrying():
                with attempt:
                    try:
                        rejected = await self.send(payload)
                    except ExportError as exc:
                        self._failed.labels(self.name, exc.reason).inc()
                        self._failure_log.failed(exc)
                        trace.get_current_span().add_event("export attempt failed", {"reason": exc.reason})
                        raise
        except RetryableError as exc:
            if self._disk is not None and self._closing_deadline is not None:
                return False
            self._drop(payload, "retries_exhausted", f"gave up retrying: {exc}")
            return True
        except PermanentError as exc:
            self._drop(payload, "permanent_error", str(exc))
            return True
        self._failure_log.succeeded()
        self._sent_requests.inc()
        self._sent[payload.signal].inc(payload.span_count - rejected)
        if rejected:
            self._drop_count(rejected, "rejected", "the downstream rejected them (partial success)", payload.signal)
        return True

    def _batch_span(self, payload: Payload) -> contextlib.AbstractContextManager[object]:
        if self.tracer is None:
            return contextlib.nullcontext()
        attributes: Attributes = {"tail_sampler.exporter": self.name, "tail_sampler.spans": payload.span_count}
        return self.tracer.start_as_current_span("export", attributes=attributes)

    def _retrying(self) -> AsyncRetrying:
        retry = self._retry
        if retry is None or not retry.enabled:
            return AsyncRetrying(retry=retry_never, reraise=True)
        # Jitter up to half the first interval, like the Collector's randomization factor of 0.5.
        backoff = wait_exponential_jitter(
            multiplier=retry.initial_interval, max=retry.max_interval, jitter=retry.initial_interval / 2
        )

        def wait(state: RetryCallState) -> float:
            delay = backoff(state)
            exc = state.outcome.exception() if state.outcome else None
            hinted = getattr(exc, "retry_after", None)
            return max(delay, hinted) if hinted else delay

        stop = stop_before_delay(retry.max_elapsed_time) if retry.max_elapsed_time else stop_never
        return AsyncRetrying(
            stop=stop | _stop_past_shutdown_deadline(self),
            wait=wait,
            retry=retry_if_exception_type(RetryableError),
            before_sleep=lambda state: self._retries.inc(),
            reraise=True,
        )

    # --- accounting --------------------------------------------------------

    def _drop(self, payload: Payload, reason: str, why: str) -> None:
        self._drop_count(payload.span_count, reason, why, payload.signal)

    def _drop_count(self, count: int, reason: str, why: str, signal: Signal = "traces") -> None:
        """Count `count` kept spans (signal logs: log records) as finally not delivered."""
        self._dropped[signal].labels(self.name, reason).inc(count)
        items = "span(s)" if signal == "traces" else "log record(s)"
        trace.get_current_span().set_status(StatusCode.ERROR, f"dropped {count} {items}: {reason}")
        now = self._clock()
        key = f"{signal}:{reason}"
        if now - self._last_drop_log.get(key, -_DROP_LOG_INTERVAL) >= _DROP_LOG_INTERVAL:
            self._last_drop_log[key] = now
            log.error("exporter %s dropped %d kept %s (%s): %s", self.name, count, items, reason, why)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind}
