"""The engine with its durable window (decide/durable.py): what a request's fragments become in
the log as they are decided and handed on, what a crash leaves, and how a restart rebuilds it.
Real files; the exporters are a list the test settles by hand, as forward/receipt.py would."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest

from sampler.config.tail_sampling import TailSamplingConfig
from sampler.decide.durable import DurableWindow
from sampler.decide.engine import TailSampler
from sampler.policies.registry import POLICIES
from sampler.receive.split import RequestSplitter
from sampler.spans.trace import TraceSpans, add_positions
from sampler.telemetry.metrics import Metrics
from sampler.window.log import StorageFull
from tests.support import make_request, make_span, make_trace
from tests.unit.helpers import FakeClock

WAIT = 10.0
KEEP_ERRORS = {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}}


class Daemonish:
    """The engine and its durable window as the daemon wires them, minus the network."""

    def __init__(self, directory: Path, wall: list[float], **storage: Any) -> None:
        self.clock = FakeClock(100.0)
        self.metrics = Metrics()
        self.kept: list[TraceSpans] = []
        config = TailSamplingConfig.model_validate(
            {
                "decision_wait": f"{WAIT:g}s",
                "num_traces": 1000,
                "policies": [POLICIES.validate(KEEP_ERRORS)],
                "storage": {"directory": str(directory), **storage},
            }
        )
        self.sampler = TailSampler(config, self.kept.append, self.metrics, self.clock)
        self.durable = DurableWindow(config, self.sampler, self.metrics, self.clock, lambda: wall[0])
        self.splitter = RequestSplitter()

    async def start(self) -> None:
        await self.durable.open()
        await self.durable.recover()

    async def send(self, spans: list[Any]) -> None:
        batch = self.splitter.split(make_request(spans))
        await self.durable.admit(batch, budget=1.0)
        self.sampler.ingest(batch)

    def hand_on(self) -> None:
        """Every exporter took every kept trace: release their positions (forward/receipt.py)."""
        for trace in self.kept:
            if trace.log_positions is not None:
                positions: list[int] = []
                add_positions(positions, trace.log_positions)
                self.durable.release(positions)
        self.sampler.decide_due()  # a tick: the journal is written, the releases go to the log

    def value(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0

    def kept_spans(self) -> set[bytes]:
        return {trace.trace_id for trace in self.kept}


async def settle_io() -> None:
    await asyncio.sleep(0.05)


async def test_a_crash_leaves_exactly_what_was_not_yet_decided_and_handed_on(tmp_path):
    wall = [1_800_000_000.0]
    live = Daemonish(tmp_path / "live", wall)
    await live.start()
    kept_id, kept = make_trace(spans=3, error=True)
    dropped_id, dropped = make_trace(spans=2)
    waiting_id, waiting = make_trace(spans=2, error=True)
    handed_id, handed = make_trace(spans=2, error=True)
    await live.send(handed)
    live.clock.advance(WAIT)
    live.sampler.decide_due()
    live.hand_on()  # this one reached every exporter
    await live.send(kept + dropped)
    live.clock.advance(WAIT)
    live.sampler.decide_due()  # decided: one kept (not yet handed on), one dropped
    wall[0] += 4.0
    await live.send(waiting)  # not yet due
    await settle_io()
    shutil.copytree(tmp_path / "live", tmp_path / "crashed")

    wall[0] += 1.0
    restarted = Daemonish(tmp_path / "crashed", wall)
    await restarted.start()
    # The kept trace was decided but not handed on: forwarded again, with the decision it had.
    assert restarted.kept_spans() == {kept_id}
    assert restarted.value("tail_sampler_window_storage_recovered_spans_total", state="kept") == 3
    assert restarted.value("tail_sampler_window_storage_recovered_spans_total", state="dropped") == 0
    assert restarted.value("tail_sampler_window_storage_recovered_spans_total", state="undecided") == 2
    assert restarted.value("tail_sampler_late_spans_total", decision="kept") == 3
    rebuilt = restarted.sampler.window.get(waiting_id)
    assert rebuilt is not None and rebuilt.first_seen == pytest.approx(restarted.clock.now - 1.0)
    restarted.clock.advance(WAIT - 1.0)  # due WAIT after its first arrival, before the crash
    assert restarted.sampler.decide_due() == 1
    assert restarted.kept_spans() == {kept_id, waiting_id}
    # Late spans follow the decisions made before the crash, whatever they carry.
    await restarted.send([make_span(dropped_id, error=True), make_span(handed_id)])
    assert restarted.value("tail_sampler_late_spans_total", decision="dropped") == 1
    assert [t.trace_id for t in restarted.kept[-1:]] == [handed_id]
    await restarted.durable.close()
    await live.durable.close()


async def test_a_dropped_trace_is_settled_once_its_decision_is_journaled_and_its_segment_freed(tmp_path):
    wall = [1_800_000_000.0]
    daemon = Daemonish(tmp_path, wall)
    await daemon.start()
    _, dropped = make_trace(spans=2)
    await daemon.send(dropped)
    assert daemon.value("tail_sampler_window_storage_bytes") > 0
    daemon.clock.advance(WAIT)
    daemon.sampler.decide_due()
    await daemon.durable.close()  # the only segment, all settled: deleted
    assert not list((tmp_path / "window").glob("*.seg"))
    assert daemon.value("tail_sampler_window_storage_bytes") == 0


async def test_full_storage_refuses_or_decides_the_oldest_traces_early(tmp_path):
    wall = [1_800_000_000.0]
    refusing = Daemonish(tmp_path / "refuse", wall, max_size_mib=0.002)
    await refusing.start()
    with pytest.raises(StorageFull):
        for _ in range(100):
            await refusing.send(make_trace(spans=3)[1])
    await refusing.durable.close()

    early = Daemonish(tmp_path / "early", wall, max_size_mib=0.002, when_full="decide_early")
    await early.start()
    for _ in range(100):
        await early.send(make_trace(spans=3)[1])  # room is made by deciding the oldest early
    assert early.value("tail_sampler_early_decisions_total", reason="storage") > 0
    assert early.value("tail_sampler_window_storage_bytes") <= 0.002 * 2**20
    await early.durable.close()
