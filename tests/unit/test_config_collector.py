"""OpenTelemetry Collector config files: translated into the daemon's config, and what does not
carry over named at its line in the Collector file, with what to do instead."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from sampler.config import ConfigError, LoadedConfig, read_config_text
from sampler.config.exporters import FileExporterConfig, OtlpExporterConfig, OtlpHttpExporterConfig

PIPELINE = """\
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [tail_sampling, batch]
      exporters: [otlp]
"""
RECEIVERS = """\
receivers:
  otlp:
    protocols:
      grpc:
      http:
"""
PROCESSORS = """\
processors:
  batch:
  tail_sampling:
    decision_wait: 5s
    policies:
      - {name: errors, type: status_code, status_code: {status_codes: [ERROR]}}
"""
EXPORTERS = """\
exporters:
  otlp:
    endpoint: backend:4317
"""


def read(text: str, environ: dict[str, str] | None = None) -> LoadedConfig:
    return read_config_text(textwrap.dedent(text), "otel.yaml", environ or {})


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        read(text)
    message = str(caught.value)
    assert message.startswith("invalid configuration:\n"), message
    return [line.strip() for line in message.splitlines()[1:]]


def test_a_minimal_collector_config_becomes_the_daemon_config_with_the_collector_defaults():
    loaded = read(RECEIVERS + PROCESSORS + EXPORTERS + PIPELINE)
    config = loaded.config
    # The Collector listens on localhost unless told otherwise; so does its translation.
    assert config.receivers.otlp.protocols.grpc is not None
    assert config.receivers.otlp.protocols.grpc.endpoint == "localhost:4317"
    assert config.receivers.otlp.protocols.http is not None
    assert config.receivers.otlp.protocols.http.endpoint == "localhost:4318"
    assert config.receivers.zipkin is None
    assert config.tail_sampling.decision_wait == 5.0
    assert [policy.name for policy in config.policies] == ["errors"]
    assert isinstance(config.exporters["otlp"], OtlpExporterConfig)
    assert loaded.notes == ()
    assert loaded.translation is not None and "decision_wait: 5s" in loaded.translation


def test_the_daemon_own_format_is_never_taken_for_a_collector_config():
    loaded = read("tail_sampling:\n  policies: [{name: a, type: always_sample}]\nexporters:\n  file: {path: x}\n")
    assert loaded.translation is None and loaded.notes == ()


def test_components_outside_the_traces_pipeline_are_not_started_as_in_the_collector():
    text = RECEIVERS + "  zipkin:\n" + PROCESSORS + EXPORTERS + "  file:\n    path: out.jsonl\n" + PIPELINE
    config = read(text).config
    assert config.receivers.zipkin is None
    assert list(config.exporters) == ["otlp"]


def test_a_zipkin_only_pipeline_turns_the_otlp_receiver_off():
    pipeline = PIPELINE.replace("receivers: [otlp]", "receivers: [zipkin]")
    text = "receivers:\n  zipkin:\n" + PROCESSORS + EXPORTERS + pipeline
    config = read(text).config
    assert config.receivers.zipkin is not None and config.receivers.zipkin.endpoint == "localhost:9411"
    assert config.receivers.otlp.protocols.grpc is None and config.receivers.otlp.protocols.http is None


def test_renamed_exporter_types_and_their_former_names_are_both_understood():
    text = (
        RECEIVERS
        + PROCESSORS
        + "exporters:\n  otlp_grpc/a: {endpoint: 'a:4317'}\n  otlp_http/b: {endpoint: 'http://b:4318'}\n"
        + "  otlphttp/c: {endpoint: 'http://c:4318', encoding: proto}\n  file: {path: out.jsonl, format: json}\n"
        + PIPELINE.replace("exporters: [otlp]", "exporters: [otlp_grpc/a, otlp_http/b, otlphttp/c, file]")
    )
    exporters = read(text).config.exporters
    assert list(exporters) == ["otlp/a", "otlphttp/b", "otlphttp/c", "file"]
    assert isinstance(exporters["otlp/a"], OtlpExporterConfig)
    assert isinstance(exporters["otlphttp/c"], OtlpHttpExporterConfig)
    assert isinstance(exporters["file"], FileExporterConfig)


def test_telemetry_gives_the_admin_endpoint_and_the_log_level():
    text = (
        RECEIVERS
        + PROCESSORS
        + EXPORTERS
        + PIPELINE
        + "  telemetry:\n    logs: {level: warn, encoding: json}\n"
        + "    metrics:\n      readers:\n        - pull: {exporter: {prometheus: {host: '::', port: 9464}}}\n"
    )
    config = read(text).config
    assert config.admin.endpoint == "[::]:9464"
    assert (config.logging.level, config.logging.format) == ("warning", "json")
    older = read(RECEIVERS + PROCESSORS + EXPORTERS + PIPELINE + "  telemetry:\n    metrics: {address: ':8889'}\n")
    assert older.config.admin.endpoint == ":8889"


def test_what_changes_operation_not_data_is_a_note_at_its_line():
    text = textwrap.dedent(
        """\
        extensions:
          health_check: {endpoint: "0.0.0.0:13133"}
          pprof:
        receivers:
          otlp: {protocols: {grpc: }}
        processors:
          memory_limiter: {check_interval: 1s, limit_mib: 1000}
          batch: {send_batch_size: 512, send_batch_max_size: 1024, metadata_keys: [tenant]}
          tail_sampling:
            policies: [{name: all, type: always_sample}]
        exporters:
          otlp: {endpoint: "b:4317"}
          debug: {verbosity: detailed}
        service:
          extensions: [health_check, pprof]
          pipelines:
            traces:
              receivers: [otlp]
              processors: [memory_limiter, tail_sampling, batch]
              exporters: [otlp, debug]
            metrics:
              receivers: [otlp]
              exporters: [debug]
        """
    )
    loaded = read(text)
    notes = "\n".join(loaded.notes)
    assert [note.split(": ", 2)[:2] for note in loaded.notes] == [
        ["otel.yaml:2", "extensions.health_check"],
        ["otel.yaml:3", "extensions.pprof"],
        ["otel.yaml:7", "processors.memory_limiter"],
        ["otel.yaml:8", "processors.batch.send_batch_max_size"],
        ["otel.yaml:8", "processors.batch.metadata_keys"],
        ["otel.yaml:13", "exporters.debug"],
        ["otel.yaml:21", "service.pipelines.metrics"],
    ]
    assert "(0.0.0.0:13133): probes go to /healthz and /readyz on the admin endpoint (127.0.0.1:8888)" in notes
    assert "tail_sampling.memory_limit_mib" in notes and "docs/operations/memory.md" in notes
    assert "keep a Collector for metrics" in notes
    assert loaded.config.batch.send_batch_size == 512
    assert list(loaded.config.exporters) == ["otlp"]
    # The translation carries the notes as comments, for whoever keeps it.
    assert loaded.translation is not None
    assert "#   otel.yaml:7: processors.memory_limiter: not applied" in loaded.translation


def test_a_file_storage_queue_becomes_a_directory_of_its_own_per_exporter():
    text = (
        "extensions:\n  file_storage/queue: {directory: /var/lib/otelcol}\n"
        + RECEIVERS
        + PROCESSORS
        + "exporters:\n  otlp/backend:\n    endpoint: b:4317\n    sending_queue: {storage: file_storage/queue}\n"
        + PIPELINE.replace("exporters: [otlp]", "exporters: [otlp/backend]")
        + "  extensions: [file_storage/queue]\n"
    )
    loaded = read(text)
    exporter = loaded.config.exporters["otlp/backend"]
    assert isinstance(exporter, OtlpExporterConfig) and exporter.sending_queue.storage is not None
    assert exporter.sending_queue.storage.directory == "/var/lib/otelcol/otlp_backend"
    assert loaded.notes == (
        "otel.yaml:17: exporters.otlp/backend.sending_queue.storage: "
        "the persistent queue keeps its files in /var/lib/otelcol/otlp_backend",
    )


def test_what_would_change_the_data_is_an_error_at_its_line_with_what_to_do_instead():
    text = textwrap.dedent(
        """\
        receivers:
          otlp: {protocols: {grpc: }}
          jaeger: {protocols: {grpc: }}
        processors:
          k8sattributes:
          tail_sampling:
            policies: [{name: slow, type: latncy}]
        exporters:
          otlp: {endpoint: "b:4317", balancer_name: round_robin}
          kafka: {brokers: [k:9092]}
        service:
          pipelines:
            traces:
              receivers: [otlp, jaeger]
              processors: [k8sattributes, tail_sampling, transform]
              exporters: [otlp, kafka]
            traces/other:
              receivers: [otlp]
              processors: [tail_sampling]
              exporters: [otlp]
        """
    )
    found = errors(text)
    assert found[0] == (
        "otel.yaml:7: processors.tail_sampling.policies[0].type: unknown policy type 'latncy'; valid types: "
        "always_sample, latency, " + found[0].split("valid types: always_sample, latency, ")[1]
    )
    assert found[1:] == [
        "otel.yaml:9: exporters.otlp.balancer_name: the tail-sampler has no key 'balancer_name'; valid keys: "
        "compression, endpoint, headers, retry_on_failure, sending_queue, timeout, tls; leave it out",
        "otel.yaml:14: service.pipelines.traces.receivers[1]: receiver type 'jaeger' is not in the tail-sampler, "
        "which receives otlp and zipkin; receive with a Collector that exports OTLP to the tail-sampler",
        "otel.yaml:15: service.pipelines.traces.processors[0]: processor type 'k8sattributes' is not in the "
        "tail-sampler, which runs tail_sampling, batch, memory_limiter; run it in a Collector before the "
        "tail-sampler (exporting OTLP to it) or after it, or leave it out",
        "otel.yaml:15: service.pipelines.traces.processors[2]: processor 'transform' is not defined under processors",
        "otel.yaml:16: service.pipelines.traces.exporters[1]: exporter type 'kafka' is not in the tail-sampler, "
        "which exports otlp, otlphttp, file, zipkin; export OTLP to a Collector that has it",
        "otel.yaml:17: service.pipelines.traces/other: the tail-sampler runs one traces pipeline and 'traces' is "
        "that one; run this pipeline in a Collector",
    ]


def test_a_connector_in_the_traces_pipeline_is_named_as_one():
    text = (
        RECEIVERS
        + PROCESSORS
        + EXPORTERS
        + "connectors:\n  spanmetrics:\n"
        + PIPELINE.replace("exporters: [otlp]", "exporters: [otlp, spanmetrics]")
    )
    assert errors(text) == [
        "otel.yaml:22: service.pipelines.traces.exporters[1]: 'spanmetrics' is a connector; the tail-sampler has "
        "none: run the pipelines it joins in a Collector"
    ]


def test_a_collector_config_without_sampling_says_what_is_missing():
    assert errors("receivers:\n  otlp: {protocols: {grpc: }}\nservice:\n  pipelines: {}\n") == [
        "otel.yaml:4: service.pipelines: no traces pipeline: add service.pipelines.traces with receivers, "
        "processors [tail_sampling] and exporters"
    ]
    no_sampling = RECEIVERS + PROCESSORS + EXPORTERS + PIPELINE.replace("[tail_sampling, batch]", "[batch]")
    assert errors(no_sampling) == [
        "otel.yaml:19: service.pipelines.traces.processors: no tail_sampling processor in the traces pipeline, "
        "so nothing for the tail-sampler to do: add one"
    ]
    only_debug = RECEIVERS + PROCESSORS + "exporters:\n  debug:\n" + PIPELINE
    only_debug = only_debug.replace("exporters: [otlp]", "exporters: [debug]")
    assert errors(only_debug) == [
        "otel.yaml:19: service.pipelines.traces.exporters: no exporter left for the tail-sampler: "
        "add an otlp, otlphttp or file one"
    ]
    no_protocols = "receivers:\n  otlp:\n" + PROCESSORS + EXPORTERS + PIPELINE
    assert errors(no_protocols) == [
        "otel.yaml:2: receivers.otlp: no protocols: add protocols.grpc and/or protocols.http "
        "(the Collector needs one too)"
    ]


def test_a_section_of_the_daemon_format_in_a_collector_config_is_named():
    text = RECEIVERS + PROCESSORS + EXPORTERS + PIPELINE + "admin: {endpoint: '127.0.0.1:9999'}\n"
    assert errors(text) == [
        "otel.yaml:21: admin: not a section of a Collector config; valid sections: receivers, processors, "
        "exporters, extensions, connectors, service"
    ]


def test_the_translation_keeps_environment_references_as_written():
    text = RECEIVERS + PROCESSORS + "exporters:\n  otlp:\n    endpoint: ${env:BACKEND}\n" + PIPELINE
    loaded = read(text, {"BACKEND": "secret-host:4317"})
    exporter = loaded.config.exporters["otlp"]
    assert isinstance(exporter, OtlpExporterConfig) and exporter.endpoint == "secret-host:4317"
    assert loaded.translation is not None and "secret-host" not in loaded.translation
    assert yaml.safe_load(loaded.translation)["exporters"]["otlp"]["endpoint"] == "${env:BACKEND}"


def test_a_logs_pipeline_on_the_traces_pipeline_receivers_and_exporters_is_honoured():
    logs = "    logs:\n      receivers: [otlp]\n      processors: [batch]\n      exporters: [otlp]\n"
    loaded = read(RECEIVERS + PROCESSORS + EXPORTERS + PIPELINE + logs)
    [note] = [note for note in loaded.notes if "service.pipelines.logs" in note]
    assert note.startswith("otel.yaml:") and "honoured: log records arrive on the same receivers" in note
    assert list(loaded.config.exporters) == ["otlp"]


def test_a_logs_pipeline_that_would_route_or_change_records_differently_is_an_error_at_its_line():
    exporters = EXPORTERS + "  otlp/loki:\n    endpoint: loki:4317\n"
    logs = (
        "    logs:\n      receivers: [otlp, filelog]\n      processors: [batch, attributes]\n"
        "      exporters: [otlp/loki]\n"
    )
    receivers = RECEIVERS + "  filelog:\n    include: [/var/log/*.log]\n"
    processors = PROCESSORS + "  attributes:\n    actions: []\n"
    found = errors(receivers + processors + exporters + PIPELINE + logs)
    assert any("service.pipelines.logs.receivers[1]" in e and "traces pipeline's receivers only" in e for e in found)
    assert any("service.pipelines.logs.processors[1]" in e and "would change log records" in e for e in found)
    assert any("service.pipelines.logs.exporters[0]" in e and "traces pipeline's exporters" in e for e in found)
    assert all(e.startswith("otel.yaml:") for e in found), found
