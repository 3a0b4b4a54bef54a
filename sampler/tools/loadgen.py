"""Sends realistic multi-service traces through the OpenTelemetry SDK.

Each trace is a checkout request crossing five services (frontend, cart,
checkout, payment, inventory) with about ten spans; a share of them fail or
are slow, so policies on errors and latency have something to find.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode

from sampler.telemetry.selftrace import make_exporter

SERVICES = ("frontend", "cart", "checkout", "payment", "inventory")
_MS = 1_000_000


@dataclass(frozen=True)
class LoadSettings:
    endpoint: str
    protocol: str = "grpc"
    rate: float = 10.0  # traces per second
    duration: float = 0.0  # seconds; 0 means until max_traces or forever
    max_traces: int = 0
    error_ratio: float = 0.03
    slow_ratio: float = 0.05
    seed: int | None = None


class DeliveryCount(SpanExporter):
    """An SDK exporter that counts the spans the receiver accepted, for the run's summary: the SDK
    itself only logs a failed export."""

    def __init__(self, exporter: SpanExporter, lock: threading.Lock, counts: dict[str, int]) -> None:
        self._exporter = exporter
        self._lock = lock
        self._counts = counts

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self._exporter.export(spans)
        if result is SpanExportResult.SUCCESS:
            with self._lock:
                self._counts["delivered_spans"] += len(spans)
        return result

    def shutdown(self) -> None:
        self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._exporter.force_flush(timeout_millis)


class CheckoutTraffic:
    """One TracerProvider per service, so every span carries its own service's resource."""

    def __init__(self, endpoint: str, protocol: str, rng: random.Random) -> None:
        self._rng = rng
        self._lock = threading.Lock()
        self.counts = {"delivered_spans": 0}
        self._providers: dict[str, TracerProvider] = {}
        self.tracers: dict[str, trace.Tracer] = {}
        for service in SERVICES:
            provider = TracerProvider(
                resource=Resource.create(
                    {"service.name": service, "service.version": "1.4.2", "deployment.environment.name": "demo"}
                )
            )
            provider.add_span_processor(
                BatchSpanProcessor(
                    DeliveryCount(make_exporter(endpoint, protocol), self._lock, self.counts),
                    schedule_delay_millis=200,
                    max_export_batch_size=512,
                )
            )
            self._providers[service] = provider
            self.tracers[service] = provider.get_tracer(f"loadgen.{service}", "0.1.0")

    def send_trace(self, error: bool, slow: bool) -> bytes:
        """Emit one checkout trace; returns its trace ID."""
        rng = self._rng
        now = time.time_ns()
        tier = rng.choice(("free", "free", "free", "pro", "enterprise"))
        payment_ms = rng.randint(600, 1500) if slow else rng.randint(20, 80)
        status_code = 500 if error else 200
        root = self.tracers["frontend"].start_span(
            "POST /checkout",
            kind=SpanKind.SERVER,
            start_time=now,
            attributes={
                "http.request.method": "POST",
                "http.route": "/checkout",
                "url.scheme": "https",
                "user.tier": tier,
                "client.address": f"10.0.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                "http.response.status_code": status_code,
            },
        )
        root_ctx = trace.set_span_in_context(root)
        cursor = now + 2 * _MS
        self._child("cart", "GetCart", root_ctx, cursor, rng.randint(5, 20), {"cart.items": rng.randint(1, 9)})
        cursor += 25 * _MS
        checkout = self.tracers["checkout"].start_span(
            "PlaceOrder",
            context=root_ctx,
            kind=SpanKind.SERVER,
            start_time=cursor,
            attributes={"rpc.system": "grpc", "rpc.service": "CheckoutService", "rpc.method": "PlaceOrder"},
        )
        checkout_ctx = trace.set_span_in_context(checkout)
        inner = cursor + 1 * _MS
        self._child(
            "inventory", "ReserveItems", checkout_ctx, inner, rng.randint(5, 30), {"db.system.name": "postgresql"}
        )
        self._child(
            "inventory",
            "SELECT stock",
            checkout_ctx,
            inner + 2 * _MS,
            rng.randint(1, 5),
            {"db.operation.name": "SELECT"},
        )
        inner += 35 * _MS
        payment = self.tracers["payment"].start_span(
            "Charge",
            context=checkout_ctx,
            kind=SpanKind.SERVER,
            start_time=inner,
            attributes={
                "payment.provider": rng.choice(("visa", "mastercard", "paypal")),
                "payment.amount_cents": rng.randint(500, 90000),
            },
        )
        payment_ctx = trace.set_span_in_context(payment)
        self._child(
            "payment",
            "POST /v1/charges",
            payment_ctx,
            inner + 1 * _MS,
            payment_ms - 2,
            {"http.request.method": "POST", "server.address": "psp.example"},
        )
        self._child(
            "payment",
            "INSERT payments",
            payment_ctx,
            inner + payment_ms * _MS - _MS,
            1,
            {"db.operation.name": "INSERT"},
        )
        if error:
            payment.set_status(Status(StatusCode.ERROR, "card declined by processor"))
            payment.add_event("exception", {"exception.type": "PaymentDeclined", "exception.message": "card declined"})
        payment.end(end_time=inner + payment_ms * _MS)
        inner += payment_ms * _MS + 1 * _MS
        self._child(
            "checkout", "PublishOrderPlaced", checkout_ctx, inner, rng.randint(1, 4), {"messaging.system": "kafka"}
        )
        inner += 5 * _MS
        if error:
            checkout.set_status(Status(StatusCode.ERROR, "payment failed"))
        checkout.end(end_time=inner)
        if error:
            root.set_status(Status(StatusCode.ERROR))
        root.end(end_time=inner + 3 * _MS)
        return root.get_span_context().trace_id.to_bytes(16, "big")

    def _child(
        self, service: str, name: str, parent: Context, start: int, duration_ms: int, attributes: dict[str, Any]
    ) -> trace.Span:
        span = self.tracers[service].start_span(
            name,
            context=parent,
            kind=SpanKind.INTERNAL if "SELECT" in name or "INSERT" in name else SpanKind.CLIENT,
            start_time=start,
            attributes=attributes,
        )
        span.end(end_time=start + max(1, duration_ms) * _MS)
        return span

    def shutdown(self) -> None:
        for provider in self._providers.values():
            provider.force_flush()
            provider.shutdown()


def run_load(settings: LoadSettings, stop: threading.Event | None = None) -> dict[str, int]:
    """Send traces at `settings.rate` until the duration or count is reached; returns what was sent
    (traces, errors, slow) and how many spans the receiver accepted (delivered_spans)."""
    rng = random.Random(settings.seed)  # nosec B311 # shapes synthetic demo traffic, no security use
    traffic = CheckoutTraffic(settings.endpoint, settings.protocol, rng)
    sent = {"traces": 0, "errors": 0, "slow": 0}
    started = time.monotonic()
    try:
        while True:
            elapsed = time.monotonic() - started
            if settings.duration and elapsed >= settings.duration:
                break
            if settings.max_traces and sent["traces"] >= settings.max_traces:
                break
            if stop is not None and stop.is_set():
                break
            error = rng.random() < settings.error_ratio
            slow = rng.random() < settings.slow_ratio
            traffic.send_trace(error, slow)
            sent["traces"] += 1
            sent["errors"] += error
            sent["slow"] += slow
            wait = started + sent["traces"] / settings.rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
    finally:
        traffic.shutdown()
    return {**sent, **traffic.counts}
