"""Hot reload: SIGHUP and edits of the config file change the policies while traffic flows."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import yaml

from sampler.config import load_config
from tests.integration.test_cli import DaemonProcess, write_config
from tests.support import (
    DaemonThread,
    GrpcSink,
    Metrics,
    config_dict,
    fast_retry,
    grpc_export,
    make_request,
    make_trace,
    wait_until,
)

ERRORS = {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}}
KEEP_ALL = {"name": "everything", "type": "always_sample"}


def write(path: Path, data: dict) -> None:
    # Write then rename, as editors and Kubernetes ConfigMap updates do.
    temporary = path.with_suffix(".tmp")
    temporary.write_text(yaml.safe_dump(data))
    temporary.replace(path)


def test_editing_the_file_reloads_policies_and_keeps_buffered_traces(tmp_path, grpc_sink):
    path = tmp_path / "sampler.yaml"
    data = config_dict({"otlp": fast_retry(grpc_sink.endpoint)}, [ERRORS], decision_wait="1500ms")
    data["reload"] = {"check_interval": "100ms"}
    write(path, data)
    daemon = DaemonThread(load_config(path), config_path=str(path))
    try:
        buffered, buffered_spans = make_trace(spans=2)  # plain: only the new policy keeps it
        grpc_export(daemon.grpc_endpoint, make_request(buffered_spans))

        data["tail_sampling"]["policies"] = [ERRORS, KEEP_ALL]
        write(path, data)
        wait_until(lambda: daemon.scrape().value("tail_sampler_config_reloads_total", result="success") == 1)
        assert [p.name for p in daemon.daemon.sampler.policies] == ["errors", "everything"]
        # The trace buffered before the reload is decided by the new policies when due.
        grpc_sink.wait_for_spans(2, timeout=10)
        assert grpc_sink.trace_ids() == {buffered}

        # An invalid edit is rejected as a whole; the running policies stay.
        path.write_text(path.read_text().replace("always_sample", "alwyas_sample"))
        wait_until(lambda: daemon.scrape().value("tail_sampler_config_reloads_total", result="failure") == 1)
        metrics = daemon.scrape()
        assert metrics.value("tail_sampler_config_last_reload_successful") == 0
        assert [p.name for p in daemon.daemon.sampler.policies] == ["errors", "everything"]
        later, later_spans = make_trace(spans=3)
        grpc_export(daemon.grpc_endpoint, make_request(later_spans))
        grpc_sink.wait_for_spans(5, timeout=10)
        assert later in grpc_sink.trace_ids()
    finally:
        daemon.stop()


def test_sighup_reloads_while_traffic_flows_and_nothing_is_lost(tmp_path):
    sink = GrpcSink()
    try:
        data = config_dict({"otlp": fast_retry(sink.endpoint)}, [ERRORS], decision_wait="500ms")
        data["reload"] = {"watch_file": False}
        path, ports = write_config(tmp_path, data)
        daemon = DaemonProcess(path, ports["admin"])
        endpoint = f"127.0.0.1:{ports['grpc']}"
        sent: list[bytes] = []
        stop = threading.Event()

        def traffic() -> None:
            deadline = time.monotonic() + 30
            while not stop.is_set() and time.monotonic() < deadline:
                trace_id, spans = make_trace(spans=2)
                grpc_export(endpoint, make_request(spans))
                sent.append(trace_id)
                time.sleep(0.01)

        sender = threading.Thread(target=traffic)
        sender.start()
        try:
            time.sleep(0.5)
            data["tail_sampling"]["policies"] = [ERRORS, KEEP_ALL]
            write(path, data)
            daemon.process.send_signal(signal.SIGHUP)
            wait_until(
                lambda: Metrics.scrape(daemon.admin).value("tail_sampler_config_reloads_total", result="success") == 1
            )
            wait_until(lambda: len(sink.trace_ids()) >= 20, what="traces kept by the reloaded policy")

            path.write_text("tail_sampling: [not, a, mapping\n")
            daemon.process.send_signal(signal.SIGHUP)
            wait_until(
                lambda: Metrics.scrape(daemon.admin).value("tail_sampler_config_reloads_total", result="failure") == 1
            )
            kept_before = len(sink.trace_ids())
            wait_until(lambda: len(sink.trace_ids()) >= kept_before + 20, what="keep-all still in effect")
        finally:
            stop.set()
            sender.join(30)
        # Every trace sent was received and decided exactly once: the reloads lost nothing.
        assert len(sent) > 50
        wait_until(
            lambda: Metrics.scrape(daemon.admin).value("tail_sampler_traces_decided_total") == len(sent),
            what="every sent trace decided",
        )
        metrics = Metrics.scrape(daemon.admin)
        assert metrics.value("tail_sampler_received_traces_total") == len(sent)
        assert metrics.value("tail_sampler_late_spans_total") == 0
        code, output = daemon.terminate()
        assert code == 0, output
        assert "config reload rejected" in output and "invalid YAML" in output
    finally:
        sink.close()


def test_a_file_that_is_not_utf8_is_a_counted_failed_reload_and_the_next_valid_edit_applies(tmp_path, caplog):
    path = tmp_path / "sampler.yaml"
    data = config_dict({"file": {"path": str(tmp_path / "out.jsonl")}}, [ERRORS])
    data["reload"] = {"check_interval": "50ms"}
    write(path, data)
    daemon = DaemonThread(load_config(path), config_path=str(path))
    try:
        path.write_bytes(path.read_bytes() + b"\n# caf\xe9\n")  # one Latin-1 byte
        wait_until(lambda: daemon.scrape().value("tail_sampler_config_reloads_total", result="failure") == 1)
        assert daemon.scrape().value("tail_sampler_config_last_reload_successful") == 0
        assert "is not UTF-8 text (byte 0xe9)" in caplog.text
        data["tail_sampling"]["policies"] = [ERRORS, KEEP_ALL]
        write(path, data)
        wait_until(lambda: daemon.scrape().value("tail_sampler_config_reloads_total", result="success") == 1)
        assert [p.name for p in daemon.daemon.sampler.policies] == ["errors", "everything"]
        assert daemon.scrape().value("tail_sampler_config_last_reload_successful") == 1
    finally:
        daemon.stop()
