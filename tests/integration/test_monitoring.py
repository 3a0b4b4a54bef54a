"""The shipped monitoring assets against the real daemon and a real Prometheus server.

- deploy/prometheus/alerts.yaml and deploy/grafana/dashboard.json use only metrics a running
  daemon exports (read from its /metrics);
- `promtool check rules` and `promtool test rules` pass on the alert rules;
- a Prometheus server scrapes a daemon under OTLP traffic: the decision and exporter series
  increase, its totals match what was sent and delivered, the alert rules evaluate cleanly and
  none fires, and every dashboard query evaluates.

Prometheus and promtool come from Debian's `prometheus` package, installed on demand when
running as root with apt (see tests/peers.py); `.ci/run` installs it up front.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.test_cli import free_port
from tests.peers import REPO_ROOT, run_provisioning, unavailable
from tests.support import (
    DaemonThread,
    GrpcSink,
    config_dict,
    fast_retry,
    grpc_export,
    make_request,
    make_trace,
    wait_until,
)

ALERTS = REPO_ROOT / "deploy" / "prometheus" / "alerts.yaml"
ALERT_TESTS = REPO_ROOT / "deploy" / "prometheus" / "alerts_test.yaml"
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "dashboard.json"
# The daemon's own metrics, and the process and Python runtime ones every Prometheus client exports.
METRIC_NAME = re.compile(r"\b(?:tail_sampler|process|python)_[a-zA-Z0-9_:]+")
TROUBLESHOOTING = REPO_ROOT / "docs" / "troubleshooting.md"
SCRAPE_JOB = "tail-sampler"  # the job name alerts.yaml expects

# Grafana's variables, as they would be filled in against a Prometheus scraping every second.
GRAFANA_VARIABLES = {"$__rate_interval": "10s", "$__range": "1m", "$instance": ".*"}

POLICIES = [
    {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}},
    {"name": "half", "type": "probabilistic", "probabilistic": {"sampling_percentage": 50}},
]


# --- the assets ----------------------------------------------------------------


def dashboard_expressions() -> list[str]:
    """Every PromQL expression of the dashboard: panel targets (rows included) and variable queries."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    expressions = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            expressions.extend(target["expr"] for target in panel.get("targets", []))
            walk(panel.get("panels", []))

    walk(dashboard["panels"])
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            expressions.append(variable["definition"])
    return expressions


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def with_grafana_variables(expression: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expression = expression.replace(variable, value)
    return expression


def exported_sample_names(admin_url: str) -> set[str]:
    """The series names a scrape of the daemon can produce, empty label families included:
    counters as _total, histograms as _bucket, _count and _sum."""
    text = requests.get(admin_url + "/metrics", timeout=5).text
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_count", "_sum"))
        else:
            names.add(family.name)
    return names


@pytest.fixture
def daemon(start_daemon: Any, grpc_sink: GrpcSink) -> DaemonThread:
    return start_daemon(config_dict({"otlp": fast_retry(grpc_sink.endpoint)}, POLICIES, decision_wait="200ms"))


def test_the_dashboard_uses_only_metrics_the_daemon_exports(daemon: DaemonThread):
    exported = exported_sample_names(daemon.admin_url)
    expressions = dashboard_expressions()
    used = {name for expression in expressions for name in METRIC_NAME.findall(expression)}
    assert all(METRIC_NAME.search(expression) for expression in expressions)
    assert sorted(used - exported) == []
    # What the dashboard is for: traffic, keep rates, latency, window, exporters, drops, reloads.
    for topic in (
        "tail_sampler_received_spans_total",
        "tail_sampler_exporter_sent_spans_total",
        "tail_sampler_traces_kept_by_policy_total",
        "tail_sampler_decision_lag_seconds_bucket",
        "tail_sampler_window_traces",
        "tail_sampler_exporter_queue_batches",
        "tail_sampler_exporter_failed_attempts_total",
        "tail_sampler_exporter_dropped_spans_total",
        "tail_sampler_config_reloads_total",
        "tail_sampler_window_memory_limit_bytes",
        "tail_sampler_exporter_disk_queue_capacity_bytes",
        "process_resident_memory_bytes",
    ):
        assert topic in used, f"the dashboard has no panel on {topic}"


def test_metrics_has_the_process_and_python_runtime_metrics(daemon: DaemonThread):
    exported = exported_sample_names(daemon.admin_url)
    for name in (
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_start_time_seconds",
        "python_info",
        "python_gc_collections_total",
    ):
        assert name in exported, name
    assert daemon.scrape().value("process_resident_memory_bytes") > 10 * 1024 * 1024


def test_the_alert_rules_use_only_metrics_the_daemon_exports(daemon: DaemonThread):
    exported = exported_sample_names(daemon.admin_url)
    rules = alert_rules()
    used = {name for rule in rules for name in METRIC_NAME.findall(rule["expr"])}
    assert all(METRIC_NAME.search(rule["expr"]) or "up{" in rule["expr"] for rule in rules)
    assert sorted(used - exported) == []
    for rule in rules:
        assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}, rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
    # Memory against its limit, and a persistent queue (bounded in bytes, not batches), have alerts.
    assert {"tail_sampler_window_memory_limit_bytes", "tail_sampler_exporter_disk_queue_capacity_bytes"} <= used


def test_every_runbook_url_is_a_section_of_the_troubleshooting_page():
    from tests.docs.test_site import _heading_anchors

    anchors = _heading_anchors(TROUBLESHOOTING)
    for rule in alert_rules():
        path, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert REPO_ROOT / path == TROUBLESHOOTING, rule["alert"]
        assert anchor == rule["alert"].lower() and anchor in anchors, f"{rule['alert']}: no section #{anchor}"


def test_every_alert_has_a_firing_and_a_quiet_case_in_the_promtool_tests():
    tests = yaml.safe_load(ALERT_TESTS.read_text(encoding="utf-8"))["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    for rule in alert_rules():
        outcomes = {bool(case["exp_alerts"]) for case in cases if case["alertname"] == rule["alert"]}
        assert outcomes == {True, False}, f"{rule['alert']}: needs a case where it fires and one where it does not"


# --- Prometheus and promtool ---------------------------------------------------------


class PrometheusTools(NamedTuple):
    prometheus: str
    promtool: str


def _find_tools() -> PrometheusTools | None:
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    return PrometheusTools(prometheus, promtool) if prometheus and promtool else None


@pytest.fixture(scope="session")
def prometheus_tools() -> PrometheusTools:
    tools = _find_tools()
    if tools is not None:
        return tools
    if os.geteuid() != 0:
        unavailable("Prometheus", "prometheus/promtool are not on PATH and installing Debian's package needs root")
    if shutil.which("apt-get") is None:
        unavailable("Prometheus", "prometheus/promtool are not on PATH and there is no apt-get to install them")
    noninteractive = ["env", "DEBIAN_FRONTEND=noninteractive"]
    run_provisioning("Prometheus", [*noninteractive, "apt-get", "update", "-qq"])
    run_provisioning(
        "Prometheus", [*noninteractive, "apt-get", "install", "-y", "-qq", "--no-install-recommends", "prometheus"]
    )
    tools = _find_tools()
    if tools is None:
        unavailable("Prometheus", "Debian's prometheus package installed, but prometheus/promtool are not on PATH")
    return tools


def promtool(tools: PrometheusTools, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tools.promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def test_promtool_checks_the_alert_rules(prometheus_tools: PrometheusTools):
    result = promtool(prometheus_tools, "check", "rules", ALERTS.name, cwd=ALERTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_promtool_unit_tests_of_the_alert_rules_pass(prometheus_tools: PrometheusTools):
    result = promtool(prometheus_tools, "test", "rules", ALERT_TESTS.name, cwd=ALERT_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


class PrometheusServer:
    """A real Prometheus on 127.0.0.1 scraping the given targets every second, with alerts.yaml loaded."""

    def __init__(self, binary: str, directory: Path, targets: list[str]) -> None:
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [{"job_name": SCRAPE_JOB, "static_configs": [{"targets": targets}]}],
        }
        config_file = directory / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config))
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log_path = directory / "prometheus.log"
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config_file}",
                    f"--storage.tsdb.path={directory / 'data'}",
                    f"--web.listen-address={self.url.removeprefix('http://')}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_until(self._ready, timeout=60, interval=0.2, what="Prometheus /-/ready")
        except BaseException:
            self.stop()
            raise

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"Prometheus exited with {self.process.returncode}:\n{self.log()}")
        try:
            return requests.get(self.url + "/-/ready", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def api(self, path: str, **params: str) -> Any:
        body = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=10).json()
        assert body["status"] == "success", f"{path} {params}: {body}"
        return body["data"]

    def query(self, expression: str) -> list[dict[str, Any]]:
        return self.api("query", query=expression)["result"]

    def scalar(self, expression: str) -> float:
        """The value of a query that yields one series (0 when it yields none)."""
        result = self.query(expression)
        assert len(result) <= 1, f"{expression} yields {len(result)} series"
        return float(result[0]["value"][1]) if result else 0.0

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@pytest.fixture
def prometheus_for(prometheus_tools: PrometheusTools, tmp_path: Path) -> Iterator[Any]:
    started: list[PrometheusServer] = []

    def start(targets: list[str]) -> PrometheusServer:
        server = PrometheusServer(prometheus_tools.prometheus, tmp_path, targets)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def send_traffic(endpoint: str, seconds: float, requests_per_second: float = 10.0) -> int:
    """OTLP/gRPC export requests of 4 traces (3 spans each, one in four with an error) for a bounded
    time; returns the number of spans sent."""
    spans_sent = 0
    deadline = time.monotonic() + seconds
    sent_requests = 0
    while time.monotonic() < deadline and sent_requests < seconds * requests_per_second:
        spans = []
        for index in range(4):
            _, trace = make_trace(spans=3, error=index == 0)
            spans.extend(trace)
        grpc_export(endpoint, make_request(spans))
        spans_sent += len(spans)
        sent_requests += 1
        time.sleep(1.0 / requests_per_second)
    return spans_sent


def test_prometheus_scrapes_the_daemon_under_traffic(daemon: DaemonThread, grpc_sink: GrpcSink, prometheus_for: Any):
    target = daemon.admin_url.removeprefix("http://")
    prometheus = prometheus_for([target])
    wait_until(lambda: prometheus.scalar(f'up{{job="{SCRAPE_JOB}"}}') == 1, timeout=30, interval=0.5, what="target up")

    spans_sent = send_traffic(daemon.grpc_endpoint, seconds=6)

    # Series of the daemon's decisions and exports, increasing while Prometheus watched.
    increasing = [
        'sum(increase(tail_sampler_traces_decided_total{decision="kept"}[1m]))',
        'sum(increase(tail_sampler_traces_decided_total{decision="dropped"}[1m]))',
        'sum(rate(tail_sampler_policy_decisions_total{policy="errors", decision="sampled"}[1m]))',
        'sum(increase(tail_sampler_traces_kept_by_policy_total{policy="half"}[1m]))',
        "sum(increase(tail_sampler_decision_lag_seconds_count[1m]))",
        'sum(rate(tail_sampler_exporter_sent_spans_total{exporter="otlp"}[1m]))',
        'sum(increase(tail_sampler_exporter_sent_requests_total{exporter="otlp"}[1m]))',
        "sum(rate(tail_sampler_received_spans_total[1m]))",
    ]
    for expression in increasing:
        wait_until(lambda e=expression: prometheus.scalar(e) > 0, timeout=30, interval=0.5, what=expression)

    # Once every kept span has reached the sink, Prometheus' latest samples agree with both ends.
    def kept_spans_delivered() -> int:
        metrics = daemon.scrape()
        kept = int(metrics.value("tail_sampler_spans_decided_total", decision="kept"))
        decided_all = metrics.value("tail_sampler_window_traces") == 0
        delivered = grpc_sink.span_count() == kept == metrics.value("tail_sampler_exporter_sent_spans_total")
        return kept if decided_all and delivered else 0

    kept_spans = wait_until(kept_spans_delivered, timeout=30, what="every kept span delivered")
    wait_until(
        lambda: prometheus.scalar("sum(tail_sampler_received_spans_total)") == spans_sent,
        timeout=30,
        interval=0.5,
        what=f"Prometheus to see {spans_sent} received spans",
    )
    wait_until(
        lambda: prometheus.scalar('sum(tail_sampler_exporter_sent_spans_total{exporter="otlp"})') == kept_spans,
        timeout=30,
        interval=0.5,
        what=f"Prometheus to see {kept_spans} exported spans",
    )
    assert 0 < kept_spans < spans_sent

    # alerts.yaml, loaded by the server, evaluates without errors and nothing fires on a healthy daemon.
    def rules_evaluated() -> list[dict[str, Any]]:
        rules = [rule for group in prometheus.api("rules")["groups"] for rule in group["rules"]]
        return rules if rules and all(rule["health"] != "unknown" for rule in rules) else []

    rules = wait_until(rules_evaluated, timeout=30, interval=0.5, what="the alert rules evaluated")
    assert sorted(rule["name"] for rule in rules) == sorted(rule["alert"] for rule in alert_rules())
    assert [(rule["name"], rule.get("lastError")) for rule in rules if rule["health"] != "ok"] == []
    assert [alert for alert in prometheus.api("alerts")["alerts"] if alert["state"] == "firing"] == []

    # Every dashboard query is valid PromQL that evaluates on the server; the main panels have data.
    for expression in dashboard_expressions():
        if expression.startswith("label_values("):
            metric = expression.removeprefix("label_values(").split(",")[0]
            assert prometheus.api("series", **{"match[]": metric}), expression
            continue
        prometheus.query(with_grafana_variables(expression))
    for expression in dashboard_expressions():
        if "received_spans_total" in expression or "traces_kept_by_policy_total" in expression:
            assert prometheus.query(with_grafana_variables(expression)), f"no data for {expression}"
