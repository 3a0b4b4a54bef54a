"""Soak: the daemon at half its measured capacity for a while; its memory must stay flat.

Run:  python tests/bench/soak.py --duration 10                          (minutes)
      python tests/bench/soak.py --duration 0.5 --decision-wait 2 --cache-size 20000 --json
                                                                         (what the slow test runs)

First a short probe measures what the daemon takes on this machine: the benchmark's load
(tests/bench/bench.py: 10 spans per trace, 50 traces per request, over OTLP/gRPC) as fast as a
fresh daemon answers. Then another fresh daemon gets half that rate, paced, for --duration
minutes. Every --interval seconds it prints resident memory, spans in (received) and out (at
the sink), traces decided and what the window holds. Warm-up is decision_wait plus the time the
decision caches take to fill at that rate (both grow memory by design); after it, resident
memory should stay flat. Reported: the median RSS of the first and last thirds after warm-up
and their ratio, and whether every accepted span was decided and every kept span arrived.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))

import bench  # noqa: E402  (the load generator, sink and scrape helpers of the benchmark)

MIB = 1024 * 1024
# The soak daemon keeps this share of traces (probabilistic 10 %), so its sampled cache fills this much slower.
KEEP_FRACTION = 0.10


def write_config(workdir: Path, name: str, args: argparse.Namespace, ports: dict[str, int]) -> Path:
    config = workdir / f"{name}.yaml"
    config.write_text(
        f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{ports["grpc"]}", max_recv_msg_size_mib: 16}}
tail_sampling:
  decision_wait: {args.decision_wait}s
  num_traces: 10000000
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


class Daemon:
    def __init__(self, workdir: Path, name: str, args: argparse.Namespace, sink_port: int) -> None:
        self.ports = {"grpc": bench.free_port(), "admin": bench.free_port(), "sink": sink_port}
        config = write_config(workdir, name, args, self.ports)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sampler", "run", "--config", str(config)], cwd=bench.REPO, stderr=subprocess.PIPE
        )
        bench.wait_port(self.ports["admin"])
        bench.wait_port(self.ports["grpc"])

    def stop(self) -> tuple[int, str]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            _, stderr = self.process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, stderr = self.process.communicate()
        return self.process.returncode, stderr.decode(errors="replace")[-2000:]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="minutes of load at half capacity")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--probe", type=float, default=5.0, help="seconds of the capacity probe")
    parser.add_argument("--decision-wait", type=float, default=5.0)
    parser.add_argument("--cache-size", type=int, default=100_000, help="each decision cache, in trace IDs")
    parser.add_argument("--load-processes", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight per load process")
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end, nothing else")
    args = parser.parse_args()
    say = (lambda *_: None) if args.json else (lambda text: print(text, flush=True))

    workdir = Path(tempfile.mkdtemp(prefix="tail-sampler-soak-"))
    count_file = str(workdir / "sink.json")
    sink_port = bench.free_port()
    sink = bench.Proc(bench.me("sink", "--port", str(sink_port), "--count-file", count_file))
    try:
        bench.wait_port(sink_port)
        probe_daemon = Daemon(workdir, "probe", args, sink_port)
        try:
            probe = bench.load(probe_daemon.ports["grpc"], args.probe, args.concurrency, args.load_processes)
        finally:
            probe_daemon.stop()
        capacity = probe["spans"] / probe["seconds"]
        rate = capacity / 2
        traces_per_second = rate / bench.SPANS_PER_TRACE
        # Both decision caches fill up by design; the sampled one only with the kept tenth.
        warmup = args.decision_wait + args.cache_size / (traces_per_second * KEEP_FRACTION) + 2 * args.interval
        duration = args.duration * 60
        say(
            f"machine: {os.cpu_count()} cores (shared with other work: figures are noisy); python "
            f"{sys.version.split()[0]}; capacity probe: {capacity:,.0f} spans/s; soak at {rate:,.0f} spans/s for "
            f"{duration:g}s; decision_wait {args.decision_wait:g}s, caches {args.cache_size:,} IDs each; "
            f"warm-up {warmup:.0f}s"
        )

        before = bench.sink_counts(sink, count_file)
        daemon = Daemon(workdir, "soak", args, sink_port)
        samples: list[dict] = []
        load_result: dict = {}
        try:
            time.sleep(1.0)
            idle_rss = bench.rss_bytes(daemon.process.pid)
            loader = threading.Thread(
                target=lambda: load_result.update(
                    bench.load(daemon.ports["grpc"], duration, args.concurrency, args.load_processes, rate)
                ),
                daemon=True,
            )
            started = time.monotonic()
            loader.start()
            while loader.is_alive():
                loader.join(args.interval)
                if daemon.process.poll() is not None:
                    break
                values = bench.scrape(daemon.ports["admin"])
                sample = {
                    "t": time.monotonic() - started,
                    "rss": bench.rss_bytes(daemon.process.pid),
                    "spans_in": bench.total(values, "tail_sampler_received_spans_total"),
                    "spans_out": bench.total(values, "tail_sampler_exporter_sent_spans_total"),
                    "traces_decided": bench.total(values, "tail_sampler_traces_decided_total"),
                    "traces_kept": bench.total(values, "tail_sampler_traces_decided_total", decision="kept"),
                    "window_traces": bench.total(values, "tail_sampler_window_traces"),
                    "window_memory": bench.total(values, "tail_sampler_window_memory_bytes"),
                }
                samples.append(sample)
                say(
                    f"t={sample['t']:5.0f}s  RSS {sample['rss'] / MIB:6.1f} MiB  spans in {sample['spans_in']:>11,.0f}"
                    f"  out {sample['spans_out']:>10,.0f}  traces decided {sample['traces_decided']:>9,.0f} "
                    f"(kept {sample['traces_kept']:,.0f})  window {sample['window_traces']:,.0f} traces, "
                    f"{sample['window_memory'] / MIB:.1f} MiB"
                )
            alive = daemon.process.poll() is None
            values = {}
            deadline = time.monotonic() + args.decision_wait + 60
            while alive and time.monotonic() < deadline:
                values = bench.scrape(daemon.ports["admin"])
                if bench.total(values, "tail_sampler_spans_decided_total") >= bench.total(
                    values, "tail_sampler_received_spans_total"
                ) and not bench.total(values, "tail_sampler_exporter_queue_batches"):
                    break
                time.sleep(0.5)
            time.sleep(1.0)
            if alive:
                values = bench.scrape(daemon.ports["admin"])
        finally:
            exit_code, stderr = daemon.stop()
        after = bench.sink_counts(sink, count_file)
    finally:
        sink.stop()

    steady = [s["rss"] for s in samples if s["t"] >= warmup]
    third = max(1, len(steady) // 3)
    # Medians: one sample taken during a burst of arrivals (the window briefly fuller) is noise, not growth.
    first, last = median(steady[:third]), median(steady[-third:])
    received = bench.total(values, "tail_sampler_received_spans_total")
    kept = bench.total(values, "tail_sampler_spans_decided_total", decision="kept")
    summary = {
        "capacity": capacity,
        "rate": rate,
        "offered_rate": load_result.get("spans", 0) / load_result.get("seconds", 1),
        "duration": duration,
        "warmup": warmup,
        "idle_rss": idle_rss,
        "steady_samples": len(steady),
        "rss_first_third": first,
        "rss_last_third": last,
        "rss_growth": last / first - 1 if steady else float("nan"),
        "peak_rss": max((s["rss"] for s in samples), default=0),
        "accepted": load_result.get("spans", 0),
        "errors": load_result.get("errors", 0) + load_result.get("refused_spans", 0),
        "received": received,
        "decided": bench.total(values, "tail_sampler_spans_decided_total"),
        "kept": kept,
        "at_sink": after["spans"] - before["spans"],
        "early_decisions": bench.total(values, "tail_sampler_early_decisions_total"),
        "exporter_dropped": bench.total(values, "tail_sampler_exporter_dropped_spans_total"),
        "alive": alive,
        "exit_code": exit_code,
        "samples": samples,
    }
    summary["no_loss"] = (
        summary["errors"] == 0
        and received == summary["accepted"]
        and summary["decided"] == received
        and summary["at_sink"] == kept
        and summary["exporter_dropped"] == 0
    )
    if args.json:
        print(json.dumps(summary))
        return
    print()
    print(
        f"offered {summary['offered_rate']:,.0f} spans/s for {duration:g}s; received {received:,.0f}, decided "
        f"{summary['decided']:,.0f}, kept {kept:,.0f}, at sink {summary['at_sink']:,.0f}; no loss: {summary['no_loss']}"
    )
    print(
        f"RSS idle {idle_rss / MIB:.1f} MiB, peak {summary['peak_rss'] / MIB:.1f} MiB; after warm-up "
        f"({len(steady)} samples): median of the first third {first / MIB:.1f} MiB, "
        f"of the last third {last / MIB:.1f} MiB, "
        f"growth {summary['rss_growth'] * 100:+.1f}%"
    )
    print(f"daemon alive to the end: {alive}; exit code after SIGTERM: {exit_code}")
    if exit_code != 0 and stderr.strip():
        print(f"daemon stderr:\n{stderr}")


if __name__ == "__main__":
    main()
