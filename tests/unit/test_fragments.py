"""Trace fragments between workers: the owner of a trace ID, and the bytes fragments travel in."""

from __future__ import annotations

import os
import random

import pytest

from sampler.spans.fragments import FragmentDecoder, FragmentError, encode_fragments, owner_of
from sampler.spans.trace import TraceSpans
from tests.support import make_request, make_trace
from tests.unit.helpers import split


def _fragments() -> list[TraceSpans]:
    first = make_trace(spans=4, error=True)[1]
    second = make_trace(spans=3, root=False)[1]
    request = make_request(first[:2] + second, service="a")
    other = make_request(first[2:], service="b", scope="other")
    traces = split(request)
    for trace_id, fragment in split(other).items():
        traces[trace_id].absorb(fragment)
    return list(traces.values())


def _same(a: TraceSpans, b: TraceSpans) -> bool:
    return (
        a.trace_id == b.trace_id
        and {key: bytes(spans) for key, spans in a.groups.items()}
        == {key: bytes(spans) for key, spans in b.groups.items()}
        and (a.span_count, a.nbytes, a.start_min, a.end_max, a.root_seen, a.error_seen)
        == (b.span_count, b.nbytes, b.start_min, b.end_max, b.root_seen, b.error_seen)
    )


def test_fragments_come_back_as_they_were_sent() -> None:
    sent = _fragments()
    assert len(sent) == 2 and any(len(trace.groups) == 2 for trace in sent)
    received = FragmentDecoder().decode(encode_fragments(sent))
    assert len(received) == len(sent)
    assert all(_same(a, b) for a, b in zip(sent, received, strict=True))
    assert {trace.error_seen for trace in received} == {True, False}
    assert {trace.root_seen for trace in received} == {True, False}


def test_the_prefixes_of_a_request_are_shared_across_traces_and_messages() -> None:
    decoder = FragmentDecoder()
    sent = _fragments()
    first = decoder.decode(encode_fragments(sent))
    again = decoder.decode(encode_fragments(sent))
    keys = [key for trace in first + again for key in trace.groups]
    by_value = {}
    for key in keys:
        assert by_value.setdefault(key, key) is key  # one object per distinct (resource, scope)


def test_nothing_is_encoded_as_an_empty_message() -> None:
    assert FragmentDecoder().decode(encode_fragments([])) == []


@pytest.mark.parametrize("cut", [1, 10, 50, -1])
def test_truncated_or_padded_bytes_are_refused(cut: int) -> None:
    data = encode_fragments(_fragments())
    with pytest.raises(FragmentError):
        FragmentDecoder().decode(data[:cut] if cut > 0 else data + b"\x00")


def test_the_owner_is_the_same_in_every_process_and_spread_evenly() -> None:
    # crc32, not Python's hash(), which is salted per process.
    # CRC-32 of these IDs: 223009813 and 3625139896.
    assert owner_of(bytes.fromhex("0af7651916cd43dd8448eb211c80319c"), 2) == 1
    assert owner_of(bytes.fromhex("5b8efff798038103d269b633813fc60c"), 2) == 0
    assert owner_of(bytes.fromhex("0af7651916cd43dd8448eb211c80319c"), 3) == 223009813 % 3
    assert owner_of(bytes(16), 1) == 0
    rng = random.Random(3)
    for workers in (2, 3, 8):
        counts = [0] * workers
        for _ in range(20_000):
            counts[owner_of(rng.randbytes(16), workers)] += 1
        assert all(abs(count - 20_000 / workers) < 0.05 * 20_000 / workers for count in counts), counts
    assert {owner_of(os.urandom(16), 4) for _ in range(200)} == {0, 1, 2, 3}


def test_log_records_travel_with_their_trace() -> None:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    from sampler.receive.split_logs import LogSplitter

    trace = _fragments()[0]
    request = ExportLogsServiceRequest()
    scope_logs = request.resource_logs.add().scope_logs.add()
    for body in ("one", "two"):
        record = scope_logs.log_records.add(trace_id=trace.trace_id)
        record.body.string_value = body
    logs = LogSplitter().split(request).traces[trace.trace_id]
    trace.absorb(logs)
    only_logs = LogSplitter().split(request).traces[trace.trace_id]  # a fragment of log records alone
    received = FragmentDecoder().decode(encode_fragments([trace, only_logs]))
    for sent, got in zip([trace, only_logs], received, strict=True):
        assert _same(sent, got)
        assert (got.log_count, got.log_nbytes) == (sent.log_count, sent.log_nbytes) and got.log_count == 2
        assert {k: bytes(v) for k, v in (got.logs or {}).items()} == {k: bytes(v) for k, v in (sent.logs or {}).items()}
    assert received[1].span_count == 0 and not received[1].groups
