"""The docs' metrics catalogue (docs/operations/metrics.md) and the metrics registry cannot drift
apart, and every metric follows the Prometheus naming conventions."""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

from prometheus_client.metrics import MetricWrapperBase

from sampler.telemetry.metrics import PREFIX, Metrics, SupervisorMetrics

CATALOGUE = Path(__file__).resolve().parents[2] / "docs" / "operations" / "metrics.md"
CATALOGUE_HEADER = "| metric | type | labels | meaning |"

# Labels whose values come from a small fixed set or from names in the config; a new label
# joins this list only if that holds for it too (never IDs, attribute values or paths).
BOUNDED_LABELS = {
    "protocol",
    "result",
    "reason",
    "policy",
    "decision",
    "trigger",
    "exporter",
    "version",
    "credential",
    "operation",
    "direction",
    "worker",  # a worker's index: below the `workers` key, at most 256
    "outcome",
    "state",  # undecided, kept, dropped
    "store",  # window, decisions
}

# Base units, as Prometheus names them; a metric measuring one of these quantities ends with its unit.
UNIT_WORDS = {"latency": "_seconds", "lag": "_seconds", "age": "_seconds", "duration": "_seconds"}


class Entry(NamedTuple):
    kind: str
    labels: frozenset[str]


def registry_entries() -> dict[str, Entry]:
    """Each metric as it is exposed: counters with their _total suffix. The supervisor of workers
    (the `workers` key) adds its own to the workers' on its /metrics."""
    entries: dict[str, Entry] = {}
    for metric in [*vars(Metrics()).values(), *vars(SupervisorMetrics()).values()]:
        if not isinstance(metric, MetricWrapperBase):
            continue
        # prometheus-client keeps a metric's kind and label names only in these attributes.
        kind = metric._type
        name = metric._name + ("_total" if kind == "counter" else "")
        entries[name] = Entry(kind, frozenset(metric._labelnames))
    return entries


def catalogue_entries() -> dict[str, Entry]:
    lines = CATALOGUE.read_text(encoding="utf-8").splitlines()
    start = lines.index(CATALOGUE_HEADER)
    entries: dict[str, Entry] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        name_cell, kind_cell, labels_cell, _ = (cell.strip() for cell in line.strip("|").split("|", 3))
        name = name_cell.strip("`")
        assert name not in entries, f"{name} is listed twice in the metrics catalogue"
        entries[name] = Entry(kind_cell, frozenset(re.findall(r"`([a-z_]+)`", labels_cell)))
    return entries


def test_every_registered_metric_is_in_the_docs_catalogue_and_vice_versa():
    registered = registry_entries()
    documented = catalogue_entries()
    assert sorted(set(registered) - set(documented)) == [], "metrics missing from the docs' catalogue"
    assert sorted(set(documented) - set(registered)) == [], "catalogue rows for metrics that do not exist"


def test_the_catalogue_gives_each_metric_its_type_and_labels():
    registered = registry_entries()
    documented = catalogue_entries()
    wrong = {name: (documented.get(name), entry) for name, entry in registered.items() if documented.get(name) != entry}
    assert wrong == {}, "catalogue (type, labels) differ from the registry: {name: (catalogue, registry)}"


def test_the_registry_holds_the_metrics_defined_in_the_metrics_class_and_the_standard_process_ones():
    metrics = Metrics()
    defined = {m._name for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)}
    collected = {family.name for family in metrics.registry.collect()}
    assert defined <= collected
    standard = collected - defined
    # prometheus-client's process, platform and GC collectors, as every Prometheus client exports them.
    assert all(name.startswith(("process_", "python_")) for name in standard), sorted(standard)
    assert {"process_resident_memory_bytes", "process_cpu_seconds", "python_info", "python_gc_collections"} <= standard


def test_metric_names_follow_prometheus_conventions():
    problems = []
    for name, entry in registry_entries().items():
        if not re.fullmatch(rf"{PREFIX}_[a-z][a-z0-9_]*[a-z0-9]", name):
            problems.append(f"{name}: not {PREFIX}_ followed by snake_case")
        if (entry.kind == "counter") != name.endswith("_total"):
            problems.append(f"{name}: only counters end in _total")
        for word in re.findall(r"[a-z0-9]+", name):
            unit = UNIT_WORDS.get(word)
            if unit and not name.removesuffix("_total").endswith(unit):
                problems.append(f"{name}: measures {word}, so it should end in {unit}")
        if re.search(r"_(milliseconds|ms|kb|mb|percent)(_|$)", name):
            problems.append(f"{name}: use base units (seconds, bytes, ratios)")
        unbounded = entry.labels - BOUNDED_LABELS
        if unbounded:
            problems.append(f"{name}: labels {sorted(unbounded)} are not known to be bounded")
    assert problems == []
