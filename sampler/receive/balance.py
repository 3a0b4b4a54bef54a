"""Balancing the receiving work between workers: a busy worker passes some of the requests it
received, as they arrived, to a less busy one.

The kernel gives each client connection to one worker, and one connection's requests stay
with it. With many clients that evens out; with a few long-lived connections (a Collector in
front, a handful of services) one worker may get most of them, and parsing and splitting is
most of what a request costs. So every worker publishes how busy it is (the CPU time its
process used over the last moments, in memory the workers share: `LoadBoard`), and one that
is busier than another by more than MARGIN passes a share of its OTLP/protobuf trace requests
to the least busy one (REQUEST, receive/handoff.py), which takes them as if it had received
them and returns the answer for the client. The share moves by GAIN times the difference on
every tick, so it settles where the two are about as busy. A request that cannot be passed on
(the other worker is restarting) is taken where it arrived.
"""

from __future__ import annotations

import asyncio
import mmap
import struct
import time
from collections.abc import Mapping

from sampler.receive.handoff import INVALID, OK, REFUSED, REQUEST, REQUEST_HEADER, OwnerUnavailable, PeerLink
from sampler.receive.ingest import PROTOCOLS, WindowFull
from sampler.receive.split import BadRequest
from sampler.telemetry.metrics import Metrics

_LOAD = struct.Struct("<d")
TICK_SECONDS = 0.1
# How much busier (in cores) a worker must be than another before it passes requests on, and
# how fast its share moves towards balance.
MARGIN = 0.1
GAIN = 0.5
MAX_SHARE = 0.9
# How long a request passed on may take when its client set no deadline (HTTP).
_DEFAULT_DEADLINE_SECONDS = 10.0


class LoadBoard:
    """How busy each worker is (cores' worth of CPU time lately), in memory all workers share (a
    memfd the supervisor made). Each worker writes its own slot and reads the others'."""

    def __init__(self, fd: int, index: int, workers: int) -> None:
        self.index = index
        self.workers = workers
        self._memory = mmap.mmap(fd, LoadBoard.size(workers))

    @staticmethod
    def size(workers: int) -> int:
        return _LOAD.size * workers

    def publish(self, load: float) -> None:
        _LOAD.pack_into(self._memory, _LOAD.size * self.index, load)

    def loads(self) -> list[float]:
        return [_LOAD.unpack_from(self._memory, _LOAD.size * index)[0] for index in range(self.workers)]


class Balancer:
    def __init__(self, board: LoadBoard, links: Mapping[int, PeerLink], metrics: Metrics) -> None:
        self._board = board
        self._links = links
        self._share = 0.0  # of the requests received here, what is passed on
        self._credit = 0.0
        self._target: int | None = None
        self._passed = metrics.balanced_requests

    @property
    def share(self) -> float:
        return self._share

    def adjust(self, mine: float, loads: list[float]) -> None:
        """Move the share passed on towards balance, given this worker's load and everyone's."""
        others = [(load, index) for index, load in enumerate(loads) if index != self._board.index]
        if not others:
            return
        lightest, target = min(others)
        difference = mine - lightest
        if difference > MARGIN:
            self._share = min(MAX_SHARE, self._share + GAIN * (difference - MARGIN))
        elif difference < 0:
            self._share = max(0.0, self._share + GAIN * difference)
        self._target = target

    async def run(self) -> None:
        """Publish this worker's load and adjust the share, every tick; runs until cancelled."""
        wall, cpu = time.monotonic(), time.process_time()
        load = 0.0
        while True:
            await asyncio.sleep(TICK_SECONDS)
            now_wall, now_cpu = time.monotonic(), time.process_time()
            if now_wall > wall:
                load = 0.5 * load + 0.5 * (now_cpu - cpu) / (now_wall - wall)  # smoothed over a few ticks
            wall, cpu = now_wall, now_cpu
            self._board.publish(load)
            self.adjust(load, self._board.loads())

    async def pass_on(self, data: bytes, protocol: str, deadline: float | None) -> bytes | None:
        """The answer of another worker that took the request, or None to take it here."""
        self._credit += self._share
        if self._credit < 1.0 or self._target is None:
            return None
        self._credit -= 1.0
        timeout = _DEFAULT_DEADLINE_SECONDS if deadline is None else deadline
        body = REQUEST_HEADER.pack(PROTOCOLS.index(protocol), -1.0 if deadline is None else deadline) + data
        try:
            reply = await self._links[self._target].call(REQUEST, body, timeout + 1.0)
        except OwnerUnavailable:
            return None  # restarting: taken here after all
        if reply.status == OK:
            self._passed.inc()
            return reply.body
        if reply.status == REFUSED:
            raise WindowFull(reply.reason)
        if reply.status == INVALID:
            raise BadRequest(reply.reason)
        return None
