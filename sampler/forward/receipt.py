"""What a batch of kept spans owes the durable window (tail_sampling.storage): the positions of
its traces in the window's log, released once every exporter has taken the batch for good, so a
crash before that replays them instead of losing them.

An exporter takes a batch for good when it is written to its persistent queue, delivered, or
finally dropped (counted); not when shutdown cuts it off, so what a stop leaves undelivered is
replayed at the next start.

A trace that leaves in several requests (its spans and its log records, or the pieces of a
trace larger than a request) has a receipt of its own, owed by each of those requests' receipts:
its positions are released once all of them are taken.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any


class Receipt:
    """Counts the takers still to come; at zero, releases its positions and settles what it owes."""

    __slots__ = ("positions", "_pending", "_release", "_owed")

    def __init__(
        self, positions: list[Any], release: Callable[[list[Any]], None], owed: Iterable[Receipt] = ()
    ) -> None:
        self.positions = positions
        self._pending = 0
        self._release = release
        self._owed = list(owed)

    def expect(self, count: int = 1) -> None:
        self._pending += count

    def settle(self) -> None:
        self._pending -= 1
        if self._pending == 0:
            if self.positions:
                self._release(self.positions)
            for receipt in self._owed:
                receipt.settle()
