"""Throughput of `tail-sampler simulate`: spans replayed per second.

Run:  python tests/bench/simulate_bench.py                 (20,000 traces, about a minute)
      python tests/bench/simulate_bench.py --traces 5000 --repeats 1

Generates a file as the `file` exporter writes it (OTLP/JSON, one export request
per line, written with sampler.codecs.otlp_json.request_to_json): checkout-like traces of
10 spans across five services, ~10 attributes per span (strings, ints, doubles,
bools), 50 traces per line, 2 % of traces with a late span that lands on the next
line, 3 % errors, 5 % slow. Then times `python -m sampler simulate` on it as a
user runs it (a subprocess, start-up included), with two configs: the shipped
config/sampler.yaml (status_code, latency, probabilistic), and one that adds a
string_attribute policy (regex; it parses every span's attributes) and a
rate_limiting policy. Reports spans/s, median over the repeats, and times the two
phases in-process (reading+decoding, deciding) to show where the time goes.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
REPO = HERE.parents[2]
sys.path.insert(0, str(REPO))

SPANS_PER_TRACE = 10
TRACES_PER_LINE = 50
SERVICES = ("frontend", "cart", "checkout", "payment", "inventory")
ROUTES = ("/checkout", "/cart", "/api/v1/items/{id}", "/payment/confirm", "/healthz")

CONFIG = """
tail_sampling:
  policies:
    - {name: errors, type: status_code, status_code: {status_codes: [ERROR]}}
    - {name: slow, type: latency, latency: {threshold_ms: 500}}
    - name: checkout
      type: string_attribute
      string_attribute: {key: http.route, values: ["^/checkout", "^/payment"], enabled_regex_matching: true}
    - {name: budget, type: rate_limiting, rate_limiting: {spans_per_second: 2000}}
    - {name: baseline, type: probabilistic, probabilistic: {sampling_percentage: 5}}
exporters:
  file: {path: /dev/null}
"""


def generate(path: Path, traces: int, seed: int) -> int:
    """Write `traces` traces to `path`; returns the span count."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    from sampler.codecs.otlp_json import request_to_json
    from tests.support import kv

    rng = random.Random(seed)

    def new_request() -> tuple[ExportTraceServiceRequest, dict]:
        request = ExportTraceServiceRequest()
        scopes = {}
        for service in SERVICES:
            resource_spans = request.resource_spans.add()
            for key, value in (
                ("service.name", service),
                ("service.version", "1.4.2"),
                ("deployment.environment.name", "prod"),
                ("host.name", f"{service}-7d9f{rng.randint(0, 3)}"),
            ):
                resource_spans.resource.attributes.append(kv(key, value))
            scope_spans = resource_spans.scope_spans.add()
            scope_spans.scope.name = f"io.opentelemetry.{service}"
            scope_spans.scope.version = "1.25.0"
            scopes[service] = scope_spans
        return request, scopes

    start = 1_700_000_000_000_000_000
    spans_written = 0
    late: list[Span] = []
    with path.open("w", encoding="utf-8") as out:
        for first in range(0, traces, TRACES_PER_LINE):
            request, scopes = new_request()
            for span in late:  # late spans of the previous line's traces
                scopes[SERVICES[-1]].spans.append(span)
            late = []
            for _ in range(min(TRACES_PER_LINE, traces - first)):
                start += rng.randint(0, 2_000_000)  # ~1000 traces per second of trace time
                trace_id = rng.randbytes(16)
                root_id = rng.randbytes(8)
                error = rng.random() < 0.03
                slow = rng.random() < 0.05
                route = rng.choice(ROUTES)
                late_index = SPANS_PER_TRACE - 1 if rng.random() < 0.02 else -1
                for index in range(SPANS_PER_TRACE):
                    service = SERVICES[index % len(SERVICES)]
                    span = Span(
                        trace_id=trace_id,
                        span_id=root_id if index == 0 else rng.randbytes(8),
                        parent_span_id=b"" if index == 0 else root_id,
                        name=f"{service} {route}" if index == 0 else f"{service}.op{index}",
                        kind=Span.SPAN_KIND_SERVER if index == 0 else Span.SPAN_KIND_INTERNAL,
                        start_time_unix_nano=start + index * 1_000_000,
                        end_time_unix_nano=start
                        + index * 1_000_000
                        + (rng.randint(600, 1500) if slow and index == 0 else rng.randint(1, 80)) * 1_000_000,
                    )
                    attributes = {
                        "http.route": route,
                        "http.request.method": rng.choice(("GET", "POST")),
                        "http.response.status_code": 500 if error and index == 0 else 200,
                        "url.scheme": "https",
                        "server.address": f"{service}.internal",
                        "client.address": f"10.0.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                        "user.tier": rng.choice(("free", "free", "pro", "enterprise")),
                        "app.cart.items": rng.randint(0, 12),
                        "app.amount": round(rng.uniform(1, 900), 2),
                        "app.cache_hit": rng.random() < 0.7,
                    }
                    span.attributes.extend(kv(key, value) for key, value in attributes.items())
                    if error and index == SPANS_PER_TRACE - 1:
                        span.status.code = 2
                        span.status.message = "payment declined"
                    if index == late_index:
                        late.append(span)
                    else:
                        scopes[service].spans.append(span)
                    spans_written += 1
            out.write(request_to_json(request) + "\n")
        if late:
            request, scopes = new_request()
            scopes[SERVICES[-1]].spans.extend(late)
            out.write(request_to_json(request) + "\n")
    return spans_written


def time_cli(config: Path, traces_file: Path) -> tuple[float, dict]:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "sampler", "simulate", "--config", str(config), "--input", str(traces_file), "--json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"simulate failed ({result.returncode}):\n{result.stderr}")
    return elapsed, json.loads(result.stdout)


def time_phases(config: Path, traces_file: Path) -> tuple[float, float]:
    from sampler.config import load_config
    from sampler.tools.simulate.read import read_traces
    from sampler.tools.simulate.run import simulate

    sampling = load_config(config).tail_sampling
    started = time.perf_counter()
    traces = read_traces(traces_file)
    read = time.perf_counter() - started
    started = time.perf_counter()
    simulate(sampling, traces.traces.values(), str(config))
    return read, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="simulate-bench-") as tmp:
        attributes_config = Path(tmp) / "attributes.yaml"
        attributes_config.write_text(CONFIG)
        configs = {"shipped": REPO / "config" / "sampler.yaml", "attributes": attributes_config}
        traces_file = Path(tmp) / "traces.jsonl"
        started = time.perf_counter()
        spans = generate(traces_file, args.traces, args.seed)
        size = traces_file.stat().st_size
        print(
            f"generated {args.traces} traces, {spans} spans, {size / 1e6:.1f} MB "
            f"({size / spans:.0f} B/span) in {time.perf_counter() - started:.1f}s"
        )
        summary = []
        for label, config in configs.items():
            runs = []
            for repeat in range(args.repeats):
                elapsed, report = time_cli(config, traces_file)
                assert report["input"]["spans"] == spans and report["input"]["traces"] == args.traces, report["input"]
                runs.append(elapsed)
                kept = report["results"][0]["kept_traces"]
                print(f"{label} run {repeat + 1}: {elapsed:.2f}s, {spans / elapsed:,.0f} spans/s (kept {kept} traces)")
            read, decide = time_phases(config, traces_file)
            print(
                f"{label} in-process: read+decode {read:.2f}s ({spans / read:,.0f} spans/s), "
                f"decide {decide:.2f}s ({spans / decide:,.0f} spans/s)"
            )
            median = statistics.median(runs)
            summary.append(f"{label} config, end to end (median of {len(runs)}): {spans / median:,.0f} spans/s")
        print("\n".join(summary))


if __name__ == "__main__":
    main()
