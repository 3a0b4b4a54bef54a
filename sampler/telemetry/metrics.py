"""Every metric the daemon exports, defined in one place.

Label values are bounded: protocols, policy names, exporter names and fixed
reason words; never trace IDs or attribute values.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector

from sampler.telemetry.histograms import BatchedHistogram

PREFIX = "tail_sampler"

# Decision delays are dominated by the timer tick and loop lag, so buckets start small.
_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0)
_AGE_BUCKETS = (0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 120.0, 300.0)


class Metrics:
    """The daemon's metrics, registered in a registry of their own (one per daemon)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        # What every Prometheus client exports by default: process_* (resident memory, CPU, open
        # files), python_info and python_gc_*, here in the daemon's own registry.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)

        # receive
        self.received_spans = Counter(
            f"{PREFIX}_received_spans", "Spans accepted by the receivers.", ["protocol"], registry=r
        )
        self.received_traces = Counter(
            f"{PREFIX}_received_traces",
            "Traces seen for the first time (not counting late spans of decided traces).",
            ["protocol"],
            registry=r,
        )
        self.requests = Counter(
            f"{PREFIX}_receiver_requests",
            "Export requests handled by the receivers, by result "
            "(ok, partial, invalid, too_large, unsupported_media_type, backpressure, storage_full, storage_error, "
            "unavailable: the worker owning some of its traces could not take them).",
            ["protocol", "result"],
            registry=r,
        )
        self.rejected_spans = Counter(
            f"{PREFIX}_rejected_spans",
            "Spans refused at receive time and reported through OTLP partial success.",
            ["protocol", "reason"],
            registry=r,
        )
        self.limited_attributes = Counter(
            f"{PREFIX}_receiver_limited_attributes",
            "Span attributes changed on receipt by the span limits, by reason (attribute_count_limit: "
            "dropped, attribute_value_length_limit: a string or bytes value truncated).",
            ["protocol", "reason"],
            registry=r,
        )
        self.refused_connections = Counter(
            f"{PREFIX}_receiver_refused_connections",
            "Connections refused by a receiver, by reason (max_connections).",
            ["protocol", "reason"],
            registry=r,
        )
        self.open_connections = Gauge(
            f"{PREFIX}_receiver_open_connections",
            "Connections a receiver holds open now (OTLP/HTTP).",
            ["protocol"],
            registry=r,
        )

        self.auth_failures = Counter(
            f"{PREFIX}_receiver_auth_failures",
            "Requests refused for authentication (gRPC UNAUTHENTICATED, HTTP 401), by reason "
            "(missing: no such header; malformed: not the configured scheme; invalid: an unknown token).",
            ["protocol", "reason"],
            registry=r,
        )
        self.credential_reloads = Counter(
            f"{PREFIX}_receiver_credential_reloads",
            "Reloads of a receiver's changed TLS files or token file, by credential (tls, tokens) "
            "and result (success, failure: the previous ones stay in use).",
            ["protocol", "credential", "result"],
            registry=r,
        )

        # logs (their records follow their trace's decision)
        self.received_log_records = Counter(
            f"{PREFIX}_received_log_records", "Log records accepted by the receivers.", ["protocol"], registry=r
        )
        self.rejected_log_records = Counter(
            f"{PREFIX}_rejected_log_records",
            "Log records refused at receive time (a trace ID neither empty nor 16 bytes) and reported "
            "through OTLP partial success.",
            ["protocol", "reason"],
            registry=r,
        )
        self.log_records = Counter(
            f"{PREFIX}_log_records",
            "Log records by what became of them: kept or dropped with their trace (late_kept, late_dropped: "
            "arriving after its decision), passed_through (naming no trace), untraced_dropped "
            "(naming no trace, with untraced_logs: drop).",
            ["outcome"],
            registry=r,
        )

        # span metrics (sampler/telemetry/span_metrics.py: traces_span_metrics_*)
        self.span_metrics_series = Gauge(
            f"{PREFIX}_span_metrics_series",
            "Series of the span metrics (service, span name, kind, status); at most "
            "span_metrics.aggregation_cardinality_limit.",
            registry=r,
        )
        self.span_metrics_overflow_spans = Counter(
            f"{PREFIX}_span_metrics_overflow_spans",
            "Spans counted in the span metrics' overflow series because the series limit was reached.",
            registry=r,
        )

        # buffer
        self.window_traces = Gauge(f"{PREFIX}_window_traces", "Traces waiting for a decision.", registry=r)
        self.window_spans = Gauge(f"{PREFIX}_window_spans", "Spans of traces waiting for a decision.", registry=r)
        self.window_bytes = Gauge(
            f"{PREFIX}_window_bytes", "Serialized span bytes of traces waiting for a decision.", registry=r
        )
        self.window_log_records = Gauge(
            f"{PREFIX}_window_log_records", "Log records held with traces waiting for a decision.", registry=r
        )
        self.window_capacity = Gauge(
            f"{PREFIX}_window_capacity_traces", "The configured bound on traces in the window (num_traces).", registry=r
        )
        self.window_memory_bytes = Gauge(
            f"{PREFIX}_window_memory_bytes",
            "Estimated memory of the traces waiting for a decision: span bytes plus bookkeeping "
            "(what memory_limit_mib bounds).",
            registry=r,
        )
        self.window_memory_limit = Gauge(
            f"{PREFIX}_window_memory_limit_bytes",
            "The configured bound on window_memory_bytes (memory_limit_mib); 0 when off.",
            registry=r,
        )
        self.early_decisions = Counter(
            f"{PREFIX}_early_decisions",
            "Traces decided before they were due because a bound of the window was reached "
            "(overflow: num_traces, memory: memory_limit_mib, span_limit: max_spans_per_trace, "
            "storage: the window's log was full, with when_full: decide_early).",
            ["reason"],
            registry=r,
        )
        self.traces_dropped_too_large = Counter(
            f"{PREFIX}_traces_dropped_too_large",
            "Traces dropped at once because their buffered spans exceeded maximum_trace_size_bytes.",
            registry=r,
        )
        self.late_spans = Counter(
            f"{PREFIX}_late_spans",
            "Spans arriving after their trace was decided, by the cached decision they followed "
            "(kept, dropped, too_large: a kept trace whose forwarded spans would exceed maximum_trace_size_bytes).",
            ["decision"],
            registry=r,
        )

        # the durable window (tail_sampling.storage) and the decision journal
        self.window_storage_bytes = Gauge(
            f"{PREFIX}_window_storage_bytes",
            "Bytes of the window's log segment files on disk (tail_sampling.storage); a segment is "
            "deleted once every trace in it is decided and handed on.",
            registry=r,
        )
        self.window_storage_capacity = Gauge(
            f"{PREFIX}_window_storage_capacity_bytes",
            "The configured bound on the window's log (tail_sampling.storage.max_size_mib).",
            registry=r,
        )
        self.window_storage_recovered_spans = Counter(
            f"{PREFIX}_window_storage_recovered_spans",
            "Spans found in the window's log at start, acknowledged by an earlier run but not yet "
            "handed on, by the state of their trace (undecided: rebuilt in the window and decided "
            "normally; kept: forwarded again, the backend may see them twice; dropped: not forwarded).",
            ["state"],
            registry=r,
        )
        self.storage_corrupt_records = Counter(
            f"{PREFIX}_storage_corrupt_records",
            "Unreadable stretches of the window's log or the decision journal skipped at start "
            "(a checksum mismatch, a record torn by a crash), by store (window, decisions).",
            ["store"],
            registry=r,
        )
        self.storage_io_errors = Counter(
            f"{PREFIX}_storage_io_errors",
            "Failed file operations on the window's log or the decision journal, by store (window, "
            "decisions) and operation (write, read, mark, sync, delete, task).",
            ["store", "operation"],
            registry=r,
        )
        self.decision_journal_bytes = Gauge(
            f"{PREFIX}_decision_journal_bytes",
            "Bytes of the decision journal's segment files, since its last compaction.",
            registry=r,
        )
        self.decision_journal_written = Counter(
            f"{PREFIX}_decision_journal_written_traces",
            "Trace decisions written to the decision journal (they survive a crash of the daemon; "
            "with fsync: always or after the next sync, a crash of the machine too).",
            registry=r,
        )
        self.decision_journal_compactions = Counter(
            f"{PREFIX}_decision_journal_compactions",
            "Compactions of the decision journal into its snapshot file.",
            registry=r,
        )
        self.decision_journal_recovered = Counter(
            f"{PREFIX}_decision_journal_recovered_traces",
            "Trace decisions loaded at start from the snapshot and the journal, by decision (kept, dropped).",
            ["decision"],
            registry=r,
        )

        # decide
        self.traces_decided = Counter(
            f"{PREFIX}_traces_decided",
            "Traces decided, by final decision (kept, dropped) and trigger "
            "(wait, root, overflow, memory, span_limit, shutdown, too_large, ingest).",
            ["decision", "trigger"],
            registry=r,
        )
        self.spans_decided = Counter(
            f"{PREFIX}_spans_decided", "Spans of decided traces, by final decision.", ["decision"], registry=r
        )
        self.policy_decisions = Counter(
            f"{PREFIX}_policy_decisions",
            "Per-policy evaluation results (sampled, not_sampled, dropped).",
            ["policy", "decision"],
            registry=r,
        )
        self.traces_kept_by_policy = Counter(
            f"{PREFIX}_traces_kept_by_policy",
            "Kept traces, by the first policy (in config order) that sampled them.",
            ["policy"],
            registry=r,
        )
        self.decision_lag = BatchedHistogram(
            f"{PREFIX}_decision_lag_seconds",
            "How long after a trace became due (decision_wait or root wait) it was decided.",
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.trace_age_at_decision = BatchedHistogram(
            f"{PREFIX}_trace_age_at_decision_seconds",
            "Time from a trace's first span to its decision.",
            buckets=_AGE_BUCKETS,
            registry=r,
        )
        self.policy_evaluation_errors = Counter(
            f"{PREFIX}_policy_evaluation_errors",
            "Policy evaluations that raised; the policy counts as not sampled for that trace.",
            ["policy"],
            registry=r,
        )
        self.decision_cache_size = Gauge(
            f"{PREFIX}_decision_cache_traces", "Trace IDs remembered in the decision caches.", ["decision"], registry=r
        )
        self.decision_cache_memory = Gauge(
            f"{PREFIX}_decision_cache_memory_bytes",
            "Estimated memory of the decision caches (entries times a measured cost per entry).",
            ["decision"],
            registry=r,
        )

        # forward
        self.exporter_sent_spans = Counter(
            f"{PREFIX}_exporter_sent_spans", "Spans delivered to a downstream.", ["exporter"], registry=r
        )
        self.exporter_sent_log_records = Counter(
            f"{PREFIX}_exporter_sent_log_records", "Log records delivered to a downstream.", ["exporter"], registry=r
        )
        self.exporter_dropped_log_records = Counter(
            f"{PREFIX}_exporter_dropped_log_records",
            "Kept log records that were finally not delivered, by reason (as for spans; unsupported: "
            "the exporter's format has no logs, as Zipkin's).",
            ["exporter", "reason"],
            registry=r,
        )
        self.exporter_sent_requests = Counter(
            f"{PREFIX}_exporter_sent_requests", "Export requests delivered to a downstream.", ["exporter"], registry=r
        )
        self.exporter_failed_requests = Counter(
            f"{PREFIX}_exporter_failed_attempts",
            "Export attempts that failed (each retry counts), by reason.",
            ["exporter", "reason"],
            registry=r,
        )
        self.exporter_retries = Counter(
            f"{PREFIX}_exporter_retries",
            "Export attempts scheduled again after a retryable failure.",
            ["exporter"],
            registry=r,
        )
        self.exporter_dropped_spans = Counter(
            f"{PREFIX}_exporter_dropped_spans",
            "Kept spans that were finally not delivered, by reason "
            "(queue_full, retries_exhausted, permanent_error, rejected, shutdown, disk_queue_full, disk_error).",
            ["exporter", "reason"],
            registry=r,
        )
        self.exporter_queue_size = Gauge(
            f"{PREFIX}_exporter_queue_batches", "Batches waiting in an exporter's queue.", ["exporter"], registry=r
        )
        self.exporter_queue_capacity = Gauge(
            f"{PREFIX}_exporter_queue_capacity_batches", "Capacity of an exporter's queue.", ["exporter"], registry=r
        )
        # persistent exporter queues (sending_queue.storage)
        self.exporter_disk_queue_bytes = Gauge(
            f"{PREFIX}_exporter_disk_queue_bytes",
            "Bytes of an exporter's queue segment files on disk (delivered batches included until "
            "their segment is deleted).",
            ["exporter"],
            registry=r,
        )
        self.exporter_disk_queue_capacity = Gauge(
            f"{PREFIX}_exporter_disk_queue_capacity_bytes",
            "The configured bound on an exporter's queue segment files (max_size_mib).",
            ["exporter"],
            registry=r,
        )
        self.exporter_disk_queue_records = Gauge(
            f"{PREFIX}_exporter_disk_queue_records",
            "Batches on disk not yet acknowledged (delivered or finally dropped).",
            ["exporter"],
            registry=r,
        )
        self.exporter_disk_queue_spans = Gauge(
            f"{PREFIX}_exporter_disk_queue_spans",
            "Spans of the batches on disk not yet acknowledged.",
            ["exporter"],
            registry=r,
        )
        self.exporter_disk_recovered_spans = Counter(
            f"{PREFIX}_exporter_disk_recovered_spans",
            "Spans found on disk at start, left unacknowledged by an earlier run.",
            ["exporter"],
            registry=r,
        )
        self.exporter_disk_redelivered_spans = Counter(
            f"{PREFIX}_exporter_disk_redelivered_spans",
            "Spans sent again after a restart because an earlier run had started sending them "
            "but not recorded their acknowledgement.",
            ["exporter"],
            registry=r,
        )
        self.exporter_disk_corrupt_records = Counter(
            f"{PREFIX}_exporter_disk_corrupt_records",
            "Unreadable stretches of queue files skipped: a checksum mismatch or a record torn by a crash.",
            ["exporter"],
            registry=r,
        )
        self.exporter_disk_io_errors = Counter(
            f"{PREFIX}_exporter_disk_io_errors",
            "Failed file operations on an exporter's queue files, by operation (write, read, mark, sync, delete).",
            ["exporter", "operation"],
            registry=r,
        )
        self.batches_built = Counter(
            f"{PREFIX}_forward_batches",
            "Batches of kept spans built for the exporters, by trigger (size, bytes, timeout, flush).",
            ["trigger"],
            registry=r,
        )

        # workers (the `workers` key): fragments handed to the worker that owns their trace
        self.handoff_spans = Counter(
            f"{PREFIX}_worker_handoff_spans",
            "Spans handed between worker processes to the worker that owns their trace, by direction "
            "(sent: by the worker that received them, received: by the owner); 0 with one worker.",
            ["direction"],
            registry=r,
        )

        # configuration
        self.config_reloads = Counter(
            f"{PREFIX}_config_reloads",
            "Reloads of the config file (SIGHUP or a change on disk), by result (success, failure).",
            ["result"],
            registry=r,
        )
        self.config_last_reload_successful = Gauge(
            f"{PREFIX}_config_last_reload_successful",
            "1 if the last reload attempt succeeded (or none was made), 0 if it failed.",
            registry=r,
        )
        self.config_last_reload_successful.set(1)  # no attempt yet: nothing failed

        # lifecycle
        self.build_info = Gauge(f"{PREFIX}_build_info", "Version of the running daemon.", ["version"], registry=r)
        self.ready = Gauge(f"{PREFIX}_ready", "1 while receivers listen and exporters run.", registry=r)


class SupervisorMetrics:
    """What the supervisor of worker processes (the `workers` key) says of them. It registers
    them beside a Metrics of its own (its process, its admin endpoint's token checks), all of
    which it adds to its workers' on /metrics."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.workers = Gauge(f"{PREFIX}_workers", "Worker processes configured (the workers key).", registry=r)
        self.workers_up = Gauge(
            f"{PREFIX}_workers_up", "Worker processes running and answering the supervisor now.", registry=r
        )
        self.worker_restarts = Counter(
            f"{PREFIX}_worker_restarts",
            "Worker processes that exited unexpectedly and were started again, by worker index.",
            ["worker"],
            registry=r,
        )
