"""sampler.tools.simulate: decoding recorded OTLP/JSON exactly as request_from_json does, merging
traces across lines (in one process or a pool), and deciding them with the daemon's evaluation."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from sampler.codecs import otlp_json
from sampler.codecs.otlp_json import request_from_json as parse_request
from sampler.codecs.otlp_json import request_from_json_exact as request_from_json
from sampler.codecs.otlp_json import request_to_json
from sampler.config.tail_sampling import TailSamplingConfig
from sampler.policies.registry import POLICIES
from sampler.tools.simulate import read, report, run
from sampler.tools.simulate.read import InputError, read_traces
from tests.support import MS, T0, make_request, make_span, make_trace

ERRORS = {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}}
SLOW = {"name": "slow", "type": "latency", "latency": {"threshold_ms": 500}}


def sampling(policies: list[dict[str, Any]], **options: Any) -> TailSamplingConfig:
    body = {"policies": [POLICIES.validate(policy) for policy in policies], **options}
    return TailSamplingConfig.model_validate(body)


def write_lines(path: Path, *lines: str | ExportTraceServiceRequest) -> Path:
    path.write_text(
        "".join((line if isinstance(line, str) else request_to_json(line)) + "\n" for line in lines), encoding="utf-8"
    )
    return path


def no_fallback() -> Any:
    """Fails a test if parse_request leaves the line to request_from_json."""
    return mock.patch.object(otlp_json, "request_from_json_exact", side_effect=AssertionError("slow path taken"))


# --- decoding ----------------------------------------------------------------------


def rich_request() -> ExportTraceServiceRequest:
    trace_id, spans = make_trace(
        spans=3,
        error=True,
        attributes={"http.route": "/checkout", "retries": 3, "ratio": 0.25, "cached": True, "empty": ""},
    )
    span = spans[1]
    span.trace_state = "vendor=a"
    span.flags = 257
    span.kind = Span.SPAN_KIND_CLIENT
    span.dropped_attributes_count = 2
    span.status.message = "boom"
    span.attributes.append(KeyValue(key="blob", value=AnyValue(bytes_value=b"\x00\xff+/-_")))
    span.attributes.append(
        KeyValue(
            key="nested",
            value=AnyValue(
                array_value=ArrayValue(
                    values=[
                        AnyValue(int_value=-(2**63)),
                        AnyValue(
                            kvlist_value=KeyValueList(values=[KeyValue(key="k", value=AnyValue(double_value=-1))])
                        ),
                        AnyValue(),
                    ]
                )
            ),
        )
    )
    event = span.events.add(time_unix_nano=T0 + 5 * MS, name="exception", dropped_attributes_count=1)
    event.attributes.append(KeyValue(key="exception.type", value=AnyValue(string_value="Boom")))
    link = span.links.add(trace_id=bytes(range(16)), span_id=bytes(range(1, 9)), trace_state="x=1", flags=1)
    link.attributes.append(KeyValue(key="link", value=AnyValue(bool_value=False)))
    request = make_request(spans, service="checkout", resource_attributes={"host.name": "h", "pid": 42})
    request.resource_spans[0].schema_url = "https://opentelemetry.io/schemas/1.21.0"
    request.resource_spans[0].scope_spans[0].scope.version = "1.2.3"
    request.resource_spans[0].scope_spans[0].scope.attributes.append(KeyValue(key="s", value=AnyValue(int_value=1)))
    request.resource_spans[0].scope_spans[0].schema_url = "https://example.com/scope"
    return request


def test_parse_request_takes_the_fast_path_and_builds_the_same_request() -> None:
    request = rich_request()
    line = request_to_json(request)
    with no_fallback():
        parsed = parse_request(line)
        assert parse_request(line.encode()) == parsed
    assert parsed == request == request_from_json(line)
    assert parsed.SerializeToString(deterministic=True) == request.SerializeToString(deterministic=True)


def any_values() -> st.SearchStrategy[AnyValue]:
    scalars = st.one_of(
        st.builds(lambda v: AnyValue(string_value=v), st.text(max_size=8)),
        st.builds(lambda v: AnyValue(bool_value=v), st.booleans()),
        st.builds(lambda v: AnyValue(int_value=v), st.integers(min_value=-(2**63), max_value=2**63 - 1)),
        st.builds(lambda v: AnyValue(double_value=v), st.floats(allow_nan=False, allow_infinity=False)),
        st.builds(lambda v: AnyValue(bytes_value=v), st.binary(max_size=8)),
        st.just(AnyValue()),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.builds(lambda vs: AnyValue(array_value=ArrayValue(values=vs)), st.lists(inner, max_size=3)),
            st.builds(
                lambda kvs: AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=k, value=v) for k, v in kvs])),
                st.lists(st.tuples(st.text(max_size=4), inner), max_size=3),
            ),
        ),
        max_leaves=6,
    )


@settings(max_examples=150, deadline=None)
@given(
    attributes=st.lists(st.tuples(st.text(max_size=6), any_values()), max_size=4),
    start=st.integers(min_value=0, max_value=2**64 - 1),
    kind=st.integers(min_value=0, max_value=5),
    code=st.integers(min_value=0, max_value=2),
    dropped=st.integers(min_value=0, max_value=2**32 - 1),
    flags=st.integers(min_value=0, max_value=2**32 - 1),
    name=st.text(max_size=10),
)
def test_parse_request_matches_request_from_json_on_any_span(
    attributes: list[tuple[str, AnyValue]], start: int, kind: int, code: int, dropped: int, flags: int, name: str
) -> None:
    span = make_span(bytes(range(1, 17)), bytes(range(1, 9)), name=name)
    span.start_time_unix_nano = start
    span.kind = kind  # type: ignore[assignment]
    span.status.code = code  # type: ignore[assignment]
    span.dropped_attributes_count = dropped
    span.flags = flags
    span.attributes.extend(KeyValue(key=key, value=value) for key, value in attributes)
    request = make_request([span])
    line = request_to_json(request)
    with no_fallback():
        parsed = parse_request(line)
    assert parsed == request_from_json(line) == request


def _span_line(**fields: Any) -> str:
    span = {"traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "0102030405060708", **fields}
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]})


def _attribute_line(value: Any) -> str:
    return _span_line(attributes=[{"key": "k", "value": value}])


UNUSUAL_LINES = {
    "snake case keys": json.dumps(
        {"resource_spans": [{"scope_spans": [{"spans": [{"trace_id": "01" * 16, "span_id": "02" * 8}]}]}]}
    ),
    "both spellings of a field": _span_line(startTimeUnixNano="5", start_time_unix_nano="6"),
    "both spellings of a repeated field": json.dumps(
        {"resourceSpans": [{"scopeSpans": [{"spans": []}], "scope_spans": [{"scope": {"name": "s"}}]}]}
    ),
    "enum by name": _span_line(kind="SPAN_KIND_SERVER"),
    "unknown enum name": _span_line(kind="SPAN_KIND_NOPE"),
    "enum number as text": _span_line(kind="2"),
    "unknown enum number": _span_line(kind=99),
    "null field": _span_line(name=None, status=None),
    "null list item": _span_line(attributes=[None]),
    "int64 as a number": _span_line(startTimeUnixNano=5),
    "int64 in exponent form": _span_line(startTimeUnixNano="1e3"),
    "int64 with a plus sign": _span_line(startTimeUnixNano="+7"),
    "int64 with spaces": _span_line(startTimeUnixNano=" 7"),
    "int64 negative into uint64": _span_line(startTimeUnixNano="-1"),
    "int64 out of range": _span_line(startTimeUnixNano=str(2**64)),
    "integral float for uint32": _span_line(droppedAttributesCount=2.0),
    "fractional float for uint32": _span_line(droppedAttributesCount=2.5),
    "bool for an integer": _span_line(droppedAttributesCount=True),
    "string for an integer": _span_line(droppedAttributesCount="3"),
    "number for a string": _span_line(name=5),
    "double as text": _attribute_line({"doubleValue": "1.5"}),
    "NaN double": _attribute_line({"doubleValue": "NaN"}),
    "NaN literal": _attribute_line({"doubleValue": float("nan")}),
    "Infinity double": _attribute_line({"doubleValue": "-Infinity"}),
    "int for a double": _attribute_line({"doubleValue": 3}),
    "urlsafe base64 bytes": _attribute_line({"bytesValue": "-_8"}),
    "standard base64 bytes": _attribute_line({"bytesValue": "+/8="}),
    "two oneof members": _attribute_line({"stringValue": "a", "intValue": "1"}),
    "one oneof member twice": _attribute_line({"stringValue": "a", "string_value": "b"}),
    "unknown fields": _span_line(futureField={"a": [1, 2]}, attributes=[{"key": "k", "value": {}, "x": 1}]),
    "extension name": _span_line(**{"[ext.field]": 1}),
    "lone surrogate": _span_line(name="\ud800"),
    "message as a string": _span_line(status="ab"),
    "list as an object": _span_line(attributes={"key": "k"}),
    "nesting": _attribute_line(json.loads('{"arrayValue": {"values": [' * 20 + "{}" + "]}}" * 20)),
    "deep nesting": _attribute_line(json.loads('{"arrayValue": {"values": [' * 40 + "{}" + "]}}" * 40)),
    "too deep for json_format": _attribute_line(json.loads('{"arrayValue": {"values": [' * 120 + "{}" + "]}}" * 120)),
    "bad hex ID": _span_line(spanId="xyz"),
    "ID not a string": _span_line(spanId=7),
    "not an object": "[1, 2]",
    "invalid JSON": '{"resourceSpans": [',
}


# Valid spellings the fast path handles itself; everything else is request_from_json's to answer.
FAST = {
    "snake case keys",
    "enum by name",
    "unknown enum number",
    "int64 as a number",
    "int for a double",
    "urlsafe base64 bytes",
    "standard base64 bytes",
    "unknown fields",
    "nesting",
}


@pytest.mark.parametrize(("case", "line"), UNUSUAL_LINES.items(), ids=UNUSUAL_LINES.keys())
def test_unusual_lines_get_exactly_what_request_from_json_answers(case: str, line: str) -> None:
    try:
        expected: ExportTraceServiceRequest | str = request_from_json(line)
    except ValueError as exc:
        expected = f"ValueError: {exc}"
    try:
        if case in FAST:
            with no_fallback():
                got: ExportTraceServiceRequest | str = parse_request(line)
        else:
            got = parse_request(line)
    except ValueError as exc:
        got = f"ValueError: {exc}"
    assert got == expected
    if isinstance(expected, ExportTraceServiceRequest):
        assert isinstance(got, ExportTraceServiceRequest)
        assert got.SerializeToString(deterministic=True) == expected.SerializeToString(deterministic=True)


# --- reading files -----------------------------------------------------------------


def test_read_traces_merges_fragments_across_lines_in_order_of_first_appearance(tmp_path: Path) -> None:
    first_id, first = make_trace(spans=4)
    second_id, second = make_trace(spans=2)
    path = write_lines(
        tmp_path / "traces.jsonl",
        make_request(first[:2]),
        "",
        make_request(second, service="other"),
        "   ",
        make_request(first[2:], service="late"),
    )
    traces = read_traces(path)
    assert list(traces.traces) == [first_id, second_id]
    assert (traces.lines, traces.spans, traces.rejected_spans) == (3, 6, 0)
    whole = traces.traces[first_id]
    assert whole.span_count == 4
    assert len(whole.groups) == 2  # two resources: svc and late
    assert whole.root_seen
    assert traces.traces[second_id].span_count == 2


def test_read_traces_counts_spans_with_invalid_ids_as_rejected(tmp_path: Path) -> None:
    _, spans = make_trace(spans=2)
    bad = make_span(bytes(16))
    traces = read_traces(write_lines(tmp_path / "t.jsonl", make_request([*spans, bad])))
    assert (len(traces.traces), traces.spans, traces.rejected_spans) == (1, 2, 1)


def many_lines(count: int) -> list[ExportTraceServiceRequest]:
    """Requests of traces that continue over the next lines, one with a line much longer than the others."""
    requests = []
    carried: list[Span] = []
    for index in range(count):
        _, spans = make_trace(spans=30 if index == count // 2 else 3, attributes={"i": index})
        requests.append(make_request([*carried, *spans[:-1]]))
        carried = spans[-1:]
    requests.append(make_request(carried))
    return requests


@pytest.mark.parametrize("workers", [1, 2])
def test_blocks_and_the_pool_give_the_same_traces_as_one_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    path = write_lines(tmp_path / "t.jsonl", *many_lines(40))
    whole = read_traces(path, workers=1)
    monkeypatch.setattr(read, "BLOCK_BYTES", 700)  # lines are 1-6 kB: blocks of one line, and longer lines
    split = read_traces(path, workers=workers)
    assert list(split.traces) == list(whole.traces)
    assert (split.lines, split.spans) == (whole.lines, whole.spans) == (41, 40 * 3 + 27)
    for trace_id, trace in whole.traces.items():
        other = split.traces[trace_id]
        assert other.groups == trace.groups
        assert (other.span_count, other.start_min, other.end_max) == (trace.span_count, trace.start_min, trace.end_max)


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("block_bytes", [1 << 20, 300])
def test_a_malformed_line_is_reported_with_file_and_line_number(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int, block_bytes: int
) -> None:
    monkeypatch.setattr(read, "BLOCK_BYTES", block_bytes)
    _, spans = make_trace()
    path = write_lines(tmp_path / "bad.jsonl", make_request(spans), "", make_request(spans), "{not json", "also bad")
    with pytest.raises(InputError) as caught:
        read_traces(path, workers=workers)
    assert str(caught.value).startswith(f"{path}:4: malformed OTLP JSON request: invalid JSON: ")


def test_a_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read .*missing.jsonl: No such file or directory"):
        read_traces(tmp_path / "missing.jsonl")


def test_reading_leaves_the_garbage_collector_as_it_was(tmp_path: Path) -> None:
    import gc

    path = write_lines(tmp_path / "t.jsonl", make_request(make_trace()[1]))
    assert gc.isenabled()
    read_traces(path)
    assert gc.isenabled()
    with pytest.raises(InputError):
        read_traces(write_lines(tmp_path / "bad.jsonl", "nope"))
    assert gc.isenabled()


# --- decisions ---------------------------------------------------------------------


def mixed_traces(tmp_path: Path) -> tuple[read.TraceSet, dict[str, list[bytes]]]:
    """2 fast errors, 1 slow error, 1 slow, 3 normal, in that order."""
    kinds: dict[str, list[bytes]] = {"error": [], "slow error": [], "slow": [], "normal": []}
    requests = []
    for kind, count, error, duration in (
        ("error", 2, True, 50),
        ("slow error", 1, True, 900),
        ("slow", 1, False, 900),
        ("normal", 3, False, 50),
    ):
        for _ in range(count):
            trace_id, spans = make_trace(spans=3, error=error, duration_ms=duration)
            kinds[kind].append(trace_id)
            requests.append(make_request(spans))
    return read_traces(write_lines(tmp_path / "mixed.jsonl", *requests)), kinds


def test_kept_by_is_the_first_policy_that_sampled_and_matched_is_each_policys_own_answer(tmp_path: Path) -> None:
    traces, kinds = mixed_traces(tmp_path)
    result = run.simulate(sampling([ERRORS, SLOW]), traces.traces.values(), "a.yaml")
    assert (result.config, result.traces, result.spans) == ("a.yaml", 7, 21)
    assert (result.kept_traces, result.kept_spans, result.dropped_traces) == (4, 12, 0)
    assert result.kept_ids == {*kinds["error"], *kinds["slow error"], *kinds["slow"]}
    errors, slow = result.policies
    assert (errors.name, errors.type, errors.kept_traces, errors.kept_spans) == ("errors", "status_code", 3, 9)
    assert (slow.kept_traces, slow.kept_spans) == (1, 3)
    assert (errors.matched_traces, slow.matched_traces) == (3, 2)
    assert (errors.evaluated_traces, slow.evaluated_traces) == (7, 7)
    assert result.keep_rate == pytest.approx(4 / 7)
    assert result.span_keep_rate == pytest.approx(12 / 21)


def test_policies_after_a_first_match_are_not_evaluated(tmp_path: Path) -> None:
    traces, _ = mixed_traces(tmp_path)
    result = run.simulate(sampling([ERRORS, SLOW], sample_on_first_match=True), traces.traces.values())
    errors, slow = result.policies
    assert result.kept_traces == 4
    assert (errors.evaluated_traces, slow.evaluated_traces) == (7, 4)
    assert slow.matched_traces == 1  # the slow error was kept by errors before slow ran


def test_a_drop_vetoes_and_is_counted(tmp_path: Path) -> None:
    traces, kinds = mixed_traces(tmp_path)
    drop_slow = {"name": "no-slow", "type": "drop", "drop": {"drop_sub_policy": [SLOW]}}
    result = run.simulate(sampling([ERRORS, drop_slow]), traces.traces.values())
    assert result.kept_ids == set(kinds["error"])
    assert result.dropped_traces == 2
    errors, dropped = result.policies  # in config order, though drops run first
    assert (dropped.name, dropped.type, dropped.matched_traces, dropped.evaluated_traces) == ("no-slow", "drop", 2, 7)
    assert (errors.kept_traces, errors.matched_traces, errors.evaluated_traces) == (2, 2, 5)


def test_rate_limits_run_on_the_traces_own_time_which_never_runs_backwards(tmp_path: Path) -> None:
    # Five traces of five spans, listed in this order, starting at these times (ms); the last
    # one started before the one listed just before it.
    starts = [0, 1, 2, 1000, 500]
    ids = [bytes([index + 1]) * 16 for index in range(len(starts))]
    requests = [
        make_request([make_span(trace_id, start_ms=start + i, duration_ms=1) for i in range(5)])
        for trace_id, start in zip(ids, starts, strict=True)
    ]
    traces = read_traces(write_lines(tmp_path / "timed.jsonl", *requests))
    budget = {"name": "budget", "type": "rate_limiting", "rate_limiting": {"spans_per_second": 10}}
    result = run.simulate(sampling([budget]), traces.traces.values())
    # 10 tokens: the first two traces spend them at t=0 and the third finds none; a second
    # later the bucket is full again; the last trace is decided at t=1s too and takes the rest.
    assert result.kept_ids == {ids[0], ids[1], ids[3], ids[4]}


def test_a_policy_that_raises_counts_as_not_sampled_and_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from sampler.policies.latency import LatencyPolicy

    def broken(self: LatencyPolicy, trace: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr(LatencyPolicy, "evaluate", broken)
    traces, kinds = mixed_traces(tmp_path)
    with caplog.at_level(logging.ERROR):
        result = run.simulate(sampling([ERRORS, SLOW]), traces.traces.values())
    assert result.kept_ids == {*kinds["error"], *kinds["slow error"]}
    assert result.policies[1].errors == 7
    assert "policy 'slow' raised on 7 traces (counted as not sampled)" in report.format_report(traces, [result])
    assert "policy 'slow' failed on a trace" in caplog.text


def test_overlap_of_two_configs(tmp_path: Path) -> None:
    traces, _ = mixed_traces(tmp_path)
    errors = run.simulate(sampling([ERRORS]), traces.traces.values())
    slow = run.simulate(sampling([SLOW]), traces.traces.values())
    assert run.overlap(errors, slow) == run.Overlap(only_first=2, only_second=1, both=1, neither=3)
    assert run.overlap(slow, errors) == run.Overlap(only_first=1, only_second=2, both=1, neither=3)


# --- output ------------------------------------------------------------------------


def test_the_table_shows_each_policy_and_the_total(tmp_path: Path) -> None:
    traces, _ = mixed_traces(tmp_path)
    result = run.simulate(sampling([ERRORS, SLOW]), traces.traces.values(), "a.yaml")
    text = report.format_report(traces, [result])
    lines = text.splitlines()
    assert lines[0] == f"input: {traces.path}: 7 requests, 7 traces, 21 spans"
    assert "config: a.yaml" in lines
    assert lines[lines.index("config: a.yaml") + 2].split() == [
        "policy",
        "type",
        "kept",
        "kept",
        "spans",
        "kept",
        "rate",
        "matched",
        "matched",
        "rate",
    ]
    assert "errors  status_code     3           9     42.86%        3        42.86%" in text
    assert "slow    latency         1           3     14.29%        2        28.57%" in text
    assert "total                   4          12     57.14%" in text
    assert "kept 4 of 7 traces (57.14%), 12 of 21 spans (57.14%)" in text


def test_the_comparison_puts_both_configs_side_by_side(tmp_path: Path) -> None:
    traces, _ = mixed_traces(tmp_path)
    first = run.simulate(sampling([ERRORS, SLOW]), traces.traces.values(), "a.yaml")
    second = run.simulate(sampling([SLOW]), traces.traces.values(), "b.yaml")
    text = report.format_report(traces, [first, second])
    assert "A: a.yaml" in text and "B: b.yaml" in text
    assert "errors       3  42.86%          3       -                  -" in text
    assert "slow         1  14.29%          2       2  28.57%          2" in text
    assert "total        4  57.14%                  2  28.57%" in text
    assert "spans       12  57.14%                  6  28.57%" in text
    assert "traces kept by A only: 2, by B only: 0, by both: 2, by neither: 3" in text


def test_the_json_report_has_the_same_figures(tmp_path: Path) -> None:
    traces, _ = mixed_traces(tmp_path)
    first = run.simulate(sampling([ERRORS, SLOW]), traces.traces.values(), "a.yaml")
    second = run.simulate(sampling([SLOW]), traces.traces.values(), "b.yaml")
    document = json.loads(json.dumps(report.report_dict(traces, [first, second])))
    assert document["input"] == {"path": traces.path, "requests": 7, "traces": 7, "spans": 21, "rejected_spans": 0}
    a, b = document["results"]
    assert (a["config"], a["kept_traces"], a["kept_spans"], a["keep_rate"]) == ("a.yaml", 4, 12, pytest.approx(4 / 7))
    assert a["policies"][1] == {
        "name": "slow",
        "type": "latency",
        "kept_traces": 1,
        "kept_spans": 3,
        "matched_traces": 2,
        "evaluated_traces": 7,
        "errors": 0,
    }
    assert b["kept_traces"] == 2 and b["notes"] == []
    assert document["comparison"] == {"only_first": 2, "only_second": 0, "both": 2, "neither": 3}
    assert "comparison" not in report.report_dict(traces, [first])


def test_what_the_daemon_decides_on_the_way_in_is_noted(tmp_path: Path) -> None:
    traces, _ = mixed_traces(tmp_path)
    sizes = sorted(trace.nbytes for trace in traces.traces.values())
    capped = run.simulate(sampling([ERRORS], maximum_trace_size_bytes=sizes[3]), traces.traces.values())
    assert capped.notes == [
        f"3 traces are larger than maximum_trace_size_bytes ({sizes[3]}): "
        "the daemon drops those before any policy runs; here they were evaluated"
    ]
    assert f"note: 3 traces are larger than maximum_trace_size_bytes ({sizes[3]})" in report.format_report(
        traces, [capped]
    )
    ingest = run.simulate(sampling([ERRORS], sampling_strategy="span-ingest"), traces.traces.values())
    assert ingest.notes == [
        "sampling_strategy span-ingest decides traces as their spans arrive; here each trace was decided whole"
    ]
    assert ingest.kept_traces == capped.kept_traces == 3
    assert run.simulate(sampling([ERRORS]), traces.traces.values()).notes == []


def test_the_estimate_from_adjusted_counts_sits_beside_the_true_count(tmp_path: Path) -> None:
    """Kept for certain counts once; kept at 10 % counts ten times. Randomness spread evenly over
    the trace IDs leaves the estimate's own error, which a wrong adjusted count would not hide."""
    requests = []
    for index in range(1000):
        randomness = int((index + 0.5) * (1 << 56) / 1000)
        trace_id = b"\x01" + bytes(8) + randomness.to_bytes(7, "big")
        _, spans = make_trace(spans=2, error=index % 20 == 0)
        for span in spans:
            span.trace_id = trace_id
        requests.append(make_request(spans))
    traces = read_traces(write_lines(tmp_path / "even.jsonl", *requests))
    ten_percent = {"name": "ten", "type": "probabilistic", "probabilistic": {"sampling_percentage": 10}}
    result = run.simulate(sampling([ERRORS, ten_percent]), traces.traces.values(), "even.yaml")
    assert result.spans == 2000
    assert abs(result.estimated_spans - 2000) <= 2 * 10 * 2  # within a trace or two at 10 %
    assert 0 < result.estimate_standard_error < 0.2 * 2000
    certain = run.simulate(sampling([ERRORS]), traces.traces.values(), "errors.yaml")
    assert certain.estimated_spans == certain.kept_spans == 100 and certain.estimate_standard_error == 0
    text = report.format_report(traces, [result])
    assert f"spans estimated from the kept spans' adjusted counts: {result.estimated_spans:.0f} ±" in text
    assert report.report_dict(traces, [result])["results"][0]["estimated_spans"] == result.estimated_spans


def test_log_lines_of_the_file_exporter_are_skipped(tmp_path: Path) -> None:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    logs = ExportLogsServiceRequest()
    logs.resource_logs.add().scope_logs.add().log_records.add(trace_id=b"\x01" * 16).body.string_value = "x"
    _, spans = make_trace(spans=2)
    traces = read_traces(
        write_lines(tmp_path / "both.jsonl", otlp_json.logs_request_to_json(logs), make_request(spans))
    )
    assert (len(traces.traces), traces.spans) == (1, 2)
