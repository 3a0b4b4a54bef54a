"""The OpenTelemetry JavaScript SDK as a client: a Node script (tests/js) creates traces with
the SDK's own tracer and sends them with its OTLP exporters, over gRPC and over HTTP
(protobuf), to the daemon on 127.0.0.1; every trace must be decided, and the kept ones
must reach a real OTLP/gRPC sink whole.

The SDK is installed from tests/js's lockfile into .peers/otel-js with `npm ci`."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from tests.peers import REPO_ROOT, peer_dir, run_provisioning, unavailable
from tests.support import DaemonThread, Metrics, SpanSeen, config_dict, fast_retry, wait_until

JS_SOURCES = REPO_ROOT / "tests" / "js"
CLIENT_FILES = ("package.json", "package-lock.json", ".npmrc", "send-traces.mjs")
MINIMUM_NODE = (20, 6)
TRACES = 6
SPANS_PER_TRACE = 4
ERRORS = {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}}
KEEP_ALL = {"name": "everything", "type": "always_sample"}


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


def send_traces(js_client: tuple[str, Path], endpoint: str, protocol: str) -> list[dict]:
    """Run the Node script; returns the traces it reports having sent."""
    node, directory = js_client
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
    return sent


def assert_whole(spans: list[SpanSeen], error: bool) -> None:
    """The four spans the script makes, from one service, one root, every parent present."""
    assert sorted(span.name for span in spans) == ["POST /checkout", "POST /v1/charges", "SELECT orders", "charge"]
    assert {span.service for span in spans} == {"js-checkout"}
    ids = {span.span_id for span in spans}
    assert [span.name for span in spans if not span.span.parent_span_id] == ["POST /checkout"]
    assert all(span.span.parent_span_id in ids for span in spans if span.span.parent_span_id)
    failed = {span.name for span in spans if span.span.status.code == Status.STATUS_CODE_ERROR}
    assert failed == ({"POST /checkout", "POST /v1/charges"} if error else set())


def wait_until_decided(daemon: DaemonThread, protocol: str) -> Metrics:
    wait_until(
        lambda: daemon.scrape().value("tail_sampler_traces_decided_total") == TRACES,
        timeout=15,
        what="every trace decided",
    )
    metrics = daemon.scrape()
    assert metrics.value("tail_sampler_received_spans_total", protocol=protocol) == TRACES * SPANS_PER_TRACE
    return metrics


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_js_sdk_failing_trace_is_kept_whole_and_the_rest_dropped(js_client, start_daemon, grpc_sink, protocol):
    daemon = start_daemon(config_dict({"otlp": fast_retry(grpc_sink.endpoint)}, [ERRORS], decision_wait="500ms"))
    sent = send_traces(js_client, daemon.grpc_endpoint if protocol == "grpc" else daemon.http_url, protocol)

    metrics = wait_until_decided(daemon, protocol)
    assert metrics.value("tail_sampler_traces_decided_total", decision="kept") == 1
    assert metrics.value("tail_sampler_traces_decided_total", decision="dropped") == TRACES - 1
    assert metrics.value("tail_sampler_traces_kept_by_policy_total", policy="errors") == 1

    [failing] = [trace for trace in sent if trace["error"]]
    spans = grpc_sink.wait_for_spans(SPANS_PER_TRACE)
    assert {span.trace_id.hex() for span in spans} == {failing["trace_id"]}
    assert_whole(spans, error=True)
    wait_until(lambda: daemon.scrape().value("tail_sampler_exporter_sent_spans_total") == SPANS_PER_TRACE)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_js_sdk_traces_all_arrive_whole_with_always_sample(js_client, start_daemon, grpc_sink, protocol):
    daemon = start_daemon(config_dict({"otlp": fast_retry(grpc_sink.endpoint)}, [KEEP_ALL], decision_wait="500ms"))
    sent = send_traces(js_client, daemon.grpc_endpoint if protocol == "grpc" else daemon.http_url, protocol)

    metrics = wait_until_decided(daemon, protocol)
    assert metrics.value("tail_sampler_traces_kept_by_policy_total", policy="everything") == TRACES
    spans = grpc_sink.wait_for_spans(TRACES * SPANS_PER_TRACE)
    by_trace: dict[str, list[SpanSeen]] = {}
    for span in spans:
        by_trace.setdefault(span.trace_id.hex(), []).append(span)
    assert set(by_trace) == {trace["trace_id"] for trace in sent}
    for trace in sent:
        assert_whole(by_trace[trace["trace_id"]], error=trace["error"])
