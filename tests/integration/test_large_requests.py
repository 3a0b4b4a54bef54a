"""One request cannot stall the daemon (#13): the largest bodies the receivers take by default,
full of minimal spans, one trace each, sent to the daemon as a process of its own with the
shipped config. While the daemon works on one, /healthz keeps answering within a second, its
memory grows by at most 400 MiB, the client learns exactly what was refused (partial success,
never a silent loss), and an ordinary request afterwards is served as usual."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import requests
import yaml
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from sampler.config.receivers import OtlpReceiverConfig
from tests.integration.test_cli import REPO, DaemonProcess, write_config
from tests.support import Metrics, grpc_export, http_export, make_request, make_trace, minimal_spans_body

MIB = 1024 * 1024
HEALTHZ_WORST_SECONDS = 1.0
MEMORY_GROWTH_MIB = 400
CAP = OtlpReceiverConfig().max_spans_per_request


class Watch:
    """/healthz asked every 50 ms, each answer's wait noted, and the daemon's resident memory."""

    def __init__(self, daemon: DaemonProcess) -> None:
        self.daemon = daemon
        self.worst = 0.0
        self.failures: list[str] = []
        self.rss_before = _status_kib(daemon.process.pid, "VmRSS")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                status = session.get(self.daemon.admin + "/healthz", timeout=10).status_code
                if status != 200:
                    self.failures.append(f"/healthz answered {status}")
            except requests.RequestException as exc:
                self.failures.append(f"/healthz: {exc}")
            self.worst = max(self.worst, time.monotonic() - started)
            self._stop.wait(0.05)

    def stop(self) -> float:
        """The daemon's peak resident memory since it started, less its memory before, in MiB."""
        self._stop.set()
        self._thread.join(timeout=15)
        return (_status_kib(self.daemon.process.pid, "VmHWM") - self.rss_before) / 1024


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for process {pid}")


def _shipped_daemon(tmp_path: Path) -> tuple[DaemonProcess, dict[str, int]]:
    data = yaml.safe_load((REPO / "config" / "sampler.yaml").read_text())
    data["exporters"]["file"]["path"] = str(tmp_path / "kept.jsonl")
    path, ports = write_config(tmp_path, data)
    return DaemonProcess(path, ports["admin"]), ports


def _check(
    daemon: DaemonProcess, watch: Watch, response: ExportTraceServiceResponse, spans: int, protocol: str
) -> None:
    growth = watch.stop()
    print(f"{protocol}: {spans} spans; /healthz worst {watch.worst:.3f}s; memory growth {growth:.0f} MiB")
    assert not watch.failures, watch.failures[:3]
    assert watch.worst <= HEALTHZ_WORST_SECONDS, f"/healthz took {watch.worst:.2f}s to answer"
    assert growth <= MEMORY_GROWTH_MIB, f"memory grew by {growth:.0f} MiB"
    refused = spans - CAP
    assert response.partial_success.rejected_spans == refused
    assert f"{refused} span(s) rejected" in response.partial_success.error_message
    assert f"max_spans_per_request ({CAP})" in response.partial_success.error_message
    metrics = Metrics.scrape(daemon.admin)
    assert metrics.value("tail_sampler_received_spans_total", protocol=protocol) == CAP
    assert metrics.value("tail_sampler_received_traces_total", protocol=protocol) == CAP
    assert (
        metrics.value("tail_sampler_rejected_spans_total", protocol=protocol, reason="max_spans_per_request") == refused
    )
    assert metrics.value("tail_sampler_receiver_requests_total", protocol=protocol, result="partial") == 1


def test_a_19_mib_http_body_of_one_span_traces_stalls_nobody(tmp_path: Path) -> None:
    daemon, ports = _shipped_daemon(tmp_path)
    try:
        body, spans = minimal_spans_body(19 * MIB)
        assert spans > 600_000
        watch = Watch(daemon)
        reply = requests.post(
            f"http://127.0.0.1:{ports['http']}/v1/traces",
            data=body,
            headers={"Content-Type": "application/x-protobuf"},
            timeout=120,
        )
        assert reply.status_code == 200, reply.text
        _check(daemon, watch, ExportTraceServiceResponse.FromString(reply.content), spans, "http")
        # An ordinary request afterwards is served as usual.
        _, ordinary = make_trace(spans=5)
        after = http_export(f"http://127.0.0.1:{ports['http']}/v1/traces", make_request(ordinary).SerializeToString())
        assert after.status_code == 200
        assert not ExportTraceServiceResponse.FromString(after.content).HasField("partial_success")
    finally:
        daemon.kill()


def test_the_largest_grpc_message_of_one_span_traces_stalls_nobody(tmp_path: Path) -> None:
    daemon, ports = _shipped_daemon(tmp_path)
    try:
        body, spans = minimal_spans_body(4 * MIB - 64)  # within the default max_recv_msg_size_mib
        assert spans > CAP
        watch = Watch(daemon)
        response = grpc_export(f"127.0.0.1:{ports['grpc']}", body, timeout=120)
        _check(daemon, watch, response, spans, "grpc")
        _, ordinary = make_trace(spans=5)
        assert not grpc_export(f"127.0.0.1:{ports['grpc']}", make_request(ordinary)).HasField("partial_success")
    finally:
        daemon.kill()
