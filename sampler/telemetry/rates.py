"""Live rates for the console: readings of a few counters, taken every few seconds and kept for
five minutes, so the change over the last minute or five is the current reading minus an old one.

A reading is taken on the admin endpoint's loop, away from the data path; it reads the
counters the daemon keeps anyway, so the rates add nothing to deciding or forwarding.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable

from prometheus_client.metrics import MetricWrapperBase

from sampler.clock import Clock

# A counter's value by (metric name, label values).
Reading = dict[tuple[str, ...], float]

READING_INTERVAL = 5.0
KEPT_FOR = 300.0


def read_counters(metrics: Iterable[MetricWrapperBase]) -> Reading:
    """The current value of every labelled series of these counters."""
    reading: Reading = {}
    for metric in metrics:
        for family in metric.collect():
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    reading[(family.name, *sample.labels.values())] = sample.value
    return reading


class CounterHistory:
    """Readings of the counters `read` returns, one every `interval` seconds, kept for `kept_for`."""

    def __init__(
        self,
        read: Callable[[], Reading],
        clock: Clock,
        interval: float = READING_INTERVAL,
        kept_for: float = KEPT_FOR,
    ) -> None:
        self._read = read
        self._clock = clock
        self._interval = interval
        self._readings: deque[tuple[float, Reading]] = deque(maxlen=int(kept_for / interval) + 2)

    def take(self) -> None:
        self._readings.append((self._clock(), self._read()))

    async def run(self) -> None:
        while True:
            self.take()
            await asyncio.sleep(self._interval)

    def change(self, seconds: float) -> tuple[float, Reading]:
        """(seconds covered, the change of every series over them): since the newest reading at
        least `seconds` old, or, while the daemon has run for less, since the oldest one."""
        now = self._clock()
        current = self._read()
        since: tuple[float, Reading] | None = None
        for reading in self._readings:
            if reading[0] <= now - seconds or since is None:
                since = reading
            else:
                break
        if since is None:
            return 0.0, dict.fromkeys(current, 0.0)
        taken, old = since
        return now - taken, {key: value - old.get(key, 0.0) for key, value in current.items()}
