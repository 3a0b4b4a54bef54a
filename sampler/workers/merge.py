"""One /metrics for all workers: their expositions, parsed and merged into the daemon's totals.

Each worker keeps its own registry (prometheus-client's multiprocess mode supports neither
exemplars nor callback gauges), so the supervisor reads every worker's /metrics, in the
Prometheus text format or OpenMetrics (with exemplars), and merges samples with the same name
and labels. Counters, histograms and the gauges of amounts (traces in the window, queue sizes,
capacities, which each worker holds a share of) are summed: the totals are what one process
would show for the same traffic. The few series that describe the daemon rather than count
its work are combined as MERGE_RULES says; a new metric of that kind needs its line there.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar, Sample

OPENMETRICS = "application/openmetrics-text"

# Family name -> how the workers' values of one series combine (by default: summed).
MERGE_RULES = {
    # The same for every worker: one value, not one per worker.
    "tail_sampler_build_info": max,
    # Every worker reloads the same file at the same time: one reload, not one per worker.
    "tail_sampler_config_reloads": max,
    "tail_sampler_receiver_credential_reloads": max,
    # True of the daemon only if true of every worker.
    "tail_sampler_ready": min,
    "tail_sampler_config_last_reload_successful": min,
    # Of the processes (the supervisor's own included): when the first started, the limit each
    # has, the interpreter; their CPU time, memory, open files and collections add up.
    "process_start_time_seconds": min,
    "process_max_fds": max,
    "python_info": max,
}
_CREATED = "_created"
_CUMULATIVE_TYPES = ("counter", "histogram", "summary", "gaugehistogram")


def parse_exposition(text: str, content_type: str) -> list[Metric]:
    """The families of one /metrics answer. In the text format, the `_created` series of a counter
    or histogram come as gauges of their own; they are folded into their family, where OpenMetrics
    has them, so that either format can be written from the merge."""
    if content_type.startswith(OPENMETRICS):
        return list(parse_openmetrics(text))  # type: ignore[no-untyped-call] # the parser has no annotations
    families = {family.name: family for family in parse_text(text)}
    for name in [name for name in families if name.endswith(_CREATED)]:
        parent = families.get(name[: -len(_CREATED)])
        if parent is not None and parent.type in _CUMULATIVE_TYPES:
            parent.samples.extend(families.pop(name).samples)
    return list(families.values())


def merge_families(expositions: Iterable[Sequence[Metric]]) -> list[Metric]:
    """Families with the same name merged; within them, samples with the same name and labels."""
    merged: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], Sample]] = {}
    for families in expositions:
        for family in families:
            target = merged.get(family.name)
            if target is None:
                merged[family.name] = target = Metric(family.name, family.documentation, family.type, family.unit)
                values[family.name] = {}
            combine = MERGE_RULES.get(family.name)
            series = values[family.name]
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                seen = series.get(key)
                if seen is None:
                    series[key] = sample
                    continue
                if sample.name.endswith(_CREATED):
                    value = min(seen.value, sample.value)  # the earliest worker's start
                elif combine is not None:
                    value = combine(seen.value, sample.value)
                else:
                    value = seen.value + sample.value
                series[key] = seen._replace(value=value, exemplar=_newer(seen, sample))
    for name, target in merged.items():
        target.samples = list(values[name].values())
    return list(merged.values())


def _newer(first: Sample, second: Sample) -> Exemplar | None:
    """The later exemplar of two samples of one series (either may have none)."""
    a, b = first.exemplar, second.exemplar
    if a is None or b is None:
        return a or b
    return b if float(b.timestamp or 0) >= float(a.timestamp or 0) else a


class Families(Collector):
    """Ready families, as a collector prometheus-client's encoders can write out."""

    def __init__(self, families: Sequence[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)
