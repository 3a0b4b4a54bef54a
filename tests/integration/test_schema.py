"""`tail-sampler schema`: a JSON Schema that accepts what the daemon accepts and flags what it rejects."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from sampler.config import read_config
from sampler.config.collector import is_collector_config
from tests.integration.test_cli import REPO, cli


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    result = cli("schema")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("path", sorted(str(p.relative_to(REPO)) for p in (REPO / "config").rglob("*.yaml")))
def test_every_shipped_config_matches_the_schema(validator, path):
    data = yaml.safe_load(Path(REPO / path).read_text())
    if is_collector_config(data):
        # A Collector config is not the daemon's format; what it translates to is.
        loaded = read_config(REPO / path, environ={"BACKEND_ENDPOINT": "backend:4317"})
        assert loaded.translation is not None
        data = yaml.safe_load(loaded.translation)
    errors = [error.message for error in validator.iter_errors(data)]
    assert errors == []


@pytest.mark.parametrize(
    "change, fragment",
    [
        (lambda c: c["tail_sampling"].update(decision_wait="10"), "decision_wait"),
        (lambda c: c["tail_sampling"].update(num_trace=5), "num_trace"),
        (lambda c: c["tail_sampling"]["policies"].append({"name": "x", "type": "latncy"}), "policies"),
        (lambda c: c["tail_sampling"]["policies"][1]["latency"].update(threshold=3), "policies"),
        (
            lambda c: c["tail_sampling"]["policies"].append(
                {"name": "a", "type": "and", "and": {"and_sub_policy": [{"name": "b", "type": "and"}]}}
            ),
            "policies",
        ),
        (lambda c: c["exporters"].update({"kafka": {}}), "exporters"),
        (lambda c: c["exporters"].update({"otlp/x": {"endpoint": "h:1", "compression": "zstd"}}), "exporters"),
    ],
)
def test_the_schema_rejects_what_the_daemon_rejects(validator, change, fragment):
    config = yaml.safe_load((REPO / "config" / "sampler.yaml").read_text())
    change(config)
    errors = list(validator.iter_errors(config))
    assert errors, "the schema accepted an invalid config"
    assert any(
        fragment in "/".join(str(p) for p in error.absolute_path) or fragment in error.message for error in errors
    )
