"""sampler/telemetry/logs.py: text and JSON log lines, and the masked effective config."""

from __future__ import annotations

import io
import json
import logging
from datetime import datetime

import pytest

from sampler.telemetry.logs import MASK, TextFormatter, effective_config, json_formatter, mask_secrets
from tests.support import config_dict, make_config


def render(formatter: logging.Formatter, message: str, *args: object, **extra: object) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger("sampler.test-logs")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.warning(message, *args, extra=extra)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_json_lines_carry_time_level_logger_message_and_extra_fields():
    line = render(json_formatter(), "exporter %s dropped %d span(s)", "otlp", 3, exporter="otlp", spans=3)
    assert line.endswith("\n") and line.count("\n") == 1
    record = json.loads(line)
    assert record["level"] == "WARNING"
    assert record["logger"] == "sampler.test-logs"
    assert record["message"] == "exporter otlp dropped 3 span(s)"
    assert record["exporter"] == "otlp" and record["spans"] == 3
    assert datetime.fromisoformat(record["time"]).utcoffset().total_seconds() == 0


def test_json_lines_keep_a_traceback_in_one_field():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter())
    logger = logging.getLogger("sampler.test-logs-exc")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        raise ValueError("bad value")
    except ValueError:
        logger.exception("policy failed")
    finally:
        logger.removeHandler(handler)
    record = json.loads(stream.getvalue())
    assert record["message"] == "policy failed"
    assert "ValueError: bad value" in record["exc_info"]


def test_text_lines_append_extra_fields_as_compact_json():
    line = render(TextFormatter(), "effective config", config={"a": [1, 2]})
    assert ' WARNING sampler.test-logs: effective config config={"a":[1,2]}\n' in line
    assert render(TextFormatter(), "plain %d", 5).endswith("WARNING sampler.test-logs: plain 5\n")


@pytest.fixture
def config_with_secrets():
    data = config_dict(
        {
            "otlphttp/vendor": {
                "endpoint": "https://user:hunter2@ingest.example:4318",
                "headers": {"x-api-key": "k-123", "x-scope": "team-a"},
            },
            "file": {"path": "kept.jsonl"},
        },
        [{"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}}],
        num_traces=1234,
    )
    return make_config(data)


def test_effective_config_masks_headers_and_url_credentials(config_with_secrets):
    summary = effective_config(config_with_secrets)
    vendor = summary["exporters"]["otlphttp/vendor"]
    assert vendor["headers"] == {"x-api-key": MASK, "x-scope": MASK}
    assert vendor["endpoint"] == f"https://{MASK}@ingest.example:4318"
    text = json.dumps(summary)
    for secret in ("k-123", "team-a", "hunter2", "user:"):
        assert secret not in text


def test_effective_config_has_policies_receivers_exporters_and_limits(config_with_secrets):
    summary = effective_config(config_with_secrets)
    assert summary["tail_sampling"]["policies"][0]["name"] == "errors"
    assert summary["tail_sampling"]["num_traces"] == 1234
    assert summary["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] == "127.0.0.1:0"
    assert summary["exporters"]["file"]["path"] == "kept.jsonl"
    assert summary["batch"]["send_batch_max_bytes"] > 0


def test_keys_naming_credentials_are_masked_anywhere():
    masked = mask_secrets({"auth": {"bearer_token": "t0k", "password": "p", "token_count": 0}, "tokens": ["a", "b"]})
    assert masked == {"auth": {"bearer_token": MASK, "password": MASK, "token_count": 0}, "tokens": [MASK, MASK]}
