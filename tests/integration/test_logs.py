"""The daemon's logs as an operator sees them: a real `tail-sampler run` subprocess."""

from __future__ import annotations

import json
import os
import signal
from datetime import datetime
from pathlib import Path

from tests.integration.test_cli import DaemonProcess, write_config
from tests.support import GrpcSink, config_dict, fast_retry, grpc_export, make_request, make_trace

SECRET = "s3cr3t-token-value"


def run_and_stop(tmp_path: Path, sink: GrpcSink, log_format: str) -> str:
    exporter = fast_retry(sink.endpoint, headers={"authorization": "Bearer ${env:EXPORT_TOKEN}"})
    data = config_dict({"otlp": exporter}, decision_wait="100ms")
    data["logging"]["format"] = log_format
    path, ports = write_config(tmp_path, data)
    daemon = DaemonProcess(path, ports["admin"], env={**os.environ, "EXPORT_TOKEN": SECRET})
    try:
        _, spans = make_trace(spans=3)
        grpc_export(f"127.0.0.1:{ports['grpc']}", make_request(spans))
        sink.wait_for_spans(3)
        code, output = daemon.terminate(signal.SIGTERM)
    finally:
        daemon.kill()
    assert code == 0, output
    return output


def test_json_logs_are_one_object_per_line_with_the_effective_config_and_no_secret(tmp_path, grpc_sink):
    output = run_and_stop(tmp_path, grpc_sink, "json")
    records = [json.loads(line) for line in output.splitlines()]
    for record in records:
        assert {"time", "level", "logger", "message"} <= set(record), record
        datetime.fromisoformat(record["time"])
    messages = [record["message"] for record in records]
    assert any(message.startswith("tail sampler ") and " ready: " in message for message in messages)
    assert any(message.startswith("shut down in ") for message in messages)
    summary = next(record for record in records if record["message"] == "effective config (secrets masked)")
    config = summary["config"]
    assert [policy["name"] for policy in config["tail_sampling"]["policies"]] == ["keep-all"]
    assert config["exporters"]["otlp"]["endpoint"] == grpc_sink.endpoint
    assert config["exporters"]["otlp"]["headers"] == {"authorization": "***"}
    assert config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"].startswith("127.0.0.1:")
    assert config["tail_sampling"]["num_traces"] == 10000
    assert SECRET not in output


def test_text_logs_carry_the_effective_config_on_one_line_without_the_secret(tmp_path, grpc_sink):
    output = run_and_stop(tmp_path, grpc_sink, "text")
    line = next(line for line in output.splitlines() if "effective config (secrets masked) config=" in line)
    assert " INFO sampler: " in line
    config = json.loads(line.split(" config=", 1)[1])
    assert config["exporters"]["otlp"]["headers"] == {"authorization": "***"}
    assert SECRET not in output
