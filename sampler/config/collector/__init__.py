"""OpenTelemetry Collector config files, translated into the daemon's own config.

A file with a `service:` or `processors:` section is a Collector config. Its traces pipeline
becomes the daemon's config (a logs pipeline with the same receivers and exporters is honoured
too: log records follow their trace): the pipeline's otlp and zipkin receivers, its tail_sampling and
batch processors and its otlp, otlphttp, zipkin and file exporters carry over (with the
Collector's defaults where they differ from the daemon's; components.py), `service.telemetry`
gives the admin endpoint and the log level. What has no equivalent is either an error (it would
change what the daemon receives, keeps or sends) or a note (it changes how the daemon is
operated, not the data), each with its path in the Collector file and what to do instead. The
result is plain data for the daemon's own models, so it is validated exactly like a file in the
daemon's format.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from sampler.config.collector import components
from sampler.config.collector.translation import (
    ELSEWHERE,
    Finding,
    Translation,
    component_ids,
    component_type,
    mapping,
)

__all__ = ["Finding", "Translation", "is_collector_config", "translate"]

# Top-level sections of a Collector config; a file with either of these is one.
COLLECTOR_MARKERS = ("service", "processors")
_SECTIONS = ("receivers", "processors", "exporters", "extensions", "connectors", "service")
_LOG_LEVELS = {"debug": "debug", "info": "info", "warn": "warning", "error": "error"}
_LOG_LEVELS.update(dpanic="error", panic="error", fatal="error")


def is_collector_config(data: Mapping[str, Any]) -> bool:
    return any(key in data for key in COLLECTOR_MARKERS)


def translate(collector: Mapping[str, Any], exporter_types: Collection[str]) -> Translation:
    """The daemon's config for a Collector config (`exporter_types`: those the daemon has)."""
    out = Translation()
    for key in collector:
        if key not in _SECTIONS:
            out.error((key,), f"not a section of a Collector config; valid sections: {', '.join(_SECTIONS)}")
    sections = {name: mapping(out, collector, (name,)) for name in _SECTIONS}
    service = sections["service"]
    pipelines = mapping(out, service, ("service", "pipelines"))
    traces = _traces_pipeline(out, pipelines)
    if traces is not None:
        pipeline_id, pipeline = traces
        where = ("service", "pipelines", pipeline_id)
        out.origins.append(((), where))
        receiver_ids = component_ids(out, pipeline, where + ("receivers",))
        components.receivers(out, sections, receiver_ids, where)
        components.processors(out, sections, component_ids(out, pipeline, where + ("processors",)), where)
        exporter_ids = component_ids(out, pipeline, where + ("exporters",))
        components.exporters(out, sections, exporter_ids, where, exporter_types)
        for logs_id, logs in pipelines.items():
            if component_type(str(logs_id)) == "logs":
                _logs_pipeline(out, ("service", "pipelines", logs_id), logs, pipeline_id, receiver_ids, exporter_ids)
    _telemetry(out, mapping(out, service, ("service", "telemetry")))
    _extensions(out, sections["extensions"], component_ids(out, service, ("service", "extensions")))
    return out


def _traces_pipeline(out: Translation, pipelines: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    found: tuple[str, dict[str, Any]] | None = None
    for pipeline_id, body in pipelines.items():
        path = ("service", "pipelines", pipeline_id)
        kind = component_type(str(pipeline_id))
        if kind == "logs":
            continue  # honoured along with the traces pipeline (_logs_pipeline)
        if kind != "traces":
            out.note(path, f"not honoured: the tail-sampler handles traces and logs; keep a Collector for {kind}")
        elif not isinstance(body, dict):
            out.error(path, "must be a mapping with receivers, processors and exporters")
        elif found is not None:
            out.error(
                path,
                f"the tail-sampler runs one traces pipeline and {found[0]!r} is that one; {ELSEWHERE['pipeline']}",
            )
        else:
            found = (pipeline_id, body)
    if found is None:
        out.error(
            ("service", "pipelines"),
            "no traces pipeline: add service.pipelines.traces with receivers, processors [tail_sampling] and exporters",
        )
    return found


# Processors a logs pipeline may name: they change how records are sent, not the records.
_LOGS_PROCESSORS = ("batch", "memory_limiter")


def _logs_pipeline(
    out: Translation,
    where: tuple[Any, ...],
    body: Any,
    traces_id: str,
    traces_receivers: list[tuple[int, str]],
    traces_exporters: list[tuple[int, str]],
) -> None:
    """A logs pipeline is honoured when it is the traces pipeline for log records: the daemon takes
    log records on the same receivers and sends them, following their trace's decision, to the
    same exporters. Anything else would route or change records differently: an error."""
    if not isinstance(body, dict):
        out.error(where, "must be a mapping with receivers, processors and exporters")
        return
    same = f"list the same ones as the {traces_id!r} pipeline, or {ELSEWHERE['pipeline']}"
    receivers = {receiver for _, receiver in traces_receivers}
    for index, receiver_id in component_ids(out, body, where + ("receivers",)):
        if receiver_id not in receivers:
            out.error(
                where + ("receivers", index),
                f"the tail-sampler takes log records on the traces pipeline's receivers only; {same}",
            )
    for index, processor_id in component_ids(out, body, where + ("processors",)):
        if component_type(processor_id) not in _LOGS_PROCESSORS:
            out.error(
                where + ("processors", index),
                f"processor {processor_id!r} would change log records, which the tail-sampler forwards as they "
                f"arrived; {ELSEWHERE['processor']}",
            )
    exporters = {exporter for _, exporter in traces_exporters}
    logs_exporters = {exporter for _, exporter in component_ids(out, body, where + ("exporters",))}
    for index, exporter_id in component_ids(out, body, where + ("exporters",)):
        if exporter_id not in exporters:
            out.error(
                where + ("exporters", index),
                f"the tail-sampler sends log records to the traces pipeline's exporters; {same}",
            )
    extra = sorted(exporters - logs_exporters)
    out.note(
        where,
        "honoured: log records arrive on the same receivers and follow their trace's decision (records "
        "without a trace ID pass through: tail_sampling.untraced_logs)"
        + (f"; they also go to {', '.join(extra)}, which the traces pipeline exports to" if extra else ""),
    )


def _extensions(out: Translation, section: dict[str, Any], ids: list[tuple[int, str]]) -> None:
    admin = out.data.get("admin", {}).get("endpoint", "127.0.0.1:8888")
    for index, extension_id in ids:
        where = ("service", "extensions", index)
        if extension_id not in section:
            out.error(where, f"extension {extension_id!r} is not defined under extensions")
            continue
        kind = component_type(extension_id)
        if kind == "health_check":
            out.note(
                ("extensions", extension_id),
                f"not served on a port of its own{_at(section[extension_id])}: probes go to /healthz and /readyz "
                f"on the admin endpoint ({admin})",
            )
        elif kind != "file_storage":  # file_storage is carried over by the queues that use it
            out.note(("extensions", extension_id), f"not honoured: the tail-sampler has no {kind} extension")


def _telemetry(out: Translation, telemetry: dict[str, Any]) -> None:
    metrics = telemetry.get("metrics")
    if isinstance(metrics, dict):
        _metrics_endpoint(out, metrics)
    logs = telemetry.get("logs")
    if isinstance(logs, dict):
        origin = ("service", "telemetry", "logs")
        for key, value in logs.items():
            if key == "level" and str(value).lower() in _LOG_LEVELS:
                out.carry(("logging", "level"), origin + (key,), _LOG_LEVELS[str(value).lower()])
            elif key == "encoding" and value in ("json", "console"):
                out.carry(("logging", "format"), origin + (key,), "json" if value == "json" else "text")
            else:
                out.note(origin + (key,), "not honoured: the tail-sampler logs to stderr (see logging in its config)")
    for key in telemetry:
        if key not in ("metrics", "logs"):
            out.note(
                ("service", "telemetry", key),
                "not honoured: the tail-sampler's own traces are set in telemetry.traces of its config",
            )


def _metrics_endpoint(out: Translation, metrics: dict[str, Any]) -> None:
    origin = ("service", "telemetry", "metrics")
    if metrics.get("level") == "none":
        out.note(origin + ("level",), "not honoured: the tail-sampler always serves /metrics on its admin endpoint")
    if isinstance(metrics.get("address"), str):
        out.carry(("admin", "endpoint"), origin + ("address",), metrics["address"])
    readers = metrics.get("readers")
    for index, reader in enumerate(readers if isinstance(readers, list) else []):
        where = origin + ("readers", index)
        prometheus = _dig(reader, "pull", "exporter", "prometheus")
        if isinstance(prometheus, dict) and "port" in prometheus and "admin" not in out.data:
            host = str(prometheus.get("host") or "localhost")
            host = f"[{host}]" if ":" in host else host
            out.carry(("admin", "endpoint"), where, f"{host}:{prometheus['port']}")
        else:
            out.note(where, "not honoured: the tail-sampler's metrics are scraped from /metrics on its admin endpoint")


def _dig(value: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _at(settings: Any) -> str:
    endpoint = settings.get("endpoint") if isinstance(settings, dict) else None
    return f" ({endpoint})" if endpoint else ""
