"""Consistent probability sampling end to end: the OpenTelemetry SDK's trace exporter into the
daemon, a real OTLP sink behind it. Every span kept by the probabilistic policy carries a
threshold its randomness passes (rv >= th), and the kept spans' adjusted counts add up to the
spans sent.

Randomness is stratified: the trace IDs come from an SDK ID generator that gives the i-th
trace a randomness value in the i-th of n equal slices of [0, 2^56), in shuffled order. A
5 % sample of 10,000 random IDs estimates the total with a standard error of about 4 %; with
stratified randomness the sample itself is exact to a trace or two, so what remains in the
estimate's error is the daemon's: a wrong threshold, a wrong adjusted count, or an error
trace counted 20 times because the probabilistic policy also sampled it.
"""

from __future__ import annotations

import random

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import Status, StatusCode

from sampler.spans.tracestate import MAX_THRESHOLD, adjusted_count, ot_fields, probability_to_threshold
from tests.support import config_dict, fast_retry, wait_until, wait_until_exported

TRACES = 10_000
SPANS_PER_TRACE = 3
ERROR_EVERY = 10  # every tenth trace has an error span: kept for certain by the errors policy
ERRORS = {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}}
FIVE_PERCENT = {"name": "five-percent", "type": "probabilistic", "probabilistic": {"sampling_percentage": 5}}


class StratifiedIds(IdGenerator):
    """Trace IDs whose last 56 bits (their randomness) fall one in each of `count` equal slices."""

    def __init__(self, count: int, seed: int) -> None:
        self._rng = random.Random(seed)
        self._slices = list(range(count))
        self._rng.shuffle(self._slices)
        self._count = count

    def generate_span_id(self) -> int:
        return self._rng.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        slice_ = self._slices.pop()
        randomness = int((slice_ + self._rng.random()) * MAX_THRESHOLD / self._count)
        return (self._rng.getrandbits(71) | 1 << 71) << 56 | randomness


def send_traces(endpoint: str) -> tuple[int, int]:
    """10,000 traces of 3 spans through the SDK's OTLP/gRPC exporter; (spans, error spans) sent."""
    provider = TracerProvider(
        resource=Resource.create({"service.name": "checkout"}), id_generator=StratifiedIds(TRACES, seed=2026)
    )
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True), max_queue_size=TRACES * SPANS_PER_TRACE)
    )
    tracer = provider.get_tracer("consistent-probability-test")
    errors = 0
    for index in range(TRACES):
        with tracer.start_as_current_span("GET /cart"):
            with tracer.start_as_current_span("SELECT cart"):
                pass
            with tracer.start_as_current_span("charge") as charge:
                if index % ERROR_EVERY == 0:
                    charge.set_status(Status(StatusCode.ERROR, "card declined"))
                    errors += 1
    provider.shutdown()  # flushes every span
    return TRACES * SPANS_PER_TRACE, errors


def test_probabilistically_kept_spans_carry_consistent_thresholds_and_unbiased_counts(start_daemon, grpc_sink):
    daemon = start_daemon(
        config_dict({"otlp": fast_retry(grpc_sink.endpoint)}, [ERRORS, FIVE_PERCENT], num_traces=20_000)
    )
    sent, _ = send_traces(daemon.grpc_endpoint)
    wait_until(
        lambda: daemon.scrape().value("tail_sampler_traces_decided_total") >= TRACES,
        timeout=60,
        what="every trace decided",
    )
    wait_until_exported(daemon, spans=1, timeout=30)

    threshold = probability_to_threshold(0.05)
    by_policy: dict[str, int] = {}
    estimate = 0.0
    with grpc_sink.lock:
        requests = list(grpc_sink.requests)
    for request in requests:
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                scope_attributes = scope_spans.scope.attributes
                credited = next(a.value.string_value for a in scope_attributes if a.key == "tailsampling.policy")
                for span in scope_spans.spans:
                    by_policy[credited] = by_policy.get(credited, 0) + 1
                    th, rv = ot_fields(span.trace_state)
                    randomness = rv if rv is not None else int.from_bytes(span.trace_id[9:], "big")
                    if credited == "five-percent":
                        assert th == threshold and randomness >= th, span
                    else:
                        assert th is None, f"an error trace kept for certain got a threshold: {span}"
                    estimate += adjusted_count(th) if th is not None else 1.0
    kept_probabilistically = TRACES - TRACES // ERROR_EVERY
    assert by_policy["errors"] == (TRACES // ERROR_EVERY) * SPANS_PER_TRACE
    assert abs(by_policy["five-percent"] - 0.05 * kept_probabilistically * SPANS_PER_TRACE) <= 2 * SPANS_PER_TRACE
    assert abs(estimate - sent) / sent < 0.02, f"estimated {estimate:.0f} spans from adjusted counts, {sent} sent"
