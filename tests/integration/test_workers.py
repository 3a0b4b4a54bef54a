"""`workers: 2`: the daemon as several processes, run as a user runs it (`tail-sampler run`), with
real clients (the OpenTelemetry SDK's exporters, raw OTLP over both protocols) and a real sink.

Each worker decides the traces whose IDs hash to it, wherever their spans arrive; the
supervisor speaks for all of them on the admin endpoint and brings them reloads and shutdown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from sampler.spans.fragments import owner_of
from tests.integration.test_cli import REPO, DaemonProcess, write_config
from tests.support import (
    GrpcSink,
    Metrics,
    config_dict,
    fast_retry,
    grpc_export,
    http_export,
    make_request,
    make_trace,
    sdk_tracer,
    wait_until,
)

ERRORS = {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}}
KEEP_ALL = {"name": "everything", "type": "always_sample"}


def start(tmp_path: Path, data: dict[str, Any], workers: int = 2) -> tuple[DaemonProcess, dict[str, int]]:
    data["workers"] = workers
    path, ports = write_config(tmp_path, data)
    return DaemonProcess(path, ports["admin"]), ports


def scrape(daemon: DaemonProcess) -> Metrics:
    return Metrics.scrape(daemon.admin)


def worker_pids(supervisor: int) -> list[int]:
    """The supervisor's children, from /proc."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == supervisor:
            children.append(int(entry.name))
    return children


def wait_settled(daemon: DaemonProcess, traces: int, timeout: float = 20.0) -> Metrics:
    """Every one of `traces` traces decided, and every kept span sent (or counted as dropped)."""

    def settled() -> Metrics | None:
        metrics = scrape(daemon)
        kept = metrics.value("tail_sampler_spans_decided_total", decision="kept") + metrics.value(
            "tail_sampler_late_spans_total", decision="kept"
        )
        done = metrics.value("tail_sampler_exporter_sent_spans_total") + metrics.value(
            "tail_sampler_exporter_dropped_spans_total"
        )
        decided = metrics.value("tail_sampler_traces_decided_total")
        return metrics if decided >= traces and done == kept else None

    return wait_until(settled, timeout, what=f"{traces} traces decided and their kept spans exported")


def spans_by_trace(sink: GrpcSink) -> dict[bytes, list[bytes]]:
    seen: dict[bytes, list[bytes]] = {}
    for span in sink.spans():
        seen.setdefault(span.trace_id, []).append(span.span_id)
    return seen


def test_traces_split_over_requests_and_protocols_are_decided_once_and_forwarded_whole(tmp_path):
    from opentelemetry import trace

    sink = GrpcSink()
    daemon = None
    try:
        data = config_dict({"otlp": fast_retry(sink.endpoint)}, [ERRORS], decision_wait="1500ms")
        daemon, ports = start(tmp_path, data)
        # SDK clients, each span exported as it ends (one request per span), over both protocols:
        # three of each, so the kernel spreads their connections over the workers.
        tracers = [sdk_tracer(f"127.0.0.1:{ports['grpc']}", "grpc", service=f"grpc-{i}") for i in range(3)]
        tracers += [
            sdk_tracer(f"http://127.0.0.1:{ports['http']}/v1/traces", "http", service=f"http-{i}") for i in range(3)
        ]
        kept: dict[bytes, int] = {}
        dropped = set()
        for number in range(30):
            root_provider, root_tracer = tracers[number % len(tracers)]
            root = root_tracer.start_span("root")
            context = trace.set_span_in_context(root)
            for hop in range(1, 4):
                _, tracer = tracers[(number + hop) % len(tracers)]
                child = tracer.start_span(f"hop-{hop}", context=context)
                if number % 3 == 0 and hop == 3:
                    child.set_status(trace.Status(trace.StatusCode.ERROR))
                child.end()
            root.end()
            trace_id = root.get_span_context().trace_id.to_bytes(16, "big")
            if number % 3 == 0:
                kept[trace_id] = 4
            else:
                dropped.add(trace_id)
        # Both workers own some of these traces, so fragments were handed over.
        assert {owner_of(trace_id, 2) for trace_id in [*kept, *dropped]} == {0, 1}
        metrics = wait_settled(daemon, 30)
        assert metrics.value("tail_sampler_traces_decided_total") == 30  # each trace decided once
        assert metrics.value("tail_sampler_traces_decided_total", decision="kept") == len(kept)
        assert metrics.value("tail_sampler_received_spans_total", protocol="grpc") > 0
        assert metrics.value("tail_sampler_received_spans_total", protocol="http") > 0
        assert metrics.value("tail_sampler_received_spans_total") == 120
        assert metrics.value("tail_sampler_late_spans_total") == 0
        handed = metrics.value("tail_sampler_worker_handoff_spans_total", direction="sent")
        assert handed > 0
        assert metrics.value("tail_sampler_worker_handoff_spans_total", direction="received") == handed
        seen = spans_by_trace(sink)
        assert set(seen) == set(kept)
        for trace_id, spans in seen.items():
            assert len(spans) == len(set(spans)) == kept[trace_id], trace_id.hex()
        for provider, _ in tracers:
            provider.shutdown()
        code, output = daemon.terminate()
        assert code == 0, output
    finally:
        if daemon is not None:
            daemon.kill()
        sink.close()


def traffic(ports: dict[str, int]) -> int:
    """The same requests every time: 60 traces in 3 requests each, over gRPC and OTLP/HTTP."""
    import random

    rng = random.Random(7)
    traces = []
    for number in range(60):
        trace_id = rng.randbytes(16)
        spans = make_trace(spans=6, error=number % 4 == 0, duration_ms=200 if number % 5 == 0 else 20)[1]
        for index, span in enumerate(spans):
            span.trace_id = trace_id
            span.span_id = rng.randbytes(8)
            if index:
                span.parent_span_id = spans[0].span_id
        traces.append(spans)
    for part in range(3):
        for first in range(0, 60, 10):
            request = make_request([span for spans in traces[first : first + 10] for span in spans[part::3]])
            if part == 1:
                response = http_export(f"http://127.0.0.1:{ports['http']}/v1/traces", request.SerializeToString())
                assert response.status_code == 200, response.text
            else:
                grpc_export(f"127.0.0.1:{ports['grpc']}", request)
    return 60


# Counters that differ with the number of workers by design: hand-overs happen only between
# workers, and each worker batches its own kept traces into export requests.
PER_PROCESS = (
    "tail_sampler_worker_handoff_spans_total",
    "tail_sampler_exporter_sent_requests_total",
    "tail_sampler_forward_batches_total",
)


def totals(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every counter and histogram count of the traffic (not those of the processes themselves)."""
    return {
        (name, tuple(sorted(labels.items()))): value
        for name, labels, value in metrics.samples
        if (name.endswith("_total") or name.endswith("_count"))
        and name not in PER_PROCESS
        and not name.startswith(("process_", "python_"))
    }


def test_metrics_totals_equal_the_single_worker_figures_for_the_same_traffic(tmp_path):
    policies = [
        ERRORS,
        {"name": "slow", "type": "latency", "latency": {"threshold_ms": 100}},
        {"name": "baseline", "type": "probabilistic", "probabilistic": {"sampling_percentage": 30}},
    ]
    figures = {}
    for workers in (1, 2):
        sink = GrpcSink()
        daemon = None
        try:
            data = config_dict({"otlp": fast_retry(sink.endpoint)}, policies, decision_wait="1s", num_traces=1000)
            (tmp_path / str(workers)).mkdir()
            daemon, ports = start(tmp_path / str(workers), data, workers)
            sent = traffic(ports)
            metrics = wait_settled(daemon, sent)
            figures[workers] = (totals(metrics), metrics, sink.span_count())
            code, output = daemon.terminate()
            assert code == 0, output
        finally:
            if daemon is not None:
                daemon.kill()
            sink.close()
    one, two = figures[1][0], figures[2][0]
    assert one == two
    assert one[("tail_sampler_received_spans_total", (("protocol", "grpc"),))] == 240
    assert one[("tail_sampler_received_spans_total", (("protocol", "http"),))] == 120
    assert figures[1][2] == figures[2][2] > 0  # the same spans at the sink
    # Gauges of amounts add up too: each worker's window holds half the capacity.
    assert figures[2][1].value("tail_sampler_window_capacity_traces") == 1000
    assert figures[2][1].value("tail_sampler_worker_handoff_spans_total", direction="sent") > 0
    assert figures[2][1].value("tail_sampler_workers") == 2


def write(path: Path, data: dict) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(yaml.safe_dump(data))
    temporary.replace(path)


def test_sighup_reaches_every_worker_and_sigterm_drains_them_all(tmp_path):
    sink = GrpcSink()
    daemon = None
    try:
        # Traces wait long in the window: only the drain on SIGTERM decides them.
        data = config_dict({"otlp": fast_retry(sink.endpoint)}, [ERRORS], decision_wait="60s")
        data["reload"] = {"watch_file": False}
        data["workers"] = 2
        path, ports = write_config(tmp_path, data)
        daemon = DaemonProcess(path, ports["admin"])
        ids = set()
        for _ in range(4):
            batch = [make_trace(spans=3) for _ in range(10)]  # no errors: the first policy drops them all
            ids.update(trace_id for trace_id, _ in batch)
            grpc_export(f"127.0.0.1:{ports['grpc']}", make_request([s for _, spans in batch for s in spans]))
        assert {owner_of(trace_id, 2) for trace_id in ids} == {0, 1}
        wait_until(lambda: scrape(daemon).value("tail_sampler_window_traces") == 40, what="40 traces buffered")

        data["tail_sampling"]["policies"] = [ERRORS, KEEP_ALL]
        write(path, data)
        daemon.process.send_signal(signal.SIGHUP)
        wait_until(lambda: scrape(daemon).value("tail_sampler_config_reloads_total", result="success") == 1)
        assert scrape(daemon).value("tail_sampler_config_last_reload_successful") == 1

        # An invalid edit is refused by every worker; the running policies stay.
        path.write_text(path.read_text().replace("always_sample", "alwyas_sample"))
        daemon.process.send_signal(signal.SIGHUP)
        wait_until(lambda: scrape(daemon).value("tail_sampler_config_reloads_total", result="failure") == 1)
        assert scrape(daemon).value("tail_sampler_config_last_reload_successful") == 0

        code, output = daemon.terminate()
        assert code == 0, output
        # Every worker decided what it buffered, with the reloaded policies, and flushed it.
        assert sink.trace_ids() == ids
        assert sink.span_count() == 120
        assert "worker=0" in output and "worker=1" in output
    finally:
        if daemon is not None:
            daemon.kill()
        sink.close()


def test_a_worker_killed_with_sigkill_is_started_again_and_its_traces_flow_again(tmp_path):
    sink = GrpcSink()
    daemon = None
    try:
        data = config_dict({"otlp": fast_retry(sink.endpoint)}, [KEEP_ALL], decision_wait="300ms")
        daemon, ports = start(tmp_path, data)
        pids = worker_pids(daemon.process.pid)
        assert len(pids) == 2
        os.kill(pids[1], signal.SIGKILL)
        wait_until(lambda: scrape(daemon).value("tail_sampler_worker_restarts_total") == 1, timeout=30)
        wait_until(lambda: requests.get(daemon.admin + "/readyz", timeout=5).status_code == 200, timeout=30)
        after = worker_pids(daemon.process.pid)
        assert len(after) == 2 and pids[1] not in after

        # Traces of both workers' shares are taken and forwarded whole again.
        batch = [make_trace(spans=3) for _ in range(20)]
        assert {owner_of(trace_id, 2) for trace_id, _ in batch} == {0, 1}
        for start_at in range(0, 20, 5):
            grpc_export(
                f"127.0.0.1:{ports['grpc']}",
                make_request([s for _, spans in batch[start_at : start_at + 5] for s in spans]),
            )
        sink.wait_for_spans(60, timeout=20)
        assert sink.trace_ids() == {trace_id for trace_id, _ in batch}
        code, output = daemon.terminate()
        assert code == 0, output
        assert "worker 1 was killed by SIGKILL; starting it again" in output
    finally:
        if daemon is not None:
            daemon.kill()
        sink.close()


def traces_owned_by(owner: int, count: int, spans: int = 2) -> list[tuple[bytes, list[Any]]]:
    found = []
    while len(found) < count:
        trace_id, trace = make_trace(spans=spans)
        if owner_of(trace_id, 2) == owner:
            found.append((trace_id, trace))
    return found


def test_a_full_owner_refuses_the_whole_request(tmp_path):
    import grpc

    sink = GrpcSink()
    daemon = None
    try:
        # Each worker's window holds 2 traces (num_traces 4, split in two); decisions come late.
        data = config_dict(
            {"otlp": fast_retry(sink.endpoint)},
            [KEEP_ALL],
            decision_wait="60s",
            num_traces=4,
            num_shards=1,
            block_on_overflow=True,
        )
        daemon, ports = start(tmp_path, data)
        endpoint = f"127.0.0.1:{ports['grpc']}"
        full = traces_owned_by(1, 2)
        grpc_export(endpoint, make_request([s for _, spans in full for s in spans]))
        wait_until(lambda: scrape(daemon).value("tail_sampler_window_traces") == 2, what="worker 1's window full")
        mixed = traces_owned_by(0, 1) + traces_owned_by(1, 1)
        with grpc.insecure_channel(endpoint) as channel, pytest.raises(grpc.RpcError) as caught:
            export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
            export(make_request([s for _, spans in mixed for s in spans]).SerializeToString(), timeout=1.5)
        assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        metrics = scrape(daemon)
        assert metrics.value("tail_sampler_receiver_requests_total", result="backpressure") == 1
        # Nothing of the refused request was taken, by either worker: a retry brings nothing twice.
        assert metrics.value("tail_sampler_window_traces") == 2
        assert metrics.value("tail_sampler_received_spans_total") == 4
        assert metrics.value("tail_sampler_early_decisions_total") == 0
        # Worker 0's own share has room: a request of its traces alone is taken.
        grpc_export(endpoint, make_request(traces_owned_by(0, 1)[0][1]))
        wait_until(lambda: scrape(daemon).value("tail_sampler_window_traces") == 3)
        code, output = daemon.terminate()
        assert code == 0, output
        assert len(sink.trace_ids()) == 3, output
    finally:
        if daemon is not None:
            daemon.kill()
        sink.close()


def test_each_worker_keeps_its_state_in_a_directory_of_its_own(tmp_path):
    from tests.integration.test_cli import cli

    sink = GrpcSink()
    daemon = None
    try:
        queue, decisions = tmp_path / "queue", tmp_path / "state" / "decisions.bin"
        exporter = fast_retry(sink.endpoint, sending_queue={"storage": {"directory": str(queue)}})
        data = config_dict(
            {"otlp": exporter}, [ERRORS], decision_wait="200ms", decision_cache={"persist_path": str(decisions)}
        )
        daemon, ports = start(tmp_path, data)
        batch = traces_owned_by(0, 3) + traces_owned_by(1, 3)
        grpc_export(f"127.0.0.1:{ports['grpc']}", make_request([s for _, spans in batch for s in spans]))
        wait_settled(daemon, 6)
        assert sorted(path.name for path in queue.iterdir()) == ["worker-0", "worker-1"]
        assert all((queue / f"worker-{i}" / "otlp" / "queue.lock").exists() for i in (0, 1))

        # A second daemon with the same directories: its workers find them locked, and it stops.
        second_data = config_dict({"otlp": exporter}, [ERRORS], decision_cache={"persist_path": str(decisions)})
        second_data["workers"] = 2
        (tmp_path / "second").mkdir()
        second_path, _ = write_config(tmp_path / "second", second_data)
        result = cli("run", "--config", str(second_path))
        assert result.returncode == 1
        assert "is in use by another process" in result.stderr
        assert "while starting; stopping" in result.stderr

        code, output = daemon.terminate()
        assert code == 0, output
        # Each worker saved the decisions it made, each in its own file.
        assert sorted(path.parent.name for path in decisions.parent.glob("worker-*/decisions.bin")) == [
            "worker-0",
            "worker-1",
        ]
    finally:
        if daemon is not None:
            daemon.kill()
        sink.close()


def test_log_records_reach_the_worker_that_owns_their_trace(tmp_path):
    """The SDK's log and trace exporters over both protocols, each client on a connection (and so a
    worker) of its own: a trace's spans and its log records meet at its owner and follow its decision."""
    from tests.integration.test_log_records import Client

    sink = GrpcSink()
    daemon = None
    try:
        data = config_dict({"otlp": fast_retry(sink.endpoint)}, [ERRORS], decision_wait="1s")
        daemon, ports = start(tmp_path, data)

        class Endpoints:  # what Client reads of a daemon
            grpc_endpoint = f"127.0.0.1:{ports['grpc']}"
            http_url = f"http://127.0.0.1:{ports['http']}/v1/traces"
            http_logs_url = f"http://127.0.0.1:{ports['http']}/v1/logs"

        clients = [Client(Endpoints(), protocol, protocol) for protocol in ("grpc", "http", "grpc", "http")]
        kept: set[bytes] = set()
        everything: set[bytes] = set()
        try:
            from opentelemetry.trace import Status, StatusCode

            for index in range(40):
                client = clients[index % len(clients)]
                with client.tracer.start_as_current_span("GET /order") as root:
                    client.log(f"order {index}")
                    if index % 4 == 0:
                        root.set_status(Status(StatusCode.ERROR))
                trace_id = root.get_span_context().trace_id.to_bytes(16, "big")
                everything.add(trace_id)
                if index % 4 == 0:
                    kept.add(trace_id)
            for client in clients:
                client.flush()
        finally:
            for client in clients:
                client.close()
        assert {owner_of(trace_id, 2) for trace_id in kept} == {0, 1}

        def settled() -> bool:
            metrics = scrape(daemon)
            return (
                metrics.value("tail_sampler_traces_decided_total") == 40
                and metrics.value("tail_sampler_log_records_total", outcome="kept") == len(kept)
                and metrics.value("tail_sampler_log_records_total", outcome="dropped") == 40 - len(kept)
                and metrics.value("tail_sampler_exporter_sent_log_records_total") == len(kept)
            )

        wait_until(settled, timeout=30, what="every trace decided, its log record with it")
        assert {record.trace_id for record in sink.log_records()} == kept
        assert sink.trace_ids() == kept
        code, output = daemon.terminate()
        assert code == 0, output
    finally:
        if daemon is not None:
            daemon.kill()
        sink.close()


def test_a_worker_that_keeps_dying_stops_the_daemon_with_an_error(tmp_path):
    sink = GrpcSink()
    daemon = None
    try:
        daemon, _ = start(tmp_path, config_dict({"otlp": fast_retry(sink.endpoint)}))
        for restarts in range(1, 7):
            victim = sorted(worker_pids(daemon.process.pid))[-1]
            os.kill(victim, signal.SIGKILL)
            if restarts <= 5:
                wait_until(
                    lambda r=restarts: scrape(daemon).value("tail_sampler_worker_restarts_total") == r, timeout=30
                )
                wait_until(lambda v=victim: len(set(worker_pids(daemon.process.pid)) - {v}) == 2, timeout=30)
        code = daemon.process.wait(timeout=60)
        output = daemon.process.stdout.read()
        assert code == 1, output
        assert "giving up; stopping the daemon" in output
    finally:
        if daemon is not None:
            daemon.kill()
        sink.close()


ADMIN_TOKEN = "s3cret-admin-token"  # noqa: S105 # nosec B105 # a test's own token


def test_the_console_api_answers_for_every_worker(tmp_path):
    """The supervisor answers the console's API for the daemon: a trace lookup from the worker that
    owns the trace, the status of all workers as one, behind admin.auth's token as one process."""
    sink = GrpcSink()
    daemon = None
    rate = {"name": "capped", "type": "rate_limiting", "rate_limiting": {"spans_per_second": 100000}}
    try:
        data = config_dict({"otlp": fast_retry(sink.endpoint)}, [ERRORS, rate], decision_wait="300ms", num_traces=3000)
        data["admin"]["auth"] = {"bearer_tokens": [ADMIN_TOKEN]}
        daemon, ports = start(tmp_path, data)
        token = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

        def get(path: str, headers: dict[str, str] | None = None) -> requests.Response:
            return requests.get(daemon.admin + path, headers=headers, timeout=10)

        errors = [make_trace(spans=2, error=True) for _ in range(10)]
        plain = [make_trace(spans=2) for _ in range(10)]
        grpc_export(f"127.0.0.1:{ports['grpc']}", make_request([s for _, spans in errors + plain for s in spans]))
        assert {owner_of(trace_id, 2) for trace_id, _ in errors} == {0, 1}
        wait_until(lambda: scrape_with(daemon, token).value("tail_sampler_traces_decided_total") == 20)

        for trace_id, _ in errors:
            answer = get(f"/api/v1/decisions/{trace_id.hex()}", token)
            assert answer.status_code == 200, answer.text
            assert answer.json()["decision"] == "kept" and answer.json()["spans"] == 2
        unknown = get(f"/api/v1/decisions/{os.urandom(16).hex()}", token)
        assert unknown.status_code == 404 and "unknown here" in unknown.json()["error"]
        assert get("/api/v1/decisions/xyz", token).status_code == 400

        status = get("/api/v1/status", token).json()
        assert status["workers"] == 2 and status["ready"] is True
        assert status["window"]["num_traces"] == 3000  # each worker's share, added up
        assert status["decisions"]["1m"]["decided"] == 20 and status["decisions"]["1m"]["kept"] == 20
        assert status["decisions"]["1m"]["keep_ratio"] == 1.0
        described = {policy["name"]: policy["description"] for policy in status["policies"]}
        assert "spans_per_second=100000" in described["capped"]  # the configured rate, not a worker's share
        capped = next(policy for policy in status["policies"] if policy["name"] == "capped")
        assert capped["rates"]["1m"]["evaluated"] == 20  # every trace, over both workers

        for path in ("/healthz", "/readyz", "/", "/console.js"):
            assert get(path).status_code == 200, path
        for path in ("/metrics", "/api/v1/status", f"/api/v1/decisions/{errors[0][0].hex()}"):
            refused = get(path)
            assert refused.status_code == 401 and "authentication required" in refused.json()["error"], path
        assert scrape_with(daemon, token).value("tail_sampler_receiver_auth_failures_total", protocol="admin") == 3
        code, output = daemon.terminate()
        assert code == 0, output
    finally:
        if daemon is not None:
            daemon.kill()
        sink.close()


def scrape_with(daemon: DaemonProcess, headers: dict[str, str]) -> Metrics:
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(daemon.admin + "/metrics", headers=headers, timeout=5).text
    return Metrics([(s.name, dict(s.labels), s.value) for f in text_string_to_metric_families(text) for s in f.samples])


def test_workers_run_the_package_the_supervisor_runs_whatever_the_working_directory(tmp_path):
    """`python -m` puts the working directory first on the path: a directory holding another
    `sampler` (a checkout, a build tree) must not give the workers other code than the supervisor."""
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "sampler" / "workers").mkdir(parents=True)
    (elsewhere / "sampler" / "__init__.py").write_text('raise SystemExit("imported the wrong sampler")\n')
    (elsewhere / "sampler" / "workers" / "__init__.py").write_text("")
    data = config_dict({"file": {"path": str(tmp_path / "out.jsonl")}}, [KEEP_ALL], decision_wait="200ms")
    data["workers"] = 2
    path, ports = write_config(tmp_path, data)
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    environment["PYTHONPATH"] = str(REPO)  # the supervisor's own package, found without the working directory
    process = subprocess.Popen(
        [sys.executable, "-P", "-m", "sampler", "run", "--config", str(path)],
        cwd=elsewhere,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        admin = f"http://127.0.0.1:{ports['admin']}"

        def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"the daemon exited: {process.communicate()[0]}")
            try:
                return requests.get(admin + "/readyz", timeout=2).status_code == 200
            except requests.ConnectionError:
                return False

        wait_until(ready, timeout=30, what="both workers ready")
        assert len(worker_pids(process.pid)) == 2
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "wrong sampler" not in output
