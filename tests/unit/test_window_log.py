"""The window's write-ahead log (tail_sampling.storage): its records, appending, settling, freeing
segments, the cap, and reading back what a crash left. Real files in a temporary directory."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from sampler.config.tail_sampling import WindowStorageConfig
from sampler.receive.split_logs import LogSplitter
from sampler.spans.trace import DecodedBatch, TraceSpans, add_positions
from sampler.storage.format import RECORD_HEADER, SEGMENT_HEADER
from sampler.telemetry.metrics import Metrics
from sampler.window import fragments
from sampler.window.log import StorageFull, WindowLog, unpack
from tests.support import make_request, make_span, make_trace
from tests.unit.helpers import FakeClock, split

# --- the records -------------------------------------------------------------------------


def same(a: TraceSpans, b: TraceSpans) -> bool:
    fields = ("trace_id", "span_count", "nbytes", "start_min", "end_max", "root_seen", "error_seen")
    fields += ("log_count", "log_nbytes")

    def held(groups: dict[Any, bytearray] | None) -> dict[Any, bytes]:
        return {key: bytes(framed) for key, framed in (groups or {}).items()}

    return (
        all(getattr(a, name) == getattr(b, name) for name in fields)
        and held(a.groups) == held(b.groups)
        and held(a.logs) == held(b.logs)
    )


def request_fragments(traces: int, services: int) -> list[TraceSpans]:
    spans = []
    for index in range(traces):
        _, trace = make_trace(spans=1 + index % 4, error=index % 3 == 0, root=index % 2 == 0)
        spans.append(trace)
    requests = [make_request([s for t in spans[i::services] for s in t], service=f"svc-{i}") for i in range(services)]
    request = requests[0]
    for other in requests[1:]:
        request.resource_spans.extend(other.resource_spans)
    return list(split(request).values())


@settings(max_examples=30, deadline=None)
@given(traces=st.integers(min_value=1, max_value=30), services=st.integers(min_value=1, max_value=4))
def test_property_a_record_decodes_to_the_fragments_it_was_made_of(traces, services):
    pieces = request_fragments(traces, services)
    payload = fragments.encode(pieces, 1_700_000_000_123_456_789)
    arrival, decoded = fragments.decode(payload)
    assert arrival == 1_700_000_000_123_456_789
    assert len(decoded) == len(pieces)
    assert all(same(a, b) for a, b in zip(pieces, decoded, strict=True))


def with_logs(pieces: list[TraceSpans]) -> list[TraceSpans]:
    """The fragments, every other one joined by log records naming its trace (and one of log records only)."""
    request = ExportLogsServiceRequest()
    scope_logs = request.resource_logs.add().scope_logs.add()
    for fragment in [*pieces[::2], TraceSpans(b"\x07" * 16)]:
        for body in ("one", "two"):
            record = scope_logs.log_records.add(trace_id=fragment.trace_id)
            record.body.string_value = body
    logs = LogSplitter().split(request).traces
    for fragment in pieces:
        if fragment.trace_id in logs:
            fragment.absorb(logs.pop(fragment.trace_id))
    return [*pieces, *logs.values()]


@settings(max_examples=20, deadline=None)
@given(traces=st.integers(min_value=1, max_value=10))
def test_property_log_records_naming_a_trace_come_back_with_it(traces):
    pieces = with_logs(request_fragments(traces, 2))
    arrival, decoded = fragments.decode(fragments.encode(pieces, 5))
    assert any(fragment.logs for fragment in decoded)
    assert all(same(a, b) for a, b in zip(pieces, decoded, strict=True))


@given(cut=st.integers(min_value=1, max_value=200))
def test_property_a_cut_record_is_refused_never_misread(cut):
    payload = fragments.encode(request_fragments(3, 2), 1)
    with pytest.raises(fragments.DamagedRecordError):
        fragments.decode(payload[: max(0, len(payload) - cut)])


# --- the log -------------------------------------------------------------------------------


class Harness:
    def __init__(self, directory: Path, segment_bytes: int | None = None, **storage: object) -> None:
        self.metrics = Metrics()
        self.clock = FakeClock(5000.0)
        self.wall = 1_800_000_000.0
        config = WindowStorageConfig(directory=str(directory), **storage)
        self.log = WindowLog(config, self.metrics, self.clock, lambda: self.wall, segment_bytes)

    def value(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0

    @property
    def segments(self) -> list[str]:
        return sorted(path.name for path in self.log.directory.glob("*.seg"))

    async def recovered(self) -> list[tuple[float, DecodedBatch]]:
        return [(record.arrived, record.batch) for record in [r async for r in self.log.recover()]]


def batch_of(*traces: int) -> DecodedBatch:
    batch = DecodedBatch()
    for spans in traces:
        _, trace = make_trace(spans=spans)
        for trace_id, fragment in split(make_request(trace)).items():
            batch.traces[trace_id] = fragment
            batch.span_count += fragment.span_count
    return batch


def positions(batch: DecodedBatch) -> list[int]:
    found: list[int] = []
    for fragment in batch.traces.values():
        assert fragment.log_positions is not None
        add_positions(found, fragment.log_positions)
    return found


def where(batch: DecodedBatch) -> list[tuple[int, int, int]]:
    """(segment, record offset, index) of each fragment of the batch."""
    return [unpack(position) for position in positions(batch)]


async def test_an_appended_request_gets_positions_and_its_segment_goes_once_all_is_settled(tmp_path):
    harness = Harness(tmp_path)
    log = harness.log
    await log.open()
    first, second = batch_of(3, 2), batch_of(4)
    await log.append(first)
    await log.append(second)
    assert [index for _, _, index in where(first)] == [0, 1]
    assert where(first)[0][:2] != where(second)[0][:2]  # two records
    assert harness.value("tail_sampler_window_storage_bytes") == sum(
        (log.directory / name).stat().st_size for name in harness.segments
    )
    log.settle(positions(first) + positions(second))
    await log.close()
    assert harness.segments == []  # everything settled: freed at close
    assert harness.value("tail_sampler_window_storage_bytes") == 0


async def test_a_full_segment_is_deleted_as_soon_as_its_fragments_are_settled(tmp_path):
    harness = Harness(tmp_path, segment_bytes=SEGMENT_HEADER.size + 1)  # one record per segment
    log = harness.log
    await log.open()
    batches = [batch_of(2) for _ in range(3)]
    for batch in batches:
        await log.append(batch)
    assert len(harness.segments) == 3
    log.settle(positions(batches[0]))
    log.settle(positions(batches[2]))  # the segment being written stays until close
    await asyncio.sleep(0.05)
    await _settled(harness, 2)
    await log.close()
    assert len(harness.segments) == 1  # batches[1] was never settled: left for the next start


async def _settled(harness: Harness, segments: int) -> None:
    for _ in range(200):
        if len(harness.segments) == segments:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"expected {segments} segments, found {harness.segments}")


async def test_after_a_crash_only_unsettled_fragments_come_back_with_their_arrival_time(tmp_path):
    live = Harness(tmp_path / "live")
    await live.log.open()
    early, late = batch_of(2, 3, 1), batch_of(5)
    await live.log.append(early)
    live.wall += 7.5
    await live.log.append(late)
    settled = positions(early)[1]
    live.log.settle([settled])
    shutil.copytree(tmp_path / "live", tmp_path / "crashed")  # kill -9: the files as they are

    restarted = Harness(tmp_path / "crashed")
    restarted.wall = live.wall + 2.0  # the daemon was down for 2 s
    await restarted.log.open()
    records = await restarted.recovered()
    assert [list(batch.traces) for _, batch in records] == [
        [tid for tid in early.traces if early.traces[tid].log_positions != settled],
        list(late.traces),
    ]
    (early_at, first), (late_at, _) = records
    assert early_at == pytest.approx(restarted.clock.now - 9.5)
    assert late_at == pytest.approx(restarted.clock.now - 2.0)
    for trace_id, fragment in first.traces.items():
        assert same(fragment, early.traces[trace_id])
        assert fragment.log_positions == early.traces[trace_id].log_positions  # settled like any other
    await restarted.log.close()
    await live.log.close()


async def test_the_cap_refuses_with_a_reason_until_a_segment_is_freed(tmp_path):
    record = RECORD_HEADER.size + 600
    harness = Harness(tmp_path, segment_bytes=SEGMENT_HEADER.size + 1, max_size_mib=(3 * record) / 2**20)
    log = harness.log
    await log.open()
    appended = []
    with pytest.raises(StorageFull, match="the window's storage is full") as refused:
        for _ in range(10):
            batch = batch_of(2)
            await log.append(batch)
            appended.append(batch)
    assert refused.value.reason == "storage_full"
    assert 1 <= len(appended) < 10
    log.settle(positions(appended[0]))
    assert await log.wait_for_room(log.record_size(batch_of(2)), timeout=5)
    await log.append(batch_of(2))
    await log.close()


@pytest.mark.parametrize("fsync", ["always", "interval", "never"])
async def test_every_fsync_policy_appends_and_reads_back(tmp_path, fsync):
    live = Harness(tmp_path / "live", fsync=fsync, fsync_interval="10ms")
    await live.log.open()
    sent = [batch_of(2) for _ in range(5)]
    started = time.monotonic()
    await asyncio.gather(*(live.log.append(batch) for batch in sent))  # one sync serves them all with always
    assert time.monotonic() - started < 10
    shutil.copytree(tmp_path / "live", tmp_path / "crashed")
    restarted = Harness(tmp_path / "crashed")
    await restarted.log.open()
    records = await restarted.recovered()
    assert [list(batch.traces) for _, batch in records] == [list(batch.traces) for batch in sent]
    await restarted.log.close()
    await live.log.close()


async def test_a_damaged_record_is_counted_and_the_rest_recovered(tmp_path):
    live = Harness(tmp_path)
    await live.log.open()
    batches = [batch_of(3) for _ in range(3)]
    for batch in batches:
        await live.log.append(batch)
    await live.log.close()
    (name,) = live.segments
    path = live.log.directory / name
    data = bytearray(path.read_bytes())
    _, offset, _ = where(batches[1])[0]
    data[offset + RECORD_HEADER.size + 40] ^= 0xFF
    path.write_bytes(bytes(data))

    restarted = Harness(tmp_path)
    await restarted.log.open()
    records = await restarted.recovered()
    assert [list(batch.traces) for _, batch in records] == [list(batches[0].traces), list(batches[2].traces)]
    assert restarted.value("tail_sampler_storage_corrupt_records_total", store="window") == 1
    await restarted.log.close()


async def test_a_second_daemon_on_the_same_directory_is_refused(tmp_path):
    first = Harness(tmp_path)
    await first.log.open()
    with pytest.raises(OSError, match="in use by another process"):
        await Harness(tmp_path).log.open()
    await first.log.close()


async def test_a_late_fragment_joins_its_trace_and_both_positions_travel_with_it(tmp_path):
    harness = Harness(tmp_path)
    await harness.log.open()
    trace_id, spans = make_trace(spans=2)
    first = DecodedBatch(split(make_request(spans[:1])))
    second = DecodedBatch(split(make_request(spans[1:] + [make_span(trace_id)])))
    await harness.log.append(first)
    await harness.log.append(second)
    expected = tuple(positions(first) + positions(second))
    whole = first.traces[trace_id]
    whole.absorb(second.traces[trace_id])
    assert whole.log_positions == expected
    await harness.log.close()


async def test_a_start_that_ends_before_the_replay_keeps_the_log_for_the_next(tmp_path):
    first = Harness(tmp_path)
    await first.log.open()
    batch = batch_of(2, 3)
    await first.log.append(batch)
    await first.log.close()  # nothing settled: all of it stays

    failed = Harness(tmp_path)  # opened, then the start fails before recover() reads it back
    await failed.log.open()
    await failed.log.close()
    assert len(failed.segments) == 1

    third = Harness(tmp_path)
    await third.log.open()
    records = await third.recovered()
    assert [list(recovered.traces) for _, recovered in records] == [list(batch.traces)]
    await third.log.close()
