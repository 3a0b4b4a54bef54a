"""The console and the JSON behind it, on the admin endpoint:

- `GET /api/v1/decisions/{trace_id}`: why this process kept, dropped or still holds a trace;
- `GET /api/v1/status`: the policies with their keep rates over the last minute and five, the
  window's fill, the decision caches, the exporters' queues and failures, recent decisions;
- `GET /`: a page (static HTML, a script and a style sheet, in `static/`) that renders the
  status every two seconds and looks trace IDs up through the same two calls. Read-only.

Both calls answer for one process, so a supervisor over several can route a lookup to the
process that owns the trace and add the status counts up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping, Sequence
from importlib.resources import files
from typing import Any, Protocol

from aiohttp import web

from sampler import __version__
from sampler.clock import Clock
from sampler.telemetry.metrics import Metrics
from sampler.telemetry.rates import CounterHistory, Reading, read_counters

RATE_WINDOWS = {"1m": 60.0, "5m": 300.0}
# The page and its script and style: static, holding no data, so served without admin.auth's
# token (a browser cannot send one when it opens a page); the script asks for it.
PAGE_PATHS = frozenset({"/", "/console.js", "/console.css"})
_STATIC = files("sampler.telemetry").joinpath("static")
# The page loads nothing from elsewhere and runs no inline script.
_CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class DecisionSource(Protocol):
    """What the engine side answers (sampler.decide.explain.DecisionLookup)."""

    def lookup(self, text: str) -> dict[str, Any] | None:
        """The answer for a trace ID as written; None when unknown; ValueError when not a trace ID."""

    def status(self) -> dict[str, Any]:
        """Policies (name, type, description), decision caches, recent decisions."""


def _series(metric: Any) -> dict[tuple[str, ...], float]:
    """A gauge's or counter's current values by label values."""
    values: dict[tuple[str, ...], float] = {}
    for family in metric.collect():
        for sample in family.samples:
            if sample.name == family.name or sample.name == family.name + "_total":
                values[tuple(sample.labels.values())] = sample.value
    return values


def _family(metric: Any) -> str:
    """The name a metric's readings carry (read_counters): its family's."""
    return str(metric.describe()[0].name)


def _ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 6) if whole else None


class Console:
    """The status and lookup API and the console page of one daemon process."""

    def __init__(self, metrics: Metrics, source: DecisionSource, clock: Clock) -> None:
        self._metrics = metrics
        self._source = source
        self._clock = clock
        self._started = clock()
        m = metrics
        counted = (
            m.policy_decisions,
            m.traces_kept_by_policy,
            m.traces_decided,
            m.exporter_failed_requests,
            m.exporter_dropped_spans,
            m.exporter_sent_spans,
        )
        self.history = CounterHistory(lambda: read_counters(counted), clock)
        self._policy_decisions, self._kept_by_policy, self._decided, self._failed, self._dropped = (
            _family(metric) for metric in counted[:5]
        )
        self._task: asyncio.Task[None] | None = None
        self._files: dict[str, bytes] = {}

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/", self._page)
        app.router.add_get("/console.js", self._static("console.js", "text/javascript"))
        app.router.add_get("/console.css", self._static("console.css", "text/css"))
        app.router.add_get("/api/v1/status", self._status)
        app.router.add_get("/api/v1/decisions/{trace_id}", self._decision)

    def start(self) -> None:
        self._task = asyncio.create_task(self.history.run(), name="console-rates")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # --- the API ---------------------------------------------------------------

    async def _decision(self, request: web.Request) -> web.Response:
        text = request.match_info["trace_id"]
        try:
            answer = self._source.lookup(text)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        if answer is None:
            return web.json_response(
                {
                    "error": f"trace {text.lower()} is unknown here: never received by this process, or decided "
                    "so long ago that the decision caches no longer remember it (sampled_cache_size, "
                    "non_sampled_cache_size)",
                    "trace_id": text.lower(),
                },
                status=404,
            )
        return web.json_response(answer)

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response(self.status())

    def status(self) -> dict[str, Any]:
        engine = self._source.status()
        m = self._metrics
        changes = {label: self.history.change(seconds) for label, seconds in RATE_WINDOWS.items()}
        policies = []
        for policy in engine["policies"]:
            policy = dict(policy)
            policy["rates"] = {label: self._policy_rates(policy["name"], *change) for label, change in changes.items()}
            policies.append(policy)
        return {
            "version": __version__,
            "pid": os.getpid(),
            "uptime_seconds": round(self._clock() - self._started, 3),
            "ready": bool(_series(m.ready).get((), 0)),
            "policies": policies,
            "decisions": {label: self._decision_rates(*change) for label, change in changes.items()},
            "window": self._window(),
            "decision_caches": engine["decision_caches"],
            "exporters": self._exporters(changes["1m"]),
            "recent_decisions": engine["recent_decisions"],
        }

    def _policy_rates(self, name: str, seconds: float, change: Reading) -> dict[str, Any]:
        decisions = self._policy_decisions
        sampled = change.get((decisions, name, "sampled"), 0.0)
        dropped = change.get((decisions, name, "dropped"), 0.0)
        evaluated = sampled + dropped + change.get((decisions, name, "not_sampled"), 0.0)
        kept = change.get((self._kept_by_policy, name), 0.0)
        decided = sum(value for key, value in change.items() if key[0] == self._decided)
        return {
            "seconds": round(seconds, 3),
            "evaluated": int(evaluated),
            "sampled": int(sampled),
            "dropped": int(dropped),
            "kept": int(kept),
            "decided": int(decided),
            # Of the traces it was asked about, the share it matched: sampled, or for a drop policy, vetoed.
            "matched_ratio": _ratio(sampled + dropped, evaluated),
            # Of every trace decided, the share kept with this policy credited.
            "kept_ratio": _ratio(kept, decided),
        }

    def _decision_rates(self, seconds: float, change: Reading) -> dict[str, Any]:
        kept = dropped = 0.0
        for key, value in change.items():
            if key[0] == self._decided:
                if key[1] == "kept":
                    kept += value
                else:
                    dropped += value
        decided = kept + dropped
        return {
            "seconds": round(seconds, 3),
            "decided": int(decided),
            "kept": int(kept),
            "dropped": int(dropped),
            "keep_ratio": _ratio(kept, decided),
            "traces_per_second": round(decided / seconds, 3) if seconds else None,
        }

    def _window(self) -> dict[str, Any]:
        m = self._metrics

        def value(gauge: Any) -> int:
            return int(_series(gauge).get((), 0.0))

        traces, capacity = value(m.window_traces), value(m.window_capacity)
        memory, limit = value(m.window_memory_bytes), value(m.window_memory_limit)
        return {
            "traces": traces,
            "num_traces": capacity,
            "traces_fill": _ratio(traces, capacity),
            "spans": value(m.window_spans),
            "bytes": value(m.window_bytes),
            "memory_bytes": memory,
            "memory_limit_bytes": limit,
            "memory_fill": _ratio(memory, limit),
        }

    def _exporters(self, last_minute: tuple[float, Reading]) -> list[dict[str, Any]]:
        m = self._metrics
        queued, capacity = _series(m.exporter_queue_size), _series(m.exporter_queue_capacity)
        sent, failed, dropped = (
            _series(m.exporter_sent_spans),
            _series(m.exporter_failed_requests),
            _series(m.exporter_dropped_spans),
        )
        disk, disk_capacity = _series(m.exporter_disk_queue_bytes), _series(m.exporter_disk_queue_capacity)
        seconds, change = last_minute
        exporters = []
        for (name,) in capacity:

            def by_reason(series: dict[tuple[str, ...], float], exporter: str = name) -> dict[str, int]:
                return {labels[1]: int(value) for labels, value in series.items() if labels[0] == exporter and value}

            failed_recently = sum(value for key, value in change.items() if key[:2] == (self._failed, name))
            dropped_recently = sum(value for key, value in change.items() if key[:2] == (self._dropped, name))
            exporter: dict[str, Any] = {
                "name": name,
                "queue_batches": int(queued.get((name,), 0.0)),
                "queue_capacity": int(capacity[(name,)]),
                "sent_spans": int(sent.get((name,), 0.0)),
                "failed_attempts": by_reason(failed),
                "dropped_spans": by_reason(dropped),
                "last_minute": {
                    "seconds": round(seconds, 3),
                    "failed_attempts": int(failed_recently),
                    "dropped_spans": int(dropped_recently),
                },
            }
            if (name,) in disk_capacity:
                exporter["disk_queue_bytes"] = int(disk.get((name,), 0.0))
                exporter["disk_queue_capacity_bytes"] = int(disk_capacity[(name,)])
            exporters.append(exporter)
        return exporters

    # --- the page --------------------------------------------------------------

    async def _page(self, request: web.Request) -> web.Response:
        return self._file("console.html", "text/html")

    def _static(self, name: str, content_type: str) -> Any:
        async def serve(request: web.Request) -> web.Response:
            return self._file(name, content_type)

        return serve

    def _file(self, name: str, content_type: str) -> web.Response:
        body = self._files.get(name)
        if body is None:
            body = self._files[name] = _STATIC.joinpath(name).read_bytes()
        headers = {"Content-Security-Policy": _CONTENT_SECURITY_POLICY, "Cache-Control": "no-cache"}
        return web.Response(body=body, content_type=content_type, charset="utf-8", headers=headers)


def merge_status(statuses: Sequence[dict[str, Any]], descriptions: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The statuses of the worker processes of one daemon (the `workers` key) as one: counts
    added up and their ratios computed again from the sums, the window, caches and queues added
    up, the most recent decisions of all. `descriptions`: the policies as the daemon's config
    describes them (each worker's own carry its share of a rate)."""
    first = statuses[0]
    policies = []
    for index, policy in enumerate(first["policies"]):
        merged = dict(policy)
        if descriptions and policy["name"] in descriptions:
            merged["description"] = descriptions[policy["name"]]
        merged["rates"] = {
            window: _policy_rates_of([status["policies"][index]["rates"][window] for status in statuses])
            for window in policy["rates"]
        }
        policies.append(merged)
    recent = sorted(
        (entry for status in statuses for entry in status["recent_decisions"]),
        key=lambda entry: entry.get("decided_seconds_ago") or 0.0,
    )
    return {
        "version": first["version"],
        "pid": os.getpid(),
        "workers": len(statuses),
        "uptime_seconds": max(status["uptime_seconds"] for status in statuses),
        "ready": all(status["ready"] for status in statuses),
        "policies": policies,
        "decisions": {
            window: _decision_rates_of([status["decisions"][window] for status in statuses])
            for window in first["decisions"]
        },
        "window": _window_of([status["window"] for status in statuses]),
        "decision_caches": {
            kind: {
                **caches,
                **_sums(
                    [status["decision_caches"][kind] for status in statuses], ("traces", "capacity", "memory_bytes")
                ),
            }
            for kind, caches in first["decision_caches"].items()
        },
        "exporters": _exporters_of([status["exporters"] for status in statuses]),
        "recent_decisions": recent[: max(len(status["recent_decisions"]) for status in statuses)],
    }


def _sums(parts: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> dict[str, Any]:
    return {key: sum(part.get(key) or 0 for part in parts) for key in keys if any(key in part for part in parts)}


def _longest(parts: Sequence[Mapping[str, Any]]) -> float:
    return max(part["seconds"] for part in parts)


def _policy_rates_of(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    rates = {"seconds": _longest(parts), **_sums(parts, ("evaluated", "sampled", "dropped", "kept", "decided"))}
    rates["matched_ratio"] = _ratio(rates["sampled"] + rates["dropped"], rates["evaluated"])
    rates["kept_ratio"] = _ratio(rates["kept"], rates["decided"])
    return rates


def _decision_rates_of(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    seconds = _longest(parts)
    rates = {"seconds": seconds, **_sums(parts, ("decided", "kept", "dropped"))}
    rates["keep_ratio"] = _ratio(rates["kept"], rates["decided"])
    rates["traces_per_second"] = round(sum(part.get("traces_per_second") or 0.0 for part in parts), 3)
    return rates


def _window_of(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    window = _sums(parts, ("traces", "num_traces", "spans", "bytes", "memory_bytes", "memory_limit_bytes"))
    window["traces_fill"] = _ratio(window["traces"], window["num_traces"])
    window["memory_fill"] = _ratio(window["memory_bytes"], window["memory_limit_bytes"])
    return window


def _exporters_of(lists: Sequence[Sequence[Mapping[str, Any]]]) -> list[dict[str, Any]]:
    merged = []
    for index, exporter in enumerate(lists[0]):
        parts = [exporters[index] for exporters in lists]
        counts = ("queue_batches", "queue_capacity", "sent_spans", "disk_queue_bytes", "disk_queue_capacity_bytes")
        one = {"name": exporter["name"], **_sums(parts, counts)}
        for by_reason in ("failed_attempts", "dropped_spans"):
            reasons: dict[str, int] = {}
            for part in parts:
                for reason, count in part[by_reason].items():
                    reasons[reason] = reasons.get(reason, 0) + count
            one[by_reason] = reasons
        minutes = [part["last_minute"] for part in parts]
        one["last_minute"] = {"seconds": _longest(minutes), **_sums(minutes, ("failed_attempts", "dropped_spans"))}
        merged.append(one)
    return merged
