"""Kept spans carry their decision in their instrumentation scope (tailsampling.*)."""

from __future__ import annotations

import os

from tests.support import (
    config_dict,
    fast_retry,
    grpc_export,
    make_request,
    make_span,
    make_trace,
    wait_until,
    wait_until_exported,
)


def scope_attributes(grpc_sink, trace_id: bytes) -> list[dict]:
    found = []
    with grpc_sink.lock:
        requests = list(grpc_sink.requests)
    for request in requests:
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                if any(span.trace_id == trace_id for span in scope_spans.spans):
                    attributes = {}
                    for attribute in scope_spans.scope.attributes:
                        kind = attribute.value.WhichOneof("value")
                        attributes[attribute.key] = getattr(attribute.value, kind)
                    found.append((scope_spans.scope.name, attributes))
    return found


ERRORS = {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}}
HALF = {"name": "half", "type": "probabilistic", "probabilistic": {"sampling_percentage": 100}}


def test_kept_spans_name_the_policy_and_late_spans_the_cache(start_daemon, grpc_sink):
    daemon = start_daemon(config_dict({"otlp": fast_retry(grpc_sink.endpoint)}, [ERRORS, HALF]))
    error_trace, error_spans = make_trace(spans=2, error=True)
    other_trace, other_spans = make_trace(spans=2, root=False)
    grpc_export(daemon.grpc_endpoint, make_request(error_spans + other_spans))
    grpc_sink.wait_for_spans(4)
    assert scope_attributes(grpc_sink, error_trace) == [("test", {"tailsampling.policy": "errors"})]
    assert scope_attributes(grpc_sink, other_trace) == [
        ("test", {"tailsampling.policy": "half", "tailsampling.sample_rate": 1, "tailsampling.root_seen": False})
    ]
    grpc_export(daemon.grpc_endpoint, make_request([make_span(error_trace, name="late")]))
    grpc_sink.wait_for_spans(5)
    assert ("test", {"tailsampling.policy": "errors", "tailsampling.cached_decision": True}) in scope_attributes(
        grpc_sink, error_trace
    )


def test_composite_records_the_sub_policy_and_overflow_is_marked(start_daemon, grpc_sink):
    composite = {
        "name": "budget",
        "type": "composite",
        "composite": {
            "max_total_spans_per_second": 1000,
            "composite_sub_policy": [{"name": "all", "type": "always_sample"}],
            "rate_allocation": [{"policy": "all", "percent": 100}],
        },
    }
    daemon = start_daemon(
        config_dict(
            {"otlp": fast_retry(grpc_sink.endpoint)}, [composite], num_traces=1, num_shards=1, decision_wait="30s"
        )
    )
    first, first_spans = make_trace(spans=2)
    _, second_spans = make_trace(spans=2)
    grpc_export(daemon.grpc_endpoint, make_request(first_spans))
    grpc_export(daemon.grpc_endpoint, make_request(second_spans))  # the full window decides the first early
    grpc_sink.wait_for_spans(2)
    assert scope_attributes(grpc_sink, first) == [
        (
            "test",
            {
                "tailsampling.policy": "budget",
                "tailsampling.composite_policy": "all",
                "tailsampling.early_decision": "overflow",
            },
        )
    ]


def test_records_can_be_turned_off(start_daemon, grpc_sink):
    daemon = start_daemon(config_dict({"otlp": fast_retry(grpc_sink.endpoint)}, [ERRORS], record_policy=False))
    trace_id, spans = make_trace(spans=2, error=True)
    grpc_export(daemon.grpc_endpoint, make_request(spans))
    grpc_sink.wait_for_spans(2)
    assert scope_attributes(grpc_sink, trace_id) == [("test", {})]
    grpc_export(daemon.grpc_endpoint, make_request([make_span(trace_id, name="late")]))
    wait_until(lambda: grpc_sink.span_count() == 3)
    wait_until_exported(daemon, spans=3)  # 2 kept, 1 late
    assert all(attributes == {} for _, attributes in scope_attributes(grpc_sink, trace_id))


def test_an_upstream_threshold_is_kept_never_lowered(start_daemon, grpc_sink):
    daemon = start_daemon(config_dict({"otlp": fast_retry(grpc_sink.endpoint)}, [HALF]))
    _, spans = make_trace(spans=2)
    trace_id = os.urandom(9) + b"\xe0" + os.urandom(6)  # its randomness passes the upstream threshold
    for span in spans:
        span.trace_id = trace_id
        span.trace_state = "vendor=x,ot=th:c"  # head-sampled upstream at 25 %
    plain_id, plain = make_trace(spans=1)
    grpc_export(daemon.grpc_endpoint, make_request(spans + plain))
    grpc_sink.wait_for_spans(3)
    assert scope_attributes(grpc_sink, trace_id)[0][1]["tailsampling.sample_rate"] == 4
    assert {s.span.trace_state for s in grpc_sink.spans() if s.trace_id == trace_id} == {"vendor=x,ot=th:c"}
    # Kept at 100 % here and never sampled before: threshold 0, rate 1.
    assert {s.span.trace_state for s in grpc_sink.spans() if s.trace_id == plain_id} == {"ot=th:0"}
    assert scope_attributes(grpc_sink, plain_id)[0][1]["tailsampling.sample_rate"] == 1
