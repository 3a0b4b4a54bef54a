"""Every policy type, through the running daemon: the matching trace reaches the sink, the other does not."""

from __future__ import annotations

import time

import pytest

from tests.support import config_dict, fast_retry, grpc_export, make_request, make_trace, wait_until

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
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_policy_type_through_the_daemon(case, start_daemon, grpc_sink):
    policy, kept_kwargs, dropped_kwargs = CASES[case]
    daemon = start_daemon(config_dict({"otlp": fast_retry(grpc_sink.endpoint)}, [{"name": case, **policy}]))
    expected = set()
    sent = 0
    for kwargs, keep in ((kept_kwargs, True), (dropped_kwargs, False)):
        if kwargs is None:
            continue
        trace_id, spans = make_trace(**kwargs)
        grpc_export(daemon.grpc_endpoint, make_request(spans))
        sent += 1
        if keep:
            expected.add(trace_id)
    wait_until(lambda: daemon.scrape().value("tail_sampler_traces_decided_total") == sent, what=f"{sent} decisions")
    if expected:
        wait_until(lambda: grpc_sink.trace_ids() == expected, what="the kept trace at the sink")
    time.sleep(0.2)  # a wrongly kept trace would arrive within the batch timeout
    assert grpc_sink.trace_ids() == expected
    metrics = daemon.scrape()
    assert metrics.value("tail_sampler_policy_decisions_total", policy=case, decision="sampled") == len(expected)
