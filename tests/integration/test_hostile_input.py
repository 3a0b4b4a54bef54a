"""Hostile clients over real sockets: garbage, bombs, oversized and over-limit
requests, too many connections. Each gets a clear answer, is counted, and other
clients keep being served."""

from __future__ import annotations

import gzip
import os
import random
import resource
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.support import (
    config_dict,
    fast_retry,
    grpc_export,
    http_export,
    json_body,
    make_request,
    make_span,
    make_trace,
    sdk_tracer,
    wait_until,
)

GARBAGE_SECONDS = 3.0
GARBAGE_MAX_REQUESTS = 2000


def _garbage_bodies(seed: int) -> list[tuple[str, bytes, str]]:
    """(protocol, body, content type) of malformed requests: random bytes, truncations, bad JSON."""
    rng = random.Random(seed)
    valid = make_request(make_trace(spans=5, attributes={"k": "v" * 50})[1]).SerializeToString()
    bodies = []
    for _ in range(40):
        cut = valid[: rng.randrange(1, len(valid))]
        noise = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
        bodies.append(("grpc", b"\x0a\xff\xff\xff\x0f" + noise, ""))
        bodies.append(("grpc", cut + b"\x0a", ""))
        bodies.append(("http", noise, "application/x-protobuf"))
        bodies.append(("http", b'{"resourceSpans": [' * rng.randrange(1, 5000), "application/json"))
        bodies.append(
            ("http", b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": 7}]}]}]}', "application/json")
        )
    return bodies


def test_a_client_sending_garbage_does_not_stop_valid_traces(start_daemon, grpc_sink):
    daemon = start_daemon(config_dict({"otlp": fast_retry(grpc_sink.endpoint)}, decision_wait="200ms"))
    stop = threading.Event()
    refusals: dict[str, int] = {"grpc": 0, "http": 0}
    unexpected: list[str] = []

    def send_garbage() -> None:
        deadline = time.monotonic() + GARBAGE_SECONDS
        bodies = _garbage_bodies(seed=7)
        with grpc.insecure_channel(daemon.grpc_endpoint) as channel, requests.Session() as session:
            export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
            for index in range(GARBAGE_MAX_REQUESTS):
                if stop.is_set() or time.monotonic() > deadline:
                    return
                protocol, body, content_type = bodies[index % len(bodies)]
                if protocol == "grpc":
                    try:
                        export(body, timeout=5)
                        unexpected.append("garbage accepted over gRPC")
                    except grpc.RpcError as exc:
                        if exc.code() is grpc.StatusCode.INVALID_ARGUMENT and exc.details():
                            refusals["grpc"] += 1
                        else:
                            unexpected.append(f"gRPC {exc.code()}: {exc.details()}")
                else:
                    status = session.post(daemon.http_url, data=body, headers={"Content-Type": content_type}, timeout=5)
                    if status.status_code == 400 and status.content:
                        refusals["http"] += 1
                    else:
                        unexpected.append(f"HTTP {status.status_code}")

    garbage = threading.Thread(target=send_garbage, name="garbage")
    garbage.start()
    try:
        provider, tracer = sdk_tracer(daemon.grpc_endpoint, "grpc", service="honest")
        valid_trace_ids = set()
        for index in range(20):
            with tracer.start_as_current_span(f"root-{index}") as root, tracer.start_as_current_span("child"):
                pass
            valid_trace_ids.add(root.get_span_context().trace_id.to_bytes(16, "big"))
            trace_id, spans = make_trace(spans=2)
            assert http_export(daemon.http_url, json_body(make_request(spans)), content_type="application/json").ok
            valid_trace_ids.add(trace_id)
            time.sleep(0.05)
        provider.shutdown()
    finally:
        garbage.join(GARBAGE_SECONDS + 10)
        stop.set()
    assert not garbage.is_alive()
    assert not unexpected, unexpected[:5]
    assert refusals["grpc"] > 20 and refusals["http"] > 20, refusals
    wait_until(lambda: valid_trace_ids <= grpc_sink.trace_ids(), what="every valid trace at the sink")
    assert grpc_sink.span_count() == 80
    metrics = daemon.scrape()
    assert metrics.value("tail_sampler_receiver_requests_total", protocol="grpc", result="invalid") == refusals["grpc"]
    assert metrics.value("tail_sampler_receiver_requests_total", protocol="http", result="invalid") == refusals["http"]
    assert metrics.value("tail_sampler_ready") == 1


@pytest.fixture
def limited_daemon(start_daemon, grpc_sink):
    data = config_dict({"otlp": fast_retry(grpc_sink.endpoint)}, decision_wait="200ms")
    data["receivers"]["otlp"]["max_spans_per_request"] = 10
    data["receivers"]["otlp"]["span_limits"] = {"attribute_count_limit": 3, "attribute_value_length_limit": 8}
    return start_daemon(data)


def test_spans_past_max_spans_per_request_are_refused_through_partial_success(limited_daemon, grpc_sink):
    trace_id, spans = make_trace(spans=14)
    response = grpc_export(limited_daemon.grpc_endpoint, make_request(spans))
    assert response.partial_success.rejected_spans == 4
    assert "max_spans_per_request (10)" in response.partial_success.error_message
    reply = http_export(
        limited_daemon.http_url, json_body(make_request(make_trace(spans=12)[1])), content_type="application/json"
    )
    assert reply.status_code == 200 and reply.json()["partialSuccess"]["rejectedSpans"] == "2"
    grpc_sink.wait_for_spans(20)
    assert sorted(s.name for s in grpc_sink.spans() if s.trace_id == trace_id) == sorted(f"op-{i}" for i in range(10))
    metrics = limited_daemon.scrape()
    assert metrics.value("tail_sampler_rejected_spans_total", protocol="grpc", reason="max_spans_per_request") == 4
    assert metrics.value("tail_sampler_rejected_spans_total", protocol="http", reason="max_spans_per_request") == 2
    assert metrics.value("tail_sampler_receiver_requests_total", result="partial") == 2


def test_span_limits_trim_attributes_on_receipt(limited_daemon, grpc_sink):
    trace_id = os.urandom(16)
    wide = make_span(trace_id, name="wide", attributes={f"k{i}": "v" for i in range(5)})
    long = make_span(trace_id, name="long", attributes={"sql": "SELECT * FROM t WHERE x = 1", "ids": 12345678901})
    plain = make_span(trace_id, name="plain", attributes={"a": "short"})
    assert http_export(limited_daemon.http_url, make_request([wide, long, plain]).SerializeToString()).ok
    by_name = {s.name: s.span for s in grpc_sink.wait_for_spans(3)}
    assert [a.key for a in by_name["wide"].attributes] == ["k0", "k1", "k2"]
    assert by_name["wide"].dropped_attributes_count == 2
    assert by_name["long"].attributes[0].value.string_value == "SELECT *"
    assert by_name["long"].attributes[1].value.int_value == 12345678901
    assert by_name["plain"] == plain
    metrics = limited_daemon.scrape()
    limited = "tail_sampler_receiver_limited_attributes_total"
    assert metrics.value(limited, protocol="http", reason="attribute_count_limit") == 2
    assert metrics.value(limited, protocol="http", reason="attribute_value_length_limit") == 1


def test_a_gigabyte_gzip_bomb_is_refused_without_inflating(start_daemon, grpc_sink):
    daemon = start_daemon(config_dict({"otlp": fast_retry(grpc_sink.endpoint)}))
    member = gzip.compress(b"\x00" * (16 << 20), compresslevel=9)
    bomb = member * 64  # concatenated gzip members: 1 GiB inflated, about 1 MiB sent
    assert len(bomb) < 2 << 20
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    response = requests.post(
        daemon.http_url,
        data=bomb,
        headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
        timeout=30,
    )
    assert response.status_code == 413
    peak_growth_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
    assert peak_growth_kib < 200 * 1024, f"the daemon's process grew by {peak_growth_kib} KiB"
    assert daemon.scrape().value("tail_sampler_receiver_requests_total", protocol="http", result="too_large") == 1
    trace_id, spans = make_trace(spans=2)
    assert http_export(daemon.http_url, make_request(spans).SerializeToString(), gzipped=True).ok
    grpc_sink.wait_for_spans(2)


def _open_http_connection(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    body = make_request(make_trace(spans=1)[1]).SerializeToString()
    head = (
        "POST /v1/traces HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: application/x-protobuf\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    sock.sendall(head.encode() + body)
    return sock


def _read_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_http_connections_past_max_connections_get_503(start_daemon, grpc_sink):
    data = config_dict({"otlp": fast_retry(grpc_sink.endpoint)})
    data["receivers"]["otlp"]["protocols"]["http"]["max_connections"] = 2
    daemon = start_daemon(data)
    port = daemon.daemon.http_receiver.port
    held = [_open_http_connection(port) for _ in range(2)]  # keep-alive: they stay open after answering
    try:
        assert all(_read_response(sock).startswith(b"HTTP/1.1 200") for sock in held)
        wait_until(lambda: daemon.scrape().value("tail_sampler_receiver_open_connections", protocol="http") == 2)
        extra = _open_http_connection(port)
        answer = _read_response(extra)
        extra.close()
        assert answer.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in answer, answer
        refused = requests.post(
            daemon.http_url, data=b"", headers={"Content-Type": "application/x-protobuf"}, timeout=5
        )
        assert refused.status_code == 503 and "max_connections" in refused.text
        metrics = daemon.scrape()
        assert (
            metrics.value("tail_sampler_receiver_refused_connections_total", protocol="http", reason="max_connections")
            == 2
        )
    finally:
        for sock in held:
            sock.close()
    wait_until(lambda: daemon.scrape().value("tail_sampler_receiver_open_connections", protocol="http") == 0)
    trace_id, spans = make_trace(spans=2)
    assert http_export(daemon.http_url, make_request(spans).SerializeToString()).ok
    assert trace_id in {s.trace_id for s in grpc_sink.wait_for_spans(4)}


def test_grpc_rpcs_past_max_concurrent_rpcs_are_resource_exhausted(start_daemon, grpc_sink):
    # A full window with block_on_overflow holds RPCs open until their deadline.
    data = config_dict(
        {"otlp": fast_retry(grpc_sink.endpoint)},
        decision_wait="30s",
        num_traces=1,
        num_shards=1,
        block_on_overflow=True,
    )
    data["receivers"]["otlp"]["protocols"]["grpc"]["max_concurrent_rpcs"] = 2
    daemon = start_daemon(data)
    grpc_export(daemon.grpc_endpoint, make_request(make_trace(spans=1)[1]))  # fills the window

    def export_new_trace(delay: float) -> str:
        time.sleep(delay)
        with grpc.insecure_channel(daemon.grpc_endpoint) as channel:
            export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
            try:
                export(make_request(make_trace(spans=1)[1]).SerializeToString(), timeout=3)
                return "ok"
            except grpc.RpcError as exc:
                return exc.details()

    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(export_new_trace, [0, 0, 1.0]))
    assert answers[2] == "Concurrent RPC limit exceeded!", answers
    assert all("trace window is full" in answer for answer in answers[:2]), answers


def test_grpc_idle_connections_are_closed_after_max_connection_idle(start_daemon, grpc_sink):
    data = config_dict({"otlp": fast_retry(grpc_sink.endpoint)})
    data["receivers"]["otlp"]["protocols"]["grpc"]["keepalive"] = {
        "server_parameters": {"max_connection_idle": "300ms"}
    }
    daemon = start_daemon(data)
    states: list[grpc.ChannelConnectivity] = []
    with grpc.insecure_channel(daemon.grpc_endpoint) as channel:
        channel.subscribe(states.append)
        export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        export(ExportTraceServiceRequest().SerializeToString(), timeout=5)
        wait_until(lambda: grpc.ChannelConnectivity.READY in states)
        ready_at = len(states)
        # The server's GOAWAY after 300 ms idle sends the channel back to IDLE.
        wait_until(lambda: grpc.ChannelConnectivity.IDLE in states[ready_at:], timeout=5)


def test_an_unsupported_content_encoding_is_415(start_daemon, grpc_sink):
    daemon = start_daemon(config_dict({"otlp": fast_retry(grpc_sink.endpoint)}))
    body = make_request(make_trace(spans=1)[1]).SerializeToString()
    headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "br"}
    response = requests.post(daemon.http_url, data=body, headers=headers, timeout=10)
    assert response.status_code == 415
    assert daemon.scrape().value("tail_sampler_receiver_requests_total", result="unsupported_media_type") == 1


def test_idle_http_connections_are_closed_after_idle_timeout(start_daemon, grpc_sink):
    data = config_dict({"otlp": fast_retry(grpc_sink.endpoint)})
    data["receivers"]["otlp"]["protocols"]["http"].update(max_connections=3, idle_timeout="300ms")
    daemon = start_daemon(data)
    port = daemon.daemon.http_receiver.port
    silent = socket.create_connection(("127.0.0.1", port), timeout=10)  # connects, never sends
    answered = _open_http_connection(port)  # one request, then keep-alive
    slow = socket.create_connection(("127.0.0.1", port), timeout=10)
    slow.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n")  # headers never finished
    try:
        assert _read_response(answered).startswith(b"HTTP/1.1 200")
        over = socket.create_connection(("127.0.0.1", port), timeout=10)
        assert _read_response(over).startswith(b"HTTP/1.1 503")  # the three above fill the limit
        over.close()
        # Each of the three is closed by the daemon once idle for 300 ms.
        assert silent.recv(1) == b"" and _read_response(answered) == b"" and _read_response(slow) == b""
        wait_until(lambda: daemon.scrape().value("tail_sampler_receiver_open_connections", protocol="http") == 0)
    finally:
        for sock in (silent, answered, slow):
            sock.close()
    assert http_export(daemon.http_url, make_request(make_trace(spans=1)[1]).SerializeToString()).ok


def test_a_hundred_thousand_spans_in_one_trace_pass_through(start_daemon, grpc_sink):
    data = config_dict({"otlp": fast_retry(grpc_sink.endpoint)}, decision_wait="200ms")
    data["receivers"]["otlp"]["protocols"]["grpc"]["max_recv_msg_size_mib"] = 16  # the request is about 5 MiB
    daemon = start_daemon(data)
    trace_id = os.urandom(16)
    spans = [make_span(trace_id, span_id=(index + 1).to_bytes(8, "big"), name="s") for index in range(100_000)]
    response = grpc_export(daemon.grpc_endpoint, make_request(spans))
    assert response.partial_success.rejected_spans == 0

    def spans_at_sink() -> int:
        with grpc_sink.lock:
            return sum(len(s.spans) for r in grpc_sink.requests for rs in r.resource_spans for s in rs.scope_spans)

    wait_until(lambda: spans_at_sink() == 100_000, timeout=60, what="the whole trace at the sink")
    assert grpc_sink.trace_ids() == {trace_id}
    assert len(grpc_sink.requests) > 1  # forwarded in batches of at most send_batch_size spans
    assert daemon.scrape().value("tail_sampler_spans_decided_total", decision="kept") == 100_000
