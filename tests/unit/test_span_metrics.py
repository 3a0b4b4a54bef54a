"""SpanMetrics: every span counted per series as the spanmetrics connector labels it; a series
limit with an overflow series; exemplars set only for kept traces."""

from __future__ import annotations

import os

from opentelemetry.proto.trace.v1.trace_pb2 import Span
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from sampler.config.model import SpanMetricsConfig
from sampler.telemetry.metrics import Metrics
from sampler.telemetry.span_metrics import SpanMetrics
from tests.support import make_request, make_span, make_trace
from tests.unit.helpers import trace_of


class Harness:
    def __init__(self, **config: object) -> None:
        self.metrics = Metrics()
        self.span_metrics = SpanMetrics(SpanMetricsConfig.model_validate(config), self.metrics)
        self.registry = CollectorRegistry()
        self.registry.register(self.span_metrics)

    def samples(self) -> list:
        text = openmetrics(self.registry).decode()
        return [sample for family in text_string_to_metric_families(text) for sample in family.samples]

    def value(self, name: str, **labels: str) -> float:
        return sum(s.value for s in self.samples() if s.name == name and labels.items() <= s.labels.items())


def test_calls_and_durations_per_series_as_the_connector_labels_them() -> None:
    h = Harness()
    trace_id = os.urandom(16)
    spans = [
        make_span(trace_id, name="GET /cart", duration_ms=3),
        make_span(trace_id, name="GET /cart", duration_ms=30),
        make_span(trace_id, name="charge", duration_ms=1, error=True),
    ]
    spans[2].kind = Span.SPAN_KIND_CLIENT
    h.span_metrics.count_request(make_request(spans, service="checkout"))
    cart = {"service_name": "checkout", "span_name": "GET /cart", "span_kind": "SPAN_KIND_SERVER"}
    assert h.value("traces_span_metrics_calls_total", **cart, status_code="STATUS_CODE_UNSET") == 2
    assert (
        h.value("traces_span_metrics_calls_total", span_kind="SPAN_KIND_CLIENT", status_code="STATUS_CODE_ERROR") == 1
    )
    assert h.value("traces_span_metrics_duration_milliseconds_bucket", **cart, le="2.0") == 0
    assert h.value("traces_span_metrics_duration_milliseconds_bucket", **cart, le="4.0") == 1
    assert h.value("traces_span_metrics_duration_milliseconds_bucket", **cart, le="50.0") == 2
    assert h.value("traces_span_metrics_duration_milliseconds_bucket", **cart, le="+Inf") == 2
    assert h.value("traces_span_metrics_duration_milliseconds_sum", **cart) == 33
    assert h.value("traces_span_metrics_duration_milliseconds_count", **cart) == 2
    bounds = sorted({s.labels["le"] for s in h.samples() if s.name.endswith("_bucket")}, key=lambda le: float(le))
    expected = [2, 4, 6, 8, 10, 50, 100, 200, 400, 800, 1000, 1400, 2000, 5000, 10000, 15000]
    assert bounds == [f"{float(b)}" for b in expected] + ["+Inf"]  # the connector's default buckets, in ms


def test_a_series_limit_sends_further_series_to_one_overflow_series() -> None:
    h = Harness(aggregation_cardinality_limit=3)
    trace_id = os.urandom(16)
    h.span_metrics.count_request(make_request([make_span(trace_id, name=f"op-{i}") for i in range(5)]))
    h.span_metrics.count_request(make_request([make_span(trace_id, name="op-0"), make_span(trace_id, name="op-9")]))
    calls = [s for s in h.samples() if s.name == "traces_span_metrics_calls_total"]
    assert len(calls) == 4
    overflow = [s for s in calls if s.labels == {"otel_metric_overflow": "true"}]
    assert [s.value for s in overflow] == [3]  # op-3, op-4, op-9
    assert sum(s.value for s in calls) == 7
    registry = h.metrics.registry
    assert registry.get_sample_value("tail_sampler_span_metrics_overflow_spans_total") == 3
    assert registry.get_sample_value("tail_sampler_span_metrics_series") == 3


def test_spans_the_splitter_refused_for_their_ids_are_not_counted() -> None:
    h = Harness()
    good = make_span(os.urandom(16))
    bad = make_span(os.urandom(16), span_id=bytes(8))
    h.span_metrics.count_request(make_request([good, bad]), check_ids=True)
    assert h.value("traces_span_metrics_calls_total") == 1


def test_exemplars_are_set_only_for_kept_traces_and_name_their_root_span() -> None:
    h = Harness()
    kept_id, kept = make_trace(spans=3, duration_ms=120)
    _, dropped = make_trace(spans=3)
    h.span_metrics.count_request(make_request(kept + dropped, service="checkout"))
    assert all(s.exemplar is None for s in h.samples())  # counted on receipt, no exemplar yet
    h.span_metrics.exemplify(trace_of(list(reversed(kept)), service="checkout"))  # the root is not first
    with_exemplar = [s for s in h.samples() if s.exemplar is not None]
    assert {s.exemplar.labels["trace_id"] for s in with_exemplar} == {kept_id.hex()}
    assert {s.exemplar.labels["span_id"] for s in with_exemplar} == {kept[0].span_id.hex()}
    assert sorted((s.name, s.labels.get("le")) for s in with_exemplar) == [
        ("traces_span_metrics_calls_total", None),
        ("traces_span_metrics_duration_milliseconds_bucket", "200.0"),
    ]
    bucket = next(s for s in with_exemplar if s.name.endswith("_bucket"))
    assert bucket.exemplar.value == 120 and bucket.labels["span_name"] == "op-0"


def test_the_text_format_carries_no_exemplars() -> None:
    from prometheus_client import generate_latest

    h = Harness()
    kept_id, kept = make_trace(spans=1)
    h.span_metrics.count_request(make_request(kept))
    h.span_metrics.exemplify(trace_of(kept))
    text = generate_latest(h.registry).decode()
    assert "traces_span_metrics_calls_total" in text and kept_id.hex() not in text
