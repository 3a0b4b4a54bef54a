"""The shipped scale-out recipe, end to end: a real OpenTelemetry Collector running
deploy/collector/loadbalancer-dns.yaml in front of two sampler replicas.

The Collector is built from tests/collector (main.go, go.mod, go.sum: the otlp receiver,
the memory_limiter processor, the health_check extension, the load_balancing and otlp
exporters, at the release pinned in go.mod; also the tail_sampling and batch processors,
which tests/bench/cpu_bench.py uses) into .peers/ with the Go module proxy.

The test loads the shipped YAML and changes only what cannot run here: the `dns`
resolver becomes a `static` one listing the two replicas, and every listening endpoint
(receivers, health check, the Collector's own metrics) moves to a free port on
127.0.0.1. The pipeline, routing key and exporter settings are the shipped ones, so the
test breaks if the shipped file does. The spans of each trace reach the Collector in
several requests, interleaved with other traces; each trace must be decided whole on
exactly one replica."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.integration.test_cli import free_port
from tests.peers import (
    COLLECTOR_SOURCES,
    REPO_ROOT,
    collector_binary_path,
    collector_build_command,
    run_provisioning,
    unavailable,
)
from tests.support import (
    DaemonThread,
    GrpcSink,
    Metrics,
    SpanSeen,
    config_dict,
    fast_retry,
    grpc_export,
    make_request,
    make_trace,
    wait_until,
)

SHIPPED_CONFIG = REPO_ROOT / "deploy" / "collector" / "loadbalancer-dns.yaml"
# 30 traces of 4 spans; span i of every trace travels in round i, so each trace is spread
# over 4 requests and each request carries parts of 10 traces.
TRACES = 30
SPANS_PER_TRACE = 4
TRACES_PER_REQUEST = 10
ERROR_EVERY = 3  # traces 0, 3, 6... fail, on their last span (the last round)
KEEP_ALL = [{"name": "everything", "type": "always_sample"}]
KEEP_ERRORS = [{"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}}]


@pytest.fixture(scope="module")
def collector_binary() -> Path:
    """tests/collector built once per version of its sources."""
    go = shutil.which("go")
    if go is None:
        unavailable("otelcol", "`go` is not on PATH")
    binary = collector_binary_path()
    if not binary.exists():
        binary.parent.mkdir(parents=True, exist_ok=True)
        run_provisioning("otelcol", collector_build_command(go, binary), cwd=COLLECTOR_SOURCES, timeout=1500)
    return binary


def collector_config(sampler_endpoints: list[str], ports: dict[str, int]) -> dict[str, Any]:
    """The shipped DNS config with a static resolver and loopback endpoints; nothing else changed."""
    config = yaml.safe_load(SHIPPED_CONFIG.read_text())
    load_balancing = config["exporters"]["load_balancing"]
    assert set(load_balancing["resolver"]) == {"dns"}, "the shipped config is expected to use the dns resolver"
    load_balancing["resolver"] = {"static": {"hostnames": sampler_endpoints}}
    protocols = config["receivers"]["otlp"]["protocols"]
    protocols["grpc"]["endpoint"] = f"127.0.0.1:{ports['grpc']}"
    protocols["http"]["endpoint"] = f"127.0.0.1:{ports['http']}"
    config["extensions"]["health_check"]["endpoint"] = f"127.0.0.1:{ports['health']}"
    [reader] = config["service"]["telemetry"]["metrics"]["readers"]
    reader["pull"]["exporter"]["prometheus"].update(host="127.0.0.1", port=ports["telemetry"])
    return config


class CollectorProcess:
    """The built Collector as a subprocess; its output goes to a file shown when a check fails."""

    def __init__(self, binary: Path, sampler_endpoints: list[str], workdir: Path) -> None:
        self.ports = {name: free_port() for name in ("grpc", "http", "health", "telemetry")}
        config = collector_config(sampler_endpoints, self.ports)
        self.config_path = workdir / "collector.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = workdir / "collector.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [str(binary), f"--config={self.config_path}"], stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.ports['grpc']}"

    def wait_ready(self) -> None:
        def healthy() -> bool:
            assert self.process.poll() is None, f"the Collector exited:\n{self.log()}"
            try:
                return requests.get(f"http://127.0.0.1:{self.ports['health']}/", timeout=1).status_code == 200
            except requests.ConnectionError:
                return False

        wait_until(healthy, timeout=30, interval=0.1, what="the Collector's health check")

    def scrape(self) -> Metrics:
        return Metrics.scrape(f"http://127.0.0.1:{self.ports['telemetry']}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()[-4000:]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self._log.close()


@pytest.fixture
def start_collector(collector_binary: Path, tmp_path: Path) -> Iterator[Callable[[list[str]], CollectorProcess]]:
    running: list[CollectorProcess] = []

    def start(sampler_endpoints: list[str]) -> CollectorProcess:
        collector = CollectorProcess(collector_binary, sampler_endpoints, tmp_path)
        running.append(collector)
        collector.wait_ready()
        return collector

    yield start
    for collector in running:
        collector.stop()


@pytest.fixture
def two_sinks() -> Iterator[list[GrpcSink]]:
    sinks = [GrpcSink(), GrpcSink()]
    yield sinks
    for sink in sinks:
        sink.close()


def send_interleaved(endpoint: str) -> dict[bytes, bool]:
    """Send TRACES traces, each split over SPANS_PER_TRACE requests; returns {trace ID: has an error}."""
    traces = [make_trace(spans=SPANS_PER_TRACE, error=index % ERROR_EVERY == 0) for index in range(TRACES)]
    for round_ in range(SPANS_PER_TRACE):
        for first in range(0, TRACES, TRACES_PER_REQUEST):
            group = traces[first : first + TRACES_PER_REQUEST]
            grpc_export(endpoint, make_request(spans[round_] for _, spans in group))
    return {trace_id: index % ERROR_EVERY == 0 for index, (trace_id, _) in enumerate(traces)}


def by_trace(spans: list[SpanSeen]) -> dict[bytes, list[SpanSeen]]:
    grouped: dict[bytes, list[SpanSeen]] = {}
    for span in spans:
        grouped.setdefault(span.trace_id, []).append(span)
    return grouped


@pytest.mark.parametrize("policies", [KEEP_ALL, KEEP_ERRORS], ids=["always_sample", "status_code"])
def test_collector_routes_every_trace_whole_to_one_replica(start_daemon, start_collector, two_sinks, policies):
    replicas: list[DaemonThread] = [
        start_daemon(config_dict({"otlp": fast_retry(sink.endpoint)}, policies, decision_wait="2s"))
        for sink in two_sinks
    ]
    collector = start_collector([replica.grpc_endpoint for replica in replicas])

    sent = send_interleaved(collector.grpc_endpoint)
    kept = {trace_id for trace_id, error in sent.items() if error or policies is KEEP_ALL}
    kept_spans = len(kept) * SPANS_PER_TRACE

    def decided() -> float:
        return sum(replica.scrape().value("tail_sampler_traces_decided_total") for replica in replicas)

    try:
        wait_until(lambda: decided() >= TRACES, timeout=30, what="every trace decided")
        wait_until(lambda: sum(sink.span_count() for sink in two_sinks) >= kept_spans, timeout=15, what="kept spans")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nCollector log:\n{collector.log()}") from exc

    scrapes = [replica.scrape() for replica in replicas]
    received = [scrape.value("tail_sampler_received_traces_total") for scrape in scrapes]
    # A trace split between replicas would be seen, and decided, on both.
    assert sum(received) == TRACES, received
    assert all(share > 0 for share in received), f"one replica got every trace: {received}"
    for scrape, traces_seen in zip(scrapes, received, strict=True):
        assert scrape.value("tail_sampler_traces_decided_total") == traces_seen
        assert scrape.value("tail_sampler_received_spans_total") == traces_seen * SPANS_PER_TRACE
        assert scrape.value("tail_sampler_late_spans_total") == 0
        assert scrape.value("tail_sampler_window_traces") == 0

    kept_on = [by_trace(sink.spans()) for sink in two_sinks]
    assert not set(kept_on[0]) & set(kept_on[1]), "a trace was forwarded by both replicas"
    assert set(kept_on[0]) | set(kept_on[1]) == kept
    for traces in kept_on:
        for trace_id, spans in traces.items():
            assert sorted(span.name for span in spans) == [f"op-{index}" for index in range(SPANS_PER_TRACE)], (
                trace_id.hex()
            )
    for scrape, traces in zip(scrapes, kept_on, strict=True):
        assert scrape.value("tail_sampler_traces_decided_total", decision="kept") == len(traces)
    assert sum(len(spans) for traces in kept_on for spans in traces.values()) == kept_spans

    # The Collector's own view: two backends on the ring, every span accepted and passed on.
    telemetry = collector.scrape()
    assert telemetry.value("otelcol_loadbalancer_num_backends") == 2
    assert telemetry.value("otelcol_receiver_accepted_spans_total") == TRACES * SPANS_PER_TRACE
