"""Every policy type, through the running daemon: the matching trace reaches the sink, the other does not."""

from __future__ import annotations

import time

import pytest

from tests.support import (
    config_dict,
    fast_retry,
    grpc_export,
    make_request,
    make_trace,
    wait_until,
    wait_until_exported,
)

# (policy, kwargs of make_trace for a trace it keeps, kwargs for one it does not)
CASES = {
    "always_sample": ({"type": "always_sample"}, {}, None),
    "latency": ({"type": "latency", "latency": {"threshold_ms": 200}}, {"duration_ms": 201}, {"duration_ms": 200}),
    "latency_upper": (
        {"type": "latency", "latency": {"threshold_ms": 100, "upper_threshold_ms": 300}},
        {"duration_ms": 300},
        {"duration_ms": 301},
    ),
    "status_code": ({"type": "status_code", "status_code": {"status_codes": ["ERROR"]}}, {"error": True}, {}),
    "probabilistic_all": ({"type": "probabilistic", "probabilistic": {"sampling_percentage": 100}}, {}, None),
    "probabilistic_none": ({"type": "probabilistic", "probabilistic": {"sampling_percentage": 0}}, None, {}),
    "rate_limiting": ({"type": "rate_limiting", "rate_limiting": {"spans_per_second": 3}}, {"spans": 3}, {"spans": 4}),
    "string_attribute": (
        {
            "type": "string_attribute",
            "string_attribute": {"key": "route", "values": ["/pay.*"], "enabled_regex_matching": True},
        },
        {"attributes": {"route": "/payments/1"}},
        {"attributes": {"route": "/health"}},
    ),
    "string_attribute_inverted": (
        {"type": "string_attribute", "string_attribute": {"key": "route", "values": ["/health"], "invert_match": True}},
        {"attributes": {"route": "/orders"}},
        {"attributes": {"route": "/health"}},
    ),
    "numeric_attribute": (
        {"type": "numeric_attribute", "numeric_attribute": {"key": "http.status", "min_value": 500, "max_value": 599}},
        {"attributes": {"http.status": 503}},
        {"attributes": {"http.status": 200}},
    ),
    "boolean_attribute": (
        {"type": "boolean_attribute", "boolean_attribute": {"key": "debug", "value": True}},
        {"attributes": {"debug": True}},
        {"attributes": {"debug": False}},
    ),
    "span_count": ({"type": "span_count", "span_count": {"min_spans": 4, "max_spans": 6}}, {"spans": 5}, {"spans": 7}),
    "ottl_condition": (
        {
            "type": "ottl_condition",
            "ottl_condition": {
                "error_mode": "ignore",
                "span": [
                    'attributes["tier"] == "gold"',
                    "end_time_unix_nano - start_time_unix_nano > 10000000000",
                ],
            },
        },
        {"attributes": {"tier": "gold"}},
        {"attributes": {"tier": "free"}},
    ),
    "bytes_limiting": (
        {"type": "bytes_limiting", "bytes_limiting": {"bytes_per_second": 300, "burst_capacity": 300}},
        {"spans": 2},
        {"spans": 2, "attributes": {"blob": "x" * 400}},
    ),
    "and": (
        {
            "type": "and",
            "and": {
                "and_sub_policy": [
                    {"name": "slow", "type": "latency", "latency": {"threshold_ms": 100}},
                    {"name": "vip", "type": "boolean_attribute", "boolean_attribute": {"key": "vip", "value": True}},
                ]
            },
        },
        {"duration_ms": 150, "attributes": {"vip": True}},
        {"duration_ms": 150, "attributes": {"vip": False}},
    ),
    "not": (
        {
            "type": "not",
            "not": {"not_sub_policy": {"name": "slow", "type": "latency", "latency": {"threshold_ms": 100}}},
        },
        {"duration_ms": 50},
        {"duration_ms": 150},
    ),
    "composite": (
        {
            "type": "composite",
            "composite": {
                "max_total_spans_per_second": 100,
                "composite_sub_policy": [
                    {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}}
                ],
                "rate_allocation": [{"policy": "errors", "percent": 100}],
            },
        },
        {"error": True},
        {},
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_policy_type_through_the_daemon(case, start_daemon, grpc_sink):
    policy, kept_kwargs, dropped_kwargs = CASES[case]
    daemon = start_daemon(config_dict({"otlp": fast_retry(grpc_sink.endpoint)}, [{"name": case, **policy}]))
    expected = set()
    expected_spans = 0
    sent = 0
    for kwargs, keep in ((kept_kwargs, True), (dropped_kwargs, False)):
        if kwargs is None:
            continue
        trace_id, spans = make_trace(**kwargs)
        grpc_export(daemon.grpc_endpoint, make_request(spans))
        sent += 1
        if keep:
            expected.add(trace_id)
            expected_spans += len(spans)
    wait_until(lambda: daemon.scrape().value("tail_sampler_traces_decided_total") == sent, what=f"{sent} decisions")
    if expected:
        wait_until(lambda: grpc_sink.trace_ids() == expected, what="the kept trace at the sink")
    wait_until_exported(daemon, spans=expected_spans)  # a wrongly kept trace has reached the sink too
    assert grpc_sink.trace_ids() == expected
    metrics = daemon.scrape()
    assert metrics.value("tail_sampler_policy_decisions_total", policy=case, decision="sampled") == len(expected)


def test_drop_policy_vetoes_always_sample_through_the_daemon(start_daemon, grpc_sink):
    policies = [
        {"name": "keep-all", "type": "always_sample"},
        {
            "name": "no-health",
            "type": "drop",
            "drop": {
                "drop_sub_policy": [
                    {
                        "name": "health",
                        "type": "string_attribute",
                        "string_attribute": {"key": "route", "values": ["/health"]},
                    }
                ]
            },
        },
    ]
    daemon = start_daemon(config_dict({"otlp": fast_retry(grpc_sink.endpoint)}, policies))
    kept, kept_spans = make_trace(attributes={"route": "/orders"})
    _, health_spans = make_trace(attributes={"route": "/health"})
    grpc_export(daemon.grpc_endpoint, make_request(kept_spans + health_spans))
    wait_until(lambda: daemon.scrape().value("tail_sampler_traces_decided_total") == 2)
    wait_until(lambda: grpc_sink.trace_ids() == {kept})
    wait_until_exported(daemon, spans=len(kept_spans))
    assert grpc_sink.trace_ids() == {kept}
    metrics = daemon.scrape()
    assert metrics.value("tail_sampler_policy_decisions_total", policy="no-health", decision="dropped") == 1


def test_w3c_policies_through_the_daemon(start_daemon, grpc_sink):
    policies = [
        {"name": "state", "type": "trace_state", "trace_state": {"key": "tenant", "values": ["gold"]}},
        {"name": "flags", "type": "trace_flags"},
    ]
    daemon = start_daemon(config_dict({"otlp": fast_retry(grpc_sink.endpoint)}, policies))
    gold, gold_spans = make_trace(spans=2)
    gold_spans[1].trace_state = "rojo=00f067aa0ba902b7,tenant=gold"
    flagged, flagged_spans = make_trace(spans=2)
    flagged_spans[0].flags = 0x01
    _, plain_spans = make_trace(spans=2)
    plain_spans[0].trace_state = "tenant=silver"
    grpc_export(daemon.grpc_endpoint, make_request(gold_spans + flagged_spans + plain_spans))
    wait_until(lambda: daemon.scrape().value("tail_sampler_traces_decided_total") == 3)
    wait_until(lambda: grpc_sink.trace_ids() == {gold, flagged})
    wait_until_exported(daemon, spans=len(gold_spans) + len(flagged_spans))
    assert grpc_sink.trace_ids() == {gold, flagged}


def test_span_ingest_forwards_a_sampled_trace_without_waiting(start_daemon, grpc_sink):
    policies = [{"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}}]
    daemon = start_daemon(
        config_dict(
            {"otlp": fast_retry(grpc_sink.endpoint)}, policies, decision_wait="30s", sampling_strategy="span-ingest"
        )
    )
    started = time.monotonic()
    error_trace, error_spans = make_trace(spans=3, error=True)
    _, plain_spans = make_trace(spans=3)
    grpc_export(daemon.grpc_endpoint, make_request(error_spans + plain_spans))
    grpc_sink.wait_for_spans(3, timeout=5)
    assert time.monotonic() - started < 5  # long before decision_wait
    assert grpc_sink.trace_ids() == {error_trace}
    assert daemon.scrape().value("tail_sampler_window_traces") == 1


def test_sample_on_first_match_through_the_daemon(start_daemon, grpc_sink):
    policies = [
        {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}},
        {"name": "everything", "type": "always_sample"},
        {
            "name": "ottl",
            "type": "ottl_condition",
            "ottl_condition": {"span": ['span.attributes["tier"] == "gold"'], "spanevent": ['spanevent.name == "x"']},
        },
    ]
    daemon = start_daemon(config_dict({"otlp": fast_retry(grpc_sink.endpoint)}, policies, sample_on_first_match=True))
    _, error_spans = make_trace(spans=2, error=True)
    _, plain_spans = make_trace(spans=2, attributes={"tier": "gold"})
    grpc_export(daemon.grpc_endpoint, make_request(error_spans + plain_spans))
    grpc_sink.wait_for_spans(4)
    metrics = daemon.scrape()
    # errors sampled one trace and stopped there; everything sampled the other and stopped there.
    assert metrics.value("tail_sampler_policy_decisions_total", policy="errors", decision="sampled") == 1
    assert metrics.value("tail_sampler_policy_decisions_total", policy="everything", decision="sampled") == 1
    assert metrics.value("tail_sampler_policy_decisions_total", policy="ottl") == 0
