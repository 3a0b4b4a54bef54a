"""The persistent exporter queue's segment store: real files in a temporary directory."""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sampler.config.exporters import QueueStorageConfig
from sampler.forward.batcher import Payload
from sampler.forward.disk_queue.format import ACKED
from sampler.forward.disk_queue.queue import DiskQueue, DiskRecord
from sampler.storage.format import MARK_ENTRY, RECORD_HEADER, RECORD_MAGIC, SEGMENT_HEADER, mark_entry, marks_name
from sampler.telemetry.metrics import Metrics

NAME = "otlp/backend"


class Harness:
    """A queue with its own metrics, recording what it drops."""

    def __init__(self, directory: Path, segment_bytes: int | None = None, **storage: object) -> None:
        self.metrics = Metrics()
        self.drops: list[tuple[int, str]] = []
        config = QueueStorageConfig(directory=str(directory), **storage)
        self.queue = DiskQueue(
            NAME,
            config,
            self.metrics,
            lambda spans, reason, why, signal: self.drops.append((spans, reason)),
            segment_bytes,
        )

    @property
    def files(self) -> Path:
        return self.queue.directory

    def value(self, metric: str, **labels: str) -> float:
        found = self.metrics.registry.get_sample_value(metric, {"exporter": NAME, **labels})
        return found or 0.0

    async def take(self, count: int) -> list[DiskRecord]:
        records = []
        for _ in range(count):
            records.append(await asyncio.wait_for(self.queue.get(), 5))
        return records


def payload(index: int, size: int = 100) -> Payload:
    body = f"payload-{index:06d}-".encode()
    return Payload((body * (size // len(body) + 1))[:size], index % 7 + 1)


def segments(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.glob("*.seg"))


async def test_records_come_back_in_order_and_acknowledged_segments_are_deleted(tmp_path):
    harness = Harness(tmp_path)
    queue = harness.queue
    await queue.open()
    sent = [payload(index) for index in range(5)]
    for item in sent:
        queue.put(item)
    records = await harness.take(5)
    assert [record.payload for record in records] == sent
    assert not any(record.redelivery for record in records)
    assert harness.value("tail_sampler_exporter_disk_queue_records") == 5
    assert harness.value("tail_sampler_exporter_disk_queue_spans") == sum(item.span_count for item in sent)
    for record in records:
        queue.ack(record)
    await asyncio.wait_for(queue.join(), 5)
    assert harness.value("tail_sampler_exporter_disk_queue_records") == 0
    await queue.close()
    # The segment being written is deleted at close once everything in it is acknowledged.
    assert segments(harness.files) == []
    assert not list(harness.files.glob("*.ack"))
    assert harness.drops == []


async def test_segments_rotate_at_their_size_and_are_freed_one_by_one(tmp_path):
    record_bytes = RECORD_HEADER.size + 1000
    harness = Harness(tmp_path, segment_bytes=SEGMENT_HEADER.size + 3 * record_bytes)
    queue = harness.queue
    await queue.open()
    sent = [payload(index, 1000) for index in range(10)]
    for item in sent:
        queue.put(item)
    await queue.flush()
    assert len(segments(harness.files)) == 4  # 3 + 3 + 3 + 1 records
    on_disk = harness.value("tail_sampler_exporter_disk_queue_bytes")
    assert on_disk == sum((harness.files / name).stat().st_size for name in segments(harness.files))
    records = await harness.take(10)
    assert [record.payload for record in records] == sent
    for record in records[:3]:
        queue.ack(record)
    await queue.flush()
    assert len(segments(harness.files)) == 3
    assert harness.value("tail_sampler_exporter_disk_queue_bytes") == on_disk - SEGMENT_HEADER.size - 3 * record_bytes
    for record in records[3:]:
        queue.ack(record)
    await queue.flush()
    assert len(segments(harness.files)) == 1  # the segment being written stays until close
    await queue.close()
    assert segments(harness.files) == []


async def test_the_size_cap_drops_with_a_reason_until_a_segment_is_freed(tmp_path):
    record_bytes = RECORD_HEADER.size + 1000
    # Room for 6 records in all, in segments of 2.
    cap_mib = (6 * record_bytes + 3 * SEGMENT_HEADER.size) / (1024 * 1024)
    harness = Harness(tmp_path, segment_bytes=SEGMENT_HEADER.size + 2 * record_bytes, max_size_mib=cap_mib)
    queue = harness.queue
    await queue.open()
    for index in range(8):
        queue.put(payload(index, 1000))
        await queue.flush()
    refused = [payload(index, 1000).span_count for index in (6, 7)]
    assert harness.drops == [(spans, "disk_queue_full") for spans in refused]
    assert queue.full()
    records = await harness.take(2)
    for record in records:
        queue.ack(record)
    await queue.flush()
    assert not queue.full()
    queue.put(payload(99, 1000))
    await queue.flush()
    assert len(harness.drops) == 2
    assert harness.value("tail_sampler_exporter_disk_queue_records") == 5
    await queue.close()


async def test_unacknowledged_records_are_sent_first_after_a_restart(tmp_path):
    first = Harness(tmp_path)
    await first.queue.open()
    sent = [payload(index) for index in range(6)]
    for item in sent:
        first.queue.put(item)
    records = await first.take(2)
    first.queue.ack(records[0])
    await first.queue.close()

    second = Harness(tmp_path)
    await second.queue.open()
    assert second.value("tail_sampler_exporter_disk_recovered_spans_total") == sum(p.span_count for p in sent[1:])
    second.queue.put(payload(100))
    again = await second.take(6)
    assert [record.payload for record in again] == sent[1:] + [payload(100)]
    await second.queue.close()


async def test_log_payloads_come_back_as_logs_across_a_restart(tmp_path):
    first = Harness(tmp_path)
    await first.queue.open()
    logs = Payload(b"log request", 3, "logs")
    first.queue.put(logs)
    first.queue.put(payload(1))
    assert first.value("tail_sampler_exporter_disk_queue_spans") == payload(1).span_count  # records are not spans
    await first.queue.close()

    second = Harness(tmp_path)
    await second.queue.open()
    assert second.value("tail_sampler_exporter_disk_recovered_spans_total") == payload(1).span_count
    again = await second.take(2)
    assert [record.payload for record in again] == [logs, payload(1)]
    await second.queue.close()


async def test_after_a_crash_records_that_were_sending_count_as_redelivered(tmp_path):
    live = Harness(tmp_path / "live")
    await live.queue.open()
    sent = [payload(index) for index in range(4)]
    for item in sent:
        live.queue.put(item)
    records = await live.take(3)
    await live.queue.mark_sending(records[0])
    await live.queue.mark_sending(records[1])
    live.queue.ack(records[0])
    await live.queue.flush()
    # A crash: the files as they are now, without close() tidying up or unlocking.
    shutil.copytree(tmp_path / "live", tmp_path / "crashed")

    restarted = Harness(tmp_path / "crashed")
    await restarted.queue.open()
    recovered = await restarted.take(3)
    assert [record.payload for record in recovered] == sent[1:]
    assert [record.redelivery for record in recovered] == [True, False, False]
    for record in recovered:
        await restarted.queue.mark_sending(record)
    assert restarted.value("tail_sampler_exporter_disk_redelivered_spans_total") == sent[1].span_count
    await restarted.queue.close()
    await live.queue.close()


async def test_a_record_torn_by_a_crash_mid_write_is_counted_and_skipped(tmp_path):
    first = Harness(tmp_path)
    await first.queue.open()
    sent = [payload(index) for index in range(3)]
    for item in sent:
        first.queue.put(item)
    await first.queue.close()
    (name,) = segments(first.files)
    torn = RECORD_HEADER.pack(RECORD_MAGIC, 500, 3, 0) + b"half of a payload"
    with (first.files / name).open("ab") as handle:
        handle.write(torn)

    second = Harness(tmp_path)
    await second.queue.open()
    assert second.value("tail_sampler_exporter_disk_corrupt_records_total") == 1
    assert [record.payload for record in await second.take(3)] == sent
    second.queue.put(payload(7))
    assert (await second.take(1))[0].payload == payload(7)
    await second.queue.close()


async def test_a_payload_failing_its_checksum_is_skipped_and_the_rest_delivered(tmp_path):
    first = Harness(tmp_path)
    await first.queue.open()
    sent = [payload(index) for index in range(3)]
    for item in sent:
        first.queue.put(item)
    await first.queue.close()
    (name,) = segments(first.files)
    path = first.files / name
    data = bytearray(path.read_bytes())
    middle = SEGMENT_HEADER.size + (RECORD_HEADER.size + 100) + RECORD_HEADER.size + 50
    data[middle] ^= 0xFF
    path.write_bytes(bytes(data))

    second = Harness(tmp_path)
    await second.queue.open()
    records = await second.take(2)
    assert [record.payload for record in records] == [sent[0], sent[2]]
    assert second.value("tail_sampler_exporter_disk_corrupt_records_total") == 1
    for record in records:
        second.queue.ack(record)
    await asyncio.wait_for(second.queue.join(), 5)
    await second.queue.close()
    assert segments(second.files) == []


async def test_a_garbled_header_is_skipped_by_resynchronising_on_the_next_record(tmp_path):
    first = Harness(tmp_path)
    await first.queue.open()
    sent = [payload(index) for index in range(4)]
    for item in sent:
        first.queue.put(item)
    await first.queue.close()
    (name,) = segments(first.files)
    path = first.files / name
    data = bytearray(path.read_bytes())
    second_record = SEGMENT_HEADER.size + RECORD_HEADER.size + 100
    data[second_record : second_record + 8] = b"\xff" * 8  # magic and length destroyed
    path.write_bytes(bytes(data))

    second = Harness(tmp_path)
    await second.queue.open()
    assert second.value("tail_sampler_exporter_disk_corrupt_records_total") == 1
    assert [record.payload for record in await second.take(3)] == [sent[0], sent[2], sent[3]]
    await second.queue.close()


async def test_a_segment_of_another_format_version_is_moved_aside_not_fatal(tmp_path):
    first = Harness(tmp_path)
    await first.queue.open()
    first.queue.put(payload(1))
    await first.queue.close()
    (name,) = segments(first.files)
    path = first.files / name
    data = bytearray(path.read_bytes())
    data[4:8] = (99).to_bytes(4, "little")
    path.write_bytes(bytes(data))

    second = Harness(tmp_path)
    await second.queue.open()
    assert second.value("tail_sampler_exporter_disk_corrupt_records_total") == 1
    assert (second.files / (name + ".unreadable")).exists()
    second.queue.put(payload(2))
    (record,) = await second.take(1)
    assert record.payload == payload(2)
    second.queue.ack(record)
    await second.queue.close()
    # The new segment was freed at close; the unreadable one is left for a person to look at.
    assert segments(second.files) == []
    assert (second.files / (name + ".unreadable")).exists()


async def test_a_torn_ack_entry_is_ignored_and_later_entries_stay_aligned(tmp_path):
    live = Harness(tmp_path / "live")
    await live.queue.open()
    for index in range(3):
        live.queue.put(payload(index))
    records = await live.take(3)
    live.queue.ack(records[0])
    await live.queue.flush()
    shutil.copytree(tmp_path / "live", tmp_path / "crashed")
    await live.queue.close()
    crashed = tmp_path / "crashed" / live.files.name
    (seg,) = segments(crashed)
    ack = crashed / marks_name(int(seg.split(".")[0]))
    with ack.open("ab") as handle:
        handle.write(mark_entry(records[1].offset, ACKED)[:9])  # torn mid-entry

    restarted = Harness(tmp_path / "crashed")
    await restarted.queue.open()
    assert ack.stat().st_size % MARK_ENTRY.size == 0
    again = await restarted.take(2)
    assert [record.payload for record in again] == [payload(1), payload(2)]
    restarted.queue.ack(again[0])
    await restarted.queue.flush()
    shutil.copytree(tmp_path / "crashed", tmp_path / "crashed-again")
    await restarted.queue.close()

    third = Harness(tmp_path / "crashed-again")
    await third.queue.open()
    assert [record.payload for record in await third.take(1)] == [payload(2)]
    await third.queue.close()


async def test_a_second_process_on_the_same_directory_is_refused(tmp_path):
    first = Harness(tmp_path)
    await first.queue.open()
    second = Harness(tmp_path)
    with pytest.raises(OSError, match="in use by another process"):
        await second.queue.open()
    await second.queue.close()
    await first.queue.close()
    third = Harness(tmp_path)
    await third.queue.open()  # free again once the first one closed
    await third.queue.close()


async def test_a_failed_write_is_dropped_with_its_reason_and_leaves_the_file_whole(tmp_path, monkeypatch):
    harness = Harness(tmp_path)
    queue = harness.queue
    await queue.open()
    queue.put(payload(1))
    await queue.flush()
    real_writev = os.writev

    def full_disk(fd: int, parts: list[bytes]) -> int:
        real_writev(fd, [parts[0][:5]])  # a few bytes land, then the device is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "writev", full_disk)
    queue.put(payload(2))
    await queue.flush()
    monkeypatch.setattr(os, "writev", real_writev)
    assert harness.drops == [(payload(2).span_count, "disk_queue_full")]
    assert harness.value("tail_sampler_exporter_disk_io_errors_total", operation="write") == 1
    queue.put(payload(3))
    assert [record.payload for record in await harness.take(2)] == [payload(1), payload(3)]
    await queue.close()

    reopened = Harness(tmp_path)
    await reopened.queue.open()
    assert reopened.value("tail_sampler_exporter_disk_corrupt_records_total") == 0
    assert [record.payload for record in await reopened.take(2)] == [payload(1), payload(3)]
    await reopened.queue.close()


@pytest.mark.parametrize("fsync", ["always", "interval", "never"])
async def test_every_fsync_policy_writes_and_reads_back(tmp_path, fsync):
    harness = Harness(tmp_path, fsync=fsync, fsync_interval="10ms")
    await harness.queue.open()
    for index in range(20):
        harness.queue.put(payload(index))
    records = await harness.take(20)
    assert [record.payload for record in records] == [payload(index) for index in range(20)]
    await harness.queue.close()


# --- property: a crash at any point loses nothing that was not acknowledged ---------


operations = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(min_value=0, max_value=3000)),
        st.tuples(st.just("take"), st.integers(min_value=1, max_value=3)),
        st.tuples(st.just("ack"), st.integers(min_value=0, max_value=10)),
        st.tuples(st.just("restart"), st.booleans()),
    ),
    max_size=40,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=operations)
def test_property_every_unacknowledged_record_survives_crashes_and_restarts(steps):
    asyncio.run(_run_steps(steps))


async def _run_steps(steps: list[tuple[str, object]]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch)
        generation = 0
        harness = Harness(base / "0", segment_bytes=4096)
        await harness.queue.open()
        expected: list[Payload] = []  # put, not yet acknowledged, in order
        taken: list[DiskRecord] = []
        serial = 0
        for step, argument in steps:
            queue = harness.queue
            if step == "put":
                item = Payload(serial.to_bytes(4, "little") * (int(argument) // 4 + 1), serial % 5 + 1)
                serial += 1
                queue.put(item)
                expected.append(item)
            elif step == "take":
                for _ in range(int(argument)):
                    if queue.records - len(taken) <= 0:
                        break
                    record = await asyncio.wait_for(queue.get(), 5)
                    await queue.mark_sending(record)
                    taken.append(record)
            elif step == "ack" and taken:
                record = taken.pop(int(argument) % len(taken))
                queue.ack(record)
                expected.remove(record.payload)
            elif step == "restart":
                crashed = bool(argument)
                await queue.flush()
                generation += 1
                if crashed:
                    shutil.copytree(base / str(generation - 1), base / str(generation))
                    await queue.close()
                else:
                    await queue.close()
                    shutil.copytree(base / str(generation - 1), base / str(generation))
                harness = Harness(base / str(generation), segment_bytes=4096)
                await harness.queue.open()
                sending = {record.payload for record in taken}
                recovered = []
                while harness.queue.records - len(recovered) > 0:
                    recovered.append(await asyncio.wait_for(harness.queue.get(), 5))
                assert [record.payload for record in recovered] == expected
                # Exactly those that had started sending are redeliveries.
                assert [r.payload for r in recovered if r.redelivery] == [p for p in expected if p in sending]
                for record in recovered:
                    await harness.queue.mark_sending(record)
                taken = recovered
        assert harness.queue.records == len(expected)
        await harness.queue.close()
