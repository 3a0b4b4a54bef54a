"""Hostile input to the config loader: any text is a Config or a ConfigError that
names the source; nothing else escapes parse_config."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sampler.config import Config, ConfigError, load_config, parse_config

FUZZ = settings(max_examples=200, deadline=timedelta(seconds=5), suppress_health_check=[HealthCheck.too_slow])
REPO = Path(__file__).resolve().parents[2]
SHIPPED = (REPO / "config" / "sampler.yaml").read_text()
COLLECTOR_EXAMPLE = (REPO / "config" / "examples" / "otel-collector.yaml").read_text()
ENVIRON = {"TAIL_SAMPLER_OUTPUT": "out.jsonl", "N": "12", "BACKEND_ENDPOINT": "backend:4317"}


def load(text: str) -> Config | None:
    try:
        return parse_config(text, "fuzz.yaml", ENVIRON)
    except ConfigError as exc:
        assert "fuzz.yaml" in str(exc), str(exc)
        return None


config_keys = st.sampled_from(
    [
        "receivers", "otlp", "protocols", "grpc", "http", "endpoint", "max_spans_per_request", "span_limits",
        "attribute_count_limit", "tail_sampling", "decision_wait", "num_traces", "policies", "name", "type",
        "probabilistic", "sampling_percentage", "and", "and_sub_policy", "composite", "composite_sub_policy",
        "not", "not_sub_policy", "drop", "drop_sub_policy", "latency", "threshold_ms", "string_attribute", "key",
        "values", "ottl_condition", "span", "exporters", "otlp/x", "file", "path", "batch", "admin", "logging",
        "level", "reload", "shutdown", "timeout", "sampling_strategy", "headers", "tls",
        # an OpenTelemetry Collector config (translated by sampler/config/collector/)
        "service", "processors", "pipelines", "traces", "logs", "extensions", "health_check", "telemetry",
        "metrics", "readers", "pull", "exporter", "prometheus", "host", "port", "address", "sending_queue",
        "storage", "file_storage/q", "directory", "zipkin", "debug", "memory_limiter", "otlp_grpc", "encoding",
    ]
)  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(["30s", "1m30s", "-1s", "10", "always_sample", "${env:N}", "${env:MISSING}", "$$", "span-ingest"]),
)
documents = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(config_keys, st.text(max_size=6), st.integers(0, 3)), children, max_size=5),
    ),
    max_leaves=40,
)


@FUZZ
@given(text=st.text(max_size=400))
def test_arbitrary_text(text: str) -> None:
    load(text)


@FUZZ
@given(document=documents)
def test_arbitrary_yaml_documents(document: Any) -> None:
    load(yaml.safe_dump(document))


@FUZZ
@given(
    sections=st.dictionaries(
        st.sampled_from(["receivers", "processors", "exporters", "extensions", "connectors", "service"]),
        documents,
        min_size=1,
        max_size=6,
    )
)
def test_arbitrary_collector_configs(sections: dict[str, Any]) -> None:
    load(yaml.safe_dump({"service": None, **sections}))


@st.composite
def mutated_config(draw: st.DrawFn, source: str) -> str:
    lines = source.splitlines()
    for _ in range(draw(st.integers(1, 4))):
        index = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["delete", "duplicate", "replace", "indent"]))
        if action == "delete":
            del lines[index]
        elif action == "duplicate":
            lines.insert(index, lines[index])
        elif action == "indent":
            lines[index] = "  " + lines[index]
        else:
            line = lines[index]
            position = draw(st.integers(0, len(line)))
            lines[index] = line[:position] + draw(st.text(max_size=4)) + line[position + 1 :]
        if not lines:
            break
    return "\n".join(lines)


@FUZZ
@given(text=mutated_config(SHIPPED))
def test_mutated_shipped_config(text: str) -> None:
    load(text)


@FUZZ
@given(text=mutated_config(COLLECTOR_EXAMPLE))
def test_mutated_collector_config(text: str) -> None:
    load(text)


def test_the_shipped_config_and_the_collector_example_load() -> None:
    assert load(SHIPPED) is not None
    assert load(COLLECTOR_EXAMPLE) is not None


def test_alias_bombs_and_self_references_are_refused_quickly() -> None:
    # A "billion laughs" document: nine levels of aliases, each nine times the last.
    laughs = ["a0: &a0 [x]"] + [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    assert load("\n".join(laughs) + "\ntail_sampling: {policies: *a9}\nexporters: {file: {path: x}}") is None
    assert load("&a [*a]") is None
    assert load("a: &a {b: *a}") is None


def test_deep_nesting_is_refused() -> None:
    assert load("[" * 10_000 + "]" * 10_000) is None
    assert load("a:\n" + "".join(" " * i + "b:\n" for i in range(1, 3000))) is None


def test_a_list_or_map_as_a_key_is_refused() -> None:
    # Found by the atheris target (tests/fuzz/): a YAML complex key raised TypeError.
    assert load("?\n- ") is None
    assert load("receivers:\n  ? {a: 1}\n  : x\n") is None


@settings(FUZZ, max_examples=100)
@given(
    data=st.one_of(
        st.binary(max_size=300),
        st.builds(lambda cut, b: SHIPPED.encode()[:cut] + b, st.integers(0, 2000), st.binary(max_size=8)),
    )
)
def test_arbitrary_bytes_in_a_file_are_a_config_or_a_config_error(tmp_path_factory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "fuzz.yaml"
    path.write_bytes(data)
    try:
        load_config(path, ENVIRON)
    except ConfigError as exc:
        assert "fuzz.yaml" in str(exc), str(exc)
