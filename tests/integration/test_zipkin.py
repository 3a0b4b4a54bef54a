"""Zipkin on both sides, over real sockets: Zipkin v2 JSON posted to the daemon's
Zipkin receiver reaches a real OTLP server, and OTLP sent to the daemon reaches a
real Zipkin server (the io.zipkin:zipkin-server jar, see tests/peers.py) through the
Zipkin exporter, checked with Zipkin's own query API."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from sampler.codecs.zipkin import proto as zipkin_proto
from tests.integration.test_cli import free_port
from tests.peers import peer_dir, run_provisioning, unavailable
from tests.support import (
    MS,
    T0,
    DaemonThread,
    config_dict,
    fast_retry,
    grpc_export,
    kv,
    make_request,
    make_span,
    wait_until,
)

ZIPKIN_SERVER_VERSION = "3.5.1"
ERRORS_ONLY = [{"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}}]
T0_US = T0 // 1000


def with_zipkin_receiver(data: dict[str, Any], **receiver: Any) -> dict[str, Any]:
    data["receivers"]["zipkin"] = {"endpoint": "127.0.0.1:0", **receiver}
    return data


def spans_url(daemon: DaemonThread) -> str:
    assert daemon.daemon and daemon.daemon.zipkin_receiver
    return f"http://127.0.0.1:{daemon.daemon.zipkin_receiver.port}/api/v2/spans"


def post_spans(url: str, spans: Any, gzipped: bool = False, **headers: str) -> requests.Response:
    body = json.dumps(spans).encode()
    headers = {"Content-Type": "application/json", **headers}
    if gzipped:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    return requests.post(url, data=body, headers=headers, timeout=10)


def zipkin_trace(trace_id: str, service: str = "frontend", error: str | None = None) -> list[dict[str, Any]]:
    """A Zipkin server span with a client child, as Brave would report them."""
    child_tags = {"http.method": "GET", "http.status_code": "503" if error else "200"}
    if error is not None:
        child_tags["error"] = error
    return [
        {
            "traceId": trace_id,
            "id": "000000000000000a",
            "kind": "SERVER",
            "name": "get /checkout",
            "timestamp": T0_US,
            "duration": 40_000,
            "localEndpoint": {"serviceName": service, "ipv4": "10.0.0.1", "port": 8080},
            "tags": {"otel.scope.name": "brave", "otel.scope.version": "6.1"},
        },
        {
            "traceId": trace_id,
            "id": "000000000000000b",
            "parentId": "000000000000000a",
            "kind": "CLIENT",
            "name": "get /stock",
            "timestamp": T0_US + 1_000,
            "duration": 30_000,
            "localEndpoint": {"serviceName": service},
            "remoteEndpoint": {"serviceName": "inventory", "ipv4": "10.0.0.2", "port": 9000},
            "annotations": [{"timestamp": T0_US + 2_000, "value": '"retry":{"attempt":2}'}],
            "tags": child_tags,
        },
    ]


# --- Zipkin in, OTLP out -----------------------------------------------------------


def test_zipkin_spans_are_sampled_and_forwarded_as_otlp(start_daemon, grpc_sink):
    daemon = start_daemon(
        with_zipkin_receiver(config_dict({"otlp": fast_retry(grpc_sink.endpoint)}, policies=ERRORS_ONLY))
    )
    failing = "5af7183fb1d4cf5f" + "0000000000000001"
    healthy = "5af7183fb1d4cf5f" + "0000000000000002"
    short = "00000000000000ff"  # a 64-bit trace ID
    url = spans_url(daemon)
    assert post_spans(url, zipkin_trace(failing, error="upstream timeout")).status_code == 202
    assert post_spans(url, zipkin_trace(healthy), gzipped=True).status_code == 202
    as_protobuf = zipkin_proto.encode(zipkin_trace(short, error="true"))
    headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
    assert requests.post(url, data=gzip.compress(as_protobuf), headers=headers, timeout=10).status_code == 202

    spans = grpc_sink.wait_for_spans(4)
    wait_until(lambda: daemon.scrape().value("tail_sampler_traces_decided_total") == 3, what="three decisions")
    assert {s.trace_id.hex() for s in grpc_sink.spans()} == {failing, "0" * 16 + short}
    by_name = {s.name: s for s in spans if s.trace_id.hex() == failing}
    server, client = by_name["get /checkout"].span, by_name["get /stock"].span
    assert {s.service for s in spans} == {"frontend"}
    assert {s.scope for s in spans} == {"brave", ""}
    assert server.kind == Span.SPAN_KIND_SERVER and client.kind == Span.SPAN_KIND_CLIENT
    assert client.parent_span_id == server.span_id and not server.parent_span_id
    assert (client.start_time_unix_nano, client.end_time_unix_nano) == (T0 + 1 * MS, T0 + 31 * MS)
    assert (client.status.code, client.status.message) == (Status.STATUS_CODE_ERROR, "upstream timeout")
    assert server.status.code == Status.STATUS_CODE_UNSET
    attributes = {a.key: a.value for a in client.attributes}
    assert attributes["http.status_code"].string_value == "503"
    assert attributes["peer.service"].string_value == "inventory"
    assert attributes["network.peer.address"].string_value == "10.0.0.2"
    assert attributes["network.peer.port"].int_value == 9000
    (event,) = client.events
    assert (event.name, event.time_unix_nano, list(event.attributes)) == ("retry", T0 + 2 * MS, [kv("attempt", 2)])

    metrics = daemon.scrape()
    assert metrics.value("tail_sampler_received_spans_total", protocol="zipkin") == 6
    assert metrics.value("tail_sampler_received_traces_total", protocol="zipkin") == 3
    assert metrics.value("tail_sampler_receiver_requests_total", protocol="zipkin", result="ok") == 3
    assert metrics.value("tail_sampler_traces_decided_total", decision="dropped") == 1


def test_the_zipkin_receiver_takes_the_same_token_auth_as_otlp(start_daemon, grpc_sink):
    data = config_dict({"otlp": fast_retry(grpc_sink.endpoint)}, policies=ERRORS_ONLY)
    daemon = start_daemon(with_zipkin_receiver(data, auth={"bearer_tokens": ["zipkin-token-5c1"]}))
    url = spans_url(daemon)
    trace_id = "5af7183fb1d4cf5f" + "00000000000000aa"
    assert post_spans(url, zipkin_trace(trace_id, error="boom")).status_code == 401
    assert post_spans(url, zipkin_trace(trace_id, error="boom"), Authorization="Bearer wrong").status_code == 401
    assert (
        post_spans(url, zipkin_trace(trace_id, error="boom"), Authorization="Bearer zipkin-token-5c1").status_code
        == 202
    )
    assert {s.trace_id.hex() for s in grpc_sink.wait_for_spans(2)} == {trace_id}
    metrics = daemon.scrape()
    assert metrics.value("tail_sampler_received_spans_total", protocol="zipkin") == 2
    assert metrics.value("tail_sampler_receiver_auth_failures_total", protocol="zipkin", reason="missing") == 1
    assert metrics.value("tail_sampler_receiver_auth_failures_total", protocol="zipkin", reason="invalid") == 1


def test_zipkin_and_otlp_spans_of_one_trace_are_decided_together(start_daemon, grpc_sink):
    daemon = start_daemon(
        with_zipkin_receiver(config_dict({"otlp": fast_retry(grpc_sink.endpoint)}, policies=ERRORS_ONLY))
    )
    trace_id = os.urandom(16)
    # The error is in the OTLP half; the Zipkin half is kept because it is the same trace.
    grpc_export(daemon.grpc_endpoint, make_request([make_span(trace_id, name="otlp-child", error=True)]))
    zipkin_half = zipkin_trace(trace_id.hex())[:1]
    assert post_spans(spans_url(daemon), zipkin_half).status_code == 202

    spans = grpc_sink.wait_for_spans(2)
    assert sorted(s.name for s in spans) == ["get /checkout", "otlp-child"]
    assert {s.trace_id for s in spans} == {trace_id}
    metrics = daemon.scrape()
    assert metrics.value("tail_sampler_received_traces_total") == 1
    assert metrics.value("tail_sampler_traces_decided_total", decision="kept") == 1


def test_bad_zipkin_input_gets_a_clear_answer_and_loses_nothing_else(start_daemon, grpc_sink):
    daemon = start_daemon(
        with_zipkin_receiver(config_dict({"otlp": fast_retry(grpc_sink.endpoint)}), max_request_body_size=4096)
    )
    url = spans_url(daemon)

    malformed = requests.post(url, data=b"[{", headers={"Content-Type": "application/json"}, timeout=10)
    assert malformed.status_code == 400 and "invalid JSON" in malformed.text
    bad_id = post_spans(url, [{"traceId": "not-hex", "id": "1"}])
    assert bad_id.status_code == 400 and "span 0: traceId must be 1 to 32 hex digits" in bad_id.text
    thrift = requests.post(url, data=b"\x0c\x00", headers={"Content-Type": "application/x-thrift"}, timeout=10)
    assert thrift.status_code == 415 and "application/json or application/x-protobuf" in thrift.text
    bad_protobuf = requests.post(
        url, data=b"\x0a\x05\x0a", headers={"Content-Type": "application/x-protobuf"}, timeout=10
    )
    assert bad_protobuf.status_code == 400 and "malformed Zipkin v2 protobuf" in bad_protobuf.text
    too_large = post_spans(url, zipkin_trace("1") * 20)
    assert too_large.status_code == 413 and "max_request_body_size (4096 bytes)" in too_large.text
    corrupt_gzip = requests.post(
        url, data=b"not gzip", headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}, timeout=10
    )
    assert corrupt_gzip.status_code == 400
    # An all-zero trace ID is refused for that span alone, as with OTLP.
    partial = post_spans(url, [{"traceId": "0", "id": "1"}, *zipkin_trace("abc")])
    assert partial.status_code == 202 and "1 span(s) rejected" in partial.text
    # No Content-Type at all: Zipkin clients that send none are read as JSON.
    bare = requests.post(url, data=json.dumps(zipkin_trace("def")).encode(), timeout=10)
    assert bare.status_code == 202

    spans = grpc_sink.wait_for_spans(4)
    assert {s.trace_id.hex().lstrip("0") for s in spans} == {"abc", "def"}
    metrics = daemon.scrape()
    assert metrics.value("tail_sampler_receiver_requests_total", protocol="zipkin", result="invalid") == 4
    assert (
        metrics.value("tail_sampler_receiver_requests_total", protocol="zipkin", result="unsupported_media_type") == 1
    )
    assert metrics.value("tail_sampler_receiver_requests_total", protocol="zipkin", result="too_large") == 1
    assert metrics.value("tail_sampler_receiver_requests_total", protocol="zipkin", result="partial") == 1
    assert metrics.value("tail_sampler_rejected_spans_total", protocol="zipkin", reason="invalid_id") == 1
    assert metrics.value("tail_sampler_received_spans_total", protocol="zipkin") == 4


# --- OTLP in, a real Zipkin server out -----------------------------------------------


class ZipkinServer:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"

    @property
    def spans_endpoint(self) -> str:
        return self.url + "/api/v2/spans"

    def trace(self, trace_id: str) -> list[dict[str, Any]]:
        response = requests.get(f"{self.url}/api/v2/trace/{trace_id}", timeout=5)
        if response.status_code == 404:
            return []
        response.raise_for_status()
        return response.json()

    def wait_for_trace(self, trace_id: str, spans: int) -> dict[str, dict[str, Any]]:
        found = wait_until(lambda: len(self.trace(trace_id)) >= spans and self.trace(trace_id), timeout=20)
        return {span["id"]: span for span in found}


def _zipkin_jar() -> str:
    directory = peer_dir("zipkin")
    jar = directory / f"zipkin-server-{ZIPKIN_SERVER_VERSION}-exec.jar"
    if not jar.exists():
        mvn = shutil.which("mvn") or unavailable("Zipkin server", "Maven (mvn) is not installed to fetch the jar")
        artifact = f"io.zipkin:zipkin-server:{ZIPKIN_SERVER_VERSION}:jar:exec"
        run_provisioning(
            "Zipkin server",
            [mvn, "-q", "-B", "dependency:copy", f"-Dartifact={artifact}", f"-DoutputDirectory={directory}"],
        )
        if not jar.exists():
            unavailable("Zipkin server", f"Maven ran but {jar} is missing")
    return str(jar)


@pytest.fixture(scope="module")
def zipkin_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZipkinServer]:
    """A real Zipkin server (in-memory storage) on a loopback port."""
    java = shutil.which("java") or unavailable("Zipkin server", "java is not installed")
    jar = _zipkin_jar()
    port = free_port()
    log_path = tmp_path_factory.mktemp("zipkin") / "zipkin.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [java, "-Xmx256m", "-jar", jar, "--armeria.ports[0].ip=127.0.0.1", f"--armeria.ports[0].port={port}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "QUERY_PORT": str(port), "STORAGE_TYPE": "mem"},
        )
    server = ZipkinServer(port)

    def healthy() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the Zipkin server exited:\n{log_path.read_text()[-3000:]}")
        try:
            return requests.get(server.url + "/health", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    try:
        wait_until(healthy, timeout=120, interval=0.5, what="the Zipkin server's /health")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def zipkin_exporter(server: ZipkinServer, body_format: str = "json") -> dict[str, Any]:
    return {"zipkin/server": fast_retry(server.spans_endpoint, kind="zipkin", format=body_format)}


@pytest.mark.parametrize("body_format", ["json", "proto"])
def test_otlp_reaches_a_real_zipkin_server_with_the_specified_fields(start_daemon, zipkin_server, body_format):
    daemon = start_daemon(config_dict(zipkin_exporter(zipkin_server, body_format)))
    trace_id = os.urandom(16)
    root_id, client_id, internal_id = b"\x01" * 8, b"\x02" * 8, b"\x03" * 8
    root = make_span(trace_id, root_id, name="POST /checkout", duration_ms=40, attributes={"http.route": "/checkout"})
    root.status.code = Status.STATUS_CODE_ERROR
    root.status.message = "payment declined"
    client = make_span(
        trace_id,
        client_id,
        parent=root_id,
        name="charge",
        start_ms=5,
        duration_ms=20,
        attributes={"peer.service": "payments", "network.peer.address": "10.0.0.9", "network.peer.port": 443},
    )
    client.kind = Span.SPAN_KIND_CLIENT
    client.status.code = Status.STATUS_CODE_OK
    event = client.events.add(time_unix_nano=T0 + 7 * MS, name="retry")
    event.attributes.append(kv("attempt", 2))
    internal = make_span(trace_id, internal_id, parent=root_id, name="render", start_ms=30, duration_ms=1)
    internal.kind = Span.SPAN_KIND_INTERNAL
    internal.dropped_attributes_count = 3
    request = make_request([root, client, internal], service="checkout", scope="io.example.shop")
    request.resource_spans[0].scope_spans[0].scope.version = "1.4.0"
    grpc_export(daemon.grpc_endpoint, request)

    stored = zipkin_server.wait_for_trace(trace_id.hex(), 3)
    server_span, client_span, internal_span = (stored[i.hex()] for i in (root_id, client_id, internal_id))
    assert {s["traceId"] for s in stored.values()} == {trace_id.hex()}
    assert server_span["kind"] == "SERVER" and client_span["kind"] == "CLIENT" and "kind" not in internal_span
    assert server_span["name"] == "post /checkout"  # Zipkin lowercases names
    assert "parentId" not in server_span and client_span["parentId"] == root_id.hex()
    assert (server_span["timestamp"], server_span["duration"]) == (T0_US, 40_000)
    assert (client_span["timestamp"], client_span["duration"]) == (T0_US + 5_000, 20_000)
    assert {s["localEndpoint"]["serviceName"] for s in stored.values()} == {"checkout"}
    assert client_span["remoteEndpoint"] == {"serviceName": "payments", "ipv4": "10.0.0.9", "port": 443}
    assert client_span["annotations"] == [{"timestamp": T0_US + 7_000, "value": '"retry":{"attempt":2}'}]

    server_tags, client_tags = server_span["tags"], client_span["tags"]
    assert server_tags["otel.status_code"] == "ERROR" and server_tags["error"] == "payment declined"
    assert client_tags["otel.status_code"] == "OK" and "error" not in client_tags
    assert server_tags["http.route"] == "/checkout"
    assert internal_span["tags"]["otel.dropped_attributes_count"] == "3"
    for tags in (server_tags, client_tags, internal_span["tags"]):
        assert (tags["otel.scope.name"], tags["otel.scope.version"]) == ("io.example.shop", "1.4.0")
        assert tags["tailsampling.policy"] == "keep-all"  # the decision record travels as a tag
    metrics = daemon.scrape()
    assert metrics.value("tail_sampler_exporter_sent_spans_total", exporter="zipkin/server") == 3
    assert metrics.value("tail_sampler_exporter_dropped_spans_total", exporter="zipkin/server") == 0


def test_a_64_bit_trace_id_is_stored_under_16_digits(start_daemon, zipkin_server):
    daemon = start_daemon(config_dict(zipkin_exporter(zipkin_server)))
    low = os.urandom(8)
    grpc_export(daemon.grpc_endpoint, make_request([make_span(bytes(8) + low, name="legacy")], service="old"))
    (span,) = zipkin_server.wait_for_trace(low.hex(), 1).values()
    assert span["traceId"] == low.hex()
    assert span["localEndpoint"] == {"serviceName": "old"}


def test_zipkin_in_zipkin_out_through_the_sampler(start_daemon, zipkin_server):
    """Brave-style spans in, sampled, and stored by Zipkin as they were sent (names lowercased)."""
    daemon = start_daemon(with_zipkin_receiver(config_dict(zipkin_exporter(zipkin_server), policies=ERRORS_ONLY)))
    kept, dropped = os.urandom(16).hex(), os.urandom(16).hex()
    sent = zipkin_trace(kept, service="Frontend", error="upstream timeout")
    assert post_spans(spans_url(daemon), sent + zipkin_trace(dropped)).status_code == 202

    stored = zipkin_server.wait_for_trace(kept, 2)
    wait_until(lambda: daemon.scrape().value("tail_sampler_traces_decided_total", decision="dropped") == 1)
    assert zipkin_server.trace(dropped) == []
    for original in sent:
        span = stored[original["id"]]
        tags = span.pop("tags")
        assert tags.pop("tailsampling.policy") == "errors"
        assert tags.pop("otel.library.name", None) == original["tags"].get("otel.scope.name")
        assert tags.pop("otel.library.version", None) == original["tags"].get("otel.scope.version")
        if original["tags"].get("error"):
            assert tags.pop("otel.status_code") == "ERROR"
        assert tags == original["tags"]
        expected = {key: value for key, value in original.items() if key != "tags"}
        expected["localEndpoint"] = {**expected["localEndpoint"], "serviceName": "frontend"}
        assert span == expected
