"""The hand-over of fragments to the worker that owns their trace, over real Unix sockets, with
both workers' engines in one event loop (sampler/receive/handoff.py)."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio

from sampler.config.tail_sampling import TailSamplingConfig
from sampler.decide.engine import TailSampler
from sampler.policies.base import TraceView
from sampler.policies.registry import POLICIES
from sampler.receive.handoff import HandoffServer, OwnerUnavailable, PeerLink, Router
from sampler.receive.ingest import WindowFull
from sampler.spans.fragments import owner_of
from sampler.spans.trace import DecodedBatch
from sampler.telemetry.metrics import Metrics
from tests.support import make_request, make_trace
from tests.unit.helpers import FakeClock, split


def _engine(metrics: Metrics, **settings: Any) -> TailSampler:
    config = TailSamplingConfig(
        decision_wait="1h", policies=[POLICIES.validate({"name": "all", "type": "always_sample"})], **settings
    )
    return TailSampler(config, lambda trace: None, metrics, FakeClock())


def _batch(owners: tuple[int, ...], per_owner: int = 3) -> DecodedBatch:
    """Traces owned (of two workers) by each of `owners`, `per_owner` of each."""
    spans = []
    wanted = {owner: per_owner for owner in owners}
    while any(wanted.values()):
        trace_id, trace = make_trace(spans=2)
        owner = owner_of(trace_id, 2)
        if wanted.get(owner):
            wanted[owner] -= 1
            spans += trace
    traces = split(make_request(spans))
    return DecodedBatch(traces=traces, span_count=sum(t.span_count for t in traces.values()))


@dataclass
class Pair:
    """Worker 0 (receives, hands over through `router`) and worker 1 (owns, through `server`)."""

    router: Router
    server: HandoffServer
    here: TailSampler
    there: TailSampler
    here_metrics: Metrics
    there_metrics: Metrics
    address: str


def _address() -> str:
    return f"\0tail-sampler-test-{os.getpid()}-{os.urandom(4).hex()}"


@pytest_asyncio.fixture
async def make_pair() -> AsyncIterator[Any]:
    made: list[Pair] = []

    async def make(confirm: bool = False, admit: Any = None, **settings: Any) -> Pair:
        address = _address()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(address)
        listener.listen(8)
        here_metrics, there_metrics = Metrics(), Metrics()
        here, there = _engine(here_metrics, **settings), _engine(there_metrics, **settings)
        extra = {} if admit is None else {"admit": admit}
        server = HandoffServer(listener, there, there_metrics, **extra)
        await server.start()
        router = Router(0, 2, here, {1: PeerLink(1, address)}, here_metrics, confirm=confirm)
        pair = Pair(router, server, here, there, here_metrics, there_metrics, address)
        made.append(pair)
        return pair

    yield make
    for pair in made:
        await pair.router.close()
        await pair.server.stop()


def _in_window(engine: TailSampler, batch: DecodedBatch, owner: int) -> bool:
    return all(
        (engine.window.get(trace_id) is not None) == (owner_of(trace_id, 2) == owner) for trace_id in batch.traces
    )


def _value(metrics: Metrics, name: str, **labels: str) -> float:
    return sum(
        sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


async def test_each_fragment_lands_in_its_owners_window(make_pair: Any) -> None:
    pair = await make_pair()
    batch = _batch((0, 1))
    new_here = await pair.router.take(batch, "http", None)
    assert new_here == 3
    await pair.router.flush(5)  # once answered, every fragment handed over is taken
    assert _in_window(pair.here, batch, 0) and _in_window(pair.there, batch, 1)
    assert pair.there.window.span_count == 6
    assert _value(pair.there_metrics, "tail_sampler_received_traces_total", protocol="http") == 3
    assert _value(pair.here_metrics, "tail_sampler_worker_handoff_spans_total", direction="sent") == 6
    assert _value(pair.there_metrics, "tail_sampler_worker_handoff_spans_total", direction="received") == 6


async def test_with_confirm_the_owner_has_taken_its_part_when_take_returns(make_pair: Any) -> None:
    pair = await make_pair(confirm=True)
    batch = _batch((1,))
    assert await pair.router.take(batch, "grpc", None) == 0
    assert _in_window(pair.there, batch, 1)
    # Later fragments of the same traces join them there.
    later = DecodedBatch(traces=split(make_request([s for t in batch.traces.values() for s in _spans_of(t)])))
    await pair.router.take(later, "grpc", None)
    assert pair.there.window.span_count == 12


def _spans_of(trace: Any) -> list[Any]:
    return [record.span for record in TraceView(trace).spans()]


async def test_an_owner_without_room_refuses_the_whole_request(make_pair: Any) -> None:
    pair = await make_pair(block_on_overflow=True, num_traces=4, num_shards=1, block_on_overflow_timeout="100ms")
    await pair.router.take(_batch((0, 1), per_owner=2), "grpc", None)  # worker 1 now holds 2 of its 2
    assert pair.there.window.trace_count == 2
    for _ in range(2):
        pair.there.window.add(_batch((1,), per_owner=1).traces.popitem()[1])  # fill worker 1's window
    before_here = pair.here.window.trace_count
    with pytest.raises(WindowFull):
        await pair.router.take(_batch((0, 1), per_owner=1), "grpc", 0.2)
    # Nothing was taken anywhere: a retry brings nothing twice.
    assert pair.here.window.trace_count == before_here
    assert pair.there.window.trace_count == 4
    # With room at the owner, both parts are taken.
    pair.there.decide_all()
    batch = _batch((0, 1), per_owner=1)
    await pair.router.take(batch, "grpc", 1.0)
    assert _in_window(pair.there, batch, 1)
    assert all(pair.here.window.get(t) is not None for t in batch.traces if owner_of(t, 2) == 0)


async def test_an_owner_that_is_not_there_is_reported_and_nothing_is_taken(make_pair: Any) -> None:
    sampler = _engine(Metrics())
    router = Router(0, 2, sampler, {1: PeerLink(1, _address())}, Metrics())
    with pytest.raises(OwnerUnavailable) as caught:
        await router.take(_batch((0, 1)), "grpc", 0.5)
    assert "worker 1" in str(caught.value) and caught.value.result == "unavailable"
    assert sampler.window.trace_count == 0
    await router.close()


async def test_a_stranger_is_not_let_in(make_pair: Any) -> None:
    pair = await make_pair(confirm=True, admit=lambda peer: False)
    with pytest.raises(OwnerUnavailable):
        await pair.router.take(_batch((1,)), "grpc", 0.5)
    assert pair.there.window.trace_count == 0


async def test_an_owner_that_goes_away_is_noticed_and_a_new_one_is_reached(make_pair: Any) -> None:
    pair = await make_pair(confirm=True)
    await pair.router.take(_batch((1,)), "grpc", None)
    await pair.server.stop()
    with pytest.raises(OwnerUnavailable):
        await pair.router.take(_batch((1,)), "grpc", 0.5)
    # Its successor listens where it did (the supervisor holds that socket): reached again.
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(pair.address)
    listener.listen(8)
    successor = _engine(Metrics())
    server = HandoffServer(listener, successor, Metrics())
    await server.start()
    try:
        batch = _batch((1,))
        await pair.router.take(batch, "grpc", 1.0)
        assert _in_window(successor, batch, 1)
    finally:
        await server.stop()


async def test_flush_confirms_what_was_handed_over_and_never_connects_anew() -> None:
    """At shutdown a worker confirms what it handed over (flush). An owner that stopped meanwhile
    leaves its listening socket open in the supervisor (kept for a restart), where a connection
    is taken and never answered: connecting there anew would wait out the whole shutdown timeout,
    the exporters' time. (CI saw it: a worker's kept spans dropped at shutdown.)"""
    address = _address()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address)
    listener.listen(8)
    held = listener.dup()  # the supervisor's copy
    held.setblocking(False)
    owner = _engine(Metrics())
    server = HandoffServer(listener, owner, Metrics())
    await server.start()
    router = Router(0, 2, _engine(Metrics()), {1: PeerLink(1, address)}, Metrics())
    try:
        batch = _batch((1,))
        await router.take(batch, "grpc", None)  # HAND: written, not yet confirmed
        await router.flush(5.0)
        assert _in_window(owner, batch, 1)

        assert server._server is not None
        server._server.close()  # the owner stops accepting; only the supervisor's copy listens
        link = router._links[1]
        assert link.connected and link._writer is not None
        # The connection breaks after flush() looked at it and before its confirmation goes out.
        asyncio.get_running_loop().call_soon(link._writer.close)
        await router.flush(3.0)
        with pytest.raises(BlockingIOError):
            held.accept()  # nobody connected anew
    finally:
        held.close()
        await router.close()
        await server.stop()
