"""Exporter failures are loud and early, against real backends: a TLS mismatch, a refused
connection, failing answers. The first failed attempt logs an ERROR naming the exporter and the
cause at once (retries alone would take minutes to say so); the recovery is logged once."""

from __future__ import annotations

import logging
import time

import grpc

from tests.integration.test_cli import cli, free_port
from tests.support import GrpcSink, HttpSink, config_dict, grpc_export, make_request, make_trace, wait_until

RETRY_FOR_LONG = {"initial_interval": "50ms", "max_interval": "200ms", "max_elapsed_time": "10m"}


def error_lines(caplog, exporter: str) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.ERROR and record.getMessage().startswith(f"exporter {exporter}: ")
    ]


def send_one(daemon) -> None:
    grpc_export(daemon.grpc_endpoint, make_request(make_trace(spans=2)[1]))


def test_an_otlp_exporter_left_on_tls_against_a_plaintext_backend_says_so_within_15s(start_daemon, caplog):
    caplog.set_level(logging.INFO, logger="sampler")
    plaintext = GrpcSink()  # an OTLP server without TLS, like a default Jaeger
    try:
        # A bare host:port: TLS, as in the Collector.
        exporters = {"otlp/jaeger": {"endpoint": plaintext.endpoint, "retry_on_failure": RETRY_FOR_LONG}}
        daemon = start_daemon(config_dict(exporters, decision_wait="100ms"))
        send_one(daemon)
        sent = time.monotonic()
        wait_until(
            lambda: daemon.scrape().value("tail_sampler_exporter_failed_attempts_total", exporter="otlp/jaeger"),
            timeout=15,
            what="the first failed attempt",
        )
        (line,) = wait_until(lambda: error_lines(caplog, "otlp/jaeger"), timeout=15, what="an ERROR naming it")
        assert time.monotonic() - sent < 15
        assert f"sending to {plaintext.endpoint} (TLS) failed: TLS handshake failed" in line, line
        assert "tls.insecure: true" in line  # what to do about it
        assert plaintext.span_count() == 0
    finally:
        plaintext.close()


def test_an_otlphttp_exporter_on_https_against_a_plaintext_backend_says_so(start_daemon, caplog):
    caplog.set_level(logging.INFO, logger="sampler")
    plaintext = HttpSink()
    try:
        endpoint = plaintext.endpoint.replace("http://", "https://")
        exporters = {"otlphttp": {"endpoint": endpoint, "retry_on_failure": RETRY_FOR_LONG}}
        daemon = start_daemon(config_dict(exporters, decision_wait="100ms"))
        send_one(daemon)
        (line,) = wait_until(lambda: error_lines(caplog, "otlphttp"), timeout=15, what="an ERROR naming it")
        assert "(TLS) failed: TLS handshake failed" in line, line
    finally:
        plaintext.close()


def test_a_refused_connection_is_named_and_the_recovery_logged_once(start_daemon, caplog):
    caplog.set_level(logging.INFO, logger="sampler")
    port = free_port()
    exporters = {
        "otlp": {"endpoint": f"127.0.0.1:{port}", "tls": {"insecure": True}, "retry_on_failure": RETRY_FOR_LONG}
    }
    daemon = start_daemon(config_dict(exporters, decision_wait="100ms"))
    send_one(daemon)
    (line,) = wait_until(lambda: error_lines(caplog, "otlp"), timeout=15, what="an ERROR naming it")
    assert f"sending to 127.0.0.1:{port} (plaintext) failed: connection refused" in line, line
    wait_until(
        lambda: daemon.scrape().value("tail_sampler_exporter_failed_attempts_total", exporter="otlp") >= 5,
        what="retries failing",
    )
    sink = GrpcSink(failures=[(grpc.StatusCode.UNAVAILABLE, None)] * 2, port=port)  # the backend comes back
    try:
        sink.wait_for_spans(2, timeout=15)
        recovered = wait_until(
            lambda: [r.getMessage() for r in caplog.records if "delivering again" in r.getMessage()],
            what="the recovery logged",
        )
        assert len(recovered) == 1 and recovered[0].startswith(f"exporter otlp: delivering again to 127.0.0.1:{port}")
        assert len(error_lines(caplog, "otlp")) == 1  # the retries in between were summed up, not each logged
    finally:
        sink.close()


def test_check_says_whether_each_exporter_uses_tls(tmp_path):
    config = tmp_path / "exporters.yaml"
    config.write_text(
        "tail_sampling: {policies: [{name: all, type: always_sample}]}\n"
        "exporters:\n"
        "  otlp: {endpoint: 'jaeger:4317'}\n"
        "  otlp/plain: {endpoint: 'jaeger:4317', tls: {insecure: true}}\n"
        "  otlphttp: {endpoint: 'https://backend:4318'}\n"
        "  zipkin: {endpoint: 'http://zipkin:9411/api/v2/spans'}\n"
    )
    result = cli("check", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "  - otlp -> jaeger:4317 (TLS: a bare host:port is TLS, as in the Collector" in result.stdout
    assert "  - otlp/plain -> jaeger:4317 (plaintext)" in result.stdout
    assert "  - otlphttp -> https://backend:4318 (TLS)" in result.stdout
    assert "  - zipkin -> http://zipkin:9411/api/v2/spans (plaintext)" in result.stdout
