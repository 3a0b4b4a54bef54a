"""The OpenTelemetry JavaScript SDK as a client: a Node script (tests/js) creates traces with
the SDK's own tracer and sends them with its OTLP exporters, over gRPC and over HTTP
(protobuf), to the daemon on 127.0.0.1; the kept trace must reach a real OTLP/gRPC sink
whole, and every trace must have been decided.

The SDK is installed from tests/js's lockfile into .peers/otel-js with `npm ci`."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.peers import REPO_ROOT, peer_dir, run_provisioning, unavailable
from tests.support import GrpcSink, config_dict, fast_retry, wait_until

JS_SOURCES = REPO_ROOT / "tests" / "js"
CLIENT_FILES = ("package.json", "package-lock.json", ".npmrc", "send-traces.mjs")
MINIMUM_NODE = (20, 6)
TRACES = 6
SPANS_PER_TRACE = 4
ERRORS = {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}}


@pytest.fixture(scope="module")
def js_client() -> tuple[str, Path]:
    """(node, the directory holding send-traces.mjs and the installed SDK)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        unavailable("otel-js", "node and npm must be on PATH")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    found = tuple(int(part) for part in re.findall(r"\d+", version)[:2])
    if found < MINIMUM_NODE:
        unavailable("otel-js", f"node {version} is older than {'.'.join(map(str, MINIMUM_NODE))}")
    directory = peer_dir("otel-js")
    for name in CLIENT_FILES:
        shutil.copyfile(JS_SOURCES / name, directory / name)
    # `npm ci` starts from scratch each time; skip it while the lockfile is what was installed.
    lock_digest = hashlib.sha256((JS_SOURCES / "package-lock.json").read_bytes()).hexdigest()
    marker = directory / "node_modules" / ".installed-lock-sha256"
    if not marker.exists() or marker.read_text() != lock_digest:
        run_provisioning("otel-js", [npm, "ci", "--ignore-scripts"], cwd=directory)
        marker.write_text(lock_digest)
    return node, directory


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_js_sdk_traces_are_decided_and_kept_whole(js_client, start_daemon, grpc_sink: GrpcSink, protocol):
    node, directory = js_client
    daemon = start_daemon(config_dict({"otlp": fast_retry(grpc_sink.endpoint)}, [ERRORS], decision_wait="500ms"))
    endpoint = daemon.grpc_endpoint if protocol == "grpc" else daemon.http_url
    result = subprocess.run(
        [node, "send-traces.mjs", protocol, endpoint, str(TRACES)],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "error" not in result.stderr.lower(), result.stderr  # the SDK's diag logger reports failed exports
    sent = json.loads(result.stdout)["traces"]
    assert len(sent) == TRACES

    wait_until(
        lambda: daemon.scrape().value("tail_sampler_traces_decided_total") == TRACES,
        timeout=15,
        what="every trace decided",
    )
    metrics = daemon.scrape()
    assert metrics.value("tail_sampler_received_spans_total", protocol=protocol) == TRACES * SPANS_PER_TRACE
    assert metrics.value("tail_sampler_traces_decided_total", decision="kept") == 1
    assert metrics.value("tail_sampler_traces_decided_total", decision="dropped") == TRACES - 1
    assert metrics.value("tail_sampler_traces_kept_by_policy_total", policy="errors") == 1

    [failing] = [trace for trace in sent if trace["error"]]
    spans = grpc_sink.wait_for_spans(SPANS_PER_TRACE)
    assert {span.trace_id.hex() for span in spans} == {failing["trace_id"]}
    assert sorted(span.name for span in spans) == ["POST /checkout", "POST /v1/charges", "SELECT orders", "charge"]
    assert {span.service for span in spans} == {"js-checkout"}
    # Whole: one root, and every other span's parent is in the trace.
    ids = {span.span_id for span in spans}
    assert [span.name for span in spans if not span.span.parent_span_id] == ["POST /checkout"]
    assert all(span.span.parent_span_id in ids for span in spans if span.span.parent_span_id)
    assert {span.name for span in spans if span.span.status.code == 2} == {"POST /checkout", "POST /v1/charges"}
    wait_until(lambda: daemon.scrape().value("tail_sampler_exporter_sent_spans_total") == SPANS_PER_TRACE)
