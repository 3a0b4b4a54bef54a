"""The decision journal: decisions written as made, read back after a crash or a clean stop,
compacted into the snapshot, and the window log's positions released only once written."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from sampler.config.tail_sampling import TailSamplingConfig
from sampler.decide import journal as journal_module
from sampler.decide.cache import DecisionCache, load
from sampler.decide.journal import DecisionJournal, journal_paths
from sampler.decide.outcome import restored
from sampler.storage.format import RECORD_HEADER, SEGMENT_HEADER
from sampler.telemetry.metrics import Metrics
from tests.unit.helpers import FakeClock

POLICIES = [{"name": "all", "type": "always_sample"}]


class Harness:
    def __init__(self, root: Path, fsync: str = "interval") -> None:
        self.kept = DecisionCache(1000)
        self.dropped = DecisionCache(1000)
        self.metrics = Metrics()
        self.released: list[list[tuple[int, int, int]]] = []
        self.journal = DecisionJournal(
            root / "decisions.bin",
            root / "decisions",
            self.kept,
            self.dropped,
            self.metrics,
            fsync,  # type: ignore[arg-type]
            0.01,
            FakeClock(),
        )
        self.journal.on_written = self.released.append

    def keep(self, trace_id: bytes, record: bytes, forwarded: int, threshold: int | None = None) -> None:
        """As the engine records a kept trace: in the cache and in the journal."""
        self.kept.add(trace_id, (record, forwarded, threshold, restored(forwarded)))
        self.journal.kept(trace_id, record, forwarded, threshold)

    def drop(self, trace_id: bytes) -> None:
        self.dropped.add(trace_id, restored())
        self.journal.dropped(trace_id)

    def kept_entries(self) -> list[tuple[bytes, bytes, int, int | None]]:
        return [(trace_id, record, fwd, threshold) for trace_id, (record, fwd, threshold, _) in self.kept.items()]

    def value(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0

    def segments(self) -> list[Path]:
        return sorted(self.journal.directory.glob("*.seg"))


def tid(number: int) -> bytes:
    return number.to_bytes(16, "big")


async def test_decisions_survive_a_crash_and_a_clean_stop(tmp_path):
    live = Harness(tmp_path / "live")
    await live.journal.open()
    live.keep(tid(1), b"record-a", 120)
    live.drop(tid(2))
    live.journal.flush()
    live.keep(tid(3), b"record-b", 7, threshold=0x80000000000000)
    live.journal.flush()
    assert live.value("tail_sampler_decision_journal_written_traces_total") == 3
    shutil.copytree(tmp_path / "live", tmp_path / "crashed")  # kill -9: no compaction, no unlock

    crashed = Harness(tmp_path / "crashed")
    await crashed.journal.open()
    assert crashed.kept_entries() == [(tid(1), b"record-a", 120, None), (tid(3), b"record-b", 7, 0x80000000000000)]
    assert tid(2) in crashed.dropped
    assert crashed.value("tail_sampler_decision_journal_recovered_traces_total", decision="kept") == 2
    await crashed.journal.close()

    await live.journal.close()  # a clean stop compacts: the snapshot holds everything, the journal nothing
    assert live.segments() == []
    kept, dropped = load(tmp_path / "live" / "decisions.bin")
    assert [entry[0] for entry in kept] == [tid(1), tid(3)] and dropped == [tid(2)]
    reopened = Harness(tmp_path / "live")
    await reopened.journal.open()
    assert len(reopened.kept) == 2 and len(reopened.dropped) == 1
    await reopened.journal.close()


async def test_compaction_keeps_every_decision_and_deletes_what_the_snapshot_covers(tmp_path, monkeypatch):
    monkeypatch.setattr(journal_module, "_MIN_COMPACT_BYTES", 200)
    live = Harness(tmp_path)
    await live.journal.open()
    for number in range(40):
        live.drop(tid(number))
        live.journal.flush()
    await _wait_for(lambda: live.value("tail_sampler_decision_journal_compactions_total") >= 2)
    await _wait_for(lambda: (tmp_path / "decisions.bin").exists() and len(live.segments()) <= 2)
    shutil.copytree(tmp_path, tmp_path.parent / "crashed")
    crashed = Harness(tmp_path.parent / "crashed")
    await crashed.journal.open()
    assert [trace_id for trace_id, _ in crashed.dropped.items()] == [tid(number) for number in range(40)]
    await crashed.journal.close()
    await live.journal.close()


async def _wait_for(predicate, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


@pytest.mark.parametrize("fsync", ["interval", "always"])
async def test_positions_are_released_only_after_the_decisions_are_written(tmp_path, fsync):
    harness = Harness(tmp_path, fsync)
    await harness.journal.open()
    harness.drop(tid(1))
    harness.journal.settle_after([(1, 8, 0)])
    assert harness.released == []  # recorded, not yet written
    harness.journal.flush()
    if fsync == "always":
        assert harness.released == []  # written, not yet synced
        await _wait_for(lambda: harness.released)
    assert harness.released == [[(1, 8, 0)]]
    await harness.journal.close()


async def test_a_damaged_journal_record_is_counted_and_the_others_loaded(tmp_path):
    live = Harness(tmp_path / "live")
    await live.journal.open()
    for number in range(3):
        live.drop(tid(number))
        live.journal.flush()
    shutil.copytree(tmp_path / "live", tmp_path / "crashed")
    await live.journal.close()
    (segment,) = Harness(tmp_path / "crashed").segments()
    data = bytearray(segment.read_bytes())
    record = RECORD_HEADER.size + 4 + 18
    data[SEGMENT_HEADER.size + record + RECORD_HEADER.size + 8] ^= 0xFF  # inside the second record
    segment.write_bytes(bytes(data))
    crashed = Harness(tmp_path / "crashed")
    await crashed.journal.open()
    assert [trace_id for trace_id, _ in crashed.dropped.items()] == [tid(0), tid(2)]
    assert crashed.value("tail_sampler_storage_corrupt_records_total", store="decisions") == 1
    await crashed.journal.close()


def test_where_the_journal_lives_comes_from_the_config():
    def paths(**sampling: object) -> tuple[Path, Path] | None:
        return journal_paths(TailSamplingConfig(policies=POLICIES, **sampling))

    assert paths() is None
    assert paths(decision_cache={"persist_path": "/state/d.bin"}) == (
        Path("/state/d.bin"),
        Path("/state/d.bin.journal"),
    )
    assert paths(storage={"directory": "/data"}) == (Path("/data/decisions.bin"), Path("/data/decisions"))
    assert paths(storage={"directory": "/data"}, decision_cache={"persist_path": "/state/d.bin"}) == (
        Path("/state/d.bin"),
        Path("/data/decisions"),
    )
