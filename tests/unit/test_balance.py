"""Balancing the receiving work: a busy worker passes requests, as received, to a less busy one
(sampler/receive/balance.py), over a real Unix socket to a real HandoffServer."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from sampler.receive.balance import GAIN, MARGIN, MAX_SHARE, Balancer, LoadBoard
from sampler.receive.handoff import HandoffServer, PeerLink
from sampler.receive.ingest import Ingest
from sampler.receive.split import BadRequest
from sampler.telemetry.metrics import Metrics
from tests.support import make_request, make_trace
from tests.unit.test_handoff import _address, _engine


def _board(index: int = 0, workers: int = 2) -> LoadBoard:
    fd = os.memfd_create("test-loads")
    os.ftruncate(fd, LoadBoard.size(workers))
    return LoadBoard(fd, index, workers)


def test_every_worker_reads_what_the_others_publish() -> None:
    first = _board(0, 3)
    fd = os.memfd_create("shared")
    os.ftruncate(fd, LoadBoard.size(3))
    boards = [LoadBoard(fd, index, 3) for index in range(3)]
    for index, board in enumerate(boards):
        board.publish(0.25 * (index + 1))
    assert boards[0].loads() == [0.25, 0.5, 0.75]
    assert first.loads() == [0.0, 0.0, 0.0]  # another daemon's memory is not this one's


def test_the_share_passed_on_moves_towards_balance() -> None:
    balancer = Balancer(_board(0, 3), {}, Metrics())
    balancer.adjust(0.5, [0.5, 0.45, 0.6])  # within the margin of the lightest: nothing
    assert balancer.share == 0
    balancer.adjust(0.9, [0.9, 0.3, 0.6])
    assert balancer.share == pytest.approx(GAIN * (0.6 - MARGIN))
    for _ in range(10):
        balancer.adjust(1.0, [1.0, 0.0, 0.0])
    assert balancer.share == MAX_SHARE
    balancer.adjust(0.4, [0.4, 0.6, 0.9])  # now the lightest itself: the share comes down
    assert balancer.share == pytest.approx(MAX_SHARE - GAIN * 0.2)


@pytest_asyncio.fixture
async def peer() -> AsyncIterator[Any]:
    """Worker 1: a HandoffServer that takes requests passed to it into its own engine."""
    address = _address()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address)
    listener.listen(8)
    metrics = Metrics()
    sampler = _engine(metrics)
    server = HandoffServer(listener, sampler, metrics)
    server.requests = Ingest(sampler, metrics).accept_serialized_here
    await server.start()
    yield address, sampler, metrics
    await server.stop()


async def test_a_busy_worker_passes_requests_on_and_answers_with_the_others_answer(peer: Any) -> None:
    address, there, there_metrics = peer
    metrics = Metrics()
    balancer = Balancer(_board(0, 2), {1: PeerLink(1, address)}, metrics)
    for _ in range(20):
        balancer.adjust(1.0, [1.0, 0.0])
    assert balancer.share == MAX_SHARE
    passed = taken_here = 0
    for _ in range(10):
        request = make_request(make_trace(spans=2)[1])
        answer = await balancer.pass_on(request.SerializeToString(), "grpc", 5.0)
        if answer is None:
            taken_here += 1
        else:
            passed += 1
            assert answer == b""  # an empty ExportTraceServiceResponse: all taken
    assert passed + taken_here == 10 and passed in (8, 9)  # the share (0.9), to the request or so
    assert there.window.span_count == 2 * passed
    values = {s.name: s.value for f in metrics.registry.collect() for s in f.samples}
    assert values["tail_sampler_worker_balanced_requests_total"] == passed
    received = {
        s.name: s.value
        for f in there_metrics.registry.collect()
        for s in f.samples
        if s.labels.get("protocol") == "grpc"
    }
    assert received["tail_sampler_received_spans_total"] == 2 * passed  # counted where it was taken
    with pytest.raises(BadRequest):
        while True:  # the next request passed on is refused there as it would be here
            await balancer.pass_on(b"\xff\xff not protobuf", "grpc", 5.0)


async def test_a_request_is_taken_here_when_the_other_worker_is_away() -> None:
    balancer = Balancer(_board(0, 2), {1: PeerLink(1, _address())}, Metrics())
    for _ in range(20):
        balancer.adjust(1.0, [1.0, 0.0])
    answers = [await balancer.pass_on(make_request(make_trace()[1]).SerializeToString(), "grpc", 0.5) for _ in range(3)]
    assert answers == [None, None, None]
