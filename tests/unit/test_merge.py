"""One /metrics for all workers: the workers' expositions merged into the daemon's totals."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from sampler.telemetry.metrics import Metrics
from sampler.workers.admin import merge_json
from sampler.workers.merge import Families, merge_families, parse_exposition


def _worker(spans: int, lag: float, ready: int, reloads: int) -> Metrics:
    metrics = Metrics()
    metrics.received_spans.labels("grpc").inc(spans)
    metrics.decision_lag.observe(lag)
    metrics.window_capacity.set(500)
    metrics.ready.set(ready)
    metrics.build_info.labels("1.0").set(1)
    metrics.config_reloads.labels("success").inc(reloads)
    return metrics


def _values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _merged(*workers: Metrics) -> CollectorRegistry:
    expositions = [parse_exposition(generate_latest(w.registry).decode(), "text/plain; version=0.0.4") for w in workers]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Families(merge_families(expositions)))
    return registry


def test_counters_histograms_and_amounts_add_up_and_daemon_facts_do_not() -> None:
    one, two = _worker(30, 0.02, 1, 1), _worker(12, 3.0, 0, 1)
    two.received_spans.labels("http").inc(5)
    values = _values(generate_latest(_merged(one, two)).decode())
    assert values[("tail_sampler_received_spans_total", (("protocol", "grpc"),))] == 42
    assert values[("tail_sampler_received_spans_total", (("protocol", "http"),))] == 5
    assert values[("tail_sampler_decision_lag_seconds_count", ())] == 2
    assert values[("tail_sampler_decision_lag_seconds_sum", ())] == 3.02
    assert values[("tail_sampler_decision_lag_seconds_bucket", (("le", "0.025"),))] == 1
    assert values[("tail_sampler_decision_lag_seconds_bucket", (("le", "+Inf"),))] == 2
    assert values[("tail_sampler_window_capacity_traces", ())] == 1000  # each worker holds its share
    assert values[("tail_sampler_ready", ())] == 0  # ready only if every worker is
    assert values[("tail_sampler_build_info", (("version", "1.0"),))] == 1
    assert values[("tail_sampler_config_reloads_total", (("result", "success"),))] == 1  # one reload, not two
    created = values[("tail_sampler_received_spans_created", (("protocol", "grpc"),))]
    assert created < 2e9  # the earliest start, not a sum of timestamps


def test_openmetrics_with_exemplars_in_and_out() -> None:
    registries = []
    for trace_id, value in (("aa" * 16, 0.3), ("bb" * 16, 0.4)):
        registry = CollectorRegistry()
        Histogram("tail_sampler_test_seconds", "h", registry=registry, buckets=(0.5, 1.0)).observe(
            value, {"trace_id": trace_id}
        )
        Counter("tail_sampler_test_things", "c", registry=registry).inc(2)
        registries.append(registry)
    expositions = [
        parse_exposition(generate_openmetrics(registry).decode(), "application/openmetrics-text; version=1.0.0")
        for registry in registries
    ]
    merged = CollectorRegistry(auto_describe=False)
    merged.register(Families(merge_families(expositions)))
    encoder, content_type = choose_encoder("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    families = {family.name: family for family in parse_openmetrics(encoder(merged).decode())}
    bucket = next(s for s in families["tail_sampler_test_seconds"].samples if s.labels.get("le") == "0.5")
    assert bucket.value == 2
    assert bucket.exemplar is not None and bucket.exemplar.labels["trace_id"] in ("aa" * 16, "bb" * 16)
    things = next(s for s in families["tail_sampler_test_things"].samples if s.name.endswith("_total"))
    assert things.value == 4


def test_json_answers_merge_key_by_key() -> None:
    merged = merge_json(
        [
            {"traces": 3, "ready": True, "version": "1.0", "policies": ["a"], "window": {"spans": 10, "mode": "x"}},
            {"traces": 4, "ready": False, "version": "1.0", "policies": ["b"], "window": {"spans": 5, "mode": "y"}},
        ]
    )
    assert merged == {
        "traces": 7,
        "ready": False,
        "version": "1.0",
        "policies": ["a", "b"],
        "window": {"spans": 15, "mode": ["x", "y"]},
    }
