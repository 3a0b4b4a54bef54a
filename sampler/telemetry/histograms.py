"""Histograms fed in batches: the engine notes a value per decided trace in a plain list and
hands the list over once per decide tick, so deciding a trace makes no prometheus-client call
(an observation costs as much as evaluating a simple policy)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

from prometheus_client import Histogram


class BatchedHistogram(Histogram):
    """A prometheus-client Histogram (exposed, labelled and registered as one) that also takes
    many observations at once."""

    def observe_many(self, amounts: Sequence[float]) -> None:
        """observe() for every amount: sorted into buckets here, then one increment per bucket hit."""
        if not amounts:
            return
        self._raise_if_not_observable()  # type: ignore[no-untyped-call]  # as observe() does
        bounds = self._upper_bounds  # ascending, +Inf last: every amount has a bucket
        counts = [0] * len(bounds)
        for amount in amounts:
            counts[bisect_left(bounds, amount)] += 1
        self._sum.inc(sum(amounts))
        for index, count in enumerate(counts):
            if count:
                self._buckets[index].inc(count)
