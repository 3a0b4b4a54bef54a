"""What the span metrics count, gathered while a request is split, so counting needs no second
pass over the spans: per series (the resource's `service.name`, the span's name, kind and status
code), the request's accepted spans, their summed duration and how many fell in each bucket.

Names are kept as they came: UTF-8 bytes sliced off the wire, or the strings of parsed spans; the
span metrics turn each series' key into label values once (sampler/telemetry/span_metrics.py).
Compiled with mypyc in a compiled build (setup.py): the per-span part runs as machine code there.
"""

from __future__ import annotations

from bisect import bisect_left

# A service.name or span name: bytes off the wire, or a parsed string.
Name = bytes | str
# (service.name, span name, span kind, status code)
FieldsKey = tuple[Name, Name, int, int]


class SpanFields:
    """One request's accepted spans, per series: [spans, summed duration (ns), then spans per
    duration bucket: one per bound of `bounds_ns` (le), and one past the last]. A duration is end
    minus start, an end before the start counting as 0, as the spanmetrics connector has it."""

    def __init__(self, bounds_ns: list[int] | None = None) -> None:
        self.bounds_ns: list[int] = bounds_ns if bounds_ns is not None else []
        self.series: dict[FieldsKey, list[int]] = {}
        self.spans = 0

    def add(self, service: Name, name: Name, kind: int, status_code: int, start: int, end: int) -> None:
        key = (service, name, kind, status_code)
        counts = self.series.get(key)
        if counts is None:
            self.series[key] = counts = [0] * (len(self.bounds_ns) + 3)
        duration = end - start
        if duration < 0:
            duration = 0
        counts[0] += 1
        counts[1] += duration
        counts[2 + bisect_left(self.bounds_ns, duration)] += 1
        self.spans += 1

    def clear(self) -> None:
        self.series.clear()
        self.spans = 0
