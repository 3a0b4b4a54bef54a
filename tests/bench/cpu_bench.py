"""Spans per CPU-second: the tail-sampler against the OpenTelemetry Collector doing the same job.

Run:  python tests/bench/cpu_bench.py                         (about 5 minutes)
      python tests/bench/cpu_bench.py --daemon-workers 1,2 --duration 20 --repeats 3
      python tests/bench/cpu_bench.py --daemon-builds plain,compiled --span-metrics both
      python tests/bench/cpu_bench.py --no-collector --daemon-workers 1 --storage off,interval
                                                   (the cost of the durable window, same run)

Everything runs on this machine over loopback, in separate processes:
  load -> server under test -> sink
one server at a time, each with a sink of its own, in the same run:

  tail-sampler   `tail-sampler run --config` with config/sampler.yaml, the shipped config, whose
                 policies are replaced by one that keeps every trace with an error status
                 (status_code: ERROR); receivers, exporter and admin endpoint moved to loopback.
                 One variant per --daemon-workers value, with `workers: N` in the config; a
                 daemon that rejects that key runs N=1 without it and reports N>1 unsupported.
                 --span-metrics off turns the span metrics (span_metrics.enabled, on as shipped)
                 off; `both` runs each variant with them on and off, to price them per span
                 (the Collector runs no spanmetrics: `off` is the like-for-like comparison).
                 And one per --storage value: `off` (the default) runs without tail_sampling.storage,
                 `never`, `interval` or `always` with the durable window on, its log in a fresh
                 directory under the run's temporary directory (fsync_interval as shipped: 1s).
                 --daemon-builds: `plain` runs the sources as they are (plain Python; refused if
                 compiled modules sit beside them), `compiled` a copy of sampler/ whose hot path
                 is compiled with mypyc as `TAIL_SAMPLER_MYPYC=1 pip install` compiles it
                 (setup.py's modules; needs a C compiler, about half a minute).
  Collector      tests/collector (v0.161.0) with tail_sampling (the same policy and the same
                 decision_wait, decision_wait_after_root_received, num_traces and decision caches,
                 num_shards = --collector-shards) and batch, on every core (GOMAXPROCS default).

The load (tests/bench/bench.py's generator) replays pre-serialized OTLP/gRPC requests of 1000
spans, 100 traces x 10 spans with ~10 attributes each, patching fresh trace IDs into every
request; every 10th trace has an error status on one span, so 10% of traces must be kept. It is
a closed loop with a few requests in flight over a few connections (--concurrency,
--connections: with workers, the kernel gives each connection to one worker, as it would each
of several clients), bounded by --duration and --max-requests.

The CPU time of the server is utime + stime of its process and every descendant, including
children they reaped (/proc/PID/stat), read by the load process --warmup seconds after the load
starts (once decisions run at their steady rate) and again when it stops sending; the spans
accepted between the two readings over that CPU time are the server's spans per CPU-second.
Cores used = CPU-seconds / wall seconds of that window.

After the load, the run waits (on the server's own counters, bounded) until every accepted trace
is decided and every kept trace has reached the sink, stops the server, then checks what the sink
got: every error trace of an accepted request arrived with all 10 spans, no other trace arrived,
and no span arrived twice.

Medians over --repeats; ratios to the Collector come from the Collector's figures in the same run.
Exit status 1 if a run fails its whole-trace check.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parents[2]))

import bench  # noqa: E402  (the load generator, sink and scrape helpers of the benchmark)
import stages_bench  # noqa: E402  (the mypyc build of setup.py's modules in a copy of sampler/)

from tests.peers import COLLECTOR_SOURCES, collector_binary_path, collector_build_command  # noqa: E402

SHIPPED_CONFIG = bench.REPO / "config" / "sampler.yaml"
KEEP_ERRORS = [{"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}}]
# The shipped tail_sampling settings both servers understand; the daemon's others
# (memory_limit_mib, max_spans_per_trace) stay as shipped.
SHARED_SETTINGS = ("decision_wait", "decision_wait_after_root_received", "num_traces", "decision_cache")
TRACES_PER_REQUEST = 100
ERROR_EVERY = 10  # every 10th trace of a request has an error: 10% of traces are kept
SPANS_PER_TRACE = bench.SPANS_PER_TRACE
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- CPU time of a process tree ------------------------------------------------------------


def tree_cpu_seconds(root: int) -> float:
    """utime + stime of `root` and all its descendants, with the children each of them reaped
    (cutime + cstime), so a child that exits between two readings is still counted."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:  # exited meanwhile
            continue
        # The command name may hold spaces and parentheses: the fields start after the last ')'.
        fields = stat[stat.rindex(")") + 2 :].split()
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        ticks[pid] = sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    if root not in ticks:
        raise ProcessLookupError(f"process {root} is gone")
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += ticks.get(pid, 0)
        todo.extend(children.get(pid, ()))
    return total / CLOCK_TICKS


# --- the load process -----------------------------------------------------------------------


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_busy_seconds() -> float:
    """CPU time every core of the machine spent on anything (the first line of /proc/stat), to
    show how much the rest of the machine took from the server under test."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def run_load_process(args: argparse.Namespace) -> dict[str, Any]:
    pool = bench.build_pool(20, args.seed, traces_per_request=TRACES_PER_REQUEST, error_every=ERROR_EVERY)
    error_trace_ids: list[str] = []

    def on_accepted(request: bench.PoolRequest, body: bytes) -> None:
        error_trace_ids.extend(body[offset : offset + 16].hex() for offset in request.error_offsets)

    result = asyncio.run(
        bench.run_load(
            args.target,
            args.duration,
            args.concurrency,
            args.seed,
            pool=pool,
            max_requests=args.max_requests,
            on_accepted=on_accepted,
            connections=args.connections,
            probe=lambda: {
                "cpu": tree_cpu_seconds(args.pid),
                "load_cpu": own_cpu_seconds(),
                "machine_cpu": machine_busy_seconds(),
            },
            warmup=args.warmup,
        )
    )
    result["error_trace_ids"] = error_trace_ids
    return result


# --- servers under test ---------------------------------------------------------------------


class Server:
    """One server under test: started with a sink to forward to, asked for its progress."""

    label = ""
    unsupported = ""  # why this variant cannot run, when it cannot

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.proc: bench.Proc | None = None
        self.log_path = workdir / "server.log"
        self.grpc_port = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.p.pid

    def command(self, sink_port: int) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str] | None:
        """The server's environment; None: this process's."""
        return None

    def ready_ports(self) -> list[int]:
        raise NotImplementedError

    def progress(self) -> dict[str, float]:
        """{"decided": traces decided, "kept": traces kept, ...} from the server's own metrics."""
        raise NotImplementedError

    def start(self, sink_port: int) -> None:
        command = self.command(sink_port)
        with self.log_path.open("w") as log:
            self.proc = bench.Proc(command, stdout=log, stderr=subprocess.STDOUT, env=self.environment())
        deadline = time.monotonic() + 60
        for port in self.ready_ports():
            while True:
                if self.proc.p.poll() is not None:
                    raise RuntimeError(f"{self.label} exited at start:\n{self.log()}")
                try:
                    bench.wait_port(port, timeout=0.5)
                    break
                except RuntimeError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{self.label} did not open port {port}:\n{self.log()}") from None

    def stop(self) -> int | None:
        assert self.proc is not None
        self.proc.stop()
        return self.proc.p.returncode

    def log(self) -> str:
        return self.log_path.read_text()[-3000:] if self.log_path.exists() else ""


def shipped_tail_sampling(num_traces: int) -> dict[str, Any]:
    settings = yaml.safe_load(SHIPPED_CONFIG.read_text())["tail_sampling"]
    settings["policies"] = KEEP_ERRORS
    settings["num_traces"] = num_traces
    return settings


class Daemon(Server):
    def __init__(
        self,
        workdir: Path,
        workers: int,
        num_traces: int,
        span_metrics: bool = True,
        build: str = "plain",
        tree: Path | None = None,
        storage: str = "off",
    ) -> None:
        super().__init__(workdir)
        self.workers = workers
        self.admin_port = 0
        self.span_metrics = span_metrics
        # The sources it runs: the repository's (plain), or a copy with compiled modules.
        self.build = build
        self.tree = tree or bench.REPO
        self.storage = storage
        self.starts = 0
        suffix = (
            ("" if span_metrics else "-no-span-metrics")
            + ("" if storage == "off" else f"-storage-{storage}")
            + f"-{build}"
        )
        self.config_path = workdir / f"sampler-workers-{workers}{suffix}.yaml"
        self.num_traces = num_traces
        self.with_workers_key = True
        self.label = f"tail-sampler ({build}), workers: {workers}" + self.variant()

    def variant(self) -> str:
        return ("" if self.span_metrics else ", span metrics off") + (
            f", storage (fsync: {self.storage})" if self.storage != "off" else ""
        )

    def environment(self) -> dict[str, str]:
        # `python -P`: the working directory is not put first on sys.path, so PYTHONPATH decides.
        return {**os.environ, "PYTHONPATH": str(self.tree)}

    def check_build(self) -> None:
        """The sources it runs are the build it says, or the benchmark stops."""
        probe = "from sampler.receive import wire_split; print(wire_split.COMPILED)"
        out = subprocess.run(
            [sys.executable, "-P", "-c", probe], capture_output=True, text=True, env=self.environment(), check=True
        )
        compiled = out.stdout.strip() == "True"
        if compiled != (self.build == "compiled"):
            raise SystemExit(
                f"the {self.build} daemon's sources ({self.tree}) are {'' if compiled else 'not '}compiled"
                + (" (delete the *.so files beside them)" if compiled else "")
            )

    def config(self, sink_port: int) -> dict[str, Any]:
        config = yaml.safe_load(SHIPPED_CONFIG.read_text())
        config["tail_sampling"] = shipped_tail_sampling(self.num_traces)
        config["receivers"] = {
            "otlp": {"protocols": {"grpc": {"endpoint": f"127.0.0.1:{self.grpc_port}", "max_recv_msg_size_mib": 16}}}
        }
        config["exporters"] = {
            "otlp": {"endpoint": f"127.0.0.1:{sink_port}", "tls": {"insecure": True}, "compression": "none"}
        }
        config["admin"] = {"endpoint": f"127.0.0.1:{self.admin_port}"}
        config["logging"] = {"level": "warning"}
        if not self.span_metrics:
            config["span_metrics"] = {"enabled": False}
        if self.with_workers_key:
            config["workers"] = self.workers
        if self.storage != "off":
            # A fresh directory per start: a run must not replay what an earlier one left.
            directory = self.workdir / f"storage-{self.build}-{self.workers}-{self.storage}-{self.starts}"
            config["tail_sampling"]["storage"] = {"directory": str(directory), "fsync": self.storage}
        return config

    def sampler(self, *args: str) -> list[str]:
        return [sys.executable, "-P", "-m", "sampler", *args]

    def probe_support(self) -> None:
        """Does this daemon know `workers`? Without it, one process is what workers: 1 means."""
        self.grpc_port, self.admin_port = bench.free_port(), bench.free_port()
        self.config_path.write_text(yaml.safe_dump(self.config(sink_port=1), sort_keys=False))
        check = subprocess.run(
            self.sampler("check", "--config", str(self.config_path)),
            capture_output=True,
            text=True,
            cwd=bench.REPO,
            env=self.environment(),
        )
        if check.returncode == 0:
            return
        if self.storage != "off" and "'storage'" in check.stderr:
            self.unsupported = "`tail-sampler check` does not know tail_sampling.storage"
            return
        rejected = "'workers'" in check.stderr
        if rejected and self.workers == 1:
            self.with_workers_key = False
            self.label = f"tail-sampler ({self.build}, one process, no `workers` key)" + self.variant()
        elif rejected:
            reason = check.stderr.strip().splitlines()[-1].split(": ", 2)[-1].split(" (")[0].split(";")[0]
            self.unsupported = f"`tail-sampler check` says {reason!r}"
        else:
            raise RuntimeError(f"`tail-sampler check` refused the benchmark config:\n{check.stderr}")

    def command(self, sink_port: int) -> list[str]:
        self.grpc_port, self.admin_port = bench.free_port(), bench.free_port()
        self.starts += 1
        self.config_path.write_text(yaml.safe_dump(self.config(sink_port), sort_keys=False))
        return self.sampler("run", "--config", str(self.config_path))

    def ready_ports(self) -> list[int]:
        return [self.admin_port, self.grpc_port]

    def progress(self) -> dict[str, float]:
        values = bench.scrape(self.admin_port)
        return {
            "decided": bench.total(values, "tail_sampler_traces_decided_total"),
            "kept": bench.total(values, "tail_sampler_traces_decided_total", decision="kept"),
            "early decisions": bench.total(values, "tail_sampler_early_decisions_total"),
            # Spans of traces already decided: none, as every trace of the load is new.
            "late spans": bench.total(values, "tail_sampler_late_spans_total"),
            "exporter drops": bench.total(values, "tail_sampler_exporter_dropped_spans_total"),
        }


class Collector(Server):
    def __init__(self, workdir: Path, binary: Path, shards: int, num_traces: int) -> None:
        super().__init__(workdir)
        self.binary = binary
        self.shards = shards
        self.num_traces = num_traces
        self.telemetry_port = 0
        self.config_path = workdir / f"collector-shards-{shards}.yaml"
        self.label = f"Collector v0.161 tail_sampling (num_shards: {shards}) + batch"

    def config(self, sink_port: int) -> dict[str, Any]:
        shipped = shipped_tail_sampling(self.num_traces)
        tail_sampling = {key: shipped[key] for key in SHARED_SETTINGS if key in shipped}
        tail_sampling.update(policies=KEEP_ERRORS, num_shards=self.shards)
        return {
            "receivers": {
                "otlp": {
                    "protocols": {"grpc": {"endpoint": f"127.0.0.1:{self.grpc_port}", "max_recv_msg_size_mib": 16}}
                }
            },
            "processors": {"tail_sampling": tail_sampling, "batch": {}},
            "exporters": {
                "otlp_grpc": {"endpoint": f"127.0.0.1:{sink_port}", "tls": {"insecure": True}, "compression": "none"}
            },
            "service": {
                "telemetry": {
                    "logs": {"level": "warn"},
                    "metrics": {
                        "readers": [
                            {"pull": {"exporter": {"prometheus": {"host": "127.0.0.1", "port": self.telemetry_port}}}}
                        ]
                    },
                },
                "pipelines": {
                    "traces": {
                        "receivers": ["otlp"],
                        "processors": ["tail_sampling", "batch"],
                        "exporters": ["otlp_grpc"],
                    }
                },
            },
        }

    def command(self, sink_port: int) -> list[str]:
        self.grpc_port, self.telemetry_port = bench.free_port(), bench.free_port()
        self.config_path.write_text(yaml.safe_dump(self.config(sink_port), sort_keys=False))
        return [str(self.binary), f"--config={self.config_path}"]

    def ready_ports(self) -> list[int]:
        return [self.telemetry_port, self.grpc_port]

    def progress(self) -> dict[str, float]:
        values = bench.scrape(self.telemetry_port)
        decided = "otelcol_processor_tail_sampling_global_count_traces_sampled_total"
        return {
            "decided": bench.total(values, decided),
            "kept": bench.total(values, decided, sampled="true"),
            "dropped too early": bench.total(
                values, "otelcol_processor_tail_sampling_sampling_trace_dropped_too_early_total"
            ),
            # Spans released at once on a decision-cache hit: none, as every trace of the load is new.
            "cache releases": bench.total(
                values, "otelcol_processor_tail_sampling_early_releases_from_cache_decision_total"
            ),
            "exporter drops": bench.total(values, "otelcol_exporter_send_failed_spans_total"),
        }


def collector_binary(build: bool) -> Path:
    binary = collector_binary_path()
    if binary.exists():
        return binary
    go = shutil.which("go")
    if not build or go is None:
        raise SystemExit(
            f"no Collector at {binary} ({'go is not on PATH' if go is None else 'run with --build-collector'}); "
            "or run with --no-collector"
        )
    print(f"building the Collector from {COLLECTOR_SOURCES.relative_to(bench.REPO)} ...", flush=True)
    binary.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    subprocess.run(collector_build_command(go, binary), cwd=COLLECTOR_SOURCES, check=True, timeout=1800)
    print(f"built in {time.monotonic() - started:.0f}s", flush=True)
    return binary


def compiled_tree(workdir: Path) -> Path:
    """A copy of sampler/ with setup.py's modules compiled by mypyc, as a compiled install has them."""
    tree = workdir / "compiled"
    stages_bench.copy_tree(tree)
    print(f"compiling {', '.join(stages_bench.SHIPPED)} with mypyc ...", flush=True)
    seconds = stages_bench.build(tree, stages_bench.SHIPPED)
    print(f"compiled in {seconds:.0f} CPU-s", flush=True)
    return tree


# --- one run --------------------------------------------------------------------------------


def whole_trace_check(load: dict[str, Any], sink: dict[str, Any]) -> dict[str, Any]:
    """Every error trace of an accepted request at the sink with all its spans; nothing else."""
    expected = set(load["error_trace_ids"])
    by_trace: dict[str, list[Any]] = sink["by_trace"]
    arrived = expected & by_trace.keys()
    check = {
        "error traces sent": len(expected),
        "missing": len(expected - arrived),
        "incomplete": sum(1 for trace in arrived if by_trace[trace][0] != SPANS_PER_TRACE),
        "non-error arrived": sum(1 for _, has_error in by_trace.values() if not has_error),
        "unexpected": len(by_trace.keys() - expected),
        "duplicate spans": sink["duplicate_spans"],
        "failed requests": load["errors"] + load["refused"],
    }
    check["whole"] = (
        all(value == 0 for key, value in check.items() if key != "error traces sent")
        and sink["spans"] == len(expected) * SPANS_PER_TRACE
    )
    return check


def run_once(server: Server, args: argparse.Namespace, workdir: Path, seed: int) -> dict[str, Any]:
    count_file = str(workdir / "sink.json")
    sink_port = bench.free_port()
    sink = bench.Proc(bench.me("sink", "--port", str(sink_port), "--count-file", count_file, "--check"))
    try:
        bench.wait_port(sink_port)
        server.start(sink_port)
        try:
            time.sleep(0.5)
            loader = subprocess.run(
                [sys.executable, str(HERE), "load", "--target", f"127.0.0.1:{server.grpc_port}"]
                + ["--pid", str(server.pid), "--duration", str(args.duration), "--warmup", str(args.warmup)]
                + ["--concurrency", str(args.concurrency), "--max-requests", str(args.max_requests)]
                + ["--connections", str(args.connections)]
                + ["--seed", str(seed)],
                capture_output=True,
                text=True,
                cwd=bench.REPO,
                timeout=args.duration + 120,
            )
            if loader.returncode != 0:
                raise RuntimeError(f"the load process failed:\n{loader.stderr}")
            load = json.loads(loader.stdout)
            accepted_traces = load["spans"] // SPANS_PER_TRACE
            # Every accepted trace decided, every kept one at the sink (counters, bounded wait).
            deadline = time.monotonic() + args.drain_timeout
            while True:
                progress = server.progress()
                at_sink = bench.sink_counts(sink, count_file)
                if progress["decided"] >= accepted_traces and at_sink["traces"] >= progress["kept"]:
                    break
                if time.monotonic() > deadline:
                    print(f"  drain timed out: {progress}, sink {at_sink}", flush=True)
                    break
                time.sleep(0.5)
        finally:
            exit_code = server.stop()
    finally:
        sink.stop()
    report = json.loads(Path(count_file).read_text())
    window = load["window"]
    if not window["spans"]:
        raise RuntimeError("the load stopped before its warm-up ended: raise --duration or --max-requests")
    seconds, cpu = window["t"], max(window["cpu"], 1 / CLOCK_TICKS)
    result = {
        "spans": load["spans"],
        "seconds": load["seconds"],
        "window_spans": window["spans"],
        "window_seconds": seconds,
        "cpu_seconds": cpu,
        "rate": window["spans"] / seconds,
        "spans_per_cpu_second": window["spans"] / cpu,
        "cores": cpu / seconds,
        "load_cores": window["load_cpu"] / seconds,
        "other_cores": (window["machine_cpu"] - cpu - window["load_cpu"]) / seconds,
        "server": progress,
        "exit_code": exit_code,
        "check": whole_trace_check(load, report),
    }
    if exit_code not in (0, None):
        result["check"]["whole"] = False
        result["check"]["exit code"] = exit_code
    return result


# --- report ---------------------------------------------------------------------------------


def summarize(server: Server, runs: list[dict[str, Any]]) -> dict[str, Any]:
    if server.unsupported:
        return {"label": server.label, "unsupported": server.unsupported}

    def median(key: str) -> float:
        return statistics.median(run[key] for run in runs)

    variant = (
        {
            "workers": server.workers,
            "storage": server.storage,
            "span_metrics": server.span_metrics,
            "build": server.build,
        }
        if isinstance(server, Daemon)
        else {}
    )
    return {
        **variant,
        "label": server.label,
        "runs": len(runs),
        "whole_runs": sum(run["check"]["whole"] for run in runs),
        "rate": median("rate"),
        "cpu_seconds": median("cpu_seconds"),
        "window_seconds": median("window_seconds"),
        "spans_per_cpu_second": median("spans_per_cpu_second"),
        "cpu_us_per_span": 1e6 / median("spans_per_cpu_second") if median("spans_per_cpu_second") else 0.0,
        "cores": median("cores"),
        "other_cores": median("other_cores"),
    }


def print_table(summaries: list[dict[str, Any]]) -> None:
    # The Collector variant with the most spans per CPU-second: the strictest comparison.
    collectors = [s for s in summaries if s["label"].startswith("Collector") and "rate" in s]
    reference = max(collectors, key=lambda s: s["spans_per_cpu_second"], default=None)
    print()
    if reference is not None:
        print(f"ratios against: {reference['label']}")
    print(
        "| server | spans/s | CPU-s (window) | spans per CPU-second | CPU-µs per span | cores used "
        "| vs Collector: spans/s, spans per CPU-s | kept traces whole | rest of the machine, cores |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for s in summaries:
        if "unsupported" in s:
            print(f"| {s['label']} | unsupported: {s['unsupported']} ||||||||")
            continue
        if reference is not None:
            ratios = (
                f"{s['rate'] / reference['rate']:.2f}x, "
                f"{s['spans_per_cpu_second'] / reference['spans_per_cpu_second']:.2f}x"
            )
        else:
            ratios = "n/a"
        print(
            f"| {s['label']} | {s['rate']:,.0f} | {s['cpu_seconds']:.1f} of {s['window_seconds']:.1f}s "
            f"| {s['spans_per_cpu_second']:,.0f} | {s['cpu_us_per_span']:.2f} | {s['cores']:.2f} | {ratios} "
            f"| {s['whole_runs']}/{s['runs']} runs | {s['other_cores']:.2f} |"
        )


def print_storage_cost(summaries: list[dict[str, Any]]) -> None:
    """The durable window's cost: each storage variant against the same daemon without storage."""
    measured = [s for s in summaries if "storage" in s and "rate" in s]
    for s in measured:
        if s["storage"] == "off":
            continue
        base = next(
            (
                b
                for b in measured
                if b["storage"] == "off"
                and (b["workers"], b["span_metrics"], b["build"]) == (s["workers"], s["span_metrics"], s["build"])
            ),
            None,
        )
        if base is None:
            continue
        print(
            f"storage cost, {s['build']}, workers: {s['workers']}{'' if s['span_metrics'] else ', span metrics off'}, "
            f"fsync: {s['storage']} against off (same run): "
            f"spans/s {s['rate'] / base['rate']:.2f}x, spans per CPU-second "
            f"{s['spans_per_cpu_second'] / base['spans_per_cpu_second']:.2f}x"
        )


def format_run(index: int, server: Server, result: dict[str, Any]) -> str:
    check = result["check"]
    problems = {key: value for key, value in check.items() if key not in ("whole", "error traces sent") and value}
    verdict = "yes" if check["whole"] else f"NO {problems}"
    extra = ", ".join(
        f"{key} {value:,.0f}" for key, value in result["server"].items() if key not in ("decided", "kept")
    )
    return (
        f"[{index}] {server.label}: {result['rate']:,.0f} spans/s, {result['cpu_seconds']:.2f} CPU-s in "
        f"{result['window_seconds']:.1f}s -> {result['spans_per_cpu_second']:,.0f} spans per CPU-s, "
        f"{result['cores']:.2f} cores (load process {result['load_cores']:.2f}, sink and the rest of the machine "
        f"{result['other_cores']:.2f}); "
        f"{result['spans']:,} spans accepted in {result['seconds']:.1f}s; "
        f"kept traces whole: {verdict} ({check['error traces sent']:,} error traces, each of "
        f"{SPANS_PER_TRACE} spans); {extra}; exit code {result['exit_code']}"
    )


def command_line() -> str:
    python = Path(sys.executable)
    with_repo = python.absolute().is_relative_to(bench.REPO)
    shown = str(python.absolute().relative_to(bench.REPO)) if with_repo else sys.executable
    return shlex.join([shown, str(HERE.relative_to(bench.REPO)), *sys.argv[1:]])


def integers(text: str) -> list[int]:
    return [int(item) for item in text.split(",") if item.strip()]


def storage_modes(text: str) -> list[str]:
    modes = [item.strip() for item in text.split(",") if item.strip()]
    unknown = set(modes) - {"off", "never", "interval", "always"}
    if unknown or not modes:
        raise argparse.ArgumentTypeError(f"storage modes are off, never, interval, always; not {sorted(unknown)}")
    return modes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    parser.add_argument("--duration", type=float, default=25.0, help="seconds of load per run (default: %(default)s)")
    parser.add_argument(
        "--warmup", type=float, default=5.0, help="seconds of load before the CPU window opens (default: %(default)s)"
    )
    parser.add_argument("--max-requests", type=int, default=20000, help="requests per run at most")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight (default: %(default)s)")
    parser.add_argument(
        "--connections",
        type=int,
        default=4,
        help="TCP connections the requests in flight share (default: %(default)s): with workers, the kernel "
        "gives each connection to one worker, as it would each of several clients",
    )
    parser.add_argument("--daemon-workers", type=integers, default=[1, 2], help="comma-separated (default: 1,2)")
    parser.add_argument(
        "--storage",
        type=storage_modes,
        default=["off"],
        help="tail_sampling.storage for the daemon: off, or its fsync policy (never, interval, always); "
        "comma-separated, one variant each (default: off)",
    )
    parser.add_argument(
        "--collector-shards",
        type=integers,
        default=[os.cpu_count() or 1],
        help="the Collector's tail_sampling num_shards, comma-separated (default: the CPU count)",
    )
    parser.add_argument("--no-collector", action="store_true", help="run the daemon variants only")
    parser.add_argument(
        "--span-metrics",
        choices=("shipped", "off", "both"),
        default="shipped",
        help="the daemon's span metrics: as shipped (on), off, or both variants (default: %(default)s)",
    )
    parser.add_argument(
        "--daemon-builds",
        type=lambda text: [item.strip() for item in text.split(",") if item.strip()],
        default=["plain"],
        help="the daemon's builds, comma-separated, of: plain, compiled (default: plain)",
    )
    parser.add_argument("--build-collector", action="store_true", help="build tests/collector if not built yet")
    parser.add_argument(
        "--num-traces", type=int, default=200000, help="num_traces for both (default: %(default)s, room for the load)"
    )
    parser.add_argument("--drain-timeout", type=float, default=90.0, help="seconds to wait for the last decisions")
    parser.add_argument("--json", action="store_true", help="end with a JSON line of the summaries")
    lp = sub.add_parser("load")
    lp.add_argument("--target", required=True)
    lp.add_argument("--pid", type=int, required=True, help="the server whose process tree is measured")
    lp.add_argument("--duration", type=float, required=True)
    lp.add_argument("--warmup", type=float, required=True)
    lp.add_argument("--concurrency", type=int, required=True)
    lp.add_argument("--connections", type=int, required=True)
    lp.add_argument("--max-requests", type=int, required=True)
    lp.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.command == "load":
        print(json.dumps(run_load_process(args)))
        return 0

    with tempfile.TemporaryDirectory(prefix="tail-sampler-cpu-bench-") as workdir:
        return run_bench(args, Path(workdir))


def run_bench(args: argparse.Namespace, workdir: Path) -> int:
    span_metrics = {"shipped": [True], "off": [False], "both": [True, False]}[args.span_metrics]
    unknown = set(args.daemon_builds) - {"plain", "compiled"}
    if unknown:
        raise SystemExit(f"--daemon-builds: unknown {sorted(unknown)}; the builds are plain and compiled")
    trees = {"plain": bench.REPO}
    if "compiled" in args.daemon_builds:
        trees["compiled"] = compiled_tree(workdir)
    servers: list[Server] = [
        Daemon(workdir, workers, args.num_traces, on, build, trees[build], storage)
        for build in args.daemon_builds
        for workers in args.daemon_workers
        for on in span_metrics
        for storage in args.storage
    ]
    if not args.no_collector:
        binary = collector_binary(args.build_collector)
        servers += [Collector(workdir, binary, shards, args.num_traces) for shards in args.collector_shards]
    for server in servers:
        if isinstance(server, Daemon):
            server.check_build()
            server.probe_support()

    settings = shipped_tail_sampling(args.num_traces)
    print(f"command: {command_line()}")
    print(
        f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}; load: 1 process, {args.concurrency} "
        f"requests in flight over {args.connections} connection(s), "
        f"{TRACES_PER_REQUEST * SPANS_PER_TRACE} spans/request ({TRACES_PER_REQUEST} traces x "
        f"{SPANS_PER_TRACE} spans, every {ERROR_EVERY}th trace an error); {args.duration:g}s per run "
        f"(CPU window after {args.warmup:g}s of warm-up), {args.repeats} repeats"
    )
    shared = {key: settings[key] for key in SHARED_SETTINGS if key in settings}
    print(f"both servers: policy status_code ERROR; {json.dumps(shared)}", flush=True)

    results: dict[int, list[dict[str, Any]]] = {index: [] for index in range(len(servers))}
    for repeat in range(args.repeats):
        for index, server in enumerate(servers):
            if server.unsupported:
                if repeat == 0:
                    print(f"[-] {server.label}: unsupported ({server.unsupported})", flush=True)
                continue
            result = run_once(server, args, workdir, seed=repeat + 1)
            results[index].append(result)
            print(format_run(repeat + 1, server, result), flush=True)

    summaries = [summarize(server, results[index]) for index, server in enumerate(servers)]
    print_table(summaries)
    print_storage_cost(summaries)
    if args.json:
        print(json.dumps(summaries))
    failed = any(not run["check"]["whole"] for runs in results.values() for run in runs)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
