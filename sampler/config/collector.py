"""OpenTelemetry Collector config files, translated into the daemon's own config.

A file with a `service:` or `processors:` section is a Collector config. Its traces pipeline
becomes the daemon's config: the pipeline's otlp and zipkin receivers, its tail_sampling and
batch processors and its otlp, otlphttp, zipkin and file exporters carry over (with the
Collector's defaults where they differ from the daemon's), `service.telemetry` gives the admin
endpoint and the log level. What has no equivalent is either an error (it would change what
the daemon receives, keeps or sends) or a note (it changes how the daemon is operated, not the
data), each with its path in the Collector file and what to do instead. The result is plain
data for the daemon's own models, so it is validated exactly like a file in the daemon's format.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

# Top-level sections of a Collector config; a file with either of these is one.
COLLECTOR_MARKERS = ("service", "processors")
_SECTIONS = ("receivers", "processors", "exporters", "extensions", "connectors", "service")
SUPPORTED_PROCESSORS = ("tail_sampling", "batch", "memory_limiter")

# The Collector's defaults (since v0.104, components listen on localhost unless told otherwise).
_COLLECTOR_ENDPOINTS = {"grpc": "localhost:4317", "http": "localhost:4318", "zipkin": "localhost:9411"}
# The Collector's names for exporter types (since v0.144) the daemon knows by their former names.
_EXPORTER_ALIASES = {"otlp_grpc": "otlp", "otlp_http": "otlphttp"}
_LOG_LEVELS = {"debug": "debug", "info": "info", "warn": "warning", "error": "error"}
_LOG_LEVELS.update(dpanic="error", panic="error", fatal="error")

# What to do with a component the daemon does not have, by kind.
_ELSEWHERE = {
    "receiver": "receive with a Collector that exports OTLP to the tail-sampler",
    "processor": "run it in a Collector before the tail-sampler (exporting OTLP to it) or after it, or leave it out",
    "exporter": "export OTLP to a Collector that has it",
    "pipeline": "run the other pipelines in a Collector",
}


def is_collector_config(data: Mapping[str, Any]) -> bool:
    return any(key in data for key in COLLECTOR_MARKERS)


def component_type(component_id: str) -> str:
    """`otlp` for both `otlp` and `otlp/backend`, as the Collector names component instances."""
    return component_id.split("/", 1)[0]


@dataclass(frozen=True)
class Finding:
    """Something about the Collector file, at a key path of that file."""

    path: tuple[Any, ...]
    message: str


@dataclass
class Translation:
    data: dict[str, Any] = field(default_factory=dict)
    errors: list[Finding] = field(default_factory=list)
    notes: list[Finding] = field(default_factory=list)
    # (prefix of a path in the daemon's config, prefix of the path it came from in the Collector file)
    origins: list[tuple[tuple[Any, ...], tuple[Any, ...]]] = field(default_factory=list)

    def source_path(self, path: tuple[Any, ...]) -> tuple[Any, ...]:
        """Where a key of the daemon's config came from in the Collector file."""
        best: tuple[tuple[Any, ...], tuple[Any, ...]] | None = None
        for target, origin in self.origins:
            if path[: len(target)] == target and (best is None or len(target) > len(best[0])):
                best = (target, origin)
        return path if best is None else best[1] + path[len(best[0]) :]

    def daemon_lines(self, lines: Mapping[tuple[Any, ...], int]) -> dict[tuple[Any, ...], int]:
        """The line numbers of the Collector file, keyed by the daemon's key paths."""
        mapped: dict[tuple[Any, ...], int] = {}
        for target, origin in sorted(self.origins, key=lambda pair: len(pair[0])):
            for path, line in lines.items():
                if path[: len(origin)] == origin:
                    mapped[target + path[len(origin) :]] = line
        return mapped

    def error(self, path: tuple[Any, ...], message: str) -> None:
        self.errors.append(Finding(path, message))

    def note(self, path: tuple[Any, ...], message: str) -> None:
        self.notes.append(Finding(path, message))

    def carry(self, target: tuple[Any, ...], origin: tuple[Any, ...], value: Any) -> None:
        """Put a value of the Collector file at a path of the daemon's config."""
        node = self.data
        for key in target[:-1]:
            node = node.setdefault(key, {})
        node[target[-1]] = value
        self.origins.append((target, origin))


def translate(collector: Mapping[str, Any], exporter_types: Collection[str]) -> Translation:
    """The daemon's config for a Collector config (`exporter_types`: those the daemon has)."""
    out = Translation()
    for key in collector:
        if key not in _SECTIONS:
            out.error((key,), f"not a section of a Collector config; valid sections: {', '.join(_SECTIONS)}")
    sections = {name: _mapping(out, collector, (name,)) for name in _SECTIONS}
    service = sections["service"]
    pipelines = _mapping(out, service, ("service", "pipelines"))
    traces = _traces_pipeline(out, pipelines)
    if traces is not None:
        pipeline_id, pipeline = traces
        where = ("service", "pipelines", pipeline_id)
        out.origins.append(((), where))
        _receivers(out, sections["receivers"], _ids(out, pipeline, where + ("receivers",)), where)
        _processors(out, sections["processors"], _ids(out, pipeline, where + ("processors",)), where)
        exporter_ids = _ids(out, pipeline, where + ("exporters",))
        _exporters(out, sections, exporter_ids, where, exporter_types)
    _telemetry(out, _mapping(out, service, ("service", "telemetry")))
    _extensions(out, sections["extensions"], _ids(out, service, ("service", "extensions")))
    return out


def _mapping(out: Translation, parent: Mapping[str, Any], path: tuple[Any, ...]) -> dict[str, Any]:
    value = parent.get(path[-1])
    if value is None:
        return {}
    if not isinstance(value, dict):
        out.error(path, "must be a mapping")
        return {}
    return value


def _ids(out: Translation, parent: Mapping[str, Any], path: tuple[Any, ...]) -> list[tuple[int, str]]:
    value = parent.get(path[-1])
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        out.error(path, "must be a list of component IDs")
        return []
    return list(enumerate(value))


def _traces_pipeline(out: Translation, pipelines: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    found: tuple[str, dict[str, Any]] | None = None
    for pipeline_id, body in pipelines.items():
        path = ("service", "pipelines", pipeline_id)
        kind = component_type(str(pipeline_id))
        if kind != "traces":
            out.note(path, f"not honoured: the tail-sampler handles traces only; keep a Collector for {kind}")
        elif not isinstance(body, dict):
            out.error(path, "must be a mapping with receivers, processors and exporters")
        elif found is not None:
            out.error(
                path,
                f"the tail-sampler runs one traces pipeline and {found[0]!r} is that one; {_ELSEWHERE['pipeline']}",
            )
        else:
            found = (pipeline_id, body)
    if found is None:
        out.error(
            ("service", "pipelines"),
            "no traces pipeline: add service.pipelines.traces with receivers, processors [tail_sampling] and exporters",
        )
    return found


def _component(
    out: Translation, section: dict[str, Any], kind: str, component_id: str, where: tuple[Any, ...]
) -> dict[str, Any] | None:
    """A component's settings from its section; an empty body means its defaults."""
    if component_id not in section:
        out.error(where, f"{kind} {component_id!r} is not defined under {kind}s")
        return None
    body = section[component_id]
    if body is None:
        return {}
    if not isinstance(body, dict):
        out.error((f"{kind}s", component_id), "must be a mapping")
        return None
    return dict(body)


def _receivers(out: Translation, section: dict[str, Any], ids: list[tuple[int, str]], where: tuple[Any, ...]) -> None:
    # Unless the pipeline names an otlp receiver, the daemon's (on by default) is turned off.
    out.data["receivers"] = {"otlp": {"protocols": {}}}
    taken: dict[str, str] = {}
    for index, receiver_id in ids:
        kind = component_type(receiver_id)
        body = _component(out, section, "receiver", receiver_id, where + ("receivers", index))
        if body is None:
            continue
        origin = ("receivers", receiver_id)
        if kind not in ("otlp", "zipkin"):
            out.error(
                where + ("receivers", index),
                f"receiver type {kind!r} is not in the tail-sampler, which receives otlp and zipkin; "
                f"{_ELSEWHERE['receiver']}",
            )
        elif kind in taken:
            out.error(
                where + ("receivers", index),
                f"the tail-sampler has one {kind} receiver and {taken[kind]!r} is that one; merge the two",
            )
        elif kind == "otlp":
            taken[kind] = receiver_id
            out.carry(("receivers", "otlp"), origin, _otlp_receiver(out, body, origin))
        else:
            taken[kind] = receiver_id
            body.setdefault("endpoint", _COLLECTOR_ENDPOINTS["zipkin"])
            out.carry(("receivers", "zipkin"), origin, body)


def _otlp_receiver(out: Translation, body: dict[str, Any], origin: tuple[Any, ...]) -> dict[str, Any]:
    protocols = body.get("protocols")
    if not isinstance(protocols, dict) or not protocols:
        out.error(origin, "no protocols: add protocols.grpc and/or protocols.http (the Collector needs one too)")
        return body
    with_defaults = {}
    for name, settings in protocols.items():
        settings = {} if settings is None else settings
        if isinstance(settings, dict) and name in _COLLECTOR_ENDPOINTS:
            settings = {"endpoint": _COLLECTOR_ENDPOINTS[name], **settings}
        with_defaults[name] = settings
    return {**body, "protocols": with_defaults}


def _processors(out: Translation, section: dict[str, Any], ids: list[tuple[int, str]], where: tuple[Any, ...]) -> None:
    taken: dict[str, str] = {}
    for index, processor_id in ids:
        kind = component_type(processor_id)
        body = _component(out, section, "processor", processor_id, where + ("processors", index))
        if body is None:
            continue
        origin = ("processors", processor_id)
        if kind not in SUPPORTED_PROCESSORS:
            out.error(
                where + ("processors", index),
                f"processor type {kind!r} is not in the tail-sampler, which runs "
                f"{', '.join(SUPPORTED_PROCESSORS)}; {_ELSEWHERE['processor']}",
            )
        elif kind in taken:
            out.error(
                where + ("processors", index),
                f"the tail-sampler runs one {kind} processor and {taken[kind]!r} is that one; merge the two",
            )
        elif kind == "tail_sampling":
            taken[kind] = processor_id
            out.carry(("tail_sampling",), origin, body)
        elif kind == "batch":
            taken[kind] = processor_id
            out.carry(("batch",), origin, _batch(out, body, origin))
        else:
            taken[kind] = processor_id
            out.note(
                origin,
                "not applied: the tail-sampler does not watch its process memory; it bounds the traces it "
                "holds with tail_sampling.memory_limit_mib (deciding the oldest early) and can push back "
                "on clients with tail_sampling.block_on_overflow: size them as in docs/operations/memory.md",
            )
    if "tail_sampling" not in taken:
        out.error(
            where + ("processors",),
            "no tail_sampling processor in the traces pipeline, so nothing for the tail-sampler to do: add one",
        )


def _batch(out: Translation, body: dict[str, Any], origin: tuple[Any, ...]) -> dict[str, Any]:
    max_size = body.pop("send_batch_max_size", None)
    if max_size:
        out.note(
            origin + ("send_batch_max_size",),
            "not applied: the tail-sampler sends a batch at send_batch_size spans, which is also its upper "
            "bound; batch.send_batch_max_bytes bounds its bytes",
        )
    for key in ("metadata_keys", "metadata_cardinality_limit"):
        if body.pop(key, None):
            out.note(
                origin + (key,),
                "not applied: the tail-sampler batches kept traces by resource and scope, not by client metadata",
            )
    return body


def _exporters(
    out: Translation,
    sections: dict[str, dict[str, Any]],
    ids: list[tuple[int, str]],
    where: tuple[Any, ...],
    exporter_types: Collection[str],
) -> None:
    exporters: dict[str, Any] = {}
    out.data["exporters"] = exporters
    out.origins.append((("exporters",), where + ("exporters",)))
    for index, exporter_id in ids:
        collector_kind = component_type(exporter_id)
        kind = _EXPORTER_ALIASES.get(collector_kind, collector_kind)
        body = _component(out, sections["exporters"], "exporter", exporter_id, where + ("exporters", index))
        if body is None:
            continue
        origin = ("exporters", exporter_id)
        name = kind + exporter_id[len(collector_kind) :]  # otlp_grpc/backend: otlp/backend
        if kind == "debug":
            out.note(
                origin,
                "not honoured: the tail-sampler logs a summary of what it kept every logging.summary_interval; "
                "to see the kept spans themselves, add a file exporter",
            )
        elif kind not in exporter_types:
            out.error(
                where + ("exporters", index),
                f"exporter type {kind!r} is not in the tail-sampler, which exports "
                f"{', '.join(exporter_types)}; {_ELSEWHERE['exporter']}",
            )
        elif name in exporters:
            out.error(where + ("exporters", index), f"{exporter_id!r} is {name!r} in the tail-sampler, used twice")
        else:
            out.carry(("exporters", name), origin, _exporter(out, kind, body, origin, sections["extensions"]))
    if ids and all(component_type(exporter_id) == "debug" for _, exporter_id in ids):
        out.error(where + ("exporters",), "no exporter left for the tail-sampler: add an otlp, otlphttp or file one")


def _exporter(
    out: Translation, kind: str, body: dict[str, Any], origin: tuple[Any, ...], extensions: dict[str, Any]
) -> dict[str, Any]:
    if kind == "file" and body.get("format", "json") == "json":
        body.pop("format", None)  # the daemon's file exporter writes the Collector's json format
    if kind == "otlphttp" and body.get("encoding", "proto") == "proto":
        body.pop("encoding", None)  # the daemon's OTLP/HTTP exporter sends protobuf
    queue = body.get("sending_queue")
    storage = queue.get("storage") if isinstance(queue, dict) else None
    if isinstance(queue, dict) and isinstance(storage, str):
        # The Collector names a storage extension; the daemon's queue takes the directory itself.
        extension = extensions.get(storage)
        directory = extension.get("directory") if isinstance(extension, dict) else None
        where = origin + ("sending_queue", "storage")
        if component_type(storage) != "file_storage" or not isinstance(directory, str):
            out.error(where, f"{storage!r} must be a file_storage extension with a directory under extensions")
        else:
            queue = {**queue, "storage": {"directory": f"{directory.rstrip('/')}/{origin[1].replace('/', '_')}"}}
            body["sending_queue"] = queue
            out.note(where, f"the persistent queue keeps its files in {queue['storage']['directory']}")
    return body


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
