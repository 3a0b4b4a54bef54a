"""`GET /api/v1/decisions/{trace_id}` and `tail-sampler explain`, after mixed traffic over real
sockets: traces kept by an error policy, kept by a probabilistic one, vetoed by a drop policy,
dropped by all, and still waiting; late spans; unknown and malformed IDs; the token of
`admin.auth`; and the same answers from `explain`, live against the daemon and offline against a
recording of the same requests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from sampler.policies.base import Decision, TraceView
from sampler.policies.registry import POLICIES
from sampler.spans.trace import TraceSpans
from tests.integration.test_decision_records import scope_attributes
from tests.support import (
    config_dict,
    fast_retry,
    grpc_export,
    json_body,
    make_request,
    make_span,
    make_trace,
    wait_until,
    wait_until_exported,
)

DROP_HEALTH = {
    "name": "drop-health",
    "type": "drop",
    "drop": {
        "drop_sub_policy": [
            {
                "name": "health",
                "type": "string_attribute",
                "string_attribute": {"key": "http.route", "values": ["/healthz"]},
            }
        ]
    },
}
ERRORS = {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}}
SOMETIMES = {"name": "sometimes", "type": "probabilistic", "probabilistic": {"sampling_percentage": 30}}
POLICIES_IN_ORDER = ["drop-health", "errors", "sometimes"]
TOKEN = "s3cret-admin-token"  # noqa: S105 # nosec B105 # a test's own token


def probabilistic_says(trace_id: bytes) -> str:
    """What the probabilistic policy answers for this trace ID: the policy type itself, built
    from the same config entry (it reads nothing but the ID)."""
    policy = POLICIES.validate(SOMETIMES).build(lambda: 0.0)
    return policy.evaluate(TraceView(TraceSpans(trace_id))).value


def lookup(daemon, trace_id: str, token: str | None = TOKEN) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(f"{daemon.admin_url}/api/v1/decisions/{trace_id}", headers=headers, timeout=10)


def explain(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sampler", "explain", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


def without_times(answer: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in answer.items() if key not in ("decided_at", "decided_seconds_ago")}


@pytest.fixture
def mixed_traffic(start_daemon, grpc_sink, tmp_path):
    """A daemon after mixed traffic; the requests also recorded as OTLP/JSON lines, with the config."""
    data = config_dict(
        {"otlp": fast_retry(grpc_sink.endpoint)},
        [ERRORS, SOMETIMES, DROP_HEALTH],  # drop-health is written last: drop policies still run first
        decision_wait="30s",
        # Traces with their root are decided 0.2s after it; a trace without one waits the 30s.
        decision_wait_after_root_received="200ms",
    )
    data["admin"]["auth"] = {"bearer_tokens": [TOKEN]}
    daemon = start_daemon(data)
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(data))
    kinds: dict[str, list[bytes]] = {"error": [], "health": [], "other": []}
    requests_sent = []
    for index in range(36):
        kind = ("error", "health", "other", "other")[index % 4]
        attributes = {"http.route": "/healthz"} if kind == "health" else None
        trace_id, spans = make_trace(spans=3, error=kind == "error", attributes=attributes)
        kinds[kind].append(trace_id)
        requests_sent.append(make_request(spans))
    pending_id, pending_spans = make_trace(spans=2, root=False)
    requests_sent.append(make_request(pending_spans))
    for request in requests_sent:
        grpc_export(daemon.grpc_endpoint, request)
    recording = tmp_path / "recorded.jsonl"
    recording.write_text("".join(json_body(request).decode() + "\n" for request in requests_sent))
    wait_until(
        lambda: daemon.scrape().value("tail_sampler_traces_decided_total") == 36, timeout=30, what="36 decisions"
    )
    return daemon, kinds, pending_id, config_path, recording


def test_the_lookup_answers_for_every_kind_of_trace(mixed_traffic, grpc_sink):
    daemon, kinds, pending_id, _, _ = mixed_traffic
    expected_kept = set(kinds["error"]) | {t for t in kinds["other"] if probabilistic_says(t) == "sampled"}
    assert kinds["error"] and expected_kept - set(kinds["error"]), "the traffic should have probabilistic keeps"
    assert {t for t in kinds["other"] if t not in expected_kept}, "the traffic should have traces nobody kept"
    spans_kept = 3 * len(expected_kept)
    wait_until_exported(daemon, spans_kept)
    assert grpc_sink.trace_ids() == expected_kept

    for trace_id in kinds["error"]:
        answer = lookup(daemon, trace_id.hex()).json()
        assert answer["decision"] == "kept"
        assert answer["trigger"] == "root"
        assert answer["policies"] == {
            "drop-health": "not_sampled",
            "errors": "sampled",
            "sometimes": probabilistic_says(trace_id),
        }
        assert answer["credited_policy"] == "errors"
        assert answer["spans"] == 3 and answer["bytes"] > 0 and answer["late_spans"] == 0
        assert "'errors' (status_code) was the first to sample it" in answer["reason"]
        # The decision record on the forwarded spans names the same policy.
        assert scope_attributes(grpc_sink, trace_id)[0][1]["tailsampling.policy"] == "errors"
        assert 0 <= answer["decided_seconds_ago"] < 60 and answer["decided_at"].endswith("Z")

    for trace_id in kinds["health"]:
        answer = lookup(daemon, trace_id.hex()).json()
        assert answer["decision"] == "dropped"
        # The drop runs first and vetoes: nothing after it is asked.
        assert answer["policies"] == {
            "drop-health": "dropped",
            "errors": "not evaluated",
            "sometimes": "not evaluated",
        }
        assert list(answer["policies"]) == POLICIES_IN_ORDER
        assert answer["credited_policy"] is None
        assert answer["reason"].startswith("dropped: policy 'drop-health' (drop) vetoed it")

    for trace_id in kinds["other"]:
        answer = lookup(daemon, trace_id.hex()).json()
        said = probabilistic_says(trace_id)
        assert answer["policies"] == {"drop-health": "not_sampled", "errors": "not_sampled", "sometimes": said}
        if said == Decision.SAMPLED.value:
            assert answer["decision"] == "kept" and answer["credited_policy"] == "sometimes"
            assert scope_attributes(grpc_sink, trace_id)[0][1]["tailsampling.policy"] == "sometimes"
        else:
            assert answer["decision"] == "dropped" and answer["credited_policy"] is None
            assert answer["reason"].startswith("dropped: no policy sampled it")

    pending = lookup(daemon, pending_id.hex()).json()
    assert pending["decision"] == "pending" and pending["trigger"] is None
    assert 0 < pending["due_in_seconds"] <= 30 and pending["root_seen"] is False
    assert pending["policies"] == dict.fromkeys(POLICIES_IN_ORDER, "not evaluated")
    assert pending["spans"] == 2 and pending["bytes"] > 0


def test_late_spans_are_counted_on_the_remembered_decision(mixed_traffic):
    daemon, kinds, _, _, _ = mixed_traffic
    kept_id, dropped_id = kinds["error"][0], kinds["health"][0]
    before = daemon.scrape().value("tail_sampler_late_spans_total")
    grpc_export(daemon.grpc_endpoint, make_request([make_span(kept_id), make_span(kept_id), make_span(dropped_id)]))
    wait_until(lambda: daemon.scrape().value("tail_sampler_late_spans_total") == before + 3, what="3 late spans")
    assert lookup(daemon, kept_id.hex()).json()["late_spans"] == 2
    assert lookup(daemon, dropped_id.hex()).json()["late_spans"] == 1
    assert lookup(daemon, kept_id.hex()).json()["spans"] == 3  # as decided


def test_unknown_ids_are_404_and_malformed_ones_400(mixed_traffic):
    daemon, _, _, _, _ = mixed_traffic
    unknown = os.urandom(16).hex()
    reply = lookup(daemon, unknown)
    assert reply.status_code == 404
    assert reply.json()["trace_id"] == unknown
    assert "unknown here" in reply.json()["error"] and "non_sampled_cache_size" in reply.json()["error"]
    for malformed in ("xyz", "0" * 31, "g" * 32, "0" * 33, "0" * 32):
        reply = lookup(daemon, malformed)
        assert reply.status_code == 400, malformed
        assert "trace ID" in reply.json()["error"]
    assert lookup(daemon, unknown.upper()).status_code == 404  # either case is a trace ID


def test_the_admin_token_guards_everything_but_the_probes(mixed_traffic):
    daemon, kinds, _, _, _ = mixed_traffic
    # The probes, and the console's page itself (static, no data: its script asks for the token).
    for path in ("/healthz", "/readyz", "/", "/console.js", "/console.css"):
        assert requests.get(daemon.admin_url + path, timeout=10).status_code == 200, path
    for path in ("/metrics", "/api/v1/status", f"/api/v1/decisions/{kinds['error'][0].hex()}"):
        refused = requests.get(daemon.admin_url + path, timeout=10)
        assert refused.status_code == 401, path
        assert refused.headers["WWW-Authenticate"] == "Bearer"
        assert "authentication required" in refused.json()["error"]
        wrong = requests.get(daemon.admin_url + path, headers={"Authorization": "Bearer nope"}, timeout=10)
        assert wrong.status_code == 401
        right = requests.get(daemon.admin_url + path, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        assert right.status_code == 200, path
    assert daemon.scrape().value("tail_sampler_receiver_auth_failures_total", protocol="admin") == 6


def test_explain_prints_the_same_answer_live_and_offline(mixed_traffic, tmp_path):
    daemon, kinds, pending_id, config_path, recording = mixed_traffic
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    endpoint = daemon.admin_url.removeprefix("http://")
    waiting = explain(pending_id.hex(), "--admin", endpoint, "--token-file", str(token_file))
    assert waiting.returncode == 0 and f"trace {pending_id.hex()}: PENDING" in waiting.stdout, waiting.stdout

    kept_by_chance = next(t for t in kinds["other"] if probabilistic_says(t) == "sampled")
    dropped = next(t for t in kinds["other"] if probabilistic_says(t) != "sampled")
    for trace_id in (kinds["error"][0], kinds["health"][0], kept_by_chance, dropped):
        live = explain(trace_id.hex(), "--admin", endpoint, "--token-file", str(token_file), "--json")
        assert live.returncode == 0, live.stderr
        api = lookup(daemon, trace_id.hex()).json()
        assert without_times(json.loads(live.stdout)) == without_times(api)

        offline = explain(trace_id.hex(), "--input", str(recording), "--config", str(config_path), "--json")
        assert offline.returncode == 0, offline.stderr
        recorded = json.loads(offline.stdout)
        for key in ("decision", "policies", "credited_policy", "credited_sub_policy", "spans", "bytes"):
            assert recorded[key] == api[key], (key, trace_id.hex())
        assert recorded["trigger"] == "offline"

    # The text a person reads: the same policy lines live and offline.
    error_id = kinds["error"][0].hex()
    text = explain(error_id, "--admin", endpoint, env={"TAIL_SAMPLER_ADMIN_TOKEN": TOKEN})
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == f"trace {error_id}: KEPT"
    assert "    errors       sampled  <- credited" in lines
    assert "    drop-health  not_sampled" in lines
    offline_text = explain(error_id, "--input", str(recording), "--config", str(config_path))
    policy_lines = [line for line in lines if line.startswith("    ")]
    assert policy_lines == [line for line in offline_text.stdout.splitlines() if line.startswith("    ")]

    # Unknown, malformed, refused: each says so, with its own exit status.
    unknown = explain(os.urandom(16).hex(), "--admin", endpoint, "--token-file", str(token_file))
    assert unknown.returncode == 1 and "unknown here" in unknown.stderr
    not_recorded = explain(os.urandom(16).hex(), "--input", str(recording), "--config", str(config_path))
    assert not_recorded.returncode == 1 and "is not in" in not_recorded.stderr
    malformed = explain("not-a-trace-id", "--admin", endpoint)
    assert malformed.returncode == 2 and "32 hexadecimal digits" in malformed.stderr
    refused = explain(error_id, "--admin", endpoint, env={"TAIL_SAMPLER_ADMIN_TOKEN": ""})
    assert refused.returncode == 2 and "authentication required" in refused.stderr


def test_explain_says_when_no_daemon_answers(tmp_path: Path):
    closed = explain(os.urandom(16).hex(), "--admin", "127.0.0.1:9")
    assert closed.returncode == 2 and "cannot reach the admin endpoint" in closed.stderr
