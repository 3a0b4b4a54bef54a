"""Throughput, decision lag and memory of the daemon, against a null proxy as the ceiling.

Run:  python tests/bench/bench.py            (about 2 minutes)
      python tests/bench/bench.py --duration 20 --repeats 5

Everything runs on this machine over loopback, in separate processes:
  load   -> target (the daemon, or the null proxy) -> sink
The load process replays pre-serialized OTLP requests (10 spans per trace, ~10
attributes per span, 50 traces per request) over OTLP/gRPC with a few requests
in flight, patching fresh trace IDs into every request, so every trace is new.
The null proxy receives, parses, re-serializes and forwards everything with no
buffering: the ceiling for any Python OTLP relay on this machine. The daemon
keeps ~10% of traces (probabilistic 10%).

Reported per run, with medians over the repeats:
  - accepted spans/s (closed loop: each sender waits for the answer);
  - loss check: every accepted span decided, every kept span at the sink;
  - decision lag beyond the configured wait, p50/p99, from the daemon's histogram;
  - resident memory per buffered span: (RSS with a full window - RSS idle) / spans in the window.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

HERE = Path(__file__).resolve()
REPO = HERE.parents[2]
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
SPANS_PER_TRACE = 10
TRACES_PER_REQUEST = 50


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


# --- load ---------------------------------------------------------------------


class PoolRequest(NamedTuple):
    """One serialized request, and where its trace IDs are, so each send can make them new."""

    data: bytearray
    offsets: list[int]  # where every occurrence of every trace ID starts
    error_offsets: list[int]  # one occurrence of each trace ID that carries an error status
    spans: int


def build_pool(
    size: int, seed: int, traces_per_request: int = TRACES_PER_REQUEST, error_every: int = 0
) -> list[PoolRequest]:
    """`size` serialized requests of `traces_per_request` traces. With `error_every` N, every Nth
    trace of a request (and no other) has one span with an error status; without it, each span
    has a 2% chance of one."""
    import random

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    rng = random.Random(seed)
    services = ["frontend", "cart", "checkout", "payment", "inventory"]
    pool = []
    for _ in range(size):
        request = ExportTraceServiceRequest()
        trace_ids = []
        by_service = {}
        for service in services:
            rs = request.resource_spans.add()
            for key, value in (
                ("service.name", service),
                ("service.version", "1.4.2"),
                ("host.name", f"{service}-7d9f"),
            ):
                rs.resource.attributes.append(KeyValue(key=key, value=AnyValue(string_value=value)))
            ss = rs.scope_spans.add()
            ss.scope.name = f"io.opentelemetry.{service}"
            by_service[service] = ss
        now = time.time_ns()
        error_ids = []
        for trace_index in range(traces_per_request):
            trace_id = rng.randbytes(16)
            trace_ids.append(trace_id)
            failed = bool(error_every) and trace_index % error_every == 0
            if failed:
                error_ids.append(trace_id)
            root_id = rng.randbytes(8)
            for index in range(SPANS_PER_TRACE):
                span = by_service[services[index % len(services)]].spans.add()
                span.trace_id = trace_id
                span.span_id = root_id if index == 0 else rng.randbytes(8)
                span.parent_span_id = b"" if index == 0 else root_id
                span.name = f"GET /api/v1/items/{index}"
                span.kind = 2
                span.start_time_unix_nano = now + index * 1000
                span.end_time_unix_nano = now + index * 1000 + rng.randint(1, 900) * 1_000_000
                if (not error_every and rng.random() < 0.02) or (failed and index == SPANS_PER_TRACE - 1):
                    span.status.code = 2
                for attr in range(10):
                    span.attributes.append(
                        KeyValue(
                            key=f"app.attribute.{attr}", value=AnyValue(string_value=f"value-{rng.randint(0, 999)}")
                        )
                    )
        data = bytearray(request.SerializeToString())
        offsets = []
        for trace_id in trace_ids:
            start = 0
            while (found := data.find(trace_id, start)) >= 0:
                offsets.append(found)
                start = found + 16
        error_offsets = [data.find(trace_id) for trace_id in error_ids]
        pool.append(PoolRequest(data, offsets, error_offsets, SPANS_PER_TRACE * traces_per_request))
    return pool


async def run_load(
    target: str,
    duration: float,
    concurrency: int,
    seed: int,
    rate: float = 0.0,
    *,
    pool: list[PoolRequest] | None = None,
    max_requests: int = 0,
    on_accepted: Callable[[PoolRequest, bytes], None] | None = None,
    probe: Callable[[], dict[str, float]] | None = None,
    warmup: float = 0.0,
    connections: int = 1,
) -> dict:
    """Send for `duration` seconds (and at most `max_requests` requests, if given) with
    `concurrency` requests in flight; with `rate` (spans/s), paced to at most that, else as fast
    as answers come. Refusals (RESOURCE_EXHAUSTED, the daemon's backpressure) are counted apart
    from other errors. `on_accepted` sees every request the target accepted, as sent.

    With `probe`, its readings `warmup` seconds in and when sending stops are returned as
    "window", with the spans accepted between the two: the steady part of the run.

    `connections`: TCP connections the senders share, taking turns (gRPC would otherwise give
    every channel to one target the same connection), as several clients would."""
    import grpc

    pool = pool or build_pool(40, seed)
    counter = seed << 24
    sent_spans = 0
    requests_ok = 0
    requests_started = 0
    errors = 0
    refused = 0
    refused_spans = 0
    spans_per_request = pool[0].spans
    interval = concurrency * spans_per_request / rate if rate else 0.0
    stopping = asyncio.Event()
    marks: dict[str, dict[str, float]] = {}

    def mark(name: str) -> None:
        assert probe is not None
        marks[name] = {"t": time.monotonic(), "spans": sent_spans, **probe()}

    options = [("grpc.max_send_message_length", 64 << 20), ("grpc.use_local_subchannel_pool", 1)]
    channels = [grpc.aio.insecure_channel(target, options=options) for _ in range(max(1, connections))]
    try:
        exports = [channel.unary_unary(EXPORT) for channel in channels]
        await asyncio.gather(*(channel.channel_ready() for channel in channels))
        stop_at = time.monotonic() + duration

        async def sender(index: int) -> None:
            nonlocal counter, sent_spans, requests_ok, requests_started, errors, refused, refused_spans
            turn = index
            export = exports[index % len(exports)]
            next_send = time.monotonic() + interval * index / concurrency
            while time.monotonic() < stop_at and not (max_requests and requests_started >= max_requests):
                if interval:
                    await asyncio.sleep(max(0.0, next_send - time.monotonic()))
                    # A sender that fell behind does not catch up in a burst: the rate is a ceiling.
                    next_send = max(next_send + interval, time.monotonic())
                request = pool[turn % len(pool)]
                data = request.data
                turn += concurrency
                counter += 1
                requests_started += 1
                stamp = (counter & 0xFFFFFFFF).to_bytes(4, "big")
                # Fresh bytes in both halves of every trace ID in this request: all traces are new,
                # also to a cache keyed on one half (the Collector's decision cache uses the right).
                for offset in request.offsets:
                    data[offset : offset + 4] = stamp
                    data[offset + 8 : offset + 12] = stamp
                body = bytes(data)
                try:
                    await export(body, timeout=30)
                    requests_ok += 1
                    sent_spans += request.spans
                    if on_accepted is not None:
                        on_accepted(request, body)
                except grpc.aio.AioRpcError as error:
                    if error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED:
                        refused += 1
                        refused_spans += request.spans
                    else:
                        errors += 1
            stopping.set()

        async def watch_window() -> None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), warmup)
            mark("start")
            await stopping.wait()
            mark("end")

        started = time.monotonic()
        tasks = [sender(i) for i in range(concurrency)]
        if probe is not None:
            tasks.append(watch_window())
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - started
    finally:
        await asyncio.gather(*(channel.close() for channel in channels))
    result = {
        "spans": sent_spans,
        "requests": requests_ok,
        "errors": errors,
        "refused": refused,
        "refused_spans": refused_spans,
        "seconds": elapsed,
    }
    if marks:
        start, end = marks["start"], marks["end"]
        result["window"] = {key: end[key] - start[key] for key in start}
    return result


# --- sink and null proxy ------------------------------------------------------------


async def start_export_server(port: int, export) -> object:
    """A gRPC server on loopback answering TraceService/Export with `export(raw bytes, context)`."""
    import grpc

    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 << 20)])
    handler = grpc.method_handlers_generic_handler(
        "opentelemetry.proto.collector.trace.v1.TraceService",
        {"Export": grpc.unary_unary_rpc_method_handler(export)},
    )
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server


class TracesSeen:
    """Every span a checking sink received, by trace. Requests are kept as they arrived and
    parsed only when asked, so checking costs the sink nothing while the load runs."""

    def __init__(self) -> None:
        self._pending: list[bytes] = []
        self.spans = 0
        self.duplicate_spans = 0
        self.span_ids: dict[bytes, set[bytes]] = {}
        self.error_traces: set[bytes] = set()

    def add(self, data: bytes) -> None:
        self._pending.append(data)

    def _parse_pending(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        pending, self._pending = self._pending, []
        for data in pending:
            for rs in ExportTraceServiceRequest.FromString(data).resource_spans:
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        self.spans += 1
                        ids = self.span_ids.setdefault(span.trace_id, set())
                        if span.span_id in ids:
                            self.duplicate_spans += 1
                        ids.add(span.span_id)
                        if span.status.code == 2:
                            self.error_traces.add(span.trace_id)

    def counts(self) -> dict:
        self._parse_pending()
        return {"spans": self.spans, "traces": len(self.span_ids), "duplicate_spans": self.duplicate_spans}

    def report(self) -> dict:
        """The counts, and for each trace (hex ID): [distinct spans, has an error span]."""
        counts = self.counts()
        counts["by_trace"] = {
            trace_id.hex(): [len(ids), trace_id in self.error_traces] for trace_id, ids in self.span_ids.items()
        }
        return counts


async def serve_sink(port: int, count_file: str, check: bool = False) -> None:
    """Acks every export and counts spans; writes the counts to count_file on SIGUSR1 and SIGTERM.
    With `check`, it also keeps what it received (see TracesSeen) and its last report lists every
    trace it saw."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    counts = {"spans": 0, "requests": 0, "bytes": 0}
    seen = TracesSeen()

    async def export(data: bytes, context) -> bytes:
        counts["requests"] += 1
        counts["bytes"] += len(data)
        if check:
            seen.add(data)
        else:
            request = ExportTraceServiceRequest.FromString(data)
            counts["spans"] += sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
        return b""

    def write(final: bool) -> None:
        if check:
            counts.update(seen.report() if final else seen.counts())
        Path(count_file).write_text(json.dumps(counts))

    server = await start_export_server(port, export)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, lambda: write(final=False))
    await stop.wait()
    await server.stop(0)
    write(final=True)


async def serve_null_proxy(port: int, upstream: str) -> None:
    """Receive, parse, re-serialize, forward everything; no buffering, no decisions."""
    import grpc
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    channel = grpc.aio.insecure_channel(upstream, options=[("grpc.max_send_message_length", 64 << 20)])
    forward = channel.unary_unary(EXPORT)

    async def export(data: bytes, context) -> bytes:
        request = ExportTraceServiceRequest.FromString(data)
        await forward(request.SerializeToString(), timeout=30)
        return b""

    server = await start_export_server(port, export)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(0)
    await channel.close()


# --- orchestration --------------------------------------------------------------------


class Proc:
    def __init__(self, args: list[str], **kwargs) -> None:
        self.p = subprocess.Popen(args, cwd=REPO, **kwargs)

    def stop(self, timeout: float = 60) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open")


def me(*args: str) -> list[str]:
    return [sys.executable, str(HERE), *args]


def load(port: int, duration: float, concurrency: int, processes: int, rate: float = 0.0) -> dict:
    procs = [
        subprocess.Popen(
            me(
                "load",
                "--target",
                f"127.0.0.1:{port}",
                "--duration",
                str(duration),
                "--concurrency",
                str(concurrency),
                "--seed",
                str(i + 1),
                "--rate",
                str(rate / processes),
            ),
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for i in range(processes)
    ]
    results = [json.loads(p.communicate(timeout=duration + 120)[0]) for p in procs]
    return {
        "spans": sum(r["spans"] for r in results),
        "errors": sum(r["errors"] for r in results),
        "refused_spans": sum(r["refused_spans"] for r in results),
        "seconds": max(r["seconds"] for r in results),
    }


def sink_counts(sink: Proc, count_file: str) -> dict:
    Path(count_file).unlink(missing_ok=True)
    sink.p.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            return json.loads(Path(count_file).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            time.sleep(0.05)
    raise RuntimeError("sink did not report")


def scrape(admin_port: int) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5).read().decode()
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = sample.name + json.dumps(sample.labels, sort_keys=True) if sample.labels else sample.name
            values[key] = sample.value
    return values


def total(values: dict[str, float], name: str, **labels: str) -> float:
    result = 0.0
    for key, value in values.items():
        if key == name or key.startswith(name + "{"):
            got = json.loads(key[len(name) :]) if key != name else {}
            if all(got.get(k) == v for k, v in labels.items()):
                result += value
    return result


def histogram_quantile(values: dict[str, float], name: str, q: float) -> float:
    buckets = []
    for key, value in values.items():
        if key.startswith(name + "_bucket{"):
            le = json.loads(key[len(name) + 7 :])["le"]
            buckets.append((float("inf") if le == "+Inf" else float(le), value))
    buckets.sort()
    count = buckets[-1][1] if buckets else 0
    if not count:
        return float("nan")
    rank = q * count
    previous_bound, previous_count = 0.0, 0.0
    for bound, cumulative in buckets:
        if cumulative >= rank:
            if bound == float("inf"):
                return previous_bound
            share = (rank - previous_count) / max(cumulative - previous_count, 1e-9)
            return previous_bound + (bound - previous_bound) * share
        previous_bound, previous_count = bound, cumulative
    return previous_bound


def run_null(args, sink_port: int) -> dict:
    port = free_port()
    proxy = Proc(me("null-proxy", "--port", str(port), "--upstream", f"127.0.0.1:{sink_port}"))
    try:
        wait_port(port)
        result = load(port, args.duration, args.concurrency, args.load_processes)
    finally:
        proxy.stop()
    result["rate"] = result["spans"] / result["seconds"]
    return result


def run_daemon(args, sink: Proc, sink_port: int, count_file: str, workdir: Path) -> dict:
    grpc_port, admin_port = free_port(), free_port()
    config = workdir / "bench.yaml"
    config.write_text(
        f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{grpc_port}", max_recv_msg_size_mib: 16}}
tail_sampling:
  decision_wait: {args.decision_wait}s
  num_traces: 1000000
  decision_cache: {{sampled_cache_size: 200000, non_sampled_cache_size: 1000000}}
  policies:
    - {{name: baseline, type: probabilistic, probabilistic: {{sampling_percentage: 10}}}}
exporters:
  otlp: {{endpoint: "127.0.0.1:{sink_port}", tls: {{insecure: true}}, compression: none}}
admin: {{endpoint: "127.0.0.1:{admin_port}"}}
logging: {{summary_interval: 0s, level: warning}}
shutdown: {{timeout: 60s}}
"""
    )
    before = sink_counts(sink, count_file)
    daemon = Proc([sys.executable, "-m", "sampler", "run", "--config", str(config)])
    try:
        wait_port(admin_port)
        wait_port(grpc_port)
        time.sleep(0.5)
        idle_rss = rss_bytes(daemon.p.pid)
        # Sample memory and window size together while load runs.
        loader = subprocess.Popen(
            me(
                "load-multi",
                "--port",
                str(grpc_port),
                "--duration",
                str(args.duration),
                "--concurrency",
                str(args.concurrency),
                "--processes",
                str(args.load_processes),
            ),
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        peak = (0, 0.0)
        while loader.poll() is None:
            time.sleep(0.5)
            try:
                window = total(scrape(admin_port), "tail_sampler_window_spans")
            except OSError:
                continue
            rss = rss_bytes(daemon.p.pid)
            if window > peak[1]:
                peak = (rss, window)
        result = json.loads(loader.communicate()[0])
        # Let every trace come due and the kept ones reach the sink.
        deadline = time.monotonic() + args.decision_wait + 60
        while time.monotonic() < deadline:
            values = scrape(admin_port)
            decided_spans = total(values, "tail_sampler_spans_decided_total")
            queue = total(values, "tail_sampler_exporter_queue_batches")
            if decided_spans >= total(values, "tail_sampler_received_spans_total") and queue == 0:
                break
            time.sleep(0.5)
        time.sleep(1.0)
        values = scrape(admin_port)
    finally:
        daemon.stop()
    after = sink_counts(sink, count_file)
    kept = total(values, "tail_sampler_spans_decided_total", decision="kept")
    result.update(
        rate=result["spans"] / result["seconds"],
        received=total(values, "tail_sampler_received_spans_total"),
        decided=total(values, "tail_sampler_spans_decided_total"),
        kept=kept,
        at_sink=after["spans"] - before["spans"],
        dropped_by_exporter=total(values, "tail_sampler_exporter_dropped_spans_total"),
        early=total(values, "tail_sampler_early_decisions_total"),
        lag_p50=histogram_quantile(values, "tail_sampler_decision_lag_seconds", 0.5),
        lag_p99=histogram_quantile(values, "tail_sampler_decision_lag_seconds", 0.99),
        idle_rss=idle_rss,
        peak_rss=peak[0],
        peak_window_spans=peak[1],
        bytes_per_buffered_span=(peak[0] - idle_rss) / peak[1] if peak[1] else float("nan"),
    )
    result["no_loss"] = (
        result["errors"] == 0
        and result["received"] == result["spans"]
        and result["decided"] == result["received"]
        and result["at_sink"] == result["kept"]
        and result["dropped_by_exporter"] == 0
        and result["early"] == 0
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    bench = sub.add_parser("bench")
    for p in (parser, bench):
        p.add_argument("--duration", type=float, default=15.0, help="seconds of load per run")
        p.add_argument("--repeats", type=int, default=3)
        p.add_argument("--concurrency", type=int, default=4, help="requests in flight per load process")
        p.add_argument("--load-processes", type=int, default=1)
        p.add_argument("--decision-wait", type=float, default=5.0)
    lp = sub.add_parser("load")
    lp.add_argument("--target", required=True)
    lp.add_argument("--duration", type=float, required=True)
    lp.add_argument("--concurrency", type=int, default=4)
    lp.add_argument("--seed", type=int, default=1)
    lp.add_argument("--rate", type=float, default=0.0, help="spans/s at most (0: as fast as answered)")
    lm = sub.add_parser("load-multi")
    lm.add_argument("--port", type=int, required=True)
    lm.add_argument("--duration", type=float, required=True)
    lm.add_argument("--concurrency", type=int, default=4)
    lm.add_argument("--processes", type=int, default=1)
    sk = sub.add_parser("sink")
    sk.add_argument("--port", type=int, required=True)
    sk.add_argument("--count-file", required=True)
    sk.add_argument("--check", action="store_true", help="keep every trace seen, for a whole-trace check")
    npx = sub.add_parser("null-proxy")
    npx.add_argument("--port", type=int, required=True)
    npx.add_argument("--upstream", required=True)
    args = parser.parse_args()

    if args.command == "load":
        print(json.dumps(asyncio.run(run_load(args.target, args.duration, args.concurrency, args.seed, args.rate))))
        return
    if args.command == "load-multi":
        print(json.dumps(load(args.port, args.duration, args.concurrency, args.processes)))
        return
    if args.command == "sink":
        asyncio.run(serve_sink(args.port, args.count_file, args.check))
        return
    if args.command == "null-proxy":
        asyncio.run(serve_null_proxy(args.port, args.upstream))
        return

    workdir = Path(tempfile.mkdtemp(prefix="tail-sampler-bench-"))
    count_file = str(workdir / "sink.json")
    sink_port = free_port()
    sink = Proc(me("sink", "--port", str(sink_port), "--count-file", count_file))
    wait_port(sink_port)
    print(
        f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}; load: {args.load_processes} process(es) x "
        f"{args.concurrency} in flight; {SPANS_PER_TRACE} spans/trace, {TRACES_PER_REQUEST} traces/request; "
        f"{args.duration:g}s per run, {args.repeats} repeats; decision_wait {args.decision_wait:g}s",
        flush=True,
    )
    nulls, daemons = [], []
    try:
        for repeat in range(args.repeats):
            null = run_null(args, sink_port)
            nulls.append(null)
            print(f"[{repeat + 1}] null proxy: {null['rate']:,.0f} spans/s ({null['errors']} errors)", flush=True)
            result = run_daemon(args, sink, sink_port, count_file, workdir)
            daemons.append(result)
            print(
                f"[{repeat + 1}] daemon:     {result['rate']:,.0f} spans/s; no loss: {result['no_loss']} "
                f"(received {result['received']:,.0f}, decided {result['decided']:,.0f}, kept {result['kept']:,.0f}, "
                f"at sink {result['at_sink']:,.0f}); decision lag p50 {result['lag_p50'] * 1000:.0f} ms, "
                f"p99 {result['lag_p99'] * 1000:.0f} ms; "
                f"{result['bytes_per_buffered_span']:.0f} B RSS per buffered span "
                f"({result['peak_window_spans']:,.0f} spans buffered)",
                flush=True,
            )
    finally:
        sink.stop()
    null_rate = statistics.median(r["rate"] for r in nulls)
    daemon_rate = statistics.median(r["rate"] for r in daemons)
    print()
    print(f"median null proxy:  {null_rate:,.0f} spans/s")
    print(f"median daemon:      {daemon_rate:,.0f} spans/s  (ratio {daemon_rate / null_rate:.2f} of the null proxy)")
    print(f"runs without loss:  {sum(r['no_loss'] for r in daemons)}/{len(daemons)}")
    lag_p50 = statistics.median(r["lag_p50"] for r in daemons) * 1000
    lag_p99 = statistics.median(r["lag_p99"] for r in daemons) * 1000
    print(f"median decision lag beyond decision_wait: p50 {lag_p50:.0f} ms, p99 {lag_p99:.0f} ms (histogram buckets)")
    print(f"median RSS per buffered span: {statistics.median(r['bytes_per_buffered_span'] for r in daemons):.0f} B")


if __name__ == "__main__":
    main()
