"""Receiver credentials and the security keys of the config: validation, token checks, reloads."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from sampler.config import ConfigError, parse_config
from sampler.config.exporters import OtlpHttpExporterConfig
from sampler.config.receivers import ReceiverAuthConfig
from sampler.receive.credentials import CredentialError, TokenAuth
from sampler.telemetry.metrics import Metrics

BASE = """\
tail_sampling:
  policies:
    - {name: keep, type: always_sample}
"""


def _error(text: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(BASE + textwrap.dedent(text), "test.yaml", environ or {})
    return str(caught.value)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _auth(tmp_path: Path, clock: Clock, **settings: object) -> tuple[TokenAuth, Metrics]:
    metrics = Metrics()
    return TokenAuth(ReceiverAuthConfig.model_validate(settings), "http", metrics, clock), metrics


def _failures(metrics: Metrics, reason: str) -> float:
    value = metrics.registry.get_sample_value(
        "tail_sampler_receiver_auth_failures_total", {"protocol": "http", "reason": reason}
    )
    return value or 0.0


# --- config ------------------------------------------------------------------------


def test_a_client_certificate_needs_its_key():
    message = _error("exporters:\n  otlp: {endpoint: 'h:4317', tls: {cert_file: c.pem}}\n")
    assert "test.yaml:5: exporters.otlp.tls: cert_file and key_file go together" in message


def test_insecure_skip_verify_is_an_otlphttp_key_only():
    message = _error("exporters:\n  otlp: {endpoint: 'h:4317', tls: {insecure_skip_verify: true}}\n")
    assert "unknown key 'insecure_skip_verify'" in message
    config = parse_config(BASE + "exporters:\n  otlphttp: {endpoint: 'https://h', tls: {insecure_skip_verify: true}}\n")
    exporter = config.exporters["otlphttp"]
    assert isinstance(exporter, OtlpHttpExporterConfig) and exporter.tls.insecure_skip_verify


def test_auth_needs_a_token_source_and_a_valid_header():
    message = _error(
        """\
        receivers:
          otlp:
            protocols:
              grpc: {auth: {header: authorization}}
              http: {auth: {bearer_tokens: [t], header: 'x api key'}}
        exporters:
          file: {path: out.jsonl}
        """
    )
    assert "receivers.otlp.protocols.grpc.auth: set bearer_token_file or bearer_tokens (or both)" in message
    assert "receivers.otlp.protocols.http.auth.header: 'x api key' is not a valid header name" in message


def test_tls_needs_a_certificate_and_a_key():
    message = _error(
        """\
        receivers:
          otlp:
            protocols:
              grpc: {tls: {cert_file: server.crt, client_ca_fil: ca.crt}}
        exporters:
          file: {path: out.jsonl}
        """
    )
    assert "receivers.otlp.protocols.grpc.tls.key_file: required key is missing" in message
    assert "unknown key 'client_ca_fil' (did you mean 'client_ca_file'?)" in message


def test_tokens_are_kept_out_of_the_config_repr():
    config = parse_config(
        BASE
        + textwrap.dedent(
            """\
            receivers:
              otlp:
                protocols:
                  http: {auth: {bearer_tokens: ["${env:TOKEN}"]}}
            exporters:
              otlphttp: {endpoint: 'https://h', headers: {x-api-key: "${env:KEY}"}}
            """
        ),
        "test.yaml",
        {"TOKEN": "tok-123-secret", "KEY": "key-456-secret"},
    )
    text = repr(config) + str(config)
    assert "tok-123-secret" not in text and "key-456-secret" not in text
    http = config.receivers.otlp.protocols.http
    assert http is not None and http.auth is not None
    assert http.auth.bearer_tokens[0].get_secret_value() == "tok-123-secret"


# --- token checks ------------------------------------------------------------------


def test_the_scheme_is_case_insensitive_and_every_token_is_accepted(tmp_path):
    auth, metrics = _auth(tmp_path, Clock(), bearer_tokens=["first", "second"])
    assert auth.check("Bearer first") is None
    assert auth.check("bearer  second ") is None
    assert auth.check("Bearer third") == "the token in the authorization header is not valid"
    assert auth.check("first") == "the authorization header must be 'Bearer <token>'"
    assert auth.check(None) == "authentication required: send the header 'authorization: Bearer <token>'"
    assert auth.check("Bearer fïrst") is not None  # not ASCII: compared as bytes, refused
    assert (_failures(metrics, "invalid"), _failures(metrics, "malformed"), _failures(metrics, "missing")) == (
        2,
        1,
        1,
    )


def test_a_token_file_is_reread_after_the_interval_and_a_bad_one_keeps_the_old_tokens(tmp_path, caplog):
    token_file = tmp_path / "tokens"
    token_file.write_text("tok-old-1\n")
    clock = Clock()
    auth, metrics = _auth(tmp_path, clock, bearer_token_file=str(token_file), scheme="", reload_interval="10s")
    token_file.write_text("tok-new-2\n")
    assert auth.check("tok-old-1") is None  # not looked at before the interval
    clock.now = 10.0
    assert auth.check("tok-old-1") is not None
    assert auth.check("tok-new-2") is None

    token_file.write_text("\n\n")  # emptied: refused, the previous tokens stay
    clock.now = 20.0
    assert auth.check("tok-new-2") is None
    token_file.unlink()
    clock.now = 30.0
    assert auth.check("tok-new-2") is None
    reloads = {
        result: metrics.registry.get_sample_value(
            "tail_sampler_receiver_credential_reloads_total",
            {"protocol": "http", "credential": "tokens", "result": result},
        )
        for result in ("success", "failure")
    }
    assert reloads == {"success": 1, "failure": 2}
    assert "holds no token" in caplog.text and "No such file or directory" in caplog.text
    assert "tok-" not in caplog.text


def test_a_missing_or_empty_token_file_stops_the_start(tmp_path):
    with pytest.raises(CredentialError, match=r"OTLP/HTTP: cannot read auth.bearer_token_file .*/absent"):
        _auth(tmp_path, Clock(), bearer_token_file=str(tmp_path / "absent"))
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(CredentialError, match="holds no token"):
        _auth(tmp_path, Clock(), bearer_token_file=str(tmp_path / "empty"))
