"""Configuration: env substitution, typed validation, errors naming file, line and key path."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from sampler.config import Config, ConfigError, default_config_path, load_config, parse_config
from sampler.config.exporters import FileExporterConfig, OtlpExporterConfig, exporter_type
from sampler.config.types import parse_duration
from sampler.forward.exporters.registry import EXPORTERS, build_exporter
from sampler.policies.registry import POLICIES
from sampler.telemetry.metrics import Metrics
from tests.unit.helpers import FakeClock

MINIMAL_TAIL = """\
tail_sampling:
  policies:
    - {name: keep, type: always_sample}
"""


def _parse(text: str, environ: dict[str, str] | None = None, source: str = "test.yaml") -> Config:
    return parse_config(textwrap.dedent(text), source, environ or {})


def _error(text: str, environ: dict[str, str] | None = None, source: str = "test.yaml") -> str:
    with pytest.raises(ConfigError) as caught:
        _parse(text, environ, source)
    return str(caught.value)


def _error_lines(text: str, environ: dict[str, str] | None = None) -> list[str]:
    """The per-problem lines of a validation error, without the header."""
    message = _error(text, environ)
    assert message.startswith("invalid configuration:\n"), message
    return [line.strip() for line in message.splitlines()[1:]]


def _with_exporter_path(path: str) -> str:
    return MINIMAL_TAIL + f"exporters:\n  file:\n    path: {path}\n"


def _file_path(config: Config, name: str = "file") -> str:
    exporter = config.exporters[name]
    assert isinstance(exporter, FileExporterConfig)
    return exporter.path


# --- the shipped config ------------------------------------------------------------


def test_shipped_config_loads() -> None:
    path = default_config_path()
    assert path.exists()
    config = load_config(path, environ={})
    assert config.tail_sampling.decision_wait == 10.0
    assert config.tail_sampling.decision_wait_after_root_received == 2.0
    assert config.tail_sampling.num_traces == 50_000
    assert [(p.name, p.type) for p in config.policies] == [
        ("errors", "status_code"),
        ("slow", "latency"),
        ("baseline", "probabilistic"),
    ]
    assert config.policies[2].settings.sampling_percentage == 5
    assert _file_path(config) == "sampled-traces.jsonl"
    assert config.admin.endpoint == "127.0.0.1:8888"


def test_shipped_config_takes_env_overrides() -> None:
    environ = {"TAIL_SAMPLER_OUTPUT": "/tmp/out.jsonl", "TAIL_SAMPLER_ADMIN_ENDPOINT": "0.0.0.0:9999"}
    config = load_config(default_config_path(), environ=environ)
    assert _file_path(config) == "/tmp/out.jsonl"
    assert config.admin.endpoint == "0.0.0.0:9999"


def test_load_config_of_a_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=re.escape(f"{missing}: cannot read config")):
        load_config(missing, environ={})


def test_load_config_names_the_file_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(MINIMAL_TAIL + "exporters:\n  file: {path: x}\nbatch:\n  timeout: 5\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}:7: batch.timeout: duration 5 has no unit")):
        load_config(path, environ={})


def test_defaults() -> None:
    config = _parse(_with_exporter_path("out.jsonl"))
    assert config.tail_sampling.decision_wait == 30.0
    assert config.tail_sampling.num_shards == 4
    assert config.batch.send_batch_size == 8192
    assert config.receivers.otlp.protocols.grpc is not None and config.receivers.otlp.protocols.http is not None


# --- environment references ------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "environ", "expected"),
    [
        ("${env:OUT}", {"OUT": "a.jsonl"}, "a.jsonl"),
        ("${OUT}", {"OUT": "b.jsonl"}, "b.jsonl"),
        ("${env:OUT:-fallback.jsonl}", {}, "fallback.jsonl"),
        ("${env:OUT:-fallback.jsonl}", {"OUT": "set.jsonl"}, "set.jsonl"),
        ("x${OUT:-}", {}, "x"),
        ("x${env:OUT:-y}", {"OUT": ""}, "x"),
        ("/data/${env:DIR}/${NAME}.jsonl", {"DIR": "d", "NAME": "n"}, "/data/d/n.jsonl"),
        ("'cost-$$5'", {}, "cost-$5"),
        ("'$${env:OUT}'", {"OUT": "no"}, "${env:OUT}"),
        ("'$$$${OUT}'", {"OUT": "no"}, "$${OUT}"),
        ("'$$${OUT}'", {"OUT": "yes"}, "$yes"),
        ("'price: $5'", {}, "price: $5"),
        ("'${env:OUT}'", {"OUT": "${NOT_EXPANDED}"}, "${NOT_EXPANDED}"),  # expansion is not recursive
    ],
)
def test_env_references_in_strings(raw: str, environ: dict[str, str], expected: str) -> None:
    assert _file_path(_parse(_with_exporter_path(raw), environ)) == expected


def test_a_whole_value_reference_is_converted_to_the_type_of_its_key() -> None:
    text = """\
    tail_sampling:
      num_traces: ${env:TRACES}
      decision_cache: {sampled_cache_size: "${CACHE}"}
      policies:
        - name: keep
          type: probabilistic
          probabilistic:
            sampling_percentage: ${env:PCT}
    exporters:
      otlp:
        endpoint: localhost:4317
        tls:
          insecure: ${INSECURE}
    """
    config = _parse(text, {"TRACES": "16", "CACHE": "7", "PCT": "12.5", "INSECURE": "yes"})
    assert config.tail_sampling.num_traces == 16
    assert config.tail_sampling.decision_cache.sampled_cache_size == 7
    assert config.policies[0].settings.sampling_percentage == 12.5
    exporter = config.exporters["otlp"]
    assert isinstance(exporter, OtlpExporterConfig)
    assert exporter.tls.insecure is True  # "yes" read as a boolean because the key is one


def test_a_quoted_reference_stays_a_string() -> None:
    lines = _error_lines(
        """\
        tail_sampling:
          num_traces: "${env:TRACES}"
          policies: [{name: keep, type: always_sample}]
        exporters:
          file: {path: x}
        """,
        {"TRACES": "0x10"},
    )
    assert len(lines) == 1
    assert lines[0].startswith("test.yaml:2: tail_sampling.num_traces: ")


def test_missing_env_var_names_file_line_and_key() -> None:
    message = _error(_with_exporter_path("${env:SAMPLER_OUT_MISSING}"))
    assert message == "test.yaml:6: exporters.file.path: environment variable SAMPLER_OUT_MISSING is not set"
    message = _error(MINIMAL_TAIL + "exporters:\n  file: {path: x}\nadmin:\n  endpoint: 'h:${PORT}'\n")
    assert message == "test.yaml:7: admin.endpoint: environment variable PORT is not set"


def test_env_references_in_a_sequence_and_keys_are_left_alone() -> None:
    text = """\
    tail_sampling:
      policies:
        - name: errors
          type: status_code
          status_code: {status_codes: ["${env:CODE}", OK]}
    exporters:
      otlp:
        endpoint: collector:4317
        headers:
          ${HEADER}: "Bearer ${env:TOKEN}"
    """
    config = _parse(text, {"CODE": "ERROR", "TOKEN": "t0k"})
    assert config.policies[0].settings.status_codes == ["ERROR", "OK"]
    exporter = config.exporters["otlp"]
    assert isinstance(exporter, OtlpExporterConfig)
    assert exporter.headers == {"${HEADER}": "Bearer t0k"}


# --- validation errors -------------------------------------------------------------


def test_errors_name_file_line_and_key_path() -> None:
    lines = _error_lines(
        """\
        tail_sampling:
          num_traces: -1
          policies:
            - {name: keep, type: always_sample}
        exporters:
          otlp:
            tls: {insecure: true}
        batch:
          send_batch_size: lots
        """
    )
    assert "test.yaml:2: tail_sampling.num_traces: Input should be greater than 0" in lines
    assert any(line.startswith("test.yaml:9: batch.send_batch_size: ") for line in lines)
    assert "test.yaml:6: exporters.otlp.endpoint: required key is missing" in lines
    assert len(lines) == 3  # every problem is reported in one run


def test_unknown_key_suggests_the_closest_one() -> None:
    lines = _error_lines(
        """\
        tail_sampling:
          decision_wiat: 5s
          policies: [{name: keep, type: always_sample}]
        exporters:
          file: {path: x}
        """
    )
    assert len(lines) == 1
    assert lines[0].startswith(
        "test.yaml:2: tail_sampling.decision_wiat: unknown key 'decision_wiat' (did you mean 'decision_wait'?)"
    )
    assert "decision_cache, decision_wait, decision_wait_after_root_received," in lines[0]


def test_unknown_key_in_a_policy_and_an_exporter() -> None:
    lines = _error_lines(
        """\
        tail_sampling:
          policies:
            - name: slow
              type: latency
              latency: {threshold_ms: 5, uper_threshold_ms: 9}
        exporters:
          otlp:
            endpoint: x:4317
            compresion: gzip
        """
    )
    assert (
        "test.yaml:5: tail_sampling.policies[0].latency.uper_threshold_ms: unknown key 'uper_threshold_ms' "
        "(did you mean 'upper_threshold_ms'?); valid keys: threshold_ms, upper_threshold_ms"
    ) in lines
    expected = "test.yaml:9: exporters.otlp.compresion: unknown key 'compresion' (did you mean 'compression'?)"
    assert any(line.startswith(expected) for line in lines)


def test_unknown_top_level_section() -> None:
    (line,) = _error_lines(_with_exporter_path("x") + "procesors: {}\n")
    assert line.startswith("test.yaml:7: procesors: unknown key 'procesors'")


def test_unknown_policy_type_lists_the_valid_types() -> None:
    (line,) = _error_lines(
        """\
        tail_sampling:
          policies:
            - {name: keep, type: always_sample}
            - name: slow
              type: latncy
        exporters:
          file: {path: x}
        """
    )
    assert line == (
        "test.yaml:5: tail_sampling.policies[1].type: unknown policy type 'latncy'; valid types: "
        + ", ".join(POLICIES.types)
    )
    assert "span_count" in line and "probabilistic" in line


def test_policy_without_a_type_lists_the_valid_types() -> None:
    (line,) = _error_lines("tail_sampling:\n  policies:\n    - {name: x}\nexporters:\n  file: {path: x}\n")
    assert line.startswith("test.yaml:3: tail_sampling.policies[0].type: required key is missing")


def test_policy_settings_errors_name_the_policy_key() -> None:
    (line,) = _error_lines(
        """\
        tail_sampling:
          policies:
            - name: half
              type: probabilistic
              probabilistic:
                sampling_percentage: 150
        exporters:
          file: {path: x}
        """
    )
    assert line == (
        "test.yaml:6: tail_sampling.policies[0].probabilistic.sampling_percentage: "
        "Input should be less than or equal to 100"
    )


def test_unknown_exporter_type_lists_the_valid_types() -> None:
    (line,) = _error_lines(MINIMAL_TAIL + "exporters:\n  kafka/main:\n    brokers: [x]\n")
    assert line == (
        "test.yaml:5: exporters.kafka/main: unknown exporter type 'kafka'; valid types: otlp, otlphttp, file, zipkin"
    )


def test_named_exporters_of_one_type() -> None:
    config = _parse(MINIMAL_TAIL + "exporters:\n  file/a: {path: a}\n  file/b: {path: b}\n")
    assert (_file_path(config, "file/a"), _file_path(config, "file/b")) == ("a", "b")


def test_validation_and_the_daemon_read_one_exporter_table() -> None:
    config = _parse(
        MINIMAL_TAIL
        + "exporters:\n"
        + "  otlp/a: {endpoint: 127.0.0.1:4317}\n"
        + "  otlphttp/b: {endpoint: http://127.0.0.1:4318}\n"
        + "  file/c: {path: c.jsonl}\n"
        + "  zipkin/d: {endpoint: http://127.0.0.1:9411/api/v2/spans}\n"
    )
    assert sorted(exporter_type(name) for name in config.exporters) == sorted(EXPORTERS)
    for name, block in config.exporters.items():
        kind = exporter_type(name)
        assert type(block) is EXPORTERS[kind].config_model
        exporter = build_exporter(name, block, Metrics(), FakeClock())
        assert (exporter.name, exporter.kind) == (name, kind)


def test_duplicate_policy_names_are_rejected() -> None:
    lines = _error_lines(
        """\
        tail_sampling:
          policies:
            - {name: keep, type: always_sample}
            - {name: other, type: always_sample}
            - {name: keep, type: span_count, span_count: {min_spans: 2}}
        exporters:
          file: {path: x}
        """
    )
    assert len(lines) == 1
    assert lines[0].startswith("test.yaml:5: tail_sampling.policies[2].name: duplicate policy name 'keep'")
    assert "policies[0]" in lines[0]


def test_missing_sections() -> None:
    assert _error_lines("tail_sampling: {}\nexporters: {file: {path: x}}\n") == [
        "test.yaml:1: tail_sampling.policies: required key is missing"
    ]
    assert _error_lines("exporters: {file: {path: x}}\n") == ["test.yaml:1: tail_sampling: required key is missing"]
    assert _error_lines(MINIMAL_TAIL) == ["test.yaml:1: exporters: required key is missing"]
    (empty,) = _error_lines(MINIMAL_TAIL + "exporters: {}\n")
    assert empty.startswith("test.yaml:4: exporters: ")
    (no_policies,) = _error_lines("tail_sampling: {policies: []}\nexporters: {file: {path: x}}\n")
    assert no_policies.startswith("test.yaml:1: tail_sampling.policies: ")


# --- durations ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1m30s", 90.0),
        ("250ms", 0.25),
        ("0", 0.0),
        (0, 0.0),
        ("30s", 30.0),
        ("1h", 3600.0),
        ("1.5s", 1.5),
        (".5s", 0.5),
        ("2h45m", 9900.0),
        ("500us", 0.0005),
        ("500µs", 0.0005),
        ("100ns", 1e-7),
        (" 10s ", 10.0),
    ],
)
def test_durations(value: Any, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds, rel=1e-12)


@pytest.mark.parametrize("value", [5, 1.5, "5", "1.5", "abc", "-1s", "1s30", "5 s", "s", "1d", True, None, [1]])
def test_bad_durations_are_rejected(value: Any) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


def test_bare_number_duration_message() -> None:
    with pytest.raises(ValueError, match="duration 30 has no unit; write it like 30s, 250ms or 1m"):
        parse_duration(30)
    with pytest.raises(ValueError, match=re.escape("invalid duration '1d'; valid units are ns, us, ms, s, m, h")):
        parse_duration("1d")


def test_durations_in_the_config() -> None:
    config = _parse(
        """\
        tail_sampling:
          decision_wait: 1m30s
          decision_wait_after_root_received: 250ms
          policies: [{name: keep, type: always_sample}]
        exporters:
          file: {path: x}
        batch:
          timeout: 0.5s
        logging:
          summary_interval: 0
        """
    )
    assert config.tail_sampling.decision_wait == 90.0
    assert config.tail_sampling.decision_wait_after_root_received == 0.25
    assert config.batch.timeout == 0.5
    assert config.logging.summary_interval == 0.0
    bare = "tail_sampling:\n  decision_wait: 30\n  policies: [{name: a, type: always_sample}]\n"
    bare += "exporters: {file: {path: x}}\n"
    (line,) = _error_lines(bare)
    assert line == "test.yaml:2: tail_sampling.decision_wait: duration 30 has no unit; write it like 30s, 250ms or 1m"
    (zero,) = _error_lines(bare.replace("decision_wait: 30", "decision_wait: 0s"))
    assert zero.startswith("test.yaml:2: tail_sampling.decision_wait: Input should be greater than 0")


# --- YAML problems -------------------------------------------------------------------


def test_invalid_yaml_reports_the_line() -> None:
    message = _error("tail_sampling:\n  policies: [\n    {name: a, type: always_sample}\nexporters:\n  file: {}\n")
    assert message.startswith("test.yaml:4: invalid YAML: "), message
    message = _error("tail_sampling:\n  policies:\n  - a\n bad_indent: 1\n")
    assert message.startswith("test.yaml:4: invalid YAML: "), message
    message = _error("a: 1\na: [\n")
    assert message.startswith("test.yaml:3: invalid YAML: "), message


def test_tabs_are_invalid_yaml() -> None:
    assert "invalid YAML" in _error("tail_sampling:\n\tpolicies: []\n")


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_file(text: str) -> None:
    assert _error(text) == "test.yaml: the config file is empty"


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n", "---\n"])
def test_top_level_must_be_a_mapping(text: str) -> None:
    assert _error(text) == (
        "test.yaml:1: the config must be a mapping of sections (receivers, tail_sampling, exporters...)"
    )


# --- known problems ---------------------------------------------------------------------


def test_an_aliased_value_is_substituted_once() -> None:
    text = MINIMAL_TAIL + 'exporters:\n  file/a: {path: &p "out-$${HOME}.jsonl"}\n  file/b: {path: *p}\n'
    config = _parse(text, {"HOME": "/root"})
    assert _file_path(config, "file/a") == "out-${HOME}.jsonl"
    assert _file_path(config, "file/b") == "out-${HOME}.jsonl"


def test_error_path_keeps_an_exporter_name_ending_in_config() -> None:
    (line,) = _error_lines(MINIMAL_TAIL + "exporters:\n  otlp/tempoConfig:\n    tls: {insecure: true}\n")
    assert line == "test.yaml:5: exporters.otlp/tempoConfig.endpoint: required key is missing"


def test_numeric_env_value_in_a_string_field() -> None:
    text = MINIMAL_TAIL + "exporters:\n  otlp:\n    endpoint: ${env:HOST}\n    headers:\n      x-api-key: ${env:KEY}\n"
    config = _parse(text, {"HOST": "8080", "KEY": "12345"})
    exporter = config.exporters["otlp"]
    assert isinstance(exporter, OtlpExporterConfig)
    assert exporter.endpoint == "8080"
    assert exporter.headers == {"x-api-key": "12345"}


def test_recursive_alias_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        _parse(MINIMAL_TAIL + "exporters: {file: {path: x}}\nextra: &a [*a]\n")


# --- durable forwarding ------------------------------------------------------------------


def test_a_persistent_queue_parses_with_its_defaults() -> None:
    config = _parse(
        MINIMAL_TAIL + "exporters:\n  otlp:\n    endpoint: b:4317\n    sending_queue: {storage: {directory: /q}}\n"
    )
    exporter = config.exporters["otlp"]
    assert isinstance(exporter, OtlpExporterConfig)
    storage = exporter.sending_queue.storage
    assert storage is not None
    assert (storage.directory, storage.max_size_mib, storage.fsync, storage.fsync_interval) == (
        "/q",
        1024,
        "interval",
        1.0,
    )


def test_persistent_queue_errors_name_the_key_and_the_choices() -> None:
    lines = _error_lines(
        MINIMAL_TAIL
        + "exporters:\n  otlp:\n    endpoint: b:4317\n    sending_queue:\n      storage:\n"
        + "        directory: /q\n        fsync: sometimes\n        max_size_mib: 0\n"
    )
    assert lines == [
        "test.yaml:10: exporters.otlp.sending_queue.storage.fsync: Input should be 'always', 'interval' or 'never'",
        "test.yaml:11: exporters.otlp.sending_queue.storage.max_size_mib: Input should be greater than 0",
    ]


def test_a_persistent_queue_needs_the_queue_enabled() -> None:
    (line,) = _error_lines(
        MINIMAL_TAIL + "exporters:\n  otlp:\n    endpoint: b:4317\n"
        "    sending_queue:\n      enabled: false\n      storage: {directory: /q}\n"
    )
    assert line == (
        "test.yaml:9: exporters.otlp.sending_queue.storage: "
        "a persistent queue needs the sending queue enabled (enabled: true)"
    )


def test_the_decision_cache_persist_path_is_off_by_default() -> None:
    config = _parse(MINIMAL_TAIL + "exporters: {file: {path: x}}\n")
    assert config.tail_sampling.decision_cache.persist_path is None
