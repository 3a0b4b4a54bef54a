"""TLS, mutual TLS and token authentication, end to end: certificates made by the test, the real
OpenTelemetry SDK exporters as clients, real TLS sinks downstream, and rotation without a restart."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import requests
import yaml
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as SdkGrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as SdkHttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.certs import CertificateAuthority, Pem
from tests.support import (
    DaemonThread,
    GrpcSink,
    HttpSink,
    config_dict,
    fast_retry,
    grpc_export,
    make_config,
    make_request,
    make_trace,
    wait_until,
)

EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
TOKEN = "s3cr3t-token-4f9a"
OTHER_TOKEN = "rotated-token-77c1"


@pytest.fixture(autouse=True)
def _sdk_http_exporter_uses_its_certificate_file(monkeypatch: pytest.MonkeyPatch) -> None:
    # requests lets these variables override a session's CA file, so the SDK's OTLP/HTTP exporter
    # would ignore its certificate_file on machines that set them.
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two independent CAs, each with a server certificate (127.0.0.1, localhost) and a client certificate."""
    directory = tmp_path_factory.mktemp("pki")
    result: dict[str, Any] = {}
    for name in ("ca1", "ca2"):
        ca = CertificateAuthority(directory / name, name)
        result[name] = ca
        result[f"{name}-server"] = ca.issue(f"{name}-server", server=True)
        result[f"{name}-client"] = ca.issue(f"{name}-client", server=False)
    return result


def sdk_spans(count: int = 3) -> list[ReadableSpan]:
    """Finished SDK spans of one trace, ready for an SDK exporter's export()."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "secure-svc"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tests")
    with tracer.start_as_current_span("root"):
        for index in range(count - 1):
            with tracer.start_as_current_span(f"child-{index}"):
                pass
    provider.shutdown()
    return list(memory.get_finished_spans())


def sdk_export(
    protocol: str,
    daemon: DaemonThread,
    ca: CertificateAuthority | None,
    client: Pem | None = None,
    headers: dict[str, str] | None = None,
    spans: list[ReadableSpan] | None = None,
) -> SpanExportResult:
    """One export through the SDK's own OTLP exporter, over TLS when `ca` is given (the only CA it trusts)."""
    spans = spans if spans is not None else sdk_spans()
    if protocol == "grpc":
        assert daemon.daemon and daemon.daemon.grpc_receiver
        endpoint = f"127.0.0.1:{daemon.daemon.grpc_receiver.port}"
        credentials = (
            grpc.ssl_channel_credentials(ca.cert, client.key if client else None, client.cert if client else None)
            if ca
            else None
        )
        exporter: Any = SdkGrpcExporter(
            endpoint=endpoint, insecure=ca is None, credentials=credentials, headers=headers, timeout=3
        )
    else:
        assert daemon.daemon and daemon.daemon.http_receiver
        scheme = "https" if ca else "http"
        exporter = SdkHttpExporter(
            endpoint=f"{scheme}://127.0.0.1:{daemon.daemon.http_receiver.port}/v1/traces",
            certificate_file=str(ca.cert_file) if ca else None,
            client_certificate_file=str(client.cert_file) if client else None,
            client_key_file=str(client.key_file) if client else None,
            headers=headers,
            timeout=3,
        )
    try:
        return exporter.export(spans)
    finally:
        exporter.shutdown()


def receiver_config(sink: GrpcSink, **protocol_settings: Any) -> dict[str, Any]:
    data = config_dict({"otlp": fast_retry(sink.endpoint)})
    for protocol in ("grpc", "http"):
        data["receivers"]["otlp"]["protocols"][protocol].update(protocol_settings)
    return data


def received(daemon: DaemonThread, protocol: str) -> float:
    return daemon.scrape().value("tail_sampler_received_spans_total", protocol=protocol)


# --- receivers: TLS and mutual TLS ---------------------------------------------------


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_sdk_exporter_over_tls_reaches_the_sink(grpc_sink, start_daemon, pki, protocol):
    server = pki["ca1-server"]
    daemon = start_daemon(
        receiver_config(grpc_sink, tls={"cert_file": str(server.cert_file), "key_file": str(server.key_file)})
    )
    spans = sdk_spans(4)
    assert sdk_export(protocol, daemon, pki["ca1"], spans=spans) is SpanExportResult.SUCCESS
    arrived = grpc_sink.wait_for_spans(4)
    assert {s.trace_id for s in arrived} == {spans[0].context.trace_id.to_bytes(16, "big")}
    assert received(daemon, protocol) == 4
    # A client that trusts another CA refuses the receiver's certificate: nothing is sent.
    assert sdk_export(protocol, daemon, pki["ca2"]) is SpanExportResult.FAILURE
    assert received(daemon, protocol) == 4


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_mutual_tls_requires_a_client_certificate_from_the_client_ca(grpc_sink, start_daemon, pki, protocol):
    server = pki["ca1-server"]
    tls = {
        "cert_file": str(server.cert_file),
        "key_file": str(server.key_file),
        "client_ca_file": str(pki["ca1"].cert_file),
    }
    daemon = start_daemon(receiver_config(grpc_sink, tls=tls))
    # No client certificate, then one from a CA the receiver does not accept: refused, nothing ingested.
    assert sdk_export(protocol, daemon, pki["ca1"]) is SpanExportResult.FAILURE
    assert sdk_export(protocol, daemon, pki["ca1"], client=pki["ca2-client"]) is SpanExportResult.FAILURE
    assert received(daemon, protocol) == 0
    assert sdk_export(protocol, daemon, pki["ca1"], client=pki["ca1-client"]) is SpanExportResult.SUCCESS
    grpc_sink.wait_for_spans(3)
    assert received(daemon, protocol) == 3


def _install(pem: Pem, cert_file: Path, key_file: Path) -> None:
    """Replace the files the way Kubernetes and cert-manager do: a complete new file renamed over the old."""
    for source, target in ((pem.cert_file, cert_file), (pem.key_file, key_file)):
        staging = target.with_suffix(".new")
        shutil.copyfile(source, staging)
        os.replace(staging, target)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_rotated_certificate_and_client_ca_are_used_without_a_restart(grpc_sink, start_daemon, pki, tmp_path, protocol):
    cert_file, key_file, client_ca_file = tmp_path / "tls.crt", tmp_path / "tls.key", tmp_path / "clients.crt"
    _install(pki["ca1-server"], cert_file, key_file)
    shutil.copyfile(pki["ca1"].cert_file, client_ca_file)
    tls = {
        "cert_file": str(cert_file),
        "key_file": str(key_file),
        "client_ca_file": str(client_ca_file),
        "reload_interval": "100ms",
    }
    daemon = start_daemon(receiver_config(grpc_sink, tls=tls))
    assert sdk_export(protocol, daemon, pki["ca1"], client=pki["ca1-client"]) is SpanExportResult.SUCCESS
    assert sdk_export(protocol, daemon, pki["ca2"], client=pki["ca2-client"]) is SpanExportResult.FAILURE

    # Rotate everything to the second CA: server certificate and the CA clients must chain to.
    _install(pki["ca2-server"], cert_file, key_file)
    shutil.copyfile(pki["ca2"].cert_file, client_ca_file.with_suffix(".new"))
    os.replace(client_ca_file.with_suffix(".new"), client_ca_file)

    wait_until(
        lambda: sdk_export(protocol, daemon, pki["ca2"], client=pki["ca2-client"]) is SpanExportResult.SUCCESS,
        timeout=20,
        interval=0.2,
        what="a client trusting only the new CA to be served",
    )
    assert sdk_export(protocol, daemon, pki["ca1"], client=pki["ca1-client"]) is SpanExportResult.FAILURE
    grpc_sink.wait_for_spans(6)
    metrics = daemon.scrape()
    assert (
        metrics.value(
            "tail_sampler_receiver_credential_reloads_total", protocol=protocol, credential="tls", result="success"
        )
        >= 1
    )


def test_a_broken_rotation_keeps_the_previous_certificate(grpc_sink, start_daemon, pki, tmp_path):
    cert_file, key_file = tmp_path / "tls.crt", tmp_path / "tls.key"
    _install(pki["ca1-server"], cert_file, key_file)
    tls = {"cert_file": str(cert_file), "key_file": str(key_file), "reload_interval": "100ms"}
    daemon = start_daemon(receiver_config(grpc_sink, tls=tls))
    # A new certificate whose key has not been written yet: it does not fit the old key.
    shutil.copyfile(pki["ca2-server"].cert_file, cert_file)
    failures = ("tail_sampler_receiver_credential_reloads_total",)

    def reload_failed() -> bool:
        sdk_export("http", daemon, pki["ca1"])  # a handshake is what looks for changes
        return daemon.scrape().value(failures[0], protocol="http", credential="tls", result="failure") >= 1

    wait_until(reload_failed, timeout=20, interval=0.2, what="the failed reload to be counted")
    for protocol in ("grpc", "http"):
        assert sdk_export(protocol, daemon, pki["ca1"]) is SpanExportResult.SUCCESS


# --- receivers: tokens ---------------------------------------------------------------


def _grpc_call(daemon: DaemonThread, metadata: tuple[tuple[str, str], ...]) -> grpc.RpcError | None:
    _, spans = make_trace()
    try:
        grpc_export(daemon.grpc_endpoint, make_request(spans), metadata=metadata)
    except grpc.RpcError as exc:
        return exc
    return None


def _http_post(daemon: DaemonThread, headers: dict[str, str]) -> requests.Response:
    _, spans = make_trace()
    return requests.post(
        daemon.http_url,
        data=make_request(spans).SerializeToString(),
        headers={"Content-Type": "application/x-protobuf", **headers},
        timeout=10,
    )


def test_missing_or_wrong_tokens_are_refused_and_nothing_is_ingested(grpc_sink, start_daemon, tmp_path):
    token_file = tmp_path / "tokens"
    token_file.write_text(f"{TOKEN}\n\n")
    daemon = start_daemon(receiver_config(grpc_sink, auth={"bearer_token_file": str(token_file)}))

    for metadata, reason in (
        ((), "missing"),
        ((("authorization", f"Basic {TOKEN}"),), "malformed"),
        ((("authorization", "Bearer wrong"),), "invalid"),
    ):
        error = _grpc_call(daemon, metadata)
        assert error is not None and error.code() is grpc.StatusCode.UNAUTHENTICATED, reason
        assert TOKEN not in error.details() and "wrong" not in error.details()
    assert "authorization: Bearer <token>" in _grpc_call(daemon, ()).details()

    for headers, reason in (
        ({}, "missing"),
        ({"Authorization": TOKEN}, "malformed"),
        ({"Authorization": "Bearer wrong"}, "invalid"),
    ):
        reply = _http_post(daemon, headers)
        assert reply.status_code == 401, reason
        assert reply.headers["WWW-Authenticate"] == "Bearer"
        status = status_pb2.Status.FromString(reply.content)
        assert status.code == grpc.StatusCode.UNAUTHENTICATED.value[0]
        assert "wrong" not in status.message and TOKEN not in status.message

    metrics = daemon.scrape()
    for protocol in ("grpc", "http"):
        assert metrics.value("tail_sampler_received_spans_total", protocol=protocol) == 0
        for reason, count in (("missing", 2 if protocol == "grpc" else 1), ("malformed", 1), ("invalid", 1)):
            assert (
                metrics.value("tail_sampler_receiver_auth_failures_total", protocol=protocol, reason=reason) == count
            ), (protocol, reason)
    assert grpc_sink.attempts == 0


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_sdk_exporters_with_the_right_token_over_mutual_tls(grpc_sink, start_daemon, pki, protocol):
    server = pki["ca1-server"]
    tls = {
        "cert_file": str(server.cert_file),
        "key_file": str(server.key_file),
        "client_ca_file": str(pki["ca1"].cert_file),
    }
    daemon = start_daemon(receiver_config(grpc_sink, tls=tls, auth={"bearer_tokens": [OTHER_TOKEN, TOKEN]}))
    client = pki["ca1-client"]
    wrong = sdk_export(protocol, daemon, pki["ca1"], client=client, headers={"authorization": "Bearer nope"})
    assert wrong is SpanExportResult.FAILURE
    assert received(daemon, protocol) == 0
    ok = sdk_export(protocol, daemon, pki["ca1"], client=client, headers={"authorization": f"Bearer {TOKEN}"})
    assert ok is SpanExportResult.SUCCESS
    grpc_sink.wait_for_spans(3)
    assert received(daemon, protocol) == 3


def test_a_custom_header_without_scheme_and_token_file_rotation(grpc_sink, start_daemon, tmp_path):
    token_file = tmp_path / "tokens"
    token_file.write_text(TOKEN)
    auth = {"bearer_token_file": str(token_file), "header": "X-Api-Key", "scheme": "", "reload_interval": "100ms"}
    daemon = start_daemon(receiver_config(grpc_sink, auth=auth))
    assert _grpc_call(daemon, (("x-api-key", TOKEN),)) is None
    assert _http_post(daemon, {"X-API-Key": TOKEN}).status_code == 200
    assert _http_post(daemon, {"Authorization": f"Bearer {TOKEN}"}).status_code == 401

    # Rotation: both tokens during the change-over, then only the new one.
    token_file.write_text(f"{TOKEN}\n{OTHER_TOKEN}\n")
    wait_until(lambda: _http_post(daemon, {"x-api-key": OTHER_TOKEN}).status_code == 200, timeout=10, interval=0.1)
    assert _grpc_call(daemon, (("x-api-key", TOKEN),)) is None
    token_file.write_text(f"{OTHER_TOKEN}\n")
    wait_until(lambda: _http_post(daemon, {"x-api-key": TOKEN}).status_code == 401, timeout=10, interval=0.1)
    error = _grpc_call(daemon, (("x-api-key", TOKEN),))
    assert error is not None and error.code() is grpc.StatusCode.UNAUTHENTICATED
    assert _grpc_call(daemon, (("x-api-key", OTHER_TOKEN),)) is None
    metrics = daemon.scrape()
    assert metrics.value("tail_sampler_receiver_credential_reloads_total", credential="tokens", result="success") >= 2


# --- exporters: TLS and mutual TLS towards the downstream ----------------------------


@pytest.fixture
def tls_sinks(pki) -> Iterator[dict[str, Any]]:
    """Sinks over TLS, and over mutual TLS requiring a client certificate from ca1."""
    server = (pki["ca1-server"].cert_file, pki["ca1-server"].key_file)
    ca_file = pki["ca1"].cert_file
    sinks = {
        ("otlp", "tls"): GrpcSink(tls=server),
        ("otlp", "mtls"): GrpcSink(tls=server, client_ca_file=ca_file),
        ("otlphttp", "tls"): HttpSink(tls=server),
        ("otlphttp", "mtls"): HttpSink(tls=server, client_ca_file=ca_file),
    }
    yield sinks
    for sink in sinks.values():
        sink.close()


@pytest.mark.parametrize("kind", ["otlp", "otlphttp"])
@pytest.mark.parametrize("mode", ["tls", "mtls"])
def test_exporters_deliver_over_tls_and_mutual_tls(pki, tls_sinks, start_daemon, kind, mode):
    sink = tls_sinks[(kind, mode)]
    tls: dict[str, Any] = {"ca_file": str(pki["ca1"].cert_file)}
    if mode == "mtls":
        tls.update(cert_file=str(pki["ca1-client"].cert_file), key_file=str(pki["ca1-client"].key_file))
    exporter = {"endpoint": sink.endpoint, "tls": tls, "retry_on_failure": {"initial_interval": "50ms"}}
    daemon = start_daemon(config_dict({kind: exporter}))
    trace_id, spans = make_trace(spans=5)
    grpc_export(daemon.grpc_endpoint, make_request(spans))
    assert {s.trace_id for s in sink.wait_for_spans(5)} == {trace_id}


@pytest.mark.parametrize("kind", ["otlp", "otlphttp"])
def test_exporters_refuse_an_untrusted_or_unauthenticated_downstream(pki, tls_sinks, start_daemon, kind):
    exporters = {
        # The downstream's certificate is not from the CA the exporter trusts.
        f"{kind}/untrusted": {
            "endpoint": tls_sinks[(kind, "tls")].endpoint,
            "tls": {"ca_file": str(pki["ca2"].cert_file)},
        },
        # The downstream wants a client certificate the exporter does not have.
        f"{kind}/no-client-cert": {
            "endpoint": tls_sinks[(kind, "mtls")].endpoint,
            "tls": {"ca_file": str(pki["ca1"].cert_file)},
        },
    }
    for body in exporters.values():
        body["retry_on_failure"] = {"initial_interval": "50ms", "max_interval": "100ms", "max_elapsed_time": "1s"}
    daemon = start_daemon(config_dict(exporters))
    _, spans = make_trace(spans=2)
    grpc_export(daemon.grpc_endpoint, make_request(spans))
    for name in exporters:
        wait_until(
            lambda name=name: daemon.scrape().value("tail_sampler_exporter_dropped_spans_total", exporter=name) == 2,
            timeout=20,
            what=f"{name} to give up",
        )
        assert daemon.scrape().value("tail_sampler_exporter_failed_attempts_total", exporter=name) >= 1
    assert tls_sinks[(kind, "tls")].span_count() == 0
    assert tls_sinks[(kind, "mtls")].span_count() == 0


# --- secrets stay secret -------------------------------------------------------------


def test_secrets_never_appear_in_check_logs_or_errors(pki, tmp_path):
    from tests.integration.test_cli import DaemonProcess, cli, write_config

    secrets = {
        "RECEIVER_TOKEN": "recv-9c0ffee-token",
        "FILE_TOKEN": "file-5ca1ab1e-token",
        "EXPORTER_TOKEN": "exp-0ddba11-token",
        "BASIC_PASSWORD": "pw-decade-nt",
        "WRONG_TOKEN": "someone-elses-f00d-token",
    }
    token_file = tmp_path / "tokens"
    token_file.write_text(secrets["FILE_TOKEN"] + "\n")
    sink = HttpSink()
    try:
        data = config_dict(
            {
                "otlphttp": {
                    "endpoint": sink.endpoint.replace("://", f"://user:{secrets['BASIC_PASSWORD']}@"),
                    "headers": {"x-api-key": "${env:EXPORTER_TOKEN}"},
                    "retry_on_failure": {"initial_interval": "50ms"},
                }
            }
        )
        auth = {"bearer_tokens": ["${env:RECEIVER_TOKEN}"], "bearer_token_file": str(token_file)}
        for protocol in ("grpc", "http"):
            data["receivers"]["otlp"]["protocols"][protocol]["auth"] = auth
        data["logging"]["level"] = "debug"
        path, ports = write_config(tmp_path, data)
        env = {**os.environ, **secrets}

        def assert_no_secret(text: str) -> None:
            for name, value in secrets.items():
                assert value not in text, f"{name} leaked:\n{text}"

        checked = cli("check", "--config", str(path), env=env)
        assert checked.returncode == 0, checked.stderr
        assert "headers: x-api-key=***" in checked.stdout
        assert f"://***@127.0.0.1:{sink.port}" in checked.stdout
        assert "token in the authorization header (1 inline, from " in checked.stdout
        assert_no_secret(checked.stdout + checked.stderr)

        # Invalid configs: a header value with a line break, an empty token, and an error elsewhere.
        bad = dict(data, exporters={"otlp": {"endpoint": "127.0.0.1:1", "headers": {"x-key": "${env:BAD_VALUE}"}}})
        bad["tail_sampling"] = dict(data["tail_sampling"], num_trace=5)
        bad["receivers"] = {"otlp": {"protocols": {"grpc": {"auth": {"bearer_tokens": ["${env:EMPTY:-}"]}}}}}
        bad_path = tmp_path / "bad.yaml"
        bad_path.write_text(yaml.safe_dump(bad))
        refused = cli("check", "--config", str(bad_path), env={**env, "BAD_VALUE": f"{secrets['WRONG_TOKEN']}\nx: y"})
        assert refused.returncode == 2
        assert "the value of header 'x-key' contains a control character" in refused.stderr
        assert "token [0] is empty" in refused.stderr
        assert "unknown key 'num_trace'" in refused.stderr
        assert_no_secret(refused.stdout + refused.stderr)

        daemon = DaemonProcess(path, ports["admin"], env=env)
        try:
            endpoint = f"127.0.0.1:{ports['grpc']}"
            for token in (secrets["WRONG_TOKEN"], secrets["RECEIVER_TOKEN"], secrets["FILE_TOKEN"]):
                _, spans = make_trace()
                try:
                    grpc_export(endpoint, make_request(spans), metadata=(("authorization", f"Bearer {token}"),))
                except grpc.RpcError as exc:
                    assert exc.code() is grpc.StatusCode.UNAUTHENTICATED
                    assert token == secrets["WRONG_TOKEN"]
                    assert_no_secret(exc.details())
                reply = requests.post(
                    f"http://127.0.0.1:{ports['http']}/v1/traces",
                    data=make_request(spans).SerializeToString(),
                    headers={"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {token}"},
                    timeout=10,
                )
                assert reply.status_code == (401 if token == secrets["WRONG_TOKEN"] else 200)
                assert_no_secret(reply.text)
            sink.wait_for_spans(12)
            code, output = daemon.terminate()
        finally:
            daemon.kill()
        assert code == 0, output
        # The secrets did their work: the sink got the header, the receivers accepted the right tokens.
        assert all(seen.get("x-api-key") == secrets["EXPORTER_TOKEN"] for seen in sink.headers_seen)
        assert "DEBUG" in output and "token in the authorization header" in output
        assert_no_secret(output)
    finally:
        sink.close()


def test_otlphttp_insecure_skip_verify_accepts_an_unknown_certificate(tls_sinks, start_daemon):
    sink = tls_sinks[("otlphttp", "tls")]  # its CA is in no trust store the exporter reads
    daemon = start_daemon(config_dict({"otlphttp": {"endpoint": sink.endpoint, "tls": {"insecure_skip_verify": True}}}))
    trace_id, spans = make_trace(spans=2)
    grpc_export(daemon.grpc_endpoint, make_request(spans))
    assert {s.trace_id for s in sink.wait_for_spans(2)} == {trace_id}


def test_unreadable_tls_files_stop_the_start_with_the_file_named(grpc_sink, pki, tmp_path):
    server = pki["ca1-server"]
    absent = str(tmp_path / "absent.pem")
    cases = [
        (
            receiver_config(grpc_sink, tls={"cert_file": absent, "key_file": str(server.key_file)}),
            f"OTLP/gRPC: cannot read tls.cert_file {absent}: No such file or directory",
        ),
        (
            # A key that does not belong to the certificate.
            receiver_config(
                grpc_sink, tls={"cert_file": str(server.cert_file), "key_file": str(pki["ca2-server"].key_file)}
            ),
            f"cannot load tls.cert_file {server.cert_file} with tls.key_file {pki['ca2-server'].key_file}",
        ),
        (
            config_dict({"otlp": {"endpoint": grpc_sink.endpoint, "tls": {"ca_file": absent}}}),
            f"exporter otlp: cannot read tls.ca_file {absent}: No such file or directory",
        ),
        (
            config_dict({"otlphttp": {"endpoint": "https://127.0.0.1:1", "tls": {"ca_file": absent}}}),
            f"exporter otlphttp: cannot load tls files ({absent}): No such file or directory",
        ),
    ]
    for data, message in cases:
        with pytest.raises(OSError) as caught:
            DaemonThread(make_config(data))
        assert message in str(caught.value)
