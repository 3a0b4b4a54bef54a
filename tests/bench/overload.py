"""10x overload: the daemon under a memory limit, offered ten times what it can take.

Run:  python tests/bench/overload.py                         (about 2 minutes)
      python tests/bench/overload.py --memory-limit-mib 32 --factor 10 --duration 30

What the daemon can take is set by its memory limit: every trace waits decision_wait in the
window, so the rate whose traces fit is

    capacity = memory_limit / (decision_wait x estimated memory of one buffered span)

(the estimate is sampler/buffer.py's memory_of, computed on the load's own requests). Several
load processes (tests/bench/bench.py's, over OTLP/gRPC) offer `factor` times that, in two runs:

  early          block_on_overflow off: every request is accepted and the oldest traces are
                 decided early (tail_sampler_early_decisions_total{reason="memory"});
  backpressure   block_on_overflow on: a request that finds no room within
                 block_on_overflow_timeout is refused with RESOURCE_EXHAUSTED.

Per run it prints the peak resident memory (sampled from /proc every 100 ms, and the kernel's
high-water mark VmHWM) against the ceiling

    idle RSS + memory limit + decision caches when full + requests in flight + batches forwarded

(the sizing rule in docs/operations/memory.md), spans offered, accepted and refused, early
decisions, and whether the daemon stayed up and exited cleanly. Exit status 1 if any run went
over its ceiling, lost an accepted span, or crashed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parents[2]))

import bench  # noqa: E402  (the load generator, sink and scrape helpers of the benchmark)

from sampler.decide.cache import NOT_SAMPLED_ENTRY_BYTES, SAMPLED_ENTRY_BYTES  # noqa: E402

MIB = 1024 * 1024
# A request in flight is held as its bytes, its parsed message and its per-trace split.
IN_FLIGHT_COPIES = 4
# Forwarding holds the batch being built and, per exporter consumer, the batch being sent and
# gRPC's copy of it: up to send_batch_max_bytes each (the defaults: 3 MiB, 2 consumers).
SEND_BATCH_MAX_BYTES = 3 * MIB
FORWARD_BATCHES = 1 + 2 * 2


def request_profile() -> tuple[int, int, int]:
    """(bytes of one load request, spans in it, estimated window memory of its traces)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from sampler.receive.split import RequestSplitter
    from sampler.window.window import memory_of

    data = bench.build_pool(1, seed=99)[0].data
    batch = RequestSplitter().split(ExportTraceServiceRequest.FromString(bytes(data)))
    return len(data), batch.span_count, sum(memory_of(trace) for trace in batch.traces.values())


class RssSampler(threading.Thread):
    """Samples a process's resident memory until stopped, and every few samples the window's
    estimated memory from its metrics; keeps the peaks and a history."""

    def __init__(self, pid: int, admin_port: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.admin_port = admin_port
        self.interval = interval
        self.peak = 0
        self.peak_window_memory = 0.0
        self.history: list[tuple[float, int]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        samples = 0
        while not self._halt.is_set():
            try:
                rss = bench.rss_bytes(self.pid)
            except OSError:
                return
            self.peak = max(self.peak, rss)
            self.history.append((time.monotonic() - started, rss))
            samples += 1
            if samples % 5 == 0:
                try:
                    values = bench.scrape(self.admin_port)
                except OSError:
                    pass
                else:
                    window = bench.total(values, "tail_sampler_window_memory_bytes")
                    self.peak_window_memory = max(self.peak_window_memory, window)
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


def high_water_mark(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def write_config(workdir: Path, mode: str, args: argparse.Namespace, ports: dict[str, int]) -> Path:
    config = workdir / f"overload-{mode}.yaml"
    config.write_text(
        f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{ports["grpc"]}", max_recv_msg_size_mib: 16}}
tail_sampling:
  decision_wait: {args.decision_wait}s
  num_traces: 10000000
  memory_limit_mib: {args.memory_limit_mib}
  block_on_overflow: {"true" if mode == "backpressure" else "false"}
  block_on_overflow_timeout: {args.block_timeout_ms}ms
  decision_cache: {{sampled_cache_size: {args.cache_size}, non_sampled_cache_size: {args.cache_size}}}
  policies:
    - {{name: baseline, type: probabilistic, probabilistic: {{sampling_percentage: 10}}}}
exporters:
  otlp: {{endpoint: "127.0.0.1:{ports["sink"]}", tls: {{insecure: true}}, compression: none}}
admin: {{endpoint: "127.0.0.1:{ports["admin"]}"}}
logging: {{summary_interval: 0s, level: warning}}
shutdown: {{timeout: 30s}}
"""
    )
    return config


def run(mode: str, args: argparse.Namespace, workdir: Path, sink_port: int, count_file: str, sink: bench.Proc) -> dict:
    request_bytes, request_spans, request_memory = request_profile()
    capacity = args.memory_limit_mib * MIB / (args.decision_wait * request_memory / request_spans)
    offered_rate = args.factor * capacity
    ports = {"grpc": bench.free_port(), "admin": bench.free_port(), "sink": sink_port}
    config = write_config(workdir, mode, args, ports)
    before = bench.sink_counts(sink, count_file)
    daemon = subprocess.Popen(
        [sys.executable, "-m", "sampler", "run", "--config", str(config)], cwd=bench.REPO, stderr=subprocess.PIPE
    )
    try:
        bench.wait_port(ports["admin"])
        bench.wait_port(ports["grpc"])
        time.sleep(1.0)
        idle_rss = bench.rss_bytes(daemon.pid)
        sampler = RssSampler(daemon.pid, ports["admin"])
        sampler.start()
        result = bench.load(ports["grpc"], args.duration, args.concurrency, args.load_processes, offered_rate)
        alive_after_load = daemon.poll() is None
        # Let every buffered trace come due and the kept ones reach the sink.
        deadline = time.monotonic() + args.decision_wait + 60
        values: dict[str, float] = {}
        while alive_after_load and time.monotonic() < deadline:
            values = bench.scrape(ports["admin"])
            decided = bench.total(values, "tail_sampler_spans_decided_total")
            if decided >= bench.total(values, "tail_sampler_received_spans_total") and not bench.total(
                values, "tail_sampler_exporter_queue_batches"
            ):
                break
            time.sleep(0.5)
        time.sleep(1.0)
        if alive_after_load:
            values = bench.scrape(ports["admin"])
        sampler.stop()
        hwm = high_water_mark(daemon.pid) if daemon.poll() is None else 0
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
        try:
            _, stderr = daemon.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.kill()
            _, stderr = daemon.communicate()
    after = bench.sink_counts(sink, count_file)
    in_flight = args.load_processes * args.concurrency * request_bytes * IN_FLIGHT_COPIES
    caches = args.cache_size * (SAMPLED_ENTRY_BYTES + NOT_SAMPLED_ENTRY_BYTES)
    limit = int(args.memory_limit_mib * MIB)
    forward = FORWARD_BATCHES * SEND_BATCH_MAX_BYTES
    ceiling = idle_rss + limit + caches + in_flight + forward
    received = bench.total(values, "tail_sampler_received_spans_total")
    kept = bench.total(values, "tail_sampler_spans_decided_total", decision="kept")
    outcome = {
        "mode": mode,
        "capacity_spans_per_s": capacity,
        "target_rate": offered_rate,
        "offered_spans": result["spans"] + result["refused_spans"],
        "offered_rate": (result["spans"] + result["refused_spans"]) / result["seconds"],
        "accepted_spans": result["spans"],
        "refused_spans": result["refused_spans"],
        "other_errors": result["errors"],
        "received": received,
        "decided": bench.total(values, "tail_sampler_spans_decided_total"),
        "kept": kept,
        "at_sink": after["spans"] - before["spans"],
        "early_memory": bench.total(values, "tail_sampler_early_decisions_total", reason="memory"),
        "backpressure_requests": bench.total(values, "tail_sampler_receiver_requests_total", result="backpressure"),
        "exporter_dropped": bench.total(values, "tail_sampler_exporter_dropped_spans_total"),
        "idle_rss": idle_rss,
        "peak_rss": max(sampler.peak, hwm),
        "peak_window_memory": sampler.peak_window_memory,
        "limit": limit,
        "caches": caches,
        "in_flight": in_flight,
        "forward": forward,
        "ceiling": ceiling,
        "alive_after_load": alive_after_load,
        "exit_code": daemon.returncode,
        "stderr_tail": stderr.decode(errors="replace")[-2000:],
        "rss_history": sampler.history[:: max(1, len(sampler.history) // 20)],
    }
    outcome["no_loss"] = (
        received == result["spans"]
        and outcome["decided"] == received
        and outcome["at_sink"] == kept
        and outcome["exporter_dropped"] == 0
    )
    outcome["ok"] = (
        alive_after_load and daemon.returncode == 0 and outcome["peak_rss"] <= ceiling and outcome["no_loss"]
    )
    return outcome


def report(outcome: dict) -> None:
    m = MIB
    print(
        f"[{outcome['mode']}] offered {outcome['offered_rate']:,.0f} spans/s "
        f"({outcome['offered_rate'] / outcome['capacity_spans_per_s']:.1f}x the {outcome['capacity_spans_per_s']:,.0f} "
        f"spans/s the memory limit sustains; target {outcome['target_rate']:,.0f}); "
        f"accepted {outcome['accepted_spans']:,.0f}, refused {outcome['refused_spans']:,.0f} spans "
        f"({outcome['backpressure_requests']:,.0f} requests pushed back), other errors {outcome['other_errors']}",
        flush=True,
    )
    print(
        f"[{outcome['mode']}] early decisions (memory): {outcome['early_memory']:,.0f} traces; peak window "
        f"memory {outcome['peak_window_memory'] / m:.1f} MiB of {outcome['limit'] / m:.1f}; "
        f"no loss: {outcome['no_loss']} (received {outcome['received']:,.0f}, decided {outcome['decided']:,.0f}, "
        f"kept {outcome['kept']:,.0f}, at sink {outcome['at_sink']:,.0f}, exporter drops "
        f"{outcome['exporter_dropped']:,.0f})",
        flush=True,
    )
    print(
        f"[{outcome['mode']}] peak RSS {outcome['peak_rss'] / m:.1f} MiB <= ceiling {outcome['ceiling'] / m:.1f} MiB: "
        f"{outcome['peak_rss'] <= outcome['ceiling']}  (idle {outcome['idle_rss'] / m:.1f} + memory limit "
        f"{outcome['limit'] / m:.1f} + decision caches {outcome['caches'] / m:.1f} + requests in flight "
        f"{outcome['in_flight'] / m:.1f} + forwarding {outcome['forward'] / m:.1f}); RSS over time (s: MiB): "
        + ", ".join(f"{t:.0f}: {rss / m:.0f}" for t, rss in outcome["rss_history"]),
        flush=True,
    )
    print(
        f"[{outcome['mode']}] daemon alive after the load: {outcome['alive_after_load']}; "
        f"exit code after SIGTERM: {outcome['exit_code']}",
        flush=True,
    )
    if not outcome["ok"] and outcome["stderr_tail"].strip():
        print(f"[{outcome['mode']}] daemon stderr:\n{outcome['stderr_tail']}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--memory-limit-mib", type=float, default=32.0)
    parser.add_argument("--factor", type=float, default=10.0, help="offered load, in multiples of the capacity")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load per run")
    parser.add_argument("--decision-wait", type=float, default=5.0)
    parser.add_argument(
        "--block-timeout-ms", type=int, default=50, help="block_on_overflow_timeout of the backpressure run"
    )
    parser.add_argument("--cache-size", type=int, default=100_000, help="each decision cache, in trace IDs")
    parser.add_argument("--load-processes", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight per load process")
    parser.add_argument("--modes", default="early,backpressure")
    parser.add_argument("--json", action="store_true", help="print the results as JSON lines only")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="tail-sampler-overload-"))
    count_file = str(workdir / "sink.json")
    sink_port = bench.free_port()
    sink = bench.Proc(bench.me("sink", "--port", str(sink_port), "--count-file", count_file))
    bench.wait_port(sink_port)
    if not args.json:
        print(
            f"machine: {os.cpu_count()} cores (shared with other work: figures are noisy); "
            f"python {sys.version.split()[0]}; memory limit {args.memory_limit_mib:g} MiB, decision_wait "
            f"{args.decision_wait:g}s, caches {args.cache_size:,} IDs each; load: {args.load_processes} processes x "
            f"{args.concurrency} in flight, {args.duration:g}s per run, {args.factor:g}x the capacity",
            flush=True,
        )
    outcomes = []
    try:
        for mode in args.modes.split(","):
            outcome = run(mode, args, workdir, sink_port, count_file, sink)
            outcomes.append(outcome)
            if args.json:
                print(json.dumps(outcome), flush=True)
            else:
                report(outcome)
    finally:
        sink.stop()
    sys.exit(0 if all(outcome["ok"] for outcome in outcomes) else 1)


if __name__ == "__main__":
    main()
