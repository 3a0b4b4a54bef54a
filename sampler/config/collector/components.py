"""The parts of a Collector traces pipeline the daemon has: otlp and zipkin receivers, the
tail_sampling and batch processors (memory_limiter as a note), and otlp, otlphttp, zipkin and file
exporters with their file_storage queues."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sampler.config.collector.translation import ELSEWHERE, Translation, component, component_type

SUPPORTED_PROCESSORS = ("tail_sampling", "batch", "memory_limiter")
# The Collector's defaults (since v0.104, components listen on localhost unless told otherwise).
_COLLECTOR_ENDPOINTS = {"grpc": "localhost:4317", "http": "localhost:4318", "zipkin": "localhost:9411"}
# The Collector's names for exporter types (since v0.144) the daemon knows by their former names.
_EXPORTER_ALIASES = {"otlp_grpc": "otlp", "otlp_http": "otlphttp"}


def receivers(
    out: Translation, sections: dict[str, dict[str, Any]], ids: list[tuple[int, str]], where: tuple[Any, ...]
) -> None:
    # Unless the pipeline names an otlp receiver, the daemon's (on by default) is turned off.
    out.data["receivers"] = {"otlp": {"protocols": {}}}
    taken: dict[str, str] = {}
    for index, receiver_id in ids:
        kind = component_type(receiver_id)
        body = component(out, sections, "receiver", receiver_id, where + ("receivers", index))
        if body is None:
            continue
        origin = ("receivers", receiver_id)
        if kind not in ("otlp", "zipkin"):
            out.error(
                where + ("receivers", index),
                f"receiver type {kind!r} is not in the tail-sampler, which receives otlp and zipkin; "
                f"{ELSEWHERE['receiver']}",
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


def processors(
    out: Translation, sections: dict[str, dict[str, Any]], ids: list[tuple[int, str]], where: tuple[Any, ...]
) -> None:
    taken: dict[str, str] = {}
    for index, processor_id in ids:
        kind = component_type(processor_id)
        body = component(out, sections, "processor", processor_id, where + ("processors", index))
        if body is None:
            continue
        origin = ("processors", processor_id)
        if kind not in SUPPORTED_PROCESSORS:
            out.error(
                where + ("processors", index),
                f"processor type {kind!r} is not in the tail-sampler, which runs "
                f"{', '.join(SUPPORTED_PROCESSORS)}; {ELSEWHERE['processor']}",
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


def exporters(
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
        body = component(out, sections, "exporter", exporter_id, where + ("exporters", index))
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
                f"{', '.join(exporter_types)}; {ELSEWHERE['exporter']}",
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
