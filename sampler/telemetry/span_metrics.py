"""Span metrics: calls, errors and durations of every span received, before sampling.

Named, labelled and bucketed as the Collector's spanmetrics connector emits them through its
Prometheus exporter, so dashboards built on it work unchanged:

    traces_span_metrics_calls_total{service_name, span_name, span_kind, status_code}
    traces_span_metrics_duration_milliseconds_bucket{..., le}, _sum, _count

with span_kind as SPAN_KIND_SERVER and friends and status_code as STATUS_CODE_ERROR and
friends. Counted from 100 % of the spans the receivers accept, whatever is kept later.

Exemplars (OpenMetrics exposition only) name kept traces only: one is set when a trace is kept
(`exemplify`, called as the trace goes to the batcher), never on receipt, so a dashboard's
jump from an exemplar to its trace always finds the trace.

The per-span path makes no prometheus-client call: counts live in plain lists per series,
read by this collector at scrape time. `count_request` is the one place that reads spans;
a splitter that already reads these fields can feed `count` instead.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar, Sample

from sampler.config.model import SpanMetricsConfig
from sampler.spans.framing import decode_varint
from sampler.spans.trace import TraceSpans
from sampler.telemetry.metrics import Metrics

CALLS = "traces_span_metrics_calls"
DURATION = "traces_span_metrics_duration_milliseconds"
# As the Collector's traceutil.SpanKindStr and StatusCodeStr write them.
SPAN_KINDS = (
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
)
STATUS_CODES = ("STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR")
OVERFLOW_LABELS = {"otel_metric_overflow": "true"}  # the OpenTelemetry SDKs' overflow attribute
_NS_PER_MS = 1_000_000
# A kept trace's spans looked at for a root span to be its exemplar, at most.
_EXEMPLAR_CANDIDATES = 16
_SERVICE_CACHE_LIMIT = 4096

# (service.name, span name, span kind, status code)
SeriesKey = tuple[str, str, int, int]
# trace ID, span ID (hex), value, timestamp (Unix seconds)
_Exemplar = tuple[str, str, float, float]


def service_name(resource: Resource) -> str:
    for attribute in resource.attributes:
        if attribute.key == "service.name":
            return str(attribute.value.string_value)
    return ""


class _Series:
    """Counts of one series: spans, their summed duration (ns), spans per bucket (not cumulative,
    the last one +Inf); the latest exemplars (calls, then one per bucket)."""

    __slots__ = ("counts", "exemplars")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * (buckets + 3)
        self.exemplars: list[_Exemplar | None] | None = None


class SpanMetrics(Collector):
    """The span metrics of one daemon; register it in the daemon's registry."""

    def __init__(self, config: SpanMetricsConfig, metrics: Metrics) -> None:
        self._bounds_ns = [round(seconds * 1e9) for seconds in config.buckets]
        self._le = [_number(seconds * 1000) for seconds in config.buckets] + ["+Inf"]
        self._limit = config.aggregation_cardinality_limit
        self._series: dict[SeriesKey, _Series] = {}
        self._overflow = _Series(len(self._bounds_ns))
        self._services: dict[bytes, str] = {}
        self._overflow_spans = metrics.span_metrics_overflow_spans
        metrics.span_metrics_series.set_function(lambda: len(self._series))

    # --- counting: every span received -------------------------------------------------

    def count_request(self, request: ExportTraceServiceRequest, check_ids: bool = False) -> None:
        """Count every span of a request the receivers accepted: those past max_spans_per_request
        are gone from it (see RequestSplitter); with `check_ids`, those with an invalid trace or
        span ID, which the splitter refused, are skipped."""
        series = self._series
        bounds = self._bounds_ns
        overflowed = 0
        for resource_spans in request.resource_spans:
            service = service_name(resource_spans.resource)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    if check_ids and not _valid_ids(span):
                        continue
                    key = (service, span.name, span.kind, span.status.code)
                    found = series.get(key)
                    if found is None:
                        found = self._new_series(key)
                        if found is self._overflow:
                            overflowed += 1
                    duration = span.end_time_unix_nano - span.start_time_unix_nano
                    if duration < 0:
                        duration = 0  # as the connector: an end before the start counts as 0
                    counts = found.counts
                    counts[0] += 1
                    counts[1] += duration
                    counts[2 + bisect_left(bounds, duration)] += 1
        if overflowed:
            self._overflow_spans.inc(overflowed)

    def _new_series(self, key: SeriesKey) -> _Series:
        if len(self._series) >= self._limit:
            return self._overflow
        created = self._series[key] = _Series(len(self._bounds_ns))
        return created

    # --- exemplars: kept traces only ----------------------------------------------------

    def exemplify(self, trace: TraceSpans) -> None:
        """Make a span of this kept trace (its root, if among the first few) the exemplar of its
        series and of its duration's bucket."""
        found = self._exemplar_span(trace)
        if found is None:
            return
        service, span = found
        key = (service, span.name, span.kind, span.status.code)
        series = self._series.get(key, self._overflow)
        if series.exemplars is None:
            series.exemplars = [None] * (len(self._bounds_ns) + 2)
        duration = max(0, span.end_time_unix_nano - span.start_time_unix_nano)
        trace_id, span_id = span.trace_id.hex(), span.span_id.hex()
        when = span.end_time_unix_nano / 1e9
        series.exemplars[0] = (trace_id, span_id, 1.0, when)
        bucket = 1 + bisect_left(self._bounds_ns, duration)
        series.exemplars[bucket] = (trace_id, span_id, duration / _NS_PER_MS, when)

    def _exemplar_span(self, trace: TraceSpans) -> tuple[str, Span] | None:
        """The trace's root span and its service, if among its first spans; else its first span."""
        first = None
        looked = 0
        for (resource, _), framed in trace.groups.items():
            position = 0
            while position < len(framed):
                if looked == _EXEMPLAR_CANDIDATES:
                    return first
                length, body = decode_varint(framed, position + 1)
                span = Span.FromString(bytes(framed[body : body + length]))
                position = body + length
                looked += 1
                if not span.parent_span_id:
                    return self._service_of(resource), span
                if first is None:
                    first = (self._service_of(resource), span)
        return first

    def _service_of(self, resource_prefix: bytes) -> str:
        service = self._services.get(resource_prefix)
        if service is None:
            if len(self._services) >= _SERVICE_CACHE_LIMIT:
                self._services.clear()
            service = service_name(ResourceSpans.FromString(resource_prefix).resource)
            self._services[resource_prefix] = service
        return service

    # --- exposition ------------------------------------------------------------------------

    def describe(self) -> Iterable[Metric]:
        return [
            Metric(CALLS, "Spans received, per service, span name, kind and status.", "counter"),
            Metric(DURATION, "Durations of the spans received.", "histogram", "milliseconds"),
        ]

    def collect(self) -> Iterator[Metric]:
        calls = Metric(CALLS, "Spans received, per service, span name, kind and status.", "counter")
        durations = Metric(DURATION, "Durations of the spans received.", "histogram", "milliseconds")
        every = [(_labels(key), series) for key, series in self._series.items()]
        if self._overflow.counts[0]:
            every.append((OVERFLOW_LABELS, self._overflow))
        le = self._le
        for labels, series in every:
            counts = series.counts
            exemplars = series.exemplars or ()
            calls.samples.append(
                Sample(CALLS + "_total", labels, counts[0], None, _exemplar(exemplars[0]) if exemplars else None)
            )
            cumulative = 0
            for index, bound in enumerate(le):
                cumulative += counts[2 + index]
                exemplar = _exemplar(exemplars[1 + index]) if exemplars else None
                durations.samples.append(
                    Sample(DURATION + "_bucket", {**labels, "le": bound}, cumulative, None, exemplar)
                )
            durations.samples.append(Sample(DURATION + "_count", labels, counts[0], None, None))
            durations.samples.append(Sample(DURATION + "_sum", labels, counts[1] / _NS_PER_MS, None, None))
        yield calls
        yield durations


def _valid_ids(span: Span) -> bool:
    trace_id, span_id = span.trace_id, span.span_id
    return len(trace_id) == 16 and len(span_id) == 8 and any(trace_id) and any(span_id)


def _labels(key: SeriesKey) -> dict[str, str]:
    service, name, kind, code = key
    return {
        "service_name": service,
        "span_name": name,
        "span_kind": SPAN_KINDS[kind] if 0 <= kind < len(SPAN_KINDS) else "",
        "status_code": STATUS_CODES[code] if 0 <= code < len(STATUS_CODES) else "",
    }


def _exemplar(stored: _Exemplar | None) -> Exemplar | None:
    if stored is None:
        return None
    trace_id, span_id, value, when = stored
    return Exemplar({"trace_id": trace_id, "span_id": span_id}, value, when)


def _number(milliseconds: float) -> str:
    """A bucket bound as Prometheus writes one: 2.0, 1400.0."""
    return repr(float(round(milliseconds, 9)))
