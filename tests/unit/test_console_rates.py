"""The console's live rates: counter readings kept for five minutes (sampler.telemetry.rates)."""

from __future__ import annotations

from sampler.telemetry.rates import CounterHistory
from tests.unit.helpers import FakeClock


def test_counter_history_changes_over_the_last_minute_and_since_start():
    clock = FakeClock(0.0)
    counts = {("decided",): 0.0}
    history = CounterHistory(lambda: dict(counts), clock, interval=5.0, kept_for=300.0)
    assert history.change(60) == (0.0, {("decided",): 0.0})  # no reading yet
    for _ in range(30):  # 150 seconds at 2 a second, a reading every 5
        history.take()
        clock.advance(5)
        counts[("decided",)] += 10
    seconds, change = history.change(60)
    assert seconds == 60 and change == {("decided",): 120}
    seconds, change = history.change(300)  # not up that long: since the first reading
    assert seconds == 150 and change == {("decided",): 300}
