"""Durable forwarding: the persistent exporter queue and saved decision caches, against
real daemons (in-process and as a subprocess killed with SIGKILL) and a real OTLP sink
that is down, then back on the same port."""

from __future__ import annotations

import copy
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from sampler.spans.fragments import owner_of
from tests.integration.test_cli import DaemonProcess, cli, free_port, write_config
from tests.integration.test_workers import worker_pids
from tests.support import (
    DaemonThread,
    GrpcSink,
    Metrics,
    config_dict,
    grpc_export,
    http_export,
    make_config,
    make_request,
    make_span,
    make_trace,
    wait_until,
)

OUTAGE_SECONDS = 60.0
EXPORTER = "otlp"


def durable_exporter(port: int, directory: Path, **storage: Any) -> dict[str, Any]:
    """An OTLP exporter that retries forever (kept traces wait on disk for the backend)."""
    return {
        "endpoint": f"127.0.0.1:{port}",
        "tls": {"insecure": True},
        "retry_on_failure": {"initial_interval": "50ms", "max_interval": "500ms", "max_elapsed_time": "0s"},
        "sending_queue": {"storage": {"directory": str(directory), **storage}},
    }


def send_traces(endpoint: str, count: int, spans: int = 4, seconds: float = 0.0) -> set[bytes]:
    """`count` traces, one request each, spread over about `seconds`; returns the span IDs."""
    span_ids = set()
    for _ in range(count):
        _, trace = make_trace(spans=spans)
        span_ids.update(span.span_id for span in trace)
        grpc_export(endpoint, make_request(trace))
        if seconds:
            time.sleep(seconds / count)
    return span_ids


def queue_files(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.rglob("*.seg"))


def crash(daemon: DaemonProcess) -> None:
    """kill -9 of the whole daemon at one instant, as an OOM kill of its container: with workers,
    the supervisor and every worker are stopped first (a worker that outlived its supervisor
    would drain gracefully, which is not a crash), then all of them are killed."""
    pids = [daemon.process.pid, *worker_pids(daemon.process.pid)]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    daemon.process.communicate(timeout=30)
    assert daemon.process.returncode == -signal.SIGKILL


# --- the persistent queue --------------------------------------------------------


@pytest.mark.slow
def test_kept_spans_survive_an_outage_and_a_kill_9_of_the_daemon(tmp_path):
    """Backend down for OUTAGE_SECONDS while kept traffic flows; the daemon is killed with
    SIGKILL mid-outage and restarted; once the backend is back every kept span arrives."""
    began = time.monotonic()
    sink_port = free_port()
    queue_dir = tmp_path / "queue"
    data = config_dict({EXPORTER: durable_exporter(sink_port, queue_dir)}, decision_wait="200ms")
    config_path, ports = write_config(tmp_path, data)
    receiver = f"127.0.0.1:{ports['grpc']}"

    first = DaemonProcess(config_path, ports["admin"])
    try:
        before_kill = send_traces(receiver, 150, seconds=8)

        def written_and_sending() -> bool:
            metrics = Metrics.scrape(first.admin)
            return (
                metrics.value("tail_sampler_exporter_disk_queue_spans", exporter=EXPORTER) == len(before_kill)
                and metrics.value("tail_sampler_exporter_failed_attempts_total", exporter=EXPORTER) >= 2
            )

        wait_until(written_and_sending, timeout=30, what="every kept span on disk, and sends failing")
    finally:
        crash(first)

    second = DaemonProcess(config_path, ports["admin"])
    sink: GrpcSink | None = None
    try:
        recovered = Metrics.scrape(second.admin).value("tail_sampler_exporter_disk_recovered_spans_total")
        after_restart = send_traces(receiver, 150, seconds=8)
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - began)))
        outage = time.monotonic() - began
        sink = GrpcSink(port=sink_port)
        kept = before_kill | after_restart
        wait_until(lambda: {s.span_id for s in sink.spans()} >= kept, timeout=60, what="every kept span at the sink")
        catch_up = time.monotonic() - began - outage
        metrics = Metrics.scrape(second.admin)
        code, output = second.terminate(signal.SIGTERM)
    finally:
        second.kill()
        if sink is not None:
            sink.close()

    received = sink.spans()
    unique = {span.span_id for span in received}
    redelivered = metrics.value("tail_sampler_exporter_disk_redelivered_spans_total", exporter=EXPORTER)
    dropped = metrics.value("tail_sampler_exporter_dropped_spans_total", exporter=EXPORTER)
    figures = (
        f"outage {outage:.0f}s, all delivered {catch_up:.1f}s after the backend came back; "
        f"kept spans sent {len(kept)} ({len(before_kill)} before the kill -9, "
        f"{len(after_restart)} after the restart); recovered from disk at restart {recovered:.0f}; "
        f"received {len(received)} ({len(unique & kept)} of the kept ones, {len(received) - len(unique)} "
        f"duplicates); redelivered {redelivered:.0f}; dropped {dropped:.0f}"
    )
    print(figures)
    assert code == 0, output
    assert unique == kept, figures
    assert recovered == len(before_kill), figures
    # Sends were in flight at the kill: those batches went again and are counted as redeliveries.
    assert 0 < redelivered < len(before_kill), figures
    assert len(received) - len(unique) <= redelivered, figures
    assert dropped == 0, figures
    assert queue_files(queue_dir) == [], figures  # everything acknowledged, every segment freed


def test_shutdown_during_an_outage_keeps_buffered_traces_on_disk_for_the_next_start(tmp_path):
    sink_port = free_port()
    queue_dir = tmp_path / "queue"
    data = config_dict({EXPORTER: durable_exporter(sink_port, queue_dir)}, decision_wait="60s")
    data["shutdown"]["timeout"] = "1s"
    daemon = DaemonThread(make_config(data))
    try:
        sent = send_traces(daemon.grpc_endpoint, 25)
        assert daemon.scrape().value("tail_sampler_window_spans") == len(sent)  # all still undecided
    finally:
        daemon.stop()
    registry = daemon.daemon.metrics.registry
    assert (
        registry.get_sample_value(
            "tail_sampler_exporter_dropped_spans_total", {"exporter": EXPORTER, "reason": "shutdown"}
        )
        is None
    )
    assert registry.get_sample_value("tail_sampler_exporter_disk_queue_spans", {"exporter": EXPORTER}) == len(sent)
    assert queue_files(queue_dir)

    sink = GrpcSink(port=sink_port)
    restarted = DaemonThread(make_config(data))
    try:
        sink.wait_for_spans(len(sent), timeout=20)
        assert {span.span_id for span in sink.spans()} == sent
        metrics = restarted.scrape()
        assert metrics.value("tail_sampler_exporter_disk_recovered_spans_total") == len(sent)
        assert metrics.value("tail_sampler_exporter_sent_spans_total") >= len(sent)
    finally:
        restarted.stop()
        sink.close()
    assert queue_files(queue_dir) == []


def test_sigterm_under_load_loses_no_accepted_span(tmp_path):
    """Clients keep sending while the daemon is told to stop, with the backend down: every
    span the daemon accepted (its request answered OK) is decided, kept on disk, and
    delivered by the next run once the backend is up."""
    sink_port = free_port()
    queue_dir = tmp_path / "queue"
    data = config_dict({EXPORTER: durable_exporter(sink_port, queue_dir)}, decision_wait="30s")
    config_path, ports = write_config(tmp_path, data)
    receiver = f"127.0.0.1:{ports['grpc']}"
    accepted: set[bytes] = set()
    refused = 0
    stop_sending = threading.Event()

    def send_until_refused() -> None:
        nonlocal refused
        for _ in range(5000):  # bounded; the daemon stops accepting long before
            if stop_sending.is_set():
                return
            _, trace = make_trace(spans=3)
            try:
                grpc_export(receiver, make_request(trace))
            except grpc.RpcError:
                refused += 1
                if refused >= 20:
                    return
                continue
            accepted.update(span.span_id for span in trace)

    daemon = DaemonProcess(config_path, ports["admin"])
    senders = [threading.Thread(target=send_until_refused) for _ in range(3)]
    try:
        for sender in senders:
            sender.start()
        wait_until(lambda: len(accepted) >= 600, timeout=30, what="traffic flowing")
        code, output = daemon.terminate(signal.SIGTERM)
    finally:
        stop_sending.set()
        for sender in senders:
            sender.join(30)
        daemon.kill()
    assert code == 0, output
    assert f"exporter {EXPORTER} dropped" not in output, output

    sink = GrpcSink(port=sink_port)
    restarted = DaemonProcess(config_path, ports["admin"])
    try:
        wait_until(lambda: {s.span_id for s in sink.spans()} >= accepted, timeout=60, what="every accepted span")
        received = {span.span_id for span in sink.spans()}
    finally:
        restarted.terminate(signal.SIGTERM)
        restarted.kill()
        sink.close()
    figures = (
        f"accepted {len(accepted)} spans before SIGTERM, {refused} requests refused after; received {len(received)}"
    )
    print(figures)
    assert received >= accepted, figures


def test_the_disk_cap_drops_with_its_reason_and_flags_the_queue_full(tmp_path, start_daemon):
    sink_port = free_port()  # nothing listens: the backend is down throughout
    data = config_dict({EXPORTER: durable_exporter(sink_port, tmp_path, max_size_mib=0.05)}, decision_wait="100ms")
    daemon = start_daemon(data)
    sent = send_traces(daemon.grpc_endpoint, 200, spans=5)

    def settled() -> Metrics | None:
        metrics = daemon.scrape()
        on_disk = metrics.value("tail_sampler_exporter_disk_queue_spans")
        dropped = metrics.value("tail_sampler_exporter_dropped_spans_total", reason="disk_queue_full")
        return metrics if on_disk + dropped == len(sent) else None

    metrics = wait_until(settled, timeout=20, what="every kept span on disk or dropped for the cap")
    assert metrics.value("tail_sampler_exporter_dropped_spans_total", reason="disk_queue_full") > 0
    assert metrics.value("tail_sampler_exporter_disk_queue_bytes") <= 0.05 * 1024 * 1024
    assert metrics.value("tail_sampler_exporter_disk_queue_capacity_bytes") == int(0.05 * 1024 * 1024)
    assert daemon.call(lambda: daemon.daemon.exporters[0].queue_full())


def test_a_second_daemon_on_the_same_queue_directory_is_refused(tmp_path, start_daemon):
    queue_dir = tmp_path / "queue"
    data = config_dict({EXPORTER: durable_exporter(free_port(), queue_dir)})
    start_daemon(copy.deepcopy(data))
    config_path, _ = write_config(tmp_path, data)
    # One process each, as the daemon in a thread is: with workers, each has a directory of its own.
    result = cli("run", "--config", str(config_path), "--workers", "1")
    assert result.returncode == 1
    assert f"exporter otlp: queue directory {queue_dir / EXPORTER} is in use by another process" in result.stderr


# --- saved decisions ---------------------------------------------------------------

ERRORS_ONLY = [{"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}}]


def test_late_spans_after_a_restart_follow_the_saved_decisions(tmp_path, grpc_sink):
    saved = tmp_path / "decisions.bin"
    data = config_dict(
        {EXPORTER: {"endpoint": grpc_sink.endpoint, "tls": {"insecure": True}}},
        policies=ERRORS_ONLY,
        decision_wait="200ms",
        decision_cache={"persist_path": str(saved)},
    )
    kept_id, kept_spans = make_trace(spans=3, error=True)
    dropped_id, dropped_spans = make_trace(spans=3)
    first = DaemonThread(make_config(data))
    try:
        grpc_export(first.grpc_endpoint, make_request(kept_spans + dropped_spans))
        sink_spans = grpc_sink.wait_for_spans(3)
        wait_until(lambda: first.scrape().value("tail_sampler_traces_decided_total") == 2, what="both decisions")
    finally:
        first.stop()
    assert {span.trace_id for span in sink_spans} == {kept_id}

    second = DaemonThread(make_config(data))
    try:
        # An error span late for the dropped trace would get it kept if it were a new trace.
        late = [make_span(kept_id, parent=kept_spans[0].span_id), make_span(dropped_id, error=True)]
        grpc_export(second.grpc_endpoint, make_request(late))
        spans = grpc_sink.wait_for_spans(4)
        metrics = second.scrape()
    finally:
        second.stop()
    assert metrics.value("tail_sampler_late_spans_total", decision="kept") == 1
    assert metrics.value("tail_sampler_late_spans_total", decision="dropped") == 1
    late_forwarded = [span for span in spans if span.span_id == late[0].span_id]
    assert len(late_forwarded) == 1
    assert dropped_id not in {span.trace_id for span in grpc_sink.spans()}


def test_a_bad_decision_file_is_reported_and_ignored(tmp_path, grpc_sink, caplog):
    saved = tmp_path / "decisions.bin"
    saved.write_bytes(b"TSDC\x07\x00\x00\x00 from a future version")
    data = config_dict(
        {EXPORTER: {"endpoint": grpc_sink.endpoint, "tls": {"insecure": True}}},
        decision_cache={"persist_path": str(saved)},
    )
    caplog.set_level(logging.ERROR, logger="sampler")
    daemon = DaemonThread(make_config(data))
    try:
        _, spans = make_trace(spans=2)
        grpc_export(daemon.grpc_endpoint, make_request(spans))
        grpc_sink.wait_for_spans(2)
    finally:
        daemon.stop()
    assert f"ignoring saved trace decisions in {saved}: format version 7" in caplog.text
    # Replaced on shutdown by a file this version reads.
    from sampler.decide.cache import load

    kept, _ = load(saved)
    assert len(kept) == 1


# --- the durable window (tail_sampling.storage) ---------------------------------------


def spans_of_traces(traces: dict[bytes, list[Any]]) -> set[bytes]:
    return {span.span_id for spans in traces.values() for span in spans}


def send_each(endpoint: str, traces: dict[bytes, list[Any]]) -> None:
    for spans in traces.values():
        grpc_export(endpoint, make_request(spans))


def new_traces(count: int, **kwargs: Any) -> dict[bytes, list[Any]]:
    return dict(make_trace(**kwargs) for _ in range(count))


def send_logs(endpoint: str, trace_ids: Iterable[bytes], body: str) -> None:
    """One log record naming each trace, in one OTLP/gRPC logs request."""
    request = ExportLogsServiceRequest()
    scope_logs = request.resource_logs.add().scope_logs.add()
    for trace_id in trace_ids:
        scope_logs.log_records.add(trace_id=trace_id, body=AnyValue(string_value=f"{body} {trace_id.hex()}"))
    with grpc.insecure_channel(endpoint) as channel:
        channel.unary_unary("/opentelemetry.proto.collector.logs.v1.LogsService/Export")(
            request.SerializeToString(), timeout=10
        )


def test_kill_9_with_the_backend_down_loses_no_acknowledged_span_of_a_kept_trace(tmp_path):
    """The done-criterion of the durable window (#13): backend down, must-keep traces
    acknowledged in every state a trace can be in (handed to the persistent exporter queue,
    decided and waiting in the batcher, still undecided in the window), dropped traces beside
    them, `kill -9`, restart, backend up: every acknowledged span of a kept trace arrives, late
    spans after the restart follow the decisions made before the crash, no span of a dropped
    trace is forwarded, and what may arrive twice is counted."""
    sink_port = free_port()
    storage = tmp_path / "storage"
    data = config_dict(
        {EXPORTER: durable_exporter(sink_port, tmp_path / "queue")},
        policies=ERRORS_ONLY,
        decision_wait="8s",  # traces without their root wait this long, from their arrival
        decision_wait_after_root_received="100ms",  # those with it are decided at once
        storage={"directory": str(storage), "fsync": "interval", "fsync_interval": "200ms"},
    )
    # Before the crash, a batch goes out at 100 spans only: what is decided later waits in the batcher.
    data["batch"] = {"timeout": "10m", "send_batch_size": 100}
    # One process, so that the states above are its states (a batcher per worker would hold the
    # 100 spans in two halves); test_kill_9_of_every_worker_... is the same crash with workers.
    data["workers"] = 1
    config_path, ports = write_config(tmp_path, data)
    receiver = f"127.0.0.1:{ports['grpc']}"

    handed_on = new_traces(25, spans=4, error=True)  # 100 spans: one batch, into the disk queue
    in_batcher = new_traces(10, spans=4, error=True)  # decided kept, waiting in the batcher
    dropped = new_traces(20, spans=4)  # decided dropped
    undecided_kept = new_traces(10, spans=3, root=False, error=True)  # still in the window
    undecided_dropped = new_traces(10, spans=3, root=False)
    decided_before = len(handed_on) + len(in_batcher) + len(dropped)

    first = DaemonProcess(config_path, ports["admin"])
    try:
        send_each(receiver, handed_on | dropped)
        send_each(receiver, in_batcher)

        def decided_written_and_queued() -> bool:
            metrics = Metrics.scrape(first.admin)
            return (
                metrics.value("tail_sampler_traces_decided_total") == decided_before
                and metrics.value("tail_sampler_decision_journal_written_traces_total") == decided_before
                and metrics.value("tail_sampler_exporter_disk_queue_spans", exporter=EXPORTER) == 100
                and metrics.value("tail_sampler_exporter_failed_attempts_total", exporter=EXPORTER) >= 1
            )

        wait_until(decided_written_and_queued, timeout=30, what="decisions journaled, one batch on disk, sends failing")
        # Log records naming traces ride with them: late ones of decided traces, and of waiting ones.
        send_logs(receiver, [*in_batcher, *dropped], "late log of")
        send_each(receiver, undecided_kept | undecided_dropped)
        send_logs(receiver, [*undecided_kept, *undecided_dropped], "log of")
        at_kill = Metrics.scrape(first.admin)
    finally:
        crash(first)
    assert at_kill.value("tail_sampler_window_traces") == len(undecided_kept) + len(undecided_dropped)
    assert at_kill.value("tail_sampler_forward_batches_total") == 1  # the in-batcher traces never left it

    data["batch"] = {"timeout": "100ms"}
    config_path.write_text(yaml.safe_dump(data))
    second = DaemonProcess(config_path, ports["admin"])  # ready: the log is replayed before the receivers open
    sink: GrpcSink | None = None
    try:
        recovered = Metrics.scrape(second.admin)
        late_kept = [
            make_span(trace_id, parent=spans[0].span_id) for trace_id, spans in (handed_on | in_batcher).items()
        ]
        # An error span would get a new trace kept: for a trace dropped before the crash it must not.
        late_dropped = [make_span(trace_id, error=True) for trace_id in dropped]
        grpc_export(receiver, make_request(late_kept + late_dropped))
        sink = GrpcSink(port=sink_port)
        kept_traces = handed_on | in_batcher | undecided_kept
        expected = spans_of_traces(kept_traces) | {span.span_id for span in late_kept}
        expected_logs = {f"late log of {t.hex()}" for t in in_batcher} | {f"log of {t.hex()}" for t in undecided_kept}

        def all_arrived_and_decided() -> Metrics | None:
            metrics = Metrics.scrape(second.admin)
            arrived = {span.span_id for span in sink.spans()} >= expected
            arrived = arrived and {record.body for record in sink.log_records()} >= expected_logs
            decided = metrics.value("tail_sampler_traces_decided_total") == len(undecided_kept) + len(undecided_dropped)
            return metrics if arrived and decided else None

        metrics = wait_until(all_arrived_and_decided, timeout=60, what="every kept span at the sink")
        code, output = second.terminate(signal.SIGTERM)
    finally:
        second.kill()
        if sink is not None:
            sink.close()

    received = sink.spans()
    unique = {span.span_id for span in received}
    duplicates = len(received) - len(unique)
    reported = metrics.value("tail_sampler_window_storage_recovered_spans_total", state="kept") + metrics.value(
        "tail_sampler_exporter_disk_redelivered_spans_total", exporter=EXPORTER
    )
    figures = (
        f"kept spans acknowledged {len(expected)}, received {len(received)} ({len(unique & expected)} of them, "
        f"{duplicates} duplicates); recovered from the window's log: "
        + ", ".join(
            f"{state} {recovered.value('tail_sampler_window_storage_recovered_spans_total', state=state):.0f}"
            for state in ("undecided", "kept", "dropped")
        )
        + f"; from the exporter queue {recovered.value('tail_sampler_exporter_disk_recovered_spans_total'):.0f}; "
        f"possible duplicates reported {reported:.0f}"
    )
    print(figures)
    assert code == 0, output
    assert unique >= expected, figures  # nothing acknowledged of a kept trace is lost
    assert {span.trace_id for span in received} <= kept_traces.keys(), figures  # nothing of a dropped one forwarded
    assert {record.trace_id for record in sink.log_records()} <= kept_traces.keys()  # nor its log records
    assert duplicates <= reported, figures  # what came twice is counted
    undecided_spans = len(spans_of_traces(undecided_kept | undecided_dropped))
    assert recovered.value("tail_sampler_window_storage_recovered_spans_total", state="undecided") == undecided_spans
    # The batcher's traces were decided, not handed on: forwarded again on the decision the journal kept.
    assert recovered.value("tail_sampler_window_storage_recovered_spans_total", state="kept") >= len(
        spans_of_traces(in_batcher)
    )
    assert recovered.value("tail_sampler_decision_journal_recovered_traces_total", decision="kept") == len(
        handed_on
    ) + len(in_batcher)
    assert metrics.value("tail_sampler_late_spans_total", decision="dropped") >= len(late_dropped)
    assert not list((storage / "window").glob("*.seg")), "every segment freed once all was handed on"


def test_full_window_storage_refuses_with_retry_hints_and_counts_it(tmp_path, start_daemon):
    data = config_dict(
        {EXPORTER: {"endpoint": f"127.0.0.1:{free_port()}", "tls": {"insecure": True}}},
        decision_wait="60s",  # nothing is decided, so nothing is freed
        storage={"directory": str(tmp_path), "max_size_mib": 0.2},
    )
    daemon = start_daemon(data)
    accepted = 0
    for _ in range(400):  # bounded: 0.2 MiB holds far fewer
        _, spans = make_trace(spans=20)
        reply = http_export(daemon.http_url, make_request(spans).SerializeToString())
        if reply.status_code != 200:
            break
        accepted += 20
    assert reply.status_code == 503, reply.text
    assert reply.headers["Retry-After"] == "1"
    assert "window's storage is full" in Status.FromString(reply.content).message
    with pytest.raises(grpc.RpcError) as refused:
        grpc_export(daemon.grpc_endpoint, make_request(make_trace(spans=20)[1]))  # as large as the refused one
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    metrics = daemon.scrape()
    assert metrics.value("tail_sampler_receiver_requests_total", result="storage_full") == 2
    assert metrics.value("tail_sampler_window_spans") == accepted  # every acknowledged span is there
    assert metrics.value("tail_sampler_window_storage_bytes") <= 0.2 * 2**20


def test_full_window_storage_with_decide_early_decides_the_oldest_and_takes_the_request(
    tmp_path, start_daemon, grpc_sink
):
    data = config_dict(
        {EXPORTER: {"endpoint": grpc_sink.endpoint, "tls": {"insecure": True}}},
        policies=ERRORS_ONLY,
        decision_wait="60s",
        storage={"directory": str(tmp_path), "max_size_mib": 0.2, "when_full": "decide_early"},
    )
    daemon = start_daemon(data)
    kept = set()
    for index in range(300):  # several times what 0.2 MiB holds
        trace_id, spans = make_trace(spans=20, error=index % 10 == 0)
        grpc_export(daemon.grpc_endpoint, make_request(spans))
        if index % 10 == 0:
            kept.add(trace_id)
    metrics = daemon.scrape()
    early = metrics.value("tail_sampler_early_decisions_total", reason="storage")
    assert early > 0
    assert metrics.value("tail_sampler_receiver_requests_total", result="storage_full") == 0
    assert metrics.value("tail_sampler_window_storage_bytes") <= 0.2 * 2**20
    decided_kept = wait_until(
        lambda: daemon.scrape().value("tail_sampler_traces_decided_total", decision="kept", trigger="storage"),
        what="kept traces decided early",
    )
    wait_until(lambda: len(grpc_sink.trace_ids()) >= decided_kept, what="the early kept traces at the sink")
    assert grpc_sink.trace_ids() <= kept


def test_late_spans_after_a_kill_9_follow_the_journaled_decisions(tmp_path, grpc_sink):
    """decision_cache.persist_path alone (no storage): decisions are journaled as made, so a
    kill -9 does not lose them (the issue: 0 late spans of kept traces forwarded after it)."""
    data = config_dict(
        {EXPORTER: {"endpoint": grpc_sink.endpoint, "tls": {"insecure": True}}},
        policies=ERRORS_ONLY,
        decision_wait="100ms",
        decision_cache={"persist_path": str(tmp_path / "decisions.bin")},
    )
    config_path, ports = write_config(tmp_path, data)
    receiver = f"127.0.0.1:{ports['grpc']}"
    kept = new_traces(30, spans=2, error=True)
    dropped = new_traces(30, spans=2)
    first = DaemonProcess(config_path, ports["admin"])
    try:
        send_each(receiver, kept | dropped)
        wait_until(
            lambda: Metrics.scrape(first.admin).value("tail_sampler_decision_journal_written_traces_total") == 60,
            what="every decision journaled",
        )
    finally:
        crash(first)
    grpc_sink.wait_for_spans(60)

    second = DaemonProcess(config_path, ports["admin"])
    try:
        late_kept = [make_span(trace_id) for trace_id in kept]
        late_dropped = [make_span(trace_id, error=True) for trace_id in dropped]
        grpc_export(receiver, make_request(late_kept + late_dropped))
        wait_until(
            lambda: {s.span_id for s in grpc_sink.spans()} >= {s.span_id for s in late_kept}, what="late kept spans"
        )
        metrics = Metrics.scrape(second.admin)
        code, output = second.terminate(signal.SIGTERM)
    finally:
        second.kill()
    assert code == 0, output
    assert metrics.value("tail_sampler_decision_journal_recovered_traces_total", decision="kept") == 30
    assert metrics.value("tail_sampler_late_spans_total", decision="kept") == 30
    assert metrics.value("tail_sampler_late_spans_total", decision="dropped") == 30
    assert grpc_sink.trace_ids() == kept.keys()


def test_a_restart_that_fails_before_its_replay_leaves_the_window_log_to_the_next(tmp_path, grpc_sink):
    """After a kill -9, a start that fails part-way (here its admin port is taken) must not
    free the window log it has not read back yet: the next start replays it and forwards it."""
    data = config_dict(
        {EXPORTER: {"endpoint": grpc_sink.endpoint, "tls": {"insecure": True}}},
        policies=ERRORS_ONLY,
        decision_wait="60s",
        storage={"directory": str(tmp_path / "storage")},
    )
    data["workers"] = 1  # the daemon itself opens the log before its admin endpoint
    config_path, ports = write_config(tmp_path, data)
    kept, dropped = new_traces(10, spans=2, error=True), new_traces(10, spans=2)
    first = DaemonProcess(config_path, ports["admin"])
    try:
        send_each(f"127.0.0.1:{ports['grpc']}", kept | dropped)  # acknowledged: in the window's log
    finally:
        crash(first)

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", ports["admin"]))
        taken.listen()
        failed = cli("run", "--config", str(config_path))
    assert failed.returncode != 0, failed.stdout + failed.stderr
    assert f"127.0.0.1:{ports['admin']}" in failed.stdout + failed.stderr
    assert grpc_sink.span_count() == 0

    second = DaemonProcess(config_path, ports["admin"])
    try:
        metrics = Metrics.scrape(second.admin)
        code, output = second.terminate(signal.SIGTERM)  # decides the replayed traces on the way
    finally:
        second.kill()
    assert code == 0, output
    assert metrics.value("tail_sampler_window_storage_recovered_spans_total", state="undecided") == 40
    assert grpc_sink.trace_ids() == kept.keys()


def test_kill_9_of_every_worker_loses_no_acknowledged_span_of_a_kept_trace(tmp_path):
    """The same crash with `workers: 2`, each worker with its own window log, journal and queue:
    every process killed at once mid-outage; after the restart each worker replays its own
    share, and late spans follow the decisions journaled before the crash."""
    sink_port = free_port()
    data = config_dict(
        {EXPORTER: durable_exporter(sink_port, tmp_path / "queue")},
        policies=ERRORS_ONLY,
        decision_wait="6s",
        decision_wait_after_root_received="100ms",
        storage={"directory": str(tmp_path / "storage"), "fsync": "interval", "fsync_interval": "200ms"},
    )
    data["workers"] = 2
    config_path, ports = write_config(tmp_path, data)
    receiver = f"127.0.0.1:{ports['grpc']}"

    def in_both_shares(**kwargs: Any) -> dict[bytes, list[Any]]:
        while True:
            traces = new_traces(12, **kwargs)
            if {owner_of(trace_id, 2) for trace_id in traces} == {0, 1}:
                return traces

    decided_kept = in_both_shares(spans=3, error=True)
    decided_dropped = in_both_shares(spans=3)
    undecided_kept = in_both_shares(spans=3, root=False, error=True)
    undecided_dropped = in_both_shares(spans=3, root=False)

    first = DaemonProcess(config_path, ports["admin"])
    try:
        assert len(worker_pids(first.process.pid)) == 2
        send_each(receiver, decided_kept | decided_dropped)
        wait_until(
            lambda: Metrics.scrape(first.admin).value("tail_sampler_decision_journal_written_traces_total") == 24,
            what="the decisions journaled",
        )
        send_each(receiver, undecided_kept | undecided_dropped)  # acknowledged: in the workers' logs
        at_crash = Metrics.scrape(first.admin)
    finally:
        crash(first)
    assert at_crash.value("tail_sampler_window_traces") == 24

    second = DaemonProcess(config_path, ports["admin"])
    sink: GrpcSink | None = None
    try:
        late_kept = [make_span(trace_id, parent=spans[0].span_id) for trace_id, spans in decided_kept.items()]
        late_dropped = [make_span(trace_id, error=True) for trace_id in decided_dropped]
        grpc_export(receiver, make_request(late_kept + late_dropped))
        sink = GrpcSink(port=sink_port)
        expected = spans_of_traces(decided_kept | undecided_kept) | {span.span_id for span in late_kept}

        def all_arrived() -> Metrics | None:
            metrics = Metrics.scrape(second.admin)
            arrived = {span.span_id for span in sink.spans()} >= expected
            return metrics if arrived and metrics.value("tail_sampler_traces_decided_total") == 24 else None

        metrics = wait_until(all_arrived, timeout=60, what="every kept span at the sink")
        code, output = second.terminate(signal.SIGTERM)
    finally:
        second.kill()
        if sink is not None:
            sink.close()
    assert code == 0, output
    assert {span.trace_id for span in sink.spans()} == (decided_kept | undecided_kept).keys()
    assert metrics.value("tail_sampler_window_storage_recovered_spans_total", state="undecided") == len(
        spans_of_traces(undecided_kept | undecided_dropped)
    )
    assert metrics.value("tail_sampler_late_spans_total", decision="dropped") >= len(late_dropped)
