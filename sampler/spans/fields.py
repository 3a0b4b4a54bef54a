"""What the span metrics count by, gathered while a request is split, so counting them needs no
second pass over the spans: per series (the resource's `service.name`, the span's name, kind and
status code), the durations of the request's accepted spans.

Names are kept as the UTF-8 bytes they arrived in; the span metrics decode each series' names
once (sampler/telemetry/span_metrics.py). Compiled with mypyc in a compiled build (setup.py).
"""

from __future__ import annotations

# (service.name, span name, span kind, status code)
FieldsKey = tuple[bytes, bytes, int, int]


class SpanFields:
    """One request's accepted spans, per series: their durations (end minus start, in ns, as
    sent: an end before the start gives a negative one)."""

    def __init__(self) -> None:
        self.durations: dict[FieldsKey, list[int]] = {}
        self.spans = 0

    def add(self, service: bytes, name: bytes, kind: int, status_code: int, start: int, end: int) -> None:
        key = (service, name, kind, status_code)
        durations = self.durations.get(key)
        if durations is None:
            self.durations[key] = durations = []
        durations.append(end - start)
        self.spans += 1

    def clear(self) -> None:
        self.durations.clear()
        self.spans = 0
