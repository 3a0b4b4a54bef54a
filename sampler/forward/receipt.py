"""What a batch of kept spans owes the durable window (tail_sampling.storage): the positions of
its spans in the window's log, released once every exporter has taken the batch for good, so a
crash before that replays them instead of losing them.

An exporter takes a batch for good when it is written to its persistent queue, delivered, or
finally dropped (counted); not when shutdown cuts it off, so what a stop leaves undelivered is
replayed at the next start.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Receipt:
    """Counts the exporters still to take one or more batches; releases the positions at zero."""

    __slots__ = ("positions", "_pending", "_release")

    def __init__(self, positions: list[Any], release: Callable[[list[Any]], None]) -> None:
        self.positions = positions
        self._pending = 0
        self._release = release

    def expect(self, count: int = 1) -> None:
        self._pending += count

    def settle(self) -> None:
        self._pending -= 1
        if self._pending == 0:
            self._release(self.positions)
